using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Evidence.Canonical;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;

namespace Cairn.Evidence.Log;

/// <summary>Raised for evidence problems the user must act on (missing key, locked log, refused prune).</summary>
public sealed class EvidenceException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>One line of the log: the exact bytes (the Merkle leaf) and, unless pruned, the parsed record.</summary>
public sealed record LogEntry(long Seq, byte[] LeafHash, string? Line, JsonObject? Record, string Segment)
{
    public bool Pruned => Line is null;

    /// <summary>The record's time; null when pruned, missing or not a time (a hand-made line must not crash a reader).</summary>
    public DateTimeOffset? Time => Record?["time"] is JsonValue v && v.GetValueKind() == JsonValueKind.String
        && DateTimeOffset.TryParse(v.GetValue<string>(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) ? t : null;

    public string? Kind => Record?["kind"] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}

/// <summary>
/// The append-only evidence log in a folder (see docs/evidence.md):
/// <code>
/// log/&lt;first seq, 12 digits&gt;-&lt;yyyy-MM&gt;.jsonl   records, one canonical JSON object per line
/// log/&lt;…&gt;.leaves                               leaf hashes of a pruned segment (hex, one per line)
/// checkpoint                                    the newest signed checkpoint (C2SP signed note)
/// checkpoints/&lt;yyyy-MM-dd&gt;.txt                  the last checkpoint of each day
/// evidence.pub                                  the verifier key (signed-note form)
/// origin                                        the log's origin line
/// </code>
/// The signing key lives outside the folder (default: the folder's path + ".key", mode 0600), so the
/// folder can be committed to git. Appends hold an exclusive file lock, so concurrent writers queue.
/// </summary>
public sealed class EvidenceLog
{
    private readonly TimeProvider _time;

    public EvidenceLog(string folder, string? signingKeyPath, TimeProvider time)
    {
        Folder = Path.GetFullPath(folder);
        SigningKeyPath = signingKeyPath ?? Folder.TrimEnd('/') + ".key";
        _time = time;
    }

    public string Folder { get; }

    public string SigningKeyPath { get; }

    public string LogFolder => Path.Combine(Folder, "log");

    public string CheckpointPath => Path.Combine(Folder, "checkpoint");

    public string PublicKeyPath => Path.Combine(Folder, "evidence.pub");

    public bool Exists => File.Exists(Path.Combine(Folder, "origin"));

    /// <summary>The kind of a signing-key hand-over record (docs/evidence.md, "Signing-key rotation").</summary>
    public const string HandoverKind = "evidence-key-rotation";

    /// <summary>The co-signed checkpoints of the hand-overs: <c>handovers/&lt;seq&gt;.txt</c>, the checkpoint of size seq + 1.</summary>
    public string HandoverFolder => Path.Combine(Folder, "handovers");

    public string HandoverCheckpointPath(long seq) => Path.Combine(HandoverFolder, $"{seq:D12}.txt");

    /// <summary>The new key while a rotation is under way (0600); installed or removed by the next writer after a crash.</summary>
    public string NextKeyPath => SigningKeyPath + ".next";

    public string Origin => File.ReadAllText(Path.Combine(Folder, "origin")).Trim();

    /// <summary>Creates the folder, the origin and a new Ed25519 signing key. Refuses to overwrite an existing log or key.</summary>
    public NoteKey Init(string? origin = null)
    {
        if (Exists)
        {
            throw new EvidenceException($"an evidence log already exists at {Folder}");
        }
        if (File.Exists(SigningKeyPath))
        {
            throw new EvidenceException($"a signing key already exists at {SigningKeyPath}; move it away or point the log at it");
        }
        origin ??= $"cairn.evidence/{Environment.MachineName.ToLowerInvariant()}/{Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4))}";
        Directory.CreateDirectory(LogFolder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Directory.CreateDirectory(Path.Combine(Folder, "checkpoints"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = NoteKey.Generate(origin.Replace('/', '-'));
        WriteAtomic(SigningKeyPath, key.SignerKey + "\n", privateFile: true);
        WriteAtomic(PublicKeyPath, key.VerifierKey + "\n", privateFile: false);
        WriteAtomic(Path.Combine(Folder, "origin"), origin + "\n", privateFile: false);
        using (var l = AcquireLock())
        {
            WriteCheckpoint([key], [], origin);
        }
        return key;
    }

    public NoteKey LoadSigningKey()
    {
        if (!File.Exists(SigningKeyPath))
        {
            throw new EvidenceException($"the evidence signing key {SigningKeyPath} is missing; restore it from your backup of it, or start a new log with 'cairn evidence init' in another folder");
        }
        try
        {
            var key = NoteKey.ParseSigner(File.ReadAllText(SigningKeyPath));
            var pub = NoteKey.ParseVerifier(File.ReadAllText(PublicKeyPath));
            if (pub.VerifierKey != key.VerifierKey)
            {
                throw new EvidenceException($"the signing key {SigningKeyPath} does not belong to this log (its public key differs from {PublicKeyPath})");
            }
            return key;
        }
        catch (FormatException e)
        {
            throw new EvidenceException($"the evidence signing key {SigningKeyPath} is unreadable: {e.Message}", e);
        }
    }

    public NoteKey LoadPublicKey(string? path = null)
    {
        var p = path ?? PublicKeyPath;
        try
        {
            return NoteKey.ParseVerifier(File.ReadAllText(p));
        }
        catch (Exception e) when (e is FormatException or IOException)
        {
            throw new EvidenceException($"cannot read the verifier key {p}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The key readers verify with, and a problem when the folder's <c>evidence.pub</c> disagrees with it.
    /// Someone who can write the folder can replace <c>evidence.pub</c> and sign a forged log with their
    /// own key, so the anchor is, in order: a pinned verifier key file (<paramref name="pinnedPath"/>),
    /// else the public half of the signing key when this host holds it, else <c>evidence.pub</c> itself.
    /// </summary>
    public (NoteKey Key, string? Problem) TrustedPublicKey(string? pinnedPath)
    {
        NoteKey? folderKey = null;
        string? folderProblem = null;
        try
        {
            folderKey = LoadPublicKey();
        }
        catch (EvidenceException e)
        {
            folderProblem = e.Message;
        }
        NoteKey? anchor = null;
        string source;
        if (pinnedPath is not null)
        {
            anchor = LoadPublicKey(pinnedPath);
            source = $"the pinned key {pinnedPath}";
        }
        else
        {
            source = $"the signing key {SigningKeyPath}";
            try
            {
                if (File.Exists(SigningKeyPath))
                {
                    anchor = NoteKey.ParseVerifier(NoteKey.ParseSigner(File.ReadAllText(SigningKeyPath)).VerifierKey);
                }
            }
            catch (Exception e) when (e is FormatException or IOException or UnauthorizedAccessException)
            {
                // Not readable here (a monitoring host without the key): fall back to the folder's key.
            }
        }
        if (anchor is null)
        {
            return (folderKey ?? throw new EvidenceException(folderProblem ?? $"no verifier key for {Folder}"), null);
        }
        return folderKey is not null && (folderKey.VerifierKey == anchor.VerifierKey || HandedOverTo(anchor, folderKey))
            ? (anchor, null)
            : (anchor, $"the verifier key {PublicKeyPath} is not the one of {source} (replaced or damaged); records were checked with the latter");
    }

    /// <summary>
    /// Whether the log's hand-overs lead from <paramref name="anchor"/> to <paramref name="current"/> (the folder's key after a
    /// rotation). Only the records and co-signatures are looked at here; the full check is <see cref="LogVerifier"/>'s.
    /// </summary>
    private bool HandedOverTo(NoteKey anchor, NoteKey current)
    {
        if (!Directory.Exists(HandoverFolder))
        {
            return false;
        }
        var entries = ReadEntries(out _);
        var chain = KeyChain.Build(this, entries, [.. entries.Select(e => e.LeafHash)], anchor);
        return chain.Problems.Count == 0 && chain.Current.VerifierKey == current.VerifierKey;
    }

    /// <summary>
    /// Appends one record: assigns seq, time, tool and host, writes it as one canonical line, fsyncs,
    /// and signs a new checkpoint. A truncated last line from a crash is removed first. The log must
    /// still match its signed checkpoint (else nothing is appended: signing over an edited log would
    /// launder the edit), and lines after the checkpoint are set aside first (see <see cref="SignedEntries"/>).
    /// </summary>
    public (long Seq, string Line) Append(JsonObject record, string tool)
    {
        if (!Exists)
        {
            throw new EvidenceException($"no evidence log at {Folder}; create it with 'cairn evidence init'");
        }
        using var l = AcquireLock();
        FinishInterruptedRotation();
        var key = LoadSigningKey();
        RepairTail();
        var entries = SignedEntries(key, tool);
        return AppendLocked(key, entries, record, tool);
    }

    /// <summary>What <see cref="RotateKey"/> did: the hand-over record, both keys, and where the old key was kept (null: removed).</summary>
    public sealed record KeyRotation(long Seq, NoteKey OldKey, NoteKey NewKey, string HandoverCheckpoint, string? KeptOldKey);

    /// <summary>
    /// Hands the log over to a new signing key: a new Ed25519 key is written beside the current one (0600), a hand-over record
    /// naming the old key and the new public key is appended (<paramref name="statement"/> plus kind and details), and the
    /// checkpoint covering it is signed by both keys and kept in <c>handovers/</c>. Then the new key replaces the old one as the
    /// signing key and <c>evidence.pub</c>; the old private key is removed, or with <paramref name="keepOld"/> moved to
    /// <c>&lt;key&gt;.retired-&lt;hash&gt;</c> (0600). Later checkpoints are signed by the new key only. A crash at any point
    /// leaves either the old key in charge (the hand-over not signed) or a finished rotation (the next writer installs the key).
    /// </summary>
    public KeyRotation RotateKey(JsonObject statement, string tool, bool keepOld)
    {
        if (!Exists)
        {
            throw new EvidenceException($"no evidence log at {Folder}; create it with 'cairn evidence init'");
        }
        using var l = AcquireLock();
        FinishInterruptedRotation();
        var oldKey = LoadSigningKey();
        RepairTail();
        var entries = SignedEntries(oldKey, tool);
        var newKey = NoteKey.Generate(oldKey.Name);
        // On disk before the hand-over is written: a crash after the co-signed checkpoint must find the new key.
        WriteAtomic(NextKeyPath, newKey.SignerKey + "\n", privateFile: true);
        string? kept = null;
        if (keepOld)
        {
            kept = $"{SigningKeyPath}.retired-{Convert.ToHexStringLower(oldKey.KeyHash)}";
            WriteAtomic(kept, oldKey.SignerKey + "\n", privateFile: true);
        }
        var seq = entries.Count;
        var details = statement["details"] as JsonObject ?? [];
        details["old_key_name"] = oldKey.Name;
        details["old_key_id"] = Convert.ToHexStringLower(oldKey.KeyHash);
        details["old_key"] = oldKey.VerifierKey;
        details["new_key"] = newKey.VerifierKey;
        details["handover_checkpoint"] = Path.GetRelativePath(Folder, HandoverCheckpointPath(seq));
        details["old_key_kept"] = keepOld ? "yes" : "no";
        statement["kind"] = HandoverKind;
        statement["result"] = "pass";
        statement["details"] = details;
        AppendLocked(oldKey, entries, statement, tool, newKey);
        InstallNextKey(newKey);
        return new KeyRotation(seq, oldKey, newKey, HandoverCheckpointPath(seq), kept);
    }

    /// <summary>The new key becomes the signing key and the folder's verifier key; the old private key is gone from the key path.</summary>
    private void InstallNextKey(NoteKey newKey)
    {
        WriteAtomic(PublicKeyPath, newKey.VerifierKey + "\n", privateFile: false);
        File.Move(NextKeyPath, SigningKeyPath, overwrite: true);
    }

    /// <summary>
    /// A rotation that crashed: when the signed checkpoint carries the waiting new key's signature, the hand-over was signed and
    /// the new key is installed; otherwise the hand-over never took effect: the waiting key and any hand-over checkpoint past
    /// the signed size are removed (the next append sets an unsigned hand-over line aside as usual).
    /// </summary>
    private void FinishInterruptedRotation()
    {
        if (!File.Exists(NextKeyPath))
        {
            return;
        }
        NoteKey next;
        try
        {
            next = NoteKey.ParseSigner(File.ReadAllText(NextKeyPath));
        }
        catch (FormatException)
        {
            File.Delete(NextKeyPath);
            return;
        }
        var note = File.Exists(CheckpointPath) ? ReadCheckpointFile(CheckpointPath) : "";
        // Installed only when the signed log's newest hand-over names this very key: a key planted beside ours with a
        // checkpoint it signed itself is not a hand-over.
        if (note.Length > 0 && SignedNote.SignedBy(note, next)
            && ReadEntries(out _).Take((int)Math.Min(int.MaxValue, Checkpoint.Parse(KeyChain.Body(note)).Size)).LastOrDefault(e => e.Kind == HandoverKind) is { Record: { } h }
            && h["details"]?["new_key"] is JsonValue nk && nk.GetValueKind() == JsonValueKind.String && nk.GetValue<string>() == next.VerifierKey)
        {
            InstallNextKey(next);
            return;
        }
        if (note.Length > 0 && Directory.Exists(HandoverFolder))
        {
            var size = Checkpoint.Parse(KeyChain.Body(note)).Size;
            foreach (var f in Directory.EnumerateFiles(HandoverFolder, "*.txt"))
            {
                if (long.TryParse(Path.GetFileNameWithoutExtension(f), System.Globalization.NumberStyles.None, CultureInfo.InvariantCulture, out var s) && s >= size)
                {
                    File.Delete(f);
                }
            }
        }
        File.Delete(NextKeyPath);
    }

    /// <summary>Appends under the lock to <paramref name="entries"/> (the log as it stands, extended in place) and signs.</summary>
    /// <param name="incoming">A key taking over: the checkpoint is co-signed by both and kept in <c>handovers/</c>.</param>
    private (long Seq, string Line) AppendLocked(NoteKey key, List<LogEntry> entries, JsonObject record, string tool, NoteKey? incoming = null)
    {
        var seq = entries.Count;
        var now = _time.GetUtcNow().ToUniversalTime();
        record["seq"] = seq;
        record["time"] ??= now.ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture);
        record["tool"] ??= tool;
        record["host"] ??= Environment.MachineName;
        var line = JsonCanonicalizer.CanonicalString(record);
        if (line.Contains('\n', StringComparison.Ordinal))
        {
            throw new InvalidOperationException("a canonical record never contains a newline");
        }
        var segment = CurrentSegment(entries, now, seq);
        using (var fs = new FileStream(segment, FileMode.Append, FileAccess.Write, FileShare.Read))
        {
            var bytes = Encoding.UTF8.GetBytes(line + "\n");
            fs.Write(bytes);
            fs.Flush(flushToDisk: true);
        }
        var leaf = MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line));
        entries.Add(new LogEntry(seq, leaf, line, record, Path.GetFileName(segment)));
        WriteCheckpoint(incoming is null ? [key] : [key, incoming], [.. entries.Select(e => e.LeafHash)], Origin, incoming is null ? null : seq);
        return (seq, line);
    }

    /// <summary>
    /// The entries the signed checkpoint covers, read under the lock before an append or a prune. Refuses
    /// (<see cref="EvidenceException"/>) when the covered records no longer hash to the signed root.
    /// Lines after the checkpoint were written without a signature: every append signs before it releases
    /// the lock, so they are forged or left by a crash between the two writes. They are moved to
    /// <c>log/&lt;seq&gt;.unsigned-&lt;unix time&gt;</c> and an <c>evidence-repair</c> record says so.
    /// </summary>
    private List<LogEntry> SignedEntries(NoteKey key, string tool)
    {
        var entries = ReadEntries(out _);
        if (!File.Exists(CheckpointPath))
        {
            if (entries.Count == 0)
            {
                return entries;
            }
            throw new EvidenceException($"the evidence log {Folder} holds {entries.Count} record(s) but no checkpoint; refusing to sign over records nobody signed. Run 'cairn evidence verify' and restore the checkpoint from a copy");
        }
        Checkpoint cp;
        try
        {
            cp = Checkpoint.Parse(SignedNote.Open(ReadCheckpointFile(CheckpointPath), key));
        }
        catch (InvalidDataException e)
        {
            throw new EvidenceException($"the checkpoint of the evidence log {Folder} is not signed by its key ({e.Message}); refusing to append. Run 'cairn evidence verify'", e);
        }
        if (cp.Origin != Origin)
        {
            throw new EvidenceException($"the checkpoint of the evidence log {Folder} is for origin '{cp.Origin}', not this log's '{Origin}'; refusing to append. Run 'cairn evidence verify'");
        }
        if (cp.Size > entries.Count)
        {
            throw new EvidenceException($"the signed checkpoint of the evidence log {Folder} covers {cp.Size} record(s) but the log holds {entries.Count}: records were removed. Nothing was appended; run 'cairn evidence verify' and restore the log from a copy");
        }
        if (!MerkleTree.Root([.. entries.Take((int)cp.Size).Select(e => e.LeafHash)]).AsSpan().SequenceEqual(cp.Root))
        {
            throw new EvidenceException($"the evidence log {Folder} no longer matches its signed checkpoint (a record was edited, removed, inserted or reordered); refusing to sign over it. Nothing was appended; run 'cairn evidence verify' and keep the folder as it is for the investigation");
        }
        // After a hand-over only the new key may sign: a retired key put back (from a backup, or by a thief) is refused.
        if (entries.Take((int)cp.Size).LastOrDefault(e => e.Kind == HandoverKind) is { Record: { } handover } h
            && handover["details"]?["new_key"] is JsonValue nk && nk.GetValueKind() == JsonValueKind.String && nk.GetValue<string>() != key.VerifierKey)
        {
            throw new EvidenceException($"the evidence log {Folder} was handed over to the key {nk.GetValue<string>()} at record {h.Seq}, but {SigningKeyPath} holds the key {key.VerifierKey} (a retired key?); refusing to sign with it. Put the current signing key back");
        }
        if (entries.Count == cp.Size)
        {
            return entries;
        }
        var (file, count, sha) = SetAside(entries, (int)cp.Size);
        entries.RemoveRange((int)cp.Size, entries.Count - (int)cp.Size);
        AppendLocked(key, entries, new JsonObject
        {
            ["kind"] = "evidence-repair",
            ["result"] = "fail",
            ["actor"] = Environment.UserName,
            ["details"] = new JsonObject
            {
                ["unsigned_records"] = count,
                ["first_seq"] = cp.Size,
                ["set_aside"] = file,
                ["set_aside_sha256"] = sha,
                ["reason"] = "lines after the signed checkpoint: forged without the signing key, or a crash between writing a record and signing it",
            },
        }, tool);
        return entries;
    }

    /// <summary>Moves the lines of entries from <paramref name="size"/> on into one file beside the segments; returns its name, the count and its SHA-256.</summary>
    private (string File, int Count, string Sha256) SetAside(List<LogEntry> entries, int size)
    {
        var tail = entries.Skip(size).ToList();
        if (tail.Any(e => e.Pruned))
        {
            throw new EvidenceException($"the evidence log {Folder} has leaf-hash-only records after its signed checkpoint; refusing to append. Run 'cairn evidence verify'");
        }
        var aside = new MemoryStream();
        var cuts = new List<(string Path, int Offset)>();
        foreach (var group in tail.GroupBy(e => e.Segment))
        {
            var path = Path.Combine(LogFolder, group.Key);
            var bytes = File.ReadAllBytes(path);
            var skip = group.First().Seq - entries.First(e => e.Segment == group.Key).Seq;
            var offset = 0;
            for (var i = 0; i < skip; i++)
            {
                offset = Array.IndexOf(bytes, (byte)'\n', offset) + 1;
            }
            aside.Write(bytes, offset, bytes.Length - offset);
            cuts.Add((path, offset));
        }
        var name = $"{size:D12}.unsigned-{_time.GetUtcNow().ToUnixTimeSeconds()}";
        var content = aside.ToArray();
        // The copy is on disk before anything is cut, so a crash loses no line.
        using (var fs = new FileStream(Path.Combine(LogFolder, name), FileMode.CreateNew, FileAccess.Write))
        {
            fs.Write(content);
            fs.Flush(flushToDisk: true);
        }
        foreach (var (path, offset) in cuts)
        {
            if (offset == 0)
            {
                File.Delete(path);
                continue;
            }
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
            fs.SetLength(offset);
            fs.Flush(flushToDisk: true);
        }
        return (name, tail.Count, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(content)));
    }

    /// <summary>
    /// Runs <paramref name="read"/> while holding the append lock, so a reader never sees a record whose
    /// checkpoint is still being written. A folder this process cannot write (an auditor's read-only
    /// copy) is read without the lock.
    /// </summary>
    public T ReadConsistent<T>(Func<T> read)
    {
        IDisposable? l = null;
        try
        {
            l = AcquireLock();
        }
        catch (UnauthorizedAccessException)
        {
        }
        catch (IOException)
        {
        }
        using (l)
        {
            return read();
        }
    }

    /// <summary>All entries in log order. <paramref name="problems"/> lists lines that are not valid canonical records.</summary>
    public List<LogEntry> ReadEntries(out List<string> problems)
    {
        problems = [];
        var result = new List<LogEntry>();
        if (!Directory.Exists(LogFolder))
        {
            return result;
        }
        foreach (var file in Directory.EnumerateFiles(LogFolder).Where(f => f.EndsWith(".jsonl", StringComparison.Ordinal) || f.EndsWith(".leaves", StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var name = Path.GetFileName(file);
            var text = File.ReadAllText(file, Encoding.UTF8);
            var lines = text.Split('\n');
            var complete = text.EndsWith('\n') ? lines.Length - 1 : lines.Length;
            if (!text.EndsWith('\n') && text.Length > 0)
            {
                problems.Add($"{name}: the last line is incomplete (a crash during an append); the next append repairs it");
                complete--;
            }
            for (var i = 0; i < complete; i++)
            {
                var line = lines[i];
                var seq = result.Count;
                if (file.EndsWith(".leaves", StringComparison.Ordinal))
                {
                    byte[] h;
                    try
                    {
                        h = Convert.FromHexString(line.Trim());
                    }
                    catch (FormatException)
                    {
                        h = [];
                    }
                    if (h.Length != 32)
                    {
                        // A stand-in of the right size: the tree root then differs from the checkpoint's, which verify reports.
                        problems.Add($"{name} line {i + 1}: not a leaf hash (64 hex digits)");
                        h = new byte[32];
                    }
                    result.Add(new LogEntry(seq, h, null, null, name));
                    continue;
                }
                var leaf = MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line));
                JsonObject? record = null;
                var unreadable = "not a JSON object";
                try
                {
                    record = JsonNode.Parse(line) as JsonObject;
                    if (record is not null)
                    {
                        // Materialises every property: a duplicated name fails here (ArgumentException), not later in a reader.
                        if (JsonCanonicalizer.CanonicalString(record) != line)
                        {
                            problems.Add($"{name} line {i + 1}: record is not in canonical form (edited by hand?)");
                        }
                        if (record["seq"] is not { } s || s.GetValueKind() != JsonValueKind.Number || !s.AsValue().TryGetValue<long>(out var n) || n != seq)
                        {
                            problems.Add($"{name} line {i + 1}: sequence number {record["seq"]?.ToJsonString() ?? "missing"} where {seq} was expected (a record was removed, inserted or moved)");
                        }
                    }
                }
                catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException or FormatException or InvalidDataException)
                {
                    // InvalidDataException: the canonicaliser refuses a number that overflows to infinity (1e400).
                    unreadable = $"not a valid record ({e.Message})";
                    record = null;
                }
                if (record is null)
                {
                    problems.Add($"{name} line {i + 1}: {unreadable}");
                }
                result.Add(new LogEntry(seq, leaf, line, record, name));
            }
        }
        return result;
    }

    public static string ReadCheckpointFile(string path)
    {
        try
        {
            return File.ReadAllText(path, Encoding.UTF8);
        }
        catch (IOException e)
        {
            throw new EvidenceException($"cannot read checkpoint {path}: {e.Message}", e);
        }
    }

    /// <summary>
    /// Replaces the bodies of old records with their leaf hashes, a whole segment at a time, and only a
    /// prefix of the log: it stops at the first segment holding a record at or after <paramref name="before"/>
    /// (or one without a readable time). Before any body goes, it appends and signs an
    /// <c>evidence-prune</c> record (<paramref name="statement"/> plus kind, result and details) stating
    /// <c>pruned_below</c> = N: verification accepts leaf-hash-only records only below the highest such
    /// signed N. A crash after the statement leaves bodies that may go, which is harmless.
    /// </summary>
    public (int Segments, int Records) Prune(DateTimeOffset before, JsonObject statement, string tool)
    {
        var oldest = _time.GetUtcNow().AddYears(-1);
        if (before > oldest)
        {
            throw new EvidenceException($"refusing to prune records younger than one year: --before must be on or before {oldest:yyyy-MM-dd}");
        }
        using var l = AcquireLock();
        FinishInterruptedRotation();
        var key = LoadSigningKey();
        RepairTail();
        var entries = SignedEntries(key, tool);
        var groups = new List<List<LogEntry>>();
        long prunedBelow = 0;
        foreach (var group in entries.GroupBy(e => e.Segment))
        {
            if (group.All(e => e.Pruned))
            {
                prunedBelow = group.Last().Seq + 1;
                continue;
            }
            if (group.Any(e => e.Pruned || e.Time is null || e.Time >= before))
            {
                break;
            }
            groups.Add([.. group]);
            prunedBelow = group.Last().Seq + 1;
        }
        if (groups.Count == 0)
        {
            return (0, 0);
        }
        var records = groups.Sum(g => g.Count);
        statement["kind"] = "evidence-prune";
        statement["result"] = "pass";
        statement["details"] = new JsonObject
        {
            ["before"] = before.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["pruned_below"] = prunedBelow,
            ["records"] = records,
            ["segments"] = groups.Count,
        };
        AppendLocked(key, entries, statement, tool);
        foreach (var group in groups)
        {
            // A hand-over's body stays readable beside its co-signed checkpoint: a verifier pinning the old key must follow it.
            foreach (var h in group.Where(e => e.Kind == HandoverKind))
            {
                WriteAtomic(Path.ChangeExtension(HandoverCheckpointPath(h.Seq), ".record"), h.Line + "\n", privateFile: false);
            }
            var jsonl = Path.Combine(LogFolder, group[0].Segment);
            var leaves = Path.ChangeExtension(jsonl, ".leaves");
            WriteAtomic(leaves, string.Concat(group.Select(e => Convert.ToHexStringLower(e.LeafHash) + "\n")), privateFile: false);
            File.Delete(jsonl);
        }
        return (groups.Count, records);
    }

    private void RepairTail()
    {
        var last = Directory.EnumerateFiles(LogFolder, "*.jsonl").Order(StringComparer.Ordinal).LastOrDefault();
        if (last is null)
        {
            return;
        }
        var bytes = File.ReadAllBytes(last);
        if (bytes.Length == 0 || bytes[^1] == (byte)'\n')
        {
            return;
        }
        var keep = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        File.WriteAllBytes(last + $".incomplete-{_time.GetUtcNow().ToUnixTimeSeconds()}", bytes[keep..]);
        using var fs = new FileStream(last, FileMode.Open, FileAccess.Write);
        fs.SetLength(keep);
        fs.Flush(flushToDisk: true);
    }

    private string CurrentSegment(List<LogEntry> entries, DateTimeOffset now, long seq)
    {
        var month = now.ToString("yyyy-MM", CultureInfo.InvariantCulture);
        var last = entries.Count > 0 ? entries[^1].Segment : null;
        if (last is not null && last.EndsWith($"-{month}.jsonl", StringComparison.Ordinal))
        {
            return Path.Combine(LogFolder, last);
        }
        return Path.Combine(LogFolder, $"{seq:D12}-{month}.jsonl");
    }

    private void WriteCheckpoint(NoteKey[] keys, List<byte[]> leaves, string origin, long? handover = null)
    {
        var cp = new Checkpoint(origin, leaves.Count, MerkleTree.Root(leaves));
        var note = SignedNote.Sign(cp.Body, keys);
        if (handover is { } h)
        {
            Directory.CreateDirectory(HandoverFolder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            WriteAtomic(HandoverCheckpointPath(h), note, privateFile: false);
        }
        WriteAtomic(CheckpointPath, note, privateFile: false);
        var day = _time.GetUtcNow().ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        WriteAtomic(Path.Combine(Folder, "checkpoints", day + ".txt"), note, privateFile: false);
    }

    private IDisposable AcquireLock()
    {
        Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var path = Path.Combine(Folder, ".lock");
        var deadline = _time.GetTimestamp();
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException) when (_time.GetElapsedTime(deadline) < TimeSpan.FromSeconds(60))
            {
                Thread.Sleep(Math.Min(200, 5 * (attempt + 1)));
            }
            catch (IOException e)
            {
                throw new EvidenceException($"the evidence log {Folder} stayed locked by another process for 60 s; is a Cairn process stuck?", e);
            }
        }
    }

    internal static void WriteAtomic(string path, string content, bool privateFile)
    {
        var dir = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = Path.Combine(dir, $".tmp-{Guid.NewGuid():N}");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (privateFile && !OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        using (var fs = new FileStream(temp, options))
        {
            fs.Write(Encoding.UTF8.GetBytes(content));
            fs.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }
}
