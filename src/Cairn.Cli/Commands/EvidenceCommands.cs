using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn evidence …</c>: read, prove and export the evidence log. No passphrase needed.</summary>
internal static class EvidenceCommands
{
    public static Command Build(CliContext ctx)
    {
        return new Command("evidence", "The tamper-evident evidence log: list, show, verify, export, checkpoint, public-key, prune")
        {
            Init(ctx), List(ctx), Show(ctx), Verify(ctx), Export(ctx), CheckpointCmd(ctx), PublicKey(ctx), Prune(ctx),
        };
    }

    private static EvidenceLog OpenExisting(CliContext ctx)
    {
        var log = Evidence.Open(ctx, ctx.RepositoryPathOrNull());
        if (!log.Exists)
        {
            throw new EvidenceException($"no evidence log at {log.Folder}; it is created by 'cairn init' or 'cairn evidence init' (or pass --evidence DIR)");
        }
        return log;
    }

    private static Command Init(CliContext ctx)
    {
        var origin = new Option<string?>("--origin") { Description = "The log's origin line (default: cairn.evidence/HOST/RANDOM)" };
        var cmd = new Command("init", "Create an evidence log and its Ed25519 signing key") { origin };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = Evidence.Open(ctx, ctx.RepositoryPathOrNull());
            var key = log.Init(p.GetValue(origin));
            ctx.Console.Out.WriteLine($"created the evidence log at {log.Folder}");
            ctx.Console.Out.WriteLine($"signing key: {log.SigningKeyPath} (mode 0600; keep a copy somewhere safe)");
            ctx.Console.Out.WriteLine($"verifier key: {key.VerifierKey}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command List(CliContext ctx)
    {
        var since = new Option<string?>("--since") { Description = "Only records at or after this UTC date/time (e.g. 2026-11-01)" };
        var kind = new Option<string?>("--kind") { Description = "Only records of this kind (backup, restore, drill, verify, prune, key-change, evidence-read, …)" };
        var database = new Option<string?>("--database") { Description = "Only records about this database" };
        var cmd = new Command("list", "List evidence records") { since, kind, database };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            var entries = Filter(log.ReadEntries(out _), ParseTime(p.GetValue(since)), null, p.GetValue(kind), p.GetValue(database));
            if (p.GetValue(CommandRunner.Json))
            {
                var arr = new JsonArray();
                foreach (var e in entries)
                {
                    arr.Add((JsonNode?)(e.Record is null ? new JsonObject { ["seq"] = e.Seq, ["pruned"] = true, ["leaf_hash"] = Convert.ToHexStringLower(e.LeafHash) } : JsonNode.Parse(e.Line!)));
                }
                ctx.Console.Out.WriteLine(arr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return Task.FromResult(ExitCodes.Ok);
            }
            var t = new Table().AddColumns("Seq", "Time (UTC)", "Kind", "Result", "Database", "Snapshot", "Summary");
            foreach (var e in entries)
            {
                if (e.Record is null)
                {
                    t.AddRow(e.Seq.ToString(CultureInfo.InvariantCulture), "", "(pruned)", "", "", "", Convert.ToHexStringLower(e.LeafHash)[..16]);
                    continue;
                }
                var r = e.Record;
                t.AddRow(e.Seq.ToString(CultureInfo.InvariantCulture), Markup.Escape(Str(r, "time")), Markup.Escape(Str(r, "kind")), ResultMarkup(Str(r, "result")),
                    Markup.Escape(Str(r, "database")), Markup.Escape(Str(r, "snapshot") is { Length: > 8 } s ? s[..8] : Str(r, "snapshot")), Markup.Escape(Summary(r)));
            }
            ctx.Console.Ansi.Write(t);
            ctx.Console.Out.WriteLine($"{entries.Count} record(s)");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Show(CliContext ctx)
    {
        var seqArg = new Argument<long>("SEQ") { Description = "The record's sequence number" };
        var cmd = new Command("show", "Show one record as a readable report, with its inclusion proof (the read is itself recorded)") { seqArg };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            var entries = log.ReadEntries(out _);
            var seq = p.GetValue(seqArg);
            if (seq < 0 || seq >= entries.Count)
            {
                throw new EvidenceException($"no record {seq}: the log holds records 0 to {entries.Count - 1}");
            }
            var e = entries[(int)seq];
            var leaves = entries.Select(x => x.LeafHash).ToList();
            var proof = MerkleTree.InclusionProof(leaves, (int)seq, leaves.Count);
            var root = MerkleTree.Root(leaves);
            var cpNote = File.Exists(log.CheckpointPath) ? File.ReadAllText(log.CheckpointPath) : "";
            RecordRead(ctx, log, "show", seq.ToString(CultureInfo.InvariantCulture));
            if (p.GetValue(CommandRunner.Json))
            {
                var o = new JsonObject
                {
                    ["record"] = e.Line is null ? null : JsonNode.Parse(e.Line),
                    ["leaf_hash"] = Convert.ToHexStringLower(e.LeafHash),
                    ["tree_size"] = leaves.Count,
                    ["root_hash"] = Convert.ToBase64String(root),
                    ["inclusion_proof"] = new JsonArray([.. proof.Select(h => (JsonNode?)JsonValue.Create(Convert.ToBase64String(h)))]),
                    ["checkpoint"] = cpNote,
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return Task.FromResult(ExitCodes.Ok);
            }
            var w = ctx.Console.Out;
            w.WriteLine($"=== Evidence record {seq} ===");
            if (e.Record is { } r)
            {
                w.WriteLine($"Time:       {Str(r, "time")}");
                w.WriteLine($"Kind:       {Str(r, "kind")}");
                w.WriteLine($"Result:     {Str(r, "result").ToUpperInvariant()}");
                foreach (var field in new[] { "database", "snapshot", "repository", "actor", "host", "tool", "duration_ms" })
                {
                    if (r[field] is { } v)
                    {
                        w.WriteLine($"{(char.ToUpperInvariant(field[0]) + field[1..].Replace('_', ' ') + ":"),-12}{(v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : v.ToJsonString())}");
                    }
                }
                if (r["details"] is JsonObject d && d.Count > 0)
                {
                    w.WriteLine();
                    w.WriteLine("Details:");
                    foreach (var (k, v) in d)
                    {
                        w.WriteLine($"  {k}: {(v is JsonValue jv && jv.GetValueKind() == JsonValueKind.String ? jv.GetValue<string>() : v?.ToJsonString())}");
                    }
                }
                if (r["checks"] is JsonArray checks && checks.Count > 0)
                {
                    w.WriteLine();
                    w.WriteLine("Checks:");
                    foreach (var c in checks.OfType<JsonObject>())
                    {
                        w.WriteLine($"  [{Str(c, "result").ToUpperInvariant()}] {Str(c, "name")}: expected {Str(c, "expected")}, actual {Str(c, "actual")}");
                    }
                }
                w.WriteLine();
                w.WriteLine("Record (canonical JSON, the exact bytes of the Merkle leaf):");
                w.WriteLine(e.Line);
            }
            else
            {
                w.WriteLine("(the body was pruned after its retention period; its leaf hash remains in the tree)");
            }
            w.WriteLine();
            w.WriteLine($"Leaf hash:  {Convert.ToHexStringLower(e.LeafHash)}  (SHA-256 of 0x00 followed by the line)");
            w.WriteLine($"Tree size:  {leaves.Count}");
            w.WriteLine($"Root hash:  {Convert.ToBase64String(root)}");
            w.WriteLine("Inclusion proof (RFC 9162 audit path, base64):");
            foreach (var h in proof)
            {
                w.WriteLine($"  {Convert.ToBase64String(h)}");
            }
            w.WriteLine();
            w.WriteLine("Signed checkpoint:");
            w.Write(cpNote);
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Verify(CliContext ctx)
    {
        var against = new Option<string?>("--against") { Description = "An earlier checkpoint file: prove the log still extends it (no rollback, no rewrite)" };
        var pub = new Option<string?>("--public-key") { Description = "Verifier key file (default: evidence.pub in the log folder; an auditor should use their own copy)" };
        var cmd = new Command("verify", "Recompute the Merkle tree and check the signed checkpoint. Exit 5 when anything does not match") { against, pub };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            var key = log.LoadPublicKey(p.GetValue(pub));
            var r = LogVerifier.Verify(log, key, p.GetValue(against));
            if (p.GetValue(CommandRunner.Json))
            {
                var o = new JsonObject
                {
                    ["message_type"] = "summary",
                    ["ok"] = r.Ok,
                    ["records"] = r.Records,
                    ["pruned"] = r.Pruned,
                    ["root_hash"] = r.RootBase64,
                    ["checkpoint_size"] = r.CheckpointSize,
                    ["against_checked"] = r.AgainstChecked,
                    ["problems"] = new JsonArray([.. r.Problems.Select(x => (JsonNode?)JsonValue.Create(x))]),
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var problem in r.Problems)
                {
                    ctx.Console.Out.WriteLine($"FAIL: {problem}");
                }
                ctx.Console.Out.WriteLine(r.Ok
                    ? $"OK: {r.Records} record(s) ({r.Pruned} pruned to leaf hashes) hash to the signed root {r.RootBase64}{(r.AgainstChecked ? "; the log extends the earlier checkpoint" : "")}"
                    : $"FAILED: {r.Problems.Count} problem(s); do not trust this log until they are explained");
            }
            return Task.FromResult(r.Ok ? ExitCodes.Ok : ExitCodes.Damaged);
        });
        return cmd;
    }

    private static Command Export(CliContext ctx)
    {
        var from = new Option<string?>("--from") { Description = "First UTC date/time to include (default: the beginning)" };
        var until = new Option<string?>("--until") { Description = "Include records before this UTC date/time (default: now)" };
        var to = new Option<string>("--to") { Description = "Folder to write the export into", Required = true };
        var cmd = new Command("export", "Export records with inclusion proofs, the checkpoint and VERIFYING.md for auditors (the read is recorded)") { from, until, to };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            var entries = log.ReadEntries(out _);
            var leaves = entries.Select(e => e.LeafHash).ToList();
            var fromT = ParseTime(p.GetValue(from));
            var untilT = ParseTime(p.GetValue(until));
            var selected = Filter(entries, fromT, untilT, null, null).Where(e => !e.Pruned).ToList();
            var dir = p.GetValue(to)!;
            Directory.CreateDirectory(dir);
            var checkpoint = File.ReadAllText(log.CheckpointPath);
            var cp = Checkpoint.Parse(SignedNote.Open(checkpoint, log.LoadPublicKey()));
            var verified = LogVerifier.Verify(log, log.LoadPublicKey(), null);
            if (!verified.Ok || cp.Size != leaves.Count)
            {
                throw new EvidenceException($"the log does not verify ({string.Join("; ", verified.Problems.Take(3))}); nothing was exported. Run 'cairn evidence verify'");
            }
            // Pruned records are not exported; the signed statement that pruned them is, with its proof.
            var statement = entries.LastOrDefault(e => e.Kind == "evidence-prune" && e.Record?["details"]?["pruned_below"]?.GetValue<long>() == verified.PrunedBelow);
            if (verified.PrunedBelow > 0 && statement is not null && !selected.Contains(statement))
            {
                selected = [.. selected.Append(statement).OrderBy(e => e.Seq)];
            }
            File.WriteAllText(Path.Combine(dir, "records.jsonl"), string.Concat(selected.Select(e => e.Line + "\n")), new UTF8Encoding(false));
            var proofs = new JsonArray();
            foreach (var e in selected)
            {
                proofs.Add((JsonNode)new JsonObject
                {
                    ["seq"] = e.Seq,
                    ["leaf_hash"] = Convert.ToHexStringLower(e.LeafHash),
                    ["inclusion_proof"] = new JsonArray([.. MerkleTree.InclusionProof(leaves, (int)e.Seq, leaves.Count).Select(h => (JsonNode?)JsonValue.Create(Convert.ToHexStringLower(h)))]),
                });
            }
            var proofDoc = new JsonObject { ["tree_size"] = leaves.Count, ["root_hash_hex"] = Convert.ToHexStringLower(cp.Root), ["proofs"] = proofs };
            File.WriteAllText(Path.Combine(dir, "proofs.json"), proofDoc.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.WriteAllText(Path.Combine(dir, "checkpoint.txt"), checkpoint, new UTF8Encoding(false));
            var key = log.LoadPublicKey();
            File.WriteAllText(Path.Combine(dir, "public-key.txt"), key.VerifierKey + "\n");
            // Files for checking the signature with openssl alone.
            File.WriteAllBytes(Path.Combine(dir, "checkpoint-body.txt"), Encoding.UTF8.GetBytes(cp.Body));
            File.WriteAllBytes(Path.Combine(dir, "checkpoint.sig"), SignatureOf(checkpoint));
            File.WriteAllText(Path.Combine(dir, "public-key.pem"), Ed25519Pem(key.PublicKey));
            File.WriteAllText(Path.Combine(dir, "VERIFYING.md"), VerifyingGuide(selected.Count, leaves.Count, key));
            File.WriteAllText(Path.Combine(dir, "verify.py"), VerifyPy);
            if (verified.PrunedBelow > 0 && statement is not null)
            {
                File.WriteAllText(Path.Combine(dir, "pruning.json"), new JsonObject { ["pruned_below"] = verified.PrunedBelow, ["statement_seq"] = statement.Seq }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            RecordRead(ctx, log, "export", $"{(selected.Count > 0 ? selected[0].Seq : 0)}..{(selected.Count > 0 ? selected[^1].Seq : -1)} ({p.GetValue(from) ?? "start"} to {p.GetValue(until) ?? "now"})");
            ctx.Console.Out.WriteLine($"exported {selected.Count} record(s) of {leaves.Count} with inclusion proofs to {dir}; see {Path.Combine(dir, "VERIFYING.md")}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command CheckpointCmd(CliContext ctx)
    {
        var cmd = new Command("checkpoint", "Print the newest signed checkpoint (C2SP tlog-checkpoint in a signed note)");
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            ctx.Console.Out.Write(File.ReadAllText(log.CheckpointPath));
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command PublicKey(CliContext ctx)
    {
        var cmd = new Command("public-key", "Print the verifier key: name+keyhash+base64(0x01 ‖ Ed25519 public key)");
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            ctx.Console.Out.WriteLine(log.LoadPublicKey().VerifierKey);
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Prune(CliContext ctx)
    {
        var before = new Option<string>("--before") { Description = "Prune the bodies of records older than this date (at least one year ago)", Required = true };
        var cmd = new Command("prune", "Replace the bodies of records older than a year with their leaf hashes; the tree still verifies") { before };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var log = OpenExisting(ctx);
            var t = ParseTime(p.GetValue(before)) ?? throw new EvidenceException("--before needs a date");
            // The log signs its own "pruned below N" statement before any body goes (see docs/evidence.md).
            var (segments, records) = log.Prune(t, Evidence.NewRecord(ctx.RepositoryPathOrNull() ?? log.Folder, "evidence-prune", "pass", []), Evidence.ToolVersion);
            ctx.Console.Out.WriteLine(records == 0
                ? "nothing to prune: no whole segment at the start of the log is older than that date"
                : $"pruned the bodies of {records} record(s) in {segments} segment(s); their leaf hashes remain, and a signed evidence-prune record states it");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static void RecordRead(CliContext ctx, EvidenceLog log, string command, string range)
    {
        var from = ctx.Env("SSH_CLIENT")?.Split(' ')[0] ?? "local";
        Evidence.RecordAsync(ctx, ctx.RepositoryPathOrNull() ?? log.Folder, "evidence-read", "pass",
            new() { ["command"] = command, ["range"] = range, ["from"] = from, ["who"] = Environment.UserName }, CancellationToken.None).GetAwaiter().GetResult();
    }

    private static List<LogEntry> Filter(List<LogEntry> entries, DateTimeOffset? since, DateTimeOffset? until, string? kind, string? database)
        => [.. entries.Where(e =>
            (since is null || (e.Time is { } t && t >= since)) &&
            (until is null || (e.Time is { } u && u < until)) &&
            (kind is null || e.Kind == kind) &&
            (database is null || e.Record?["database"]?.GetValue<string>() == database))];

    private static DateTimeOffset? ParseTime(string? text)
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

    private static string Str(JsonObject o, string name) => o[name] is JsonValue v ? (v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : v.ToJsonString()) : "";

    private static string ResultMarkup(string result) => result switch
    {
        "pass" => "[green]pass[/]",
        "fail" => "[red]fail[/]",
        "error" => "[red]error[/]",
        _ => Markup.Escape(result),
    };

    private static string Summary(JsonObject r)
    {
        if (r["details"] is not JsonObject d)
        {
            return "";
        }
        return string.Join(", ", d.Take(4).Select(p => $"{p.Key}={(p.Value is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : p.Value?.ToJsonString())}"));
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

    private static string VerifyingGuide(int count, int size, NoteKey key) => $$"""
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
        ```

        One record by hand: `head -1 records.jsonl | tr -d '\n' | (printf '\0'; cat) | sha256sum`
        gives its `leaf_hash` in proofs.json.

        ## 3. Pruned records

        Records older than the retention period may be pruned: their bodies are replaced by their leaf
        hashes, which keeps the tree and its root. Pruning is itself a signed record: an `evidence-prune`
        record whose `details.pruned_below` is N says "records below N may be leaf hashes only". When
        `pruning.json` is present, it names N and that record (it is in `records.jsonl` with its proof);
        `verify.py` checks it. A record at or above N without its body would be a hidden record.

        ## 4. Nothing was removed later

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
        sys.exit(1 if bad else 0)
        """;
}
