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

    public DateTimeOffset? Time => Record?["time"]?.GetValue<string>() is { } t ? DateTimeOffset.Parse(t, CultureInfo.InvariantCulture) : null;

    public string? Kind => Record?["kind"]?.GetValue<string>();
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
        Directory.CreateDirectory(LogFolder);
        Directory.CreateDirectory(Path.Combine(Folder, "checkpoints"));
        var key = NoteKey.Generate(origin.Replace('/', '-'));
        WriteAtomic(SigningKeyPath, key.SignerKey + "\n", privateFile: true);
        WriteAtomic(PublicKeyPath, key.VerifierKey + "\n", privateFile: false);
        WriteAtomic(Path.Combine(Folder, "origin"), origin + "\n", privateFile: false);
        using (var l = AcquireLock())
        {
            WriteCheckpoint(key, [], origin);
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
    /// Appends one record: assigns seq, time, tool and host, writes it as one canonical line, fsyncs,
    /// and signs a new checkpoint. A truncated last line from a crash is removed first.
    /// </summary>
    public (long Seq, string Line) Append(JsonObject record, string tool)
    {
        if (!Exists)
        {
            throw new EvidenceException($"no evidence log at {Folder}; create it with 'cairn evidence init'");
        }
        var key = LoadSigningKey();
        using var l = AcquireLock();
        RepairTail();
        var entries = ReadEntries(out _);
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
        var leaves = entries.Select(e => e.LeafHash).Append(MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line))).ToList();
        WriteCheckpoint(key, leaves, Origin);
        return (seq, line);
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
                        problems.Add($"{name} line {i + 1}: not a leaf hash");
                        h = new byte[32];
                    }
                    result.Add(new LogEntry(seq, h, null, null, name));
                    continue;
                }
                var leaf = MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line));
                JsonObject? record = null;
                try
                {
                    record = JsonNode.Parse(line) as JsonObject;
                }
                catch (JsonException)
                {
                }
                if (record is null)
                {
                    problems.Add($"{name} line {i + 1}: not a JSON object");
                }
                else
                {
                    if (JsonCanonicalizer.CanonicalString(record) != line)
                    {
                        problems.Add($"{name} line {i + 1}: record is not in canonical form (edited by hand?)");
                    }
                    if (record["seq"]?.GetValueKind() != JsonValueKind.Number || record["seq"]!.GetValue<long>() != seq)
                    {
                        problems.Add($"{name} line {i + 1}: sequence number {record["seq"]?.ToJsonString() ?? "missing"} where {seq} was expected (a record was removed, inserted or moved)");
                    }
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

    /// <summary>Replaces the bodies of records older than <paramref name="before"/> with their leaf hashes, a whole segment at a time.</summary>
    public (int Segments, int Records) Prune(DateTimeOffset before)
    {
        var oldest = _time.GetUtcNow().AddYears(-1);
        if (before > oldest)
        {
            throw new EvidenceException($"refusing to prune records younger than one year: --before must be on or before {oldest:yyyy-MM-dd}");
        }
        using var l = AcquireLock();
        var entries = ReadEntries(out _);
        var segments = 0;
        var records = 0;
        foreach (var group in entries.Where(e => !e.Pruned).GroupBy(e => e.Segment))
        {
            if (group.Any(e => e.Time is null || e.Time >= before))
            {
                continue;
            }
            var jsonl = Path.Combine(LogFolder, group.Key);
            var leaves = Path.ChangeExtension(jsonl, ".leaves");
            WriteAtomic(leaves, string.Concat(group.Select(e => Convert.ToHexStringLower(e.LeafHash) + "\n")), privateFile: false);
            File.Delete(jsonl);
            segments++;
            records += group.Count();
        }
        return (segments, records);
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

    private void WriteCheckpoint(NoteKey key, List<byte[]> leaves, string origin)
    {
        var cp = new Checkpoint(origin, leaves.Count, MerkleTree.Root(leaves));
        var note = SignedNote.Sign(cp.Body, key);
        WriteAtomic(CheckpointPath, note, privateFile: false);
        var day = _time.GetUtcNow().ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
        WriteAtomic(Path.Combine(Folder, "checkpoints", day + ".txt"), note, privateFile: false);
    }

    private IDisposable AcquireLock()
    {
        Directory.CreateDirectory(Folder);
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
        Directory.CreateDirectory(dir);
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
