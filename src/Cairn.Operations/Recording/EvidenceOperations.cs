using System.Globalization;
using System.Text.Json.Serialization;
using System.Text.Json;
using System.Text;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;
using Cairn.Repository;

namespace Cairn.Operations.Recording;

/// <summary>Dates and times given to the evidence commands: UTC unless they say otherwise.</summary>
public static class EvidenceTime
{
    public static DateTimeOffset? Parse(string? text)
    {
        if (text is null)
        {
            return null;
        }
        if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
        {
            return t;
        }
        throw new EvidenceException($"'{text}' is not a date or time; use e.g. 2026-11-01 or 2026-11-01T12:00:00Z");
    }

    internal static List<LogEntry> Filter(IEnumerable<LogEntry> entries, DateTimeOffset? since, DateTimeOffset? until, string? kind, string? database)
        => [.. entries.Where(e =>
            (since is null || (e.Time is { } t && t >= since)) &&
            (until is null || (e.Time is { } u && u < until)) &&
            (kind is null || e.Kind == kind) &&
            (database is null || e.Record?["database"]?.GetValue<string>() == database))];
}

/// <summary>Records that someone read the evidence: who, from where, which records.</summary>
internal static class EvidenceReads
{
    public static void Record(OperationContext context, EvidenceLog log, string command, string range)
        => context.Evidence.Record(new EvidenceReadEvent(command, range, context.Environment("SSH_CLIENT")?.Split(' ')[0] ?? "local", Environment.UserName)
        {
            Repository = context.RepositoryText ?? log.Folder,
        });
}

public sealed record EvidenceInitRequest(string? Origin);

public sealed record EvidenceInitResult(string Folder, string SigningKeyPath, string VerifierKey);

/// <summary><c>evidence init</c>: a new log and its Ed25519 signing key.</summary>
public sealed class EvidenceInitOperation(OperationContext context)
{
    public EvidenceInitResult Run(EvidenceInitRequest request)
    {
        var log = context.Evidence.Open();
        var key = log.Init(request.Origin);
        return new EvidenceInitResult(log.Folder, log.SigningKeyPath, key.VerifierKey);
    }
}

/// <param name="Bodies">The records' bodies are shown (<c>--json</c>): the read goes on the record. Without, only kinds and times are shown.</param>
public sealed record EvidenceListRequest(string? Since = null, string? Kind = null, string? Database = null, bool Bodies = false);

public sealed record EvidenceListResult(IReadOnlyList<LogEntry> Entries);

/// <summary><c>evidence list</c>: records, filtered by time, kind and database. Needs no passphrase.</summary>
public sealed class EvidenceListOperation(OperationContext context)
{
    public EvidenceListResult Run(EvidenceListRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var entries = EvidenceTime.Filter(log.ReadEntries(out _), EvidenceTime.Parse(request.Since), null, request.Kind, request.Database);
        if (request.Bodies)
        {
            var filters = string.Join(" ", new[] { request.Since is { } s ? $"since {s}" : null, request.Kind is { } k ? $"kind {k}" : null, request.Database is { } d ? $"database {d}" : null }.OfType<string>());
            EvidenceReads.Record(context, log, "list --json", (entries.Count > 0 ? $"{entries[0].Seq}..{entries[^1].Seq}" : "none") + (filters.Length > 0 ? $" ({filters})" : ""));
        }
        return new EvidenceListResult(entries);
    }
}

public sealed record EvidenceShowRequest(long Seq);

/// <summary>One record with its inclusion proof against the tree of <see cref="TreeSize"/> leaves, and the newest signed checkpoint.</summary>
public sealed record EvidenceShowResult(LogEntry Entry, int TreeSize, byte[] Root, IReadOnlyList<byte[]> InclusionProof, string Checkpoint);

/// <summary><c>evidence show</c>: one record and its proof. The read is itself recorded.</summary>
public sealed class EvidenceShowOperation(OperationContext context)
{
    public EvidenceShowResult Run(EvidenceShowRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var entries = log.ReadEntries(out _);
        var seq = request.Seq;
        if (seq < 0 || seq >= entries.Count)
        {
            throw new EvidenceException($"no record {seq}: the log holds records 0 to {entries.Count - 1}");
        }
        var leaves = entries.Select(x => x.LeafHash).ToList();
        var proof = MerkleTree.InclusionProof(leaves, (int)seq, leaves.Count);
        var root = MerkleTree.Root(leaves);
        var checkpoint = File.Exists(log.CheckpointPath) ? File.ReadAllText(log.CheckpointPath) : "";
        EvidenceReads.Record(context, log, "show", seq.ToString(CultureInfo.InvariantCulture));
        return new EvidenceShowResult(entries[(int)seq], leaves.Count, root, proof, checkpoint);
    }
}

public sealed record EvidenceVerifyRequest(string? Against, string? PublicKey);

/// <summary><c>evidence verify</c>: the Merkle tree recomputed and the signed checkpoint checked (and, with an earlier checkpoint, that the log extends it).</summary>
public sealed class EvidenceVerifyOperation(OperationContext context)
{
    public VerifyResult Run(EvidenceVerifyRequest request)
    {
        var log = context.Evidence.OpenExisting();
        return LogVerifier.Verify(log, log.LoadPublicKey(request.PublicKey), request.Against);
    }

    /// <summary>
    /// As <see cref="Run"/>, and, when a repository is given, whether the log published there is a prefix of this one (a log
    /// rewritten after it was published is a problem: exit 5). A repository that cannot be reached is said, not a problem.
    /// </summary>
    public async Task<VerifyResult> RunAsync(EvidenceVerifyRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var log = context.Evidence.OpenExisting();
        var key = log.LoadPublicKey(request.PublicKey);
        var result = LogVerifier.Verify(log, key, request.Against);
        if (context.RepositoryText is null)
        {
            return result;
        }
        try
        {
            var a = await EvidencePublishing.CompareAsync(log, key, context.OpenStorage(), cancellationToken).ConfigureAwait(false);
            var note = a.Publication is null
                ? $"nothing published in {a.Repository} yet"
                : a.Problems.Count == 0
                    ? $"the log published in {a.Repository} ({a.PublishedSize} records) is a prefix of this log ({a.LocalSize})"
                    : $"the log published in {a.Repository} ({a.PublishedSize} records) is NOT a prefix of this log";
            return result with { Problems = [.. result.Problems, .. a.Problems], Published = note };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or RepositoryException or InvalidDataException)
        {
            return result with { Published = $"not compared with the log published in {context.RepositoryText}: {e.Message}" };
        }
    }
}

/// <param name="KeepOld">Keep the old private key as <c>&lt;key&gt;.retired-&lt;hash&gt;</c> (0600) instead of removing it.</param>
/// <param name="Reason">Why, on the record (e.g. "scheduled", "suspected theft").</param>
/// <param name="Incident">The incident that rotated it, if one did.</param>
public sealed record EvidenceRotateKeyRequest(bool KeepOld = false, string Reason = "rotation requested", string? Incident = null);

/// <param name="Seq">The hand-over record.</param>
/// <param name="OldKey">The retired key (<c>name+hash+public key</c>); <paramref name="NewKey"/> likewise. No private key is ever in a result.</param>
/// <param name="KeptOldKey">Where the old private key was kept (<c>--keep-old</c>); null: it was removed.</param>
public sealed record EvidenceRotateKeyResult(long Seq, string OldKey, string NewKey, string HandoverCheckpoint, string SigningKeyPath, string? KeptOldKey);

/// <summary>
/// <c>evidence rotate-key</c>: a new signing key takes over the log through a hand-over record whose checkpoint both keys sign;
/// from then on only the new key signs and the old private key is gone (docs/evidence.md, "Signing-key rotation").
/// </summary>
public sealed class EvidenceRotateKeyOperation(OperationContext context)
{
    public EvidenceRotateKeyResult Run(EvidenceRotateKeyRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var r = context.Evidence.RotateKey(log, new EvidenceKeyRotationEvent(request.Reason, request.Incident) { Repository = context.RepositoryText ?? log.Folder }, request.KeepOld);
        return new EvidenceRotateKeyResult(r.Seq, r.OldKey.VerifierKey, r.NewKey.VerifierKey, r.HandoverCheckpoint, log.SigningKeyPath, r.KeptOldKey);
    }
}

/// <summary><c>evidence checkpoint</c> and <c>evidence public-key</c>: what an auditor keeps a copy of.</summary>
public sealed class EvidenceKeysOperation(OperationContext context)
{
    public string Checkpoint() => File.ReadAllText(context.Evidence.OpenExisting().CheckpointPath);

    public string VerifierKey() => context.Evidence.OpenExisting().LoadPublicKey().VerifierKey;
}

public sealed record EvidencePruneRequest(string Before);

public sealed record EvidencePruneResult(int Segments, int Records);

/// <summary><c>evidence prune</c>: bodies of records older than a year become their leaf hashes; the tree still verifies.</summary>
public sealed class EvidencePruneOperation(OperationContext context)
{
    public EvidencePruneResult Run(EvidencePruneRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var before = EvidenceTime.Parse(request.Before) ?? throw new EvidenceException("--before needs a date");
        // The log signs its own "pruned below N" statement before any body goes (see docs/evidence.md).
        var (segments, records) = context.Evidence.Prune(log, before, context.RepositoryText ?? log.Folder);
        return new EvidencePruneResult(segments, records);
    }
}

/// <summary>Records from <see cref="From"/> until <see cref="Until"/> (UTC; default: all), exported into the folder <see cref="To"/>.</summary>
public sealed record EvidenceExportRequest(string To, string? From = null, string? Until = null);

public sealed record EvidenceExportResult(string Folder, int Exported, int TreeSize);

/// <summary>
/// <c>evidence export</c>: records with their inclusion proofs, the signed checkpoint, the public key (also as PEM for
/// openssl), VERIFYING.md and verify.py, so an auditor can check them without Cairn. The read is recorded.
/// </summary>
public sealed class EvidenceExportOperation(OperationContext context)
{
    public EvidenceExportResult Run(EvidenceExportRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var entries = log.ReadEntries(out _);
        var leaves = entries.Select(e => e.LeafHash).ToList();
        var selected = EvidenceTime.Filter(entries, EvidenceTime.Parse(request.From), EvidenceTime.Parse(request.Until), null, null).Where(e => !e.Pruned).ToList();
        var dir = request.To;
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var checkpoint = File.ReadAllText(log.CheckpointPath);
        var cp = Checkpoint.Parse(SignedNote.Open(checkpoint, log.LoadPublicKey()));
        var verified = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        if (!verified.Ok || cp.Size != leaves.Count)
        {
            throw new EvidenceException($"the log does not verify ({string.Join("; ", verified.Problems.Take(3))}); nothing was exported. Run 'cairn evidence verify'");
        }
        // After a key rotation the auditor follows the hand-overs: their co-signed checkpoints go along.
        if (Directory.Exists(log.HandoverFolder))
        {
            foreach (var f in Directory.EnumerateFiles(log.HandoverFolder).Order(StringComparer.Ordinal))
            {
                Directory.CreateDirectory(Path.Combine(dir, "handovers"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                FreshFile.WriteAllText(Path.Combine(dir, "handovers", Path.GetFileName(f)), File.ReadAllText(f));
            }
        }
        var handovers = ExportHandovers(log, entries, leaves, verified.Handovers, dir);
        // Pruned records are not exported; the signed statement that pruned them is, with its proof.
        var statement = entries.LastOrDefault(e => e.Kind == "evidence-prune" && e.Record?["details"]?["pruned_below"]?.GetValue<long>() == verified.PrunedBelow);
        if (verified.PrunedBelow > 0 && statement is not null && !selected.Contains(statement))
        {
            selected = [.. selected.Append(statement).OrderBy(e => e.Seq)];
        }
        FreshFile.WriteAllText(Path.Combine(dir, "records.jsonl"), string.Concat(selected.Select(e => e.Line + "\n")));
        var proofs = new ProofDocument(leaves.Count, Convert.ToHexStringLower(cp.Root),
            [.. selected.Select(e => new RecordProof(e.Seq, Convert.ToHexStringLower(e.LeafHash), [.. MerkleTree.InclusionProof(leaves, (int)e.Seq, leaves.Count).Select(Convert.ToHexStringLower)]))]);
        FreshFile.WriteAllText(Path.Combine(dir, "proofs.json"), JsonSerializer.Serialize(proofs, ExportJson.Default.ProofDocument));
        FreshFile.WriteAllText(Path.Combine(dir, "checkpoint.txt"), checkpoint);
        var key = log.LoadPublicKey();
        FreshFile.WriteAllText(Path.Combine(dir, "public-key.txt"), key.VerifierKey + "\n");
        // Files for checking the signature with openssl alone.
        FreshFile.WriteAllBytes(Path.Combine(dir, "checkpoint-body.txt"), Encoding.UTF8.GetBytes(cp.Body));
        FreshFile.WriteAllBytes(Path.Combine(dir, "checkpoint.sig"), SignedNote.SignatureBy(checkpoint, key) ?? SignatureOf(checkpoint));
        FreshFile.WriteAllText(Path.Combine(dir, "public-key.pem"), Ed25519Pem(key.PublicKey));
        FreshFile.WriteAllText(Path.Combine(dir, "VERIFYING.md"), VerifyingGuide(selected.Count, leaves.Count, key, [.. handovers.Select(h => h.Seq)]));
        FreshFile.WriteAllText(Path.Combine(dir, "verify.py"), VerifyPy);
        if (verified.PrunedBelow > 0 && statement is not null)
        {
            FreshFile.WriteAllText(Path.Combine(dir, "pruning.json"), JsonSerializer.Serialize(new PruningStatement(verified.PrunedBelow, statement.Seq), ExportJson.Default.PruningStatement));
        }
        EvidenceReads.Record(context, log, "export", $"{(selected.Count > 0 ? selected[0].Seq : 0)}..{(selected.Count > 0 ? selected[^1].Seq : -1)} ({request.From ?? "start"} to {request.Until ?? "now"})");
        return new EvidenceExportResult(dir, selected.Count, leaves.Count);
    }

    /// <summary>
    /// What an auditor holding an OLDER key needs to follow each signing-key hand-over without Cairn (handovers.json, and per
    /// hand-over the checkpoint body, both raw signatures and both keys as PEM for openssl): the co-signed checkpoint's tree
    /// is a prefix of the exported one (RFC 9162 consistency proof), and the hand-over record, proven in the exported tree,
    /// names the two keys. verify.py checks the tree part; VERIFYING.md gives the openssl commands for the signatures.
    /// </summary>
    private static List<HandoverProof> ExportHandovers(EvidenceLog log, IReadOnlyList<LogEntry> entries, IReadOnlyList<byte[]> leaves, IReadOnlyList<long> seqs, string dir)
    {
        var result = new List<HandoverProof>();
        foreach (var seq in seqs)
        {
            var line = KeyChain.HandoverRecordLine(log, entries[(int)seq])
                ?? throw new EvidenceException($"the hand-over record {seq} was pruned and its kept body is missing; nothing was exported. Run 'cairn evidence verify'");
            var (oldKey, newKey) = KeyChain.HandoverKeys(line);
            var note = File.ReadAllText(log.HandoverCheckpointPath(seq));
            var body = SignedNote.Open(note, newKey);
            var cp = Checkpoint.Parse(body);
            var stem = Path.Combine(dir, "handovers", seq.ToString("D12", CultureInfo.InvariantCulture));
            FreshFile.WriteAllBytes(stem + "-body.txt", Encoding.UTF8.GetBytes(body));
            FreshFile.WriteAllBytes(stem + "-old.sig", SignedNote.SignatureBy(note, oldKey) ?? throw new EvidenceException($"the hand-over checkpoint of record {seq} carries no signature by the old key"));
            FreshFile.WriteAllBytes(stem + "-new.sig", SignedNote.SignatureBy(note, newKey) ?? throw new EvidenceException($"the hand-over checkpoint of record {seq} carries no signature by the new key"));
            FreshFile.WriteAllText(stem + "-old.pem", Ed25519Pem(oldKey.PublicKey));
            FreshFile.WriteAllText(stem + "-new.pem", Ed25519Pem(newKey.PublicKey));
            result.Add(new HandoverProof(seq, cp.Size, Convert.ToHexStringLower(cp.Root),
                [.. MerkleTree.ConsistencyProof(leaves, (int)cp.Size, leaves.Count).Select(Convert.ToHexStringLower)],
                line, [.. MerkleTree.InclusionProof(leaves, (int)seq, leaves.Count).Select(Convert.ToHexStringLower)],
                oldKey.VerifierKey, newKey.VerifierKey));
        }
        if (result.Count > 0)
        {
            FreshFile.WriteAllText(Path.Combine(dir, "handovers.json"), JsonSerializer.Serialize(new HandoverDocument(result), ExportJson.Default.HandoverDocument));
        }
        return result;
    }

    private static byte[] SignatureOf(string note)
    {
        var line = note.Split('\n').First(l => l.StartsWith('\u2014'));
        var blob = Convert.FromBase64String(line[(line.LastIndexOf(' ') + 1)..]);
        return blob[4..];
    }

    private static string Ed25519Pem(byte[] publicKey)
    {
        byte[] der = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00, .. publicKey];
        return $"-----BEGIN PUBLIC KEY-----\n{Convert.ToBase64String(der)}\n-----END PUBLIC KEY-----\n";
    }
    private static string HandoverCommands(IReadOnlyList<long> seqs) => seqs.Count == 0
        ? "This log's signing key was never rotated: the export has no hand-over files.\n"
        : "```sh\n" + string.Concat(seqs.Select(s => $"handovers/{s:D12}").SelectMany(stem => new[] { "old", "new" }.Select(who =>
            $"openssl pkeyutl -verify -pubin -inkey {stem}-{who}.pem -rawin -in {stem}-body.txt -sigfile {stem}-{who}.sig\n"))) + "```\n";

    private static string VerifyingGuide(int count, int size, NoteKey key, IReadOnlyList<long> handovers) => $$"""
        # Verifying this Cairn evidence export

        This folder holds {{count}} evidence record(s) out of a log of {{size}}, each with a Merkle
        inclusion proof against a signed checkpoint. You need nothing from Cairn to check it.

        Files: `records.jsonl` (one record per line, the exact bytes of each Merkle leaf),
        `proofs.json` (leaf hash and RFC 9162 audit path for each record), `checkpoint.txt` (C2SP
        tlog-checkpoint in a C2SP signed note), `checkpoint-body.txt` and `checkpoint.sig` (the signed
        text and the raw 64-byte Ed25519 signature), `public-key.pem` / `public-key.txt` (verifier key
        `{{key.VerifierKey}}`; compare it with the copy you were given out of band).

        ## 1. The signature (openssl)

        ```sh
        openssl pkeyutl -verify -pubin -inkey public-key.pem -rawin -in checkpoint-body.txt -sigfile checkpoint.sig
        ```
        It prints `Signature Verified Successfully`. The body's second line is the tree size, the third
        the base64 root hash.

        ## 2. Each record is in the signed tree (any language)

        Leaf hash = SHA-256(0x00 ‖ line bytes without the newline); node = SHA-256(0x01 ‖ left ‖ right).
        Walk the audit path as RFC 9162 §2.1.3.2 says and compare with the checkpoint's root:

        ```sh
        python3 verify.py          # uses only the standard library for the tree; prints OK per record
        python3 verify.py report-2026-11.json   # also checks a compliance report (cairn report --format json) against these records
        ```

        One record by hand: `head -1 records.jsonl | tr -d '\n' | (printf '\0'; cat) | sha256sum`
        gives its `leaf_hash` in proofs.json.

        ## 3. Pruned records

        Records older than the retention period may be pruned: their bodies are replaced by their leaf
        hashes, which keeps the tree and its root. Pruning is itself a signed record: an `evidence-prune`
        record whose `details.pruned_below` is N says "records below N may be leaf hashes only". When
        `pruning.json` is present, it names N and that record (it is in `records.jsonl` with its proof);
        `verify.py` checks it. A record at or above N without its body would be a hidden record.

        ## 4. Signing-key hand-overs

        When the log's signing key was rotated, `handovers/<seq>.txt` holds the checkpoint of the first seq + 1
        records, signed by both the old key and the new one; record `seq` (kind `evidence-key-rotation`) names
        both keys. A key you were given earlier stays valid up to its hand-over; after it only the new key signs.
        `cairn evidence verify --public-key OLD_KEY` follows every hand-over from the key you hold.

        Without Cairn: `handovers.json` lists each hand-over with the exact hand-over record, its inclusion proof in
        this export's tree, and an RFC 9162 consistency proof from the co-signed checkpoint's tree to this export's;
        `python3 verify.py` checks those (the record names the two keys, the keys chain from one hand-over to the next
        and end at `public-key.txt`). The signatures are openssl's part: each command prints `Signature Verified
        Successfully` (the old key's signature, then the new key's, of each hand-over's checkpoint):

        {{HandoverCommands(handovers)}}
        Then compare the first hand-over's old key (`old_key` in handovers.json) with the key you were given earlier.

        ## 5. Nothing was removed later

        Keep this `checkpoint.txt`. Later, `cairn evidence verify --against checkpoint.txt` (or any RFC
        9162 consistency check) proves the log still extends it: no record was removed, edited or
        reordered, and the log was not rolled back.
        """.Replace("\n        ", "\n", StringComparison.Ordinal);

    private const string VerifyPy = """
        #!/usr/bin/env python3
        # Checks every record of this export against the signed checkpoint's root (RFC 6962/9162).
        import base64, hashlib, json, sys

        def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()

        def root_from_path(leaf, index, size, path):
            fn, sn, r = index, size - 1, leaf
            for p in path:
                if sn == 0: return None
                if fn & 1 or fn == sn:
                    r = node(p, r)
                    while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
                else:
                    r = node(r, p)
                fn >>= 1; sn >>= 1
            return r if sn == 0 else None

        body = open("checkpoint-body.txt", "rb").read().decode().split("\n")
        size, root = int(body[1]), base64.b64decode(body[2])
        proofs = json.load(open("proofs.json"))["proofs"]
        lines = open("records.jsonl", "rb").read().split(b"\n")[:-1]
        bad = 0
        proven = {}
        for line, pr in zip(lines, proofs):
            leaf = hashlib.sha256(b"\x00" + line).digest()
            ok = leaf.hex() == pr["leaf_hash"] and root_from_path(leaf, pr["seq"], size, [bytes.fromhex(h) for h in pr["inclusion_proof"]]) == root
            print(("OK  " if ok else "BAD ") + str(pr["seq"]))
            bad += not ok
            if ok: proven[pr["seq"]] = line
        # Pruning is part of the signed state: the statement must be a proven evidence-prune record saying so.
        try:
            pruning = json.load(open("pruning.json"))
        except FileNotFoundError:
            pruning = None
        if pruning is not None:
            line = proven.get(pruning["statement_seq"])
            rec = json.loads(line) if line is not None else {}
            ok = (rec.get("kind") == "evidence-prune" and rec.get("seq") == pruning["statement_seq"]
                  and rec.get("details", {}).get("pruned_below") == pruning["pruned_below"] <= pruning["statement_seq"])
            print(("OK  " if ok else "BAD ") + "pruning: records below %d were pruned by signed record %d" % (pruning["pruned_below"], pruning["statement_seq"]))
            bad += not ok

        # A compliance report (its JSON: 'cairn report --format json'), given as an argument: its drills' inclusion proofs
        # lead to its checkpoint's root, every record it cites is in this export and proven, and its counts are the records'.
        def check_report(path):
            rep = json.load(open(path))
            problems = []
            cp = rep["proof"]["checkpoint"].split("\n")
            rsize, rroot = int(cp[1]), base64.b64decode(cp[2])
            if rsize != rep["inputs"]["tree_size"] or rroot.hex() != rep["proof"]["root_hex"]:
                problems.append("the report's checkpoint is not the tree it states")
            for inc in rep["proof"]["inclusions"]:
                leaf = bytes.fromhex(inc["leaf_hash"])
                if root_from_path(leaf, inc["seq"], rsize, [bytes.fromhex(h) for h in inc["audit_path"]]) != rroot:
                    problems.append("the inclusion proof of record %d does not lead to the report's root" % inc["seq"])
                elif inc["seq"] in proven and hashlib.sha256(b"\x00" + proven[inc["seq"]]).hexdigest() != inc["leaf_hash"]:
                    problems.append("record %d in this export is not the record the report proved" % inc["seq"])
            recs = {s: json.loads(l) for s, l in proven.items()}
            t0, t1, size = rep["inputs"]["from"], rep["inputs"]["as_of"], rep["inputs"]["tree_size"]
            def when(r): return r["time"].replace("Z", "+00:00")
            from datetime import datetime
            lo, hi = datetime.fromisoformat(t0), datetime.fromisoformat(t1)
            def period(kind, db):
                return [r for s, r in sorted(recs.items()) if s < size and r.get("kind") == kind and r.get("database") == db
                        and lo <= datetime.fromisoformat(when(r)) < hi]
            for d in rep["databases"]:
                name = d["name"]
                backups = period("backup", name)
                taken = [r["seq"] for r in backups if r["result"] == "pass"]
                failed = [r["seq"] for r in backups if r["result"] != "pass"]
                drills = period("drill", name)
                for label, want, got in [("backups taken", d["backups"]["taken_seqs"], taken), ("backups failed", d["backups"]["failed_seqs"], failed),
                                         ("drills", [x["seq"] for x in d["drills"]["rows"]], [r["seq"] for r in drills]),
                                         ("drills passed", d["drills"]["passed"], sum(r["result"] == "pass" for r in drills)),
                                         ("drills failed", d["drills"]["failed"], sum(r["result"] != "pass" for r in drills))]:
                    if want != got:
                        problems.append("%s: %s: the report says %s, the records give %s" % (name, label, want, got))
                    if isinstance(want, list):
                        problems += ["%s: %s: record %d is not in this export (export the report's period)" % (name, label, s) for s in want if s not in recs]
            for p in problems: print("BAD report: " + p)
            if not problems: print("OK  report: %s (the drills' proofs hold and the counts equal the records)" % rep["title"])
            return len(problems)

        # Signing-key hand-overs (handovers.json): each co-signed checkpoint's tree is a prefix of this export's tree, the
        # hand-over record is in this tree and names the keys, and the keys chain to public-key.txt. The two signatures
        # of each hand-over are openssl's part (VERIFYING.md, section 4).
        def consistent(size1, size2, root1, root2, path):
            if size1 == size2: return not path and root1 == root2
            if size1 == 0 or size1 > size2 or not (path or size1 & (size1 - 1) == 0): return False
            if size1 & (size1 - 1) == 0: path = [root1] + path
            fn, sn = size1 - 1, size2 - 1
            while fn & 1: fn >>= 1; sn >>= 1
            fr = sr = path[0]
            for c in path[1:]:
                if sn == 0: return False
                if fn & 1 or fn == sn:
                    fr, sr = node(c, fr), node(c, sr)
                    while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
                else:
                    sr = node(sr, c)
                fn >>= 1; sn >>= 1
            return sn == 0 and fr == root1 and sr == root2

        def key_bytes(verifier):  # name+hash+base64(0x01 || Ed25519 public key)
            raw = base64.b64decode(verifier.split("+", 2)[2])
            return raw[1:] if len(raw) == 33 and raw[0] == 1 else None

        def pem_bytes(path):
            der = base64.b64decode("".join(l for l in open(path).read().split("\n") if l and not l.startswith("-----")))
            return der[-32:] if len(der) == 44 else None

        try:
            handovers = json.load(open("handovers.json"))["handovers"]
        except FileNotFoundError:
            handovers = []
        previous_new = None
        for h in handovers:
            problems = []
            stem = "handovers/%012d" % h["seq"]
            hb = open(stem + "-body.txt", "rb").read().decode().split("\n")
            hsize, hroot = int(hb[1]), base64.b64decode(hb[2])
            if hsize != h["seq"] + 1 or hsize != h["checkpoint_size"] or hroot.hex() != h["checkpoint_root_hex"]:
                problems.append("the co-signed checkpoint is not of the %d records up to the hand-over" % (h["seq"] + 1))
            if not consistent(hsize, size, hroot, root, [bytes.fromhex(x) for x in h["consistency_proof"]]):
                problems.append("the co-signed checkpoint's tree is not a prefix of this export's tree (consistency proof fails)")
            line = h["record"].encode()
            if root_from_path(hashlib.sha256(b"\x00" + line).digest(), h["seq"], size, [bytes.fromhex(x) for x in h["record_inclusion_proof"]]) != root:
                problems.append("the hand-over record is not record %d of this export's tree" % h["seq"])
            rec = json.loads(line)
            d = rec.get("details", {})
            if rec.get("kind") != "evidence-key-rotation" or d.get("old_key") != h["old_key"] or d.get("new_key") != h["new_key"]:
                problems.append("record %d is not a hand-over from %s to %s" % (h["seq"], h["old_key"], h["new_key"]))
            if key_bytes(h["old_key"]) != pem_bytes(stem + "-old.pem") or key_bytes(h["new_key"]) != pem_bytes(stem + "-new.pem"):
                problems.append("the PEM files are not the keys the hand-over record names")
            if previous_new is not None and previous_new != h["old_key"]:
                problems.append("this hand-over is from %s, but the previous one handed over to %s" % (h["old_key"], previous_new))
            previous_new = h["new_key"]
            for p in problems: print("BAD hand-over %d: %s" % (h["seq"], p))
            if not problems: print("OK  hand-over %d: %s -> %s (check its two signatures with openssl, VERIFYING.md section 4)" % (h["seq"], "+".join(h["old_key"].split("+", 2)[:2]), "+".join(h["new_key"].split("+", 2)[:2])))
            bad += len(problems)
        if handovers:
            print("NOTE the signing keys chain from %s (record %d's old key): it must be the key you were given before then" % (handovers[0]["old_key"], handovers[0]["seq"]))
        if handovers and open("public-key.txt").read().strip() != previous_new:
            print("BAD hand-overs: the last hand-over is to %s, but this export is signed by %s" % (previous_new, open("public-key.txt").read().strip()))
            bad += 1

        for path in sys.argv[1:]:
            bad += check_report(path)
        sys.exit(1 if bad else 0)
        """;
}

/// <summary>proofs.json of an export: the tree size, the root in hex, and each record's RFC 9162 audit path.</summary>
public sealed record ProofDocument(long TreeSize, string RootHashHex, IReadOnlyList<RecordProof> Proofs);

public sealed record RecordProof(long Seq, string LeafHash, IReadOnlyList<string> InclusionProof);

/// <summary>handovers.json of an export: each signing-key hand-over, in log order.</summary>
public sealed record HandoverDocument(IReadOnlyList<HandoverProof> Handovers);

/// <summary>
/// One hand-over: the co-signed checkpoint's size and root with the consistency proof from it to the export's tree, the
/// hand-over record's exact line with its inclusion proof in the export's tree, and the two verifier keys it names.
/// </summary>
public sealed record HandoverProof(long Seq, long CheckpointSize, string CheckpointRootHex, IReadOnlyList<string> ConsistencyProof,
    string Record, IReadOnlyList<string> RecordInclusionProof, string OldKey, string NewKey);

/// <summary>pruning.json of an export: records below <see cref="PrunedBelow"/> may be leaf hashes only, as the signed record <see cref="StatementSeq"/> says.</summary>
public sealed record PruningStatement(long PrunedBelow, long StatementSeq);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true)]
[JsonSerializable(typeof(ProofDocument))]
[JsonSerializable(typeof(PruningStatement))]
[JsonSerializable(typeof(HandoverDocument))]
internal sealed partial class ExportJson : JsonSerializerContext;
