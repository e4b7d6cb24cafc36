using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Operations.Recording;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn evidence …</c>: read, prove and export the evidence log. No passphrase needed.</summary>
internal static class EvidenceCommands
{
    public static Command Build(CliContext ctx)
    {
        return new Command("evidence", "The tamper-evident evidence log: list, show, verify, export, checkpoint, public-key, prune, rotate-key, publish, pull")
        {
            Init(ctx), List(ctx), Show(ctx), Verify(ctx), Export(ctx), CheckpointCmd(ctx), PublicKey(ctx), Prune(ctx), RotateKey(ctx), Publish(ctx), Pull(ctx),
        };
    }

    private static Command Init(CliContext ctx)
    {
        var origin = new Option<string?>("--origin") { Description = "The log's origin line (default: cairn.evidence/HOST/RANDOM)" };
        var cmd = new Command("init", "Create an evidence log and its Ed25519 signing key") { origin };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new EvidenceInitOperation(inv.Operations).Run(new EvidenceInitRequest(p.GetValue(origin)));
            inv.Console.Out.WriteLine($"created the evidence log at {r.Folder}");
            inv.Console.Out.WriteLine($"signing key: {r.SigningKeyPath} (mode 0600; keep a copy somewhere safe)");
            inv.Console.Out.WriteLine($"verifier key: {r.VerifierKey}");
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
        cmd.SetAction(ctx, (inv, p, ct) => Task.FromResult(ListEntries(inv, new EvidenceListRequest(p.GetValue(since), p.GetValue(kind), p.GetValue(database)))));
        return cmd;
    }

    public static int ListEntries(Invocation inv, EvidenceListRequest request)
    {
        var entries = new EvidenceListOperation(inv.Operations).Run(request with { Bodies = inv.Json }).Entries;
        if (inv.Json)
        {
            // Records as they are in the log; a pruned one by its leaf hash.
            var rows = entries.Select(e => e.Record is null
                ? JsonSerializer.SerializeToNode(new PrunedRecordRow(e.Seq, true, Convert.ToHexStringLower(e.LeafHash)), CliJson.Default.PrunedRecordRow)!
                : JsonNode.Parse(e.Line!)!).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListJsonNode));
            return ExitCodes.Ok;
        }
        // Without --json only kinds and times: reading bodies is an audited read (--json, show, export, report).
        var t = new Table().AddColumns("Seq", "Time (UTC)", "Kind");
        foreach (var e in entries)
        {
            t.AddRow(e.Seq.ToString(CultureInfo.InvariantCulture), e.Record is null ? "" : Markup.Escape(Text(e.Record["time"])), e.Record is null ? "(pruned)" : Markup.Escape(Text(e.Record["kind"])));
        }
        inv.Console.Ansi.Write(t);
        inv.Console.Out.WriteLine($"{entries.Count} record(s); their bodies: 'cairn evidence show SEQ' or 'evidence list --json' (each read is recorded)");
        return ExitCodes.Ok;
    }

    private static Command Show(CliContext ctx)
    {
        var seqArg = new Argument<long>("SEQ") { Description = "The record's sequence number" };
        var cmd = new Command("show", "Show one record as a readable report, with its inclusion proof (the read is itself recorded)") { seqArg };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new EvidenceShowOperation(inv.Operations).Run(new EvidenceShowRequest(p.GetValue(seqArg)));
            var e = r.Entry;
            if (inv.Json)
            {
                var o = new EvidenceShowOutput(e.Line is null ? null : JsonNode.Parse(e.Line), Convert.ToHexStringLower(e.LeafHash), r.TreeSize, Convert.ToBase64String(r.Root),
                    [.. r.InclusionProof.Select(Convert.ToBase64String)], r.Checkpoint);
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(o, CliJson.Default.EvidenceShowOutput));
                return Task.FromResult(ExitCodes.Ok);
            }
            var w = inv.Console.Out;
            w.WriteLine($"=== Evidence record {e.Seq} ===");
            if (e.Record is { } rec)
            {
                w.WriteLine($"Time:       {Text(rec["time"])}");
                w.WriteLine($"Kind:       {Text(rec["kind"])}");
                w.WriteLine($"Result:     {Text(rec["result"]).ToUpperInvariant()}");
                foreach (var field in new[] { "database", "snapshot", "repository", "actor", "host", "tool", "duration_ms" })
                {
                    if (rec[field] is { } v)
                    {
                        w.WriteLine($"{(char.ToUpperInvariant(field[0]) + field[1..].Replace('_', ' ') + ":"),-12}{Text(v)}");
                    }
                }
                if (rec["details"] is JsonObject d && d.Count > 0)
                {
                    w.WriteLine();
                    w.WriteLine("Details:");
                    foreach (var (k, v) in d)
                    {
                        w.WriteLine($"  {k}: {Text(v)}");
                    }
                }
                if (rec["checks"] is JsonArray checks && checks.Count > 0)
                {
                    w.WriteLine();
                    w.WriteLine("Checks:");
                    foreach (var c in checks.OfType<JsonObject>())
                    {
                        w.WriteLine($"  [{Text(c["result"]).ToUpperInvariant()}] {Text(c["name"])}: expected {Text(c["expected"])}, actual {Text(c["actual"])}");
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
            w.WriteLine($"Tree size:  {r.TreeSize}");
            w.WriteLine($"Root hash:  {Convert.ToBase64String(r.Root)}");
            w.WriteLine("Inclusion proof (RFC 9162 audit path, base64):");
            foreach (var h in r.InclusionProof)
            {
                w.WriteLine($"  {Convert.ToBase64String(h)}");
            }
            w.WriteLine();
            w.WriteLine("Signed checkpoint:");
            w.Write(r.Checkpoint);
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Verify(CliContext ctx)
    {
        var against = new Option<string?>("--against") { Description = "An earlier checkpoint file: prove the log still extends it (no rollback, no rewrite)" };
        var pub = new Option<string?>("--public-key") { Description = "Verifier key file (default: evidence.pub in the log folder; an auditor should use their own copy)" };
        var fromRepo = new Option<bool>("--from-repo") { Description = "Verify the log as published in the repository (--repo), without the local folder; needs the passphrase and a verifier key (--public-key, evidence.public_key, or this host's log)" };
        var cmd = new Command("verify", "Recompute the Merkle tree and check the signed checkpoint (and that the local log extends the one published in the repository). Exit 5 when anything does not match") { against, pub, fromRepo };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            if (p.GetValue(fromRepo))
            {
                if (p.GetValue(against) is not null)
                {
                    throw new Cairn.Repository.RepositoryException(Cairn.Repository.ErrorKind.InvalidInput, "--against goes with a local log; with --from-repo every earlier publication is checked against the newest");
                }
                return Render(inv, await new EvidencePublishedOperation(inv.Operations).VerifyAsync(new EvidenceFromRepoRequest(p.GetValue(pub)), ct).ConfigureAwait(false), fromRepo: true);
            }
            return await VerifyLogAsync(inv, new EvidenceVerifyRequest(p.GetValue(against), p.GetValue(pub)), ct).ConfigureAwait(false);
        });
        return cmd;
    }

    public static async Task<int> VerifyLogAsync(Invocation inv, EvidenceVerifyRequest request, CancellationToken ct)
        => Render(inv, await new EvidenceVerifyOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false), fromRepo: false);

    private static int Render(Invocation inv, Cairn.Evidence.Log.VerifyResult r, bool fromRepo)
    {
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EvidenceVerifyOutput("summary", r.Ok, r.Records, r.Pruned, r.RootBase64, r.CheckpointSize, r.AgainstChecked, r.Problems,
                r.Keys, r.Handovers, r.TrustFrom, fromRepo, r.Published), CliJson.Default.EvidenceVerifyOutput));
        }
        else
        {
            foreach (var problem in r.Problems)
            {
                inv.Console.Out.WriteLine($"FAIL: {problem}");
            }
            if (r.Handovers.Count > 0)
            {
                inv.Console.Out.WriteLine($"signing keys: {string.Join(" -> ", r.Keys)} (hand-over record(s) {string.Join(", ", r.Handovers)}, each co-signed by the old and the new key)");
                inv.Console.Out.WriteLine(r.TrustFrom == 0
                    ? "trust starts at record 0: the key you verified with is the log's first key, and every hand-over was followed from it"
                    : $"trust starts at record {r.TrustFrom}: the key you verified with came in by the hand-over there; records 0 to {r.TrustFrom} are vouched for by its co-signature of the hand-over checkpoint (pin the log's first key to check the chain from the start)");
            }
            if (r.Published is { } published)
            {
                inv.Console.Out.WriteLine($"published: {published}");
            }
            inv.Console.Out.WriteLine(r.Ok
                ? $"OK: {r.Records} record(s) ({r.Pruned} pruned to leaf hashes) hash to the signed root {r.RootBase64}{(r.AgainstChecked ? "; the log extends the earlier checkpoint" : "")}"
                : $"FAILED: {r.Problems.Count} problem(s); do not trust this log until they are explained");
        }
        return r.Ok ? ExitCodes.Ok : ExitCodes.Damaged;
    }

    private static Command Export(CliContext ctx)
    {
        var from = new Option<string?>("--from") { Description = "First UTC date/time to include (default: the beginning)" };
        var until = new Option<string?>("--until") { Description = "Include records before this UTC date/time (default: now)" };
        var to = new Option<string>("--to") { Description = "Folder to write the export into", Required = true };
        var cmd = new Command("export", "Export records with inclusion proofs, the checkpoint and VERIFYING.md for auditors (the read is recorded)") { from, until, to };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new EvidenceExportOperation(inv.Operations).Run(new EvidenceExportRequest(p.GetValue(to)!, p.GetValue(from), p.GetValue(until)));
            inv.Console.Out.WriteLine($"exported {r.Exported} record(s) of {r.TreeSize} with inclusion proofs to {r.Folder}; see {Path.Combine(r.Folder, "VERIFYING.md")}");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command CheckpointCmd(CliContext ctx)
    {
        var cmd = new Command("checkpoint", "Print the newest signed checkpoint (C2SP tlog-checkpoint in a signed note)");
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            inv.Console.Out.Write(new EvidenceKeysOperation(inv.Operations).Checkpoint());
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command PublicKey(CliContext ctx)
    {
        var cmd = new Command("public-key", "Print the verifier key: name+keyhash+base64(0x01 ‖ Ed25519 public key)");
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            inv.Console.Out.WriteLine(new EvidenceKeysOperation(inv.Operations).VerifierKey());
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Prune(CliContext ctx)
    {
        var before = new Option<string>("--before") { Description = "Prune the bodies of records older than this date (at least one year ago)", Required = true };
        var cmd = new Command("prune", "Replace the bodies of records older than a year with their leaf hashes; the tree still verifies") { before };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new EvidencePruneOperation(inv.Operations).Run(new EvidencePruneRequest(p.GetValue(before)!));
            inv.Console.Out.WriteLine(r.Records == 0
                ? "nothing to prune: no whole segment at the start of the log is older than that date"
                : $"pruned the bodies of {r.Records} record(s) in {r.Segments} segment(s); their leaf hashes remain, and a signed evidence-prune record states it");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    private static Command Publish(CliContext ctx)
    {
        var cmd = new Command("publish", "Publish the evidence log into the repository now (backups, drills and prunes do it by themselves); write-once objects");
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new EvidencePublishedOperation(inv.Operations).PublishAsync(ct).ConfigureAwait(false);
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EvidencePublishOutput("summary", r.Repository, r.Report.Name, r.Report.Size, r.Report.New, r.Report.PiecesWritten, r.Report.BytesWritten), CliJson.Default.EvidencePublishOutput));
                return ExitCodes.Ok;
            }
            inv.Console.Out.WriteLine(r.Report.New
                ? $"published the evidence log ({r.Report.Size} records) to {r.Repository} as evidence/{r.Report.Name} ({r.Report.PiecesWritten} object(s), {r.Report.BytesWritten} bytes written)"
                : $"the evidence log ({r.Report.Size} records) was already published to {r.Repository} as evidence/{r.Report.Name}; nothing written");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static Command Pull(CliContext ctx)
    {
        var to = new Option<string>("--to") { Description = "A new or empty folder to rebuild the log in", Required = true };
        var pub = new Option<string?>("--public-key") { Description = "Verifier key file: verify the pulled log with it (default: evidence.public_key when set)" };
        var cmd = new Command("pull", "Rebuild the evidence log folder from its newest publication in the repository (the signing key is never published)") { to, pub };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new EvidencePublishedOperation(inv.Operations).PullAsync(new EvidencePullRequest(p.GetValue(to)!, p.GetValue(pub)), ct).ConfigureAwait(false);
            var ok = r.Problems.Count == 0 && r.Verified is not { Ok: false };
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EvidencePullOutput("summary", r.Folder, r.Repository, r.Publication, r.Size, r.Files, r.Problems, r.Verified?.Ok, r.Verified?.Problems ?? []), CliJson.Default.EvidencePullOutput));
                return ok ? ExitCodes.Ok : ExitCodes.Damaged;
            }
            foreach (var problem in r.Problems.Concat(r.Verified?.Problems ?? []))
            {
                inv.Console.Out.WriteLine($"FAIL: {problem}");
            }
            inv.Console.Out.WriteLine($"pulled {r.Files} file(s) of the log ({r.Size} records) from evidence/{r.Publication} in {r.Repository} into {r.Folder}");
            inv.Console.Out.WriteLine(r.Verified switch
            {
                null => "not verified: pass --public-key FILE (or run 'cairn evidence verify --evidence DIR --public-key FILE')",
                { Ok: true } v => $"OK: {v.Records} record(s) hash to the signed root {v.RootBase64}",
                var v => $"FAILED: {v.Problems.Count} problem(s); do not trust this log until they are explained",
            });
            inv.Console.Out.WriteLine($"to append to it on this host, put its signing key at {r.Folder.TrimEnd('/')}.key (from your safe copy; never published)");
            return ok ? ExitCodes.Ok : ExitCodes.Damaged;
        });
        return cmd;
    }

    private static Command RotateKey(CliContext ctx)
    {
        var keepOld = new Option<bool>("--keep-old") { Description = "Keep the old private key as KEY.retired-HASH (0600) instead of removing it (it can no longer extend the log)" };
        var reason = new Option<string?>("--reason") { Description = "Why, on the record (default: rotation requested)" };
        var cmd = new Command("rotate-key", "Hand the log over to a new signing key: a hand-over record co-signed by the old and the new key; then only the new key signs and the old one is removed") { keepOld, reason };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new EvidenceRotateKeyOperation(inv.Operations).Run(new EvidenceRotateKeyRequest(p.GetValue(keepOld), p.GetValue(reason) ?? "rotation requested"));
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EvidenceRotateKeyOutput("summary", r.Seq, r.OldKey, r.NewKey, r.HandoverCheckpoint, r.SigningKeyPath, r.KeptOldKey), CliJson.Default.EvidenceRotateKeyOutput));
                return Task.FromResult(ExitCodes.Ok);
            }
            var t = new Table().AddColumns("Rotation", "");
            t.AddRow("hand-over record", r.Seq.ToString(CultureInfo.InvariantCulture));
            t.AddRow("old key (retired)", Markup.Escape(r.OldKey));
            t.AddRow("new verifier key", Markup.Escape(r.NewKey));
            t.AddRow("co-signed checkpoint", Markup.Escape(r.HandoverCheckpoint));
            t.AddRow("signing key", Markup.Escape(r.SigningKeyPath) + " (0600, the new key; keep a copy somewhere safe)");
            t.AddRow("old private key", r.KeptOldKey is { } k ? Markup.Escape(k) + " (kept: --keep-old)" : "removed");
            inv.Console.Ansi.Write(t);
            inv.Console.Out.WriteLine("verifiers that pin the old key follow the hand-over by themselves; give the new verifier key to new auditors ('cairn evidence public-key')");
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }

    /// <summary>A JSON value as a reader wants it: a string without quotes, anything else as JSON, nothing as empty.</summary>
    private static string Text(JsonNode? v) => v switch
    {
        null => "",
        JsonValue s when s.GetValueKind() == JsonValueKind.String => s.GetValue<string>(),
        // A list of names (storage_buckets, buckets, skipped_causes) reads as a comma-separated list, not as JSON.
        JsonArray a when a.All(x => x is JsonValue e && e.GetValueKind() == JsonValueKind.String) => string.Join(", ", a.Select(x => x!.GetValue<string>())),
        _ => v.ToJsonString(),
    };

}
