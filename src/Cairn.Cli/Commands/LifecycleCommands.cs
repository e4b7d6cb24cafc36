using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Configuration;
using Cairn.Operations.Lifecycle.Cleanup;
using Cairn.Operations.Lifecycle.Erasure;
using Cairn.Operations.Lifecycle.Recovery;
using Cairn.Operations.Recording;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>The data lifecycle commands: cleanup, erase, recover. Each binds, calls one operation, renders its result.</summary>
internal static class LifecycleCommands
{
    public static Command Cleanup(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "A database from cairn.yaml with a cleanup: list" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print each rule's cutoff, the rows that would go, partitions that would be dropped and foreign keys that would cascade or block; change nothing" };
        var rule = new Option<int?>("--rule") { Description = "Only rule N (numbered from 1 in cairn.yaml's order)" };
        var pause = new Option<string?>("--pause") { Description = "Sleep between batches so replication and vacuum keep up, e.g. 200ms or 1s" };
        var cmd = new Command("cleanup", "Delete rows older than each cleanup rule's cutoff (computed once from the server's clock), in short batches; whole partitions before the cutoff are dropped; one evidence record per run")
        {
            db, dryRun, rule, pause,
        };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            return CleanupAsync(inv, new CleanupRequest(target, p.GetValue(dryRun), p.GetValue(rule), ParsePause(p.GetValue(pause))), ct);
        });
        return cmd;
    }

    private static TimeSpan ParsePause(string? text)
    {
        if (text is null)
        {
            return TimeSpan.Zero;
        }
        if (text.EndsWith("ms", StringComparison.Ordinal) && int.TryParse(text[..^2], NumberStyles.None, CultureInfo.InvariantCulture, out var ms))
        {
            return TimeSpan.FromMilliseconds(ms);
        }
        return CairnConfig.TryParseDuration(text, out var d) ? d : throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, $"--pause '{text}' is not a duration; use e.g. 200ms, 1s or 1m");
    }

    public static async Task<int> CleanupAsync(Invocation inv, CleanupRequest request, CancellationToken ct)
    {
        var name = request.Database.Name;
        var r = await inv.Console.WithProgressAsync($"cleanup {name}", null, sink => new CleanupOperation(inv.Operations).RunAsync(request,
            new Progress<CleanupProgress>(x => sink.Describe($"cleanup {name} rule {x.Rule} {x.Table}: {x.Deleted:N0} of {x.Expected:N0} rows")), ct)).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new CleanupOutput("cleanup", r.Database, r.DryRun, r.ServerTime, r.RowsDeleted, r.Partial, r.Error, Math.Round(r.Duration.TotalSeconds, 3),
                [.. r.Rules.Select(x => new CleanupRuleRow(x.Rule, x.Table, x.TimeColumn, x.Where, x.Cutoff, x.RowsMatching, x.RowsDeleted, x.PartitionsDropped, x.Done, x.Refused,
                    [.. x.Partitions.Select(pp => new CleanupPartitionRow(pp.Partition, pp.Bound, pp.Rows))], [.. x.Cascades.Select(cc => new CleanupCascadeRow(cc.Path, cc.Table, cc.Action, cc.Rows))]))]),
                CliJson.Default.CleanupOutput));
        }
        else
        {
            foreach (var x in r.Rules)
            {
                var head = $"rule {x.Rule}: {x.Table} where {x.TimeColumn} < {Format.Time(x.Cutoff)}{(x.Where is null ? "" : $" and ({x.Where})")}";
                inv.Console.Out.WriteLine(r.DryRun
                    ? $"{head}: {x.RowsMatching:N0} rows would go"
                    : $"{head}: {x.RowsDeleted:N0} rows deleted{(x.PartitionsDropped > 0 ? $" ({x.PartitionsDropped} partitions dropped)" : "")}{(x.Done ? "" : " (not finished)")}");
                foreach (var pp in x.Partitions)
                {
                    inv.Console.Out.WriteLine($"  partition {pp.Partition} ({pp.Rows:N0} rows) lies wholly before the cutoff: {(r.DryRun ? "would be detached and dropped" : "detached and dropped")}");
                }
                foreach (var cc in x.Cascades)
                {
                    inv.Console.Out.WriteLine($"  foreign key {cc.Path}: {cc.Action}, {cc.Rows:N0} rows now");
                }
                if (x.Refused is { } why)
                {
                    inv.Console.Out.WriteLine($"  REFUSED: {why}");
                }
            }
            if (!r.DryRun)
            {
                inv.Console.Out.WriteLine($"cleanup of {r.Database}: {r.RowsDeleted:N0} rows deleted in {Format.Duration(r.Duration)}{(r.Partial ? $"; stopped early: {r.Error}" : "")}");
            }
        }
        if (r.Partial)
        {
            return ct.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Database;
        }
        return r.DryRun && r.Rules.Any(x => x.Refused is not null) ? ExitCodes.Usage : ExitCodes.Ok;
    }

    public static Command Erase(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "A database from cairn.yaml with an erasure: section" };
        var subject = new Argument<string?>("SUBJECT") { Description = "The data subject's identifier (the subject table's key), e.g. a profile's id", Arity = ArgumentArity.ZeroOrOne };
        var dryRun = new Option<bool>("--dry-run") { Description = "Run the erasure in a transaction that is rolled back and print its plan: table, action, rows" };
        var reference = new Option<string?>("--reference") { Description = "A ticket or request number for the receipt (no personal data)" };
        var replay = new Option<bool>("--replay") { Description = "Apply the erasure ledger to the database (or --to): after a physical restore started by hand" };
        var to = new Option<string?>("--to") { Description = "With --replay: the database to apply the ledger to (a connection string); default the configured one" };
        var receipt = new Option<long?>("--receipt") { Description = "Print the signed receipt of the erasure recorded as evidence record SEQ (record, inclusion proof, signed checkpoint)" };
        var cmd = new Command("erase", "Erase a data subject in one transaction (rows that reference it through foreign keys, named references, the subject), on record in the repository's encrypted erasure ledger that every restore applies again")
        {
            db, subject, dryRun, reference, replay, to, receipt,
        };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (p.GetValue(receipt) is { } seq)
            {
                return Task.FromResult(Receipt(inv, seq));
            }
            if (p.GetValue(replay))
            {
                return ReplayAsync(inv, new EraseReplayRequest(target, p.GetValue(to) is { } url ? inv.Operations.ParseConnection(url) : null), ct);
            }
            var id = p.GetValue(subject) ?? throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "give the subject's identifier: cairn erase DATABASE SUBJECT (or --replay)");
            return EraseAsync(inv, new EraseRequest(target, id, p.GetValue(dryRun), p.GetValue(reference)), ct);
        }, "erasure");
        return cmd;
    }

    public static async Task<int> EraseAsync(Invocation inv, EraseRequest request, CancellationToken ct)
    {
        var r = await new EraseOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EraseOutput("erase", r.Database, r.DryRun, r.SubjectFound, r.Steps.Sum(s => s.Rows), [.. r.Steps.Select(s => new ErasureStepRow(s.Table, s.Action, s.Rows))],
                r.SubjectHash, r.LedgerEntry, r.EvidenceSeq, Math.Round(r.Duration.TotalSeconds, 3)), CliJson.Default.EraseOutput));
            return ExitCodes.Ok;
        }
        foreach (var s in r.Steps)
        {
            inv.Console.Out.WriteLine($"{s.Table}: {s.Action}: {s.Rows:N0} rows");
        }
        if (!r.SubjectFound)
        {
            inv.Console.Error.WriteLine("cairn: warning: the subject's own row was not found (already deleted?)");
        }
        inv.Console.Out.WriteLine(r.DryRun
            ? $"dry run: {r.Steps.Sum(s => s.Rows):N0} rows would change; the transaction was rolled back"
            : $"erased: {r.Steps.Sum(s => s.Rows):N0} rows in one transaction; on record in the erasure ledger ({r.LedgerEntry}) and as evidence #{r.EvidenceSeq} (subject hmac {r.SubjectHash![..16]}…)");
        return ExitCodes.Ok;
    }

    public static async Task<int> ReplayAsync(Invocation inv, EraseReplayRequest request, CancellationToken ct)
    {
        var r = await new EraseReplayOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EraseReplayOutput("erase-replay", r.Database, r.Target, r.Replay.Entries, r.Replay.Reapplied, r.Replay.Rows), CliJson.Default.EraseReplayOutput));
            return ExitCodes.Ok;
        }
        inv.Console.Out.WriteLine($"erasure ledger of {r.Database} applied to {r.Target}: {r.Replay.Entries} erasure(s), {r.Replay.Reapplied} found data again ({r.Replay.Rows:N0} rows)");
        return ExitCodes.Ok;
    }

    public static Command Recover(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "A database from cairn.yaml with an audit: section" };
        var fromAudit = new Option<bool>("--from-audit") { Description = "Bring back rows deleted in the window from the audit trail's old images" };
        var since = new Option<string>("--since") { Description = "How far back to read the audit trail, e.g. 1h, 30m, 2d" };
        var table = new Option<string?>("--table") { Description = "Only rows of this table" };
        var pattern = new Option<string?>("--event") { Description = "SQL LIKE pattern of the delete events (default %_deleted)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "List what would come back; change nothing (runs in a transaction that is rolled back)" };
        var undo = new Option<bool>("--undo-updates") { Description = "Also put updated rows back to their old images (with the columns that differed)" };
        var at = new Option<string?>("--at")
        {
            Description = "With --table: the table as it was at this time (UTC when no offset is given), staged in --into-schema and compared with the live table, e.g. " +
                "cairn recover app --table public.orders --at '2026-12-01 14:30:00+00' --dry-run (then again with --merge to put back the rows missing since)",
        };
        var from = new Option<string>("--from")
        {
            Description = "With --at: physical (a scratch point-in-time restore of the physical backup and WAL), logical (the newest logical backup before TIME plus the audit trail's images up to TIME), " +
                "or auto: physical when a physical backup and gap-free WAL archived past TIME cover it, else logical",
            DefaultValueFactory = _ => "auto",
        };
        from.AcceptOnlyFromAmong("auto", "physical", "logical");
        var merge = new Option<bool>("--merge") { Description = "With --at: insert the rows the table had at that time and lacks now (one transaction; rows inserted since and rows that exist are untouched)" };
        var intoSchema = new Option<string>("--into-schema") { Description = "With --at: the schema the copy as of that time is staged in, beside the live table", DefaultValueFactory = _ => RecoverTableRequest.DefaultSchema };
        var cmd = new Command("recover", "Bring back deleted rows from the audit trail (meta->'old' images), or a table as it was at a time (--table T --at TIME, from the physical backup and WAL or a logical backup and the audit trail); erased subjects never come back")
        {
            db, fromAudit, since, table, pattern, dryRun, undo, at, from, merge, intoSchema,
        };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (p.GetValue(at) is { } atText)
            {
                if (p.GetValue(fromAudit) || p.GetValue(since) is not null || p.GetValue(undo) || p.GetValue(pattern) is not null)
                {
                    throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--at rebuilds a table as it was at a time; --from-audit, --since, --event and --undo-updates belong to recovery of deleted rows from the audit trail: give one or the other");
                }
                var tableName = p.GetValue(table) ?? throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--at needs --table T (the table to bring back as it was at that time)");
                var time = DateTimeOffset.TryParse(atText, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
                    ? parsed
                    : throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, $"--at '{atText}' is not a time; write e.g. '2026-12-01 14:30:00+00'");
                var source = p.GetValue(from) switch { "physical" => RecoverSource.Physical, "logical" => RecoverSource.Logical, _ => RecoverSource.Auto };
                return RecoverTableAsync(inv, new RecoverTableRequest(target, tableName, time, p.GetValue(intoSchema)!, p.GetValue(merge), p.GetValue(dryRun), From: source), ct);
            }
            if (p.GetValue(from) != "auto")
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--from belongs to --table T --at TIME (where the table as it was then is rebuilt from)");
            }
            if (p.GetValue(merge))
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--merge belongs to --table T --at TIME (recovery from the audit trail always inserts the missing rows)");
            }
            if (!p.GetValue(fromAudit))
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "give --from-audit --since DURATION (recovery from the audit trail) or --table T --at TIME (the table as it was then, from the physical backup and WAL)");
            }
            var text = p.GetValue(since) ?? throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--from-audit needs --since DURATION, e.g. --since 1h");
            if (!CairnConfig.TryParseDuration(text, out var window) || window <= TimeSpan.Zero)
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, $"--since '{text}' is not a duration; use e.g. 30m, 1h or 2d");
            }
            return RecoverAsync(inv, new RecoverRequest(target, window, p.GetValue(table), p.GetValue(pattern), p.GetValue(dryRun), p.GetValue(undo)), ct);
        }, "recover");
        return cmd;
    }

    public static async Task<int> RecoverTableAsync(Invocation inv, RecoverTableRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync($"recover {request.Database.Name} --table {request.Table}", null, _ => new RecoverTableOperation(inv.Operations).RunAsync(request, ct)).ConfigureAwait(false);
        var d = r.Diff;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new RecoverTableOutput("recover", r.Database, r.Table, r.At, r.Source, r.Choice, r.Snapshot.Id, r.DryRun, r.Merged, r.DryRun ? null : d.StagingTable, d.Key,
                d.RowsInBackup, d.RowsLive, d.OnlyInBackup, d.OnlyLive, d.Differ, d.Merged, r.Erasures.Entries, r.Erasures.Reapplied, r.Erasures.Rows, r.MergeErasures?.Reapplied, r.StopProof?.Actual,
                r.Replay?.BackupTime, r.Replay?.From, r.Replay?.Applied, r.Replay is { } rp ? [.. rp.NotApplied.Select(e => new ReplayEventRow(e.AuditKey, e.Table, e.EntityId, e.Event, e.Time, e.What))] : null,
                r.Replay?.UnknownColumns, Math.Round(r.Duration.TotalSeconds, 3)),
                CliJson.Default.RecoverTableOutput));
            return ExitCodes.Ok;
        }
        var w = inv.Console.Out;
        if (r.Replay is { } replay)
        {
            w.WriteLine($"{r.Table} as of {Format.Time(r.At)}: from logical backup {r.Snapshot.ShortId} (taken {Format.Time(replay.BackupTime)}) and the audit trail's events from {Format.Time(replay.From)} to then ({r.Choice})");
            w.WriteLine($"audit events: {replay.Applied:N0} applied, {replay.NotApplied.Count:N0} could not be applied");
            // An audit trail full of events without images (logins, messages) would bury the answer: the first ten, --json has all.
            foreach (var e in replay.NotApplied.Take(10))
            {
                w.WriteLine($"  not applied: audit row {e.AuditKey} {Format.Time(e.Time)} {e.Event} {e.Table} {e.EntityId}: {e.What}");
            }
            if (replay.NotApplied.Count > 10)
            {
                w.WriteLine($"  … and {replay.NotApplied.Count - 10:N0} more (--json lists every one)");
            }
            if (replay.UnknownColumns.Count > 0)
            {
                w.WriteLine($"  image keys that are not columns of the backup's table were left out: {string.Join(", ", replay.UnknownColumns)}");
            }
        }
        else
        {
            w.WriteLine($"{r.Table} as of {Format.Time(r.At)}: from physical backup {r.Snapshot.ShortId} and the archived WAL ({r.StopProof?.Actual}; {r.Choice})");
        }
        if (r.Erasures.Entries > 0)
        {
            w.WriteLine($"erasure ledger: {r.Erasures.Entries} erasure(s) applied to the copy before it was read; {r.Erasures.Reapplied} found data ({r.Erasures.Rows:N0} rows stay erased)");
        }
        w.WriteLine($"rows then {d.RowsInBackup:N0}, now {(d.RowsLive is { } live ? live.ToString("N0", CultureInfo.InvariantCulture) : "(table missing)")} (key {d.Key}): {d.OnlyInBackup:N0} only then (missing now), {d.OnlyLive:N0} only now, {d.Differ:N0} differ");
        w.WriteLine(r.DryRun
            ? $"dry run: {d.OnlyInBackup:N0} row(s) would come back with --merge; the copy was dropped, nothing changed"
            : r.Merged
                ? $"merged {d.Merged:N0} row(s) back in one transaction (the ledger applied again before it committed); the copy as of then stays in {d.StagingTable}"
                : $"the copy as of then is in {d.StagingTable}; add --merge to insert the {d.OnlyInBackup:N0} missing row(s)");
        return ExitCodes.Ok;
    }

    public static async Task<int> RecoverAsync(Invocation inv, RecoverRequest request, CancellationToken ct)
    {
        var r = await new RecoverOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new RecoverOutput("recover", r.Database, r.DryRun, r.Since, r.Count(RecoverOperation.Inserted), r.Count(RecoverOperation.Exists),
                r.Count(RecoverOperation.Erased), r.Count(RecoverOperation.NotApplied), r.Count(RecoverOperation.Updated),
                [.. r.Rows.Select(x => new RecoveredRow(x.Table, x.EntityId, x.Event, x.Time, x.Outcome, x.Why))], new Dictionary<string, IReadOnlyList<string>>(r.UnknownColumns), Math.Round(r.Duration.TotalSeconds, 3)),
                CliJson.Default.RecoverOutput));
            return ExitCodes.Ok;
        }
        foreach (var x in r.Rows.Where(x => x.Outcome != RecoverOperation.Inserted || r.DryRun))
        {
            inv.Console.Out.WriteLine($"{Format.Time(x.Time)} {x.Event} {x.Table} {x.EntityId}: {x.Outcome}{(x.Why is null ? "" : $" ({x.Why})")}");
        }
        foreach (var (t, cols) in r.UnknownColumns)
        {
            inv.Console.Out.WriteLine($"{t}: image keys that are no longer columns were left out: {string.Join(", ", cols)}");
        }
        inv.Console.Out.WriteLine($"{(r.DryRun ? "dry run: would recover" : "recovered")} {r.Count(RecoverOperation.Inserted):N0} row(s) of events since {Format.Time(r.Since)}; " +
            $"{r.Count(RecoverOperation.Exists):N0} exist again, {r.Count(RecoverOperation.Erased):N0} belong to erased subjects, {r.Count(RecoverOperation.NotApplied):N0} could not be applied" +
            (request.UndoUpdates ? $", {r.Count(RecoverOperation.Updated):N0} updated back" : ""));
        return ExitCodes.Ok;
    }

    private static int Receipt(Invocation inv, long seq)
    {
        var r = new ErasureReceiptOperation(inv.Operations).Run(seq);
        var e = r.Entry;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new EvidenceShowOutput(e.Line is null ? null : System.Text.Json.Nodes.JsonNode.Parse(e.Line), Convert.ToHexStringLower(e.LeafHash), r.TreeSize,
                Convert.ToBase64String(r.Root), [.. r.InclusionProof.Select(Convert.ToBase64String)], r.Checkpoint), CliJson.Default.EvidenceShowOutput));
            return ExitCodes.Ok;
        }
        var w = inv.Console.Out;
        var rec = e.Record!;
        var d = rec["details"]!;
        w.WriteLine("=== Erasure receipt ===");
        w.WriteLine($"Database:        {rec["database"]}");
        w.WriteLine($"Time (UTC):      {rec["time"]}");
        w.WriteLine($"Reference:       {d["reference"]}");
        w.WriteLine($"Subject (HMAC):  {d["subject_hmac"]}   (keyed hash under the repository's erasure key; the identifier itself is only in the encrypted ledger)");
        w.WriteLine($"Ledger entry:    {d["ledger_entry"]}");
        w.WriteLine($"Mode:            {d["mode"]}");
        foreach (var t in d["tables"]?.AsArray() ?? [])
        {
            w.WriteLine($"  {t!["table"]}: {t["action"]}: {t["rows"]} rows");
        }
        w.WriteLine();
        w.WriteLine($"Evidence record {e.Seq}, leaf hash {Convert.ToHexStringLower(e.LeafHash)}, in a log of {r.TreeSize} records with root {Convert.ToBase64String(r.Root)}");
        w.WriteLine("Inclusion proof (RFC 9162):");
        foreach (var h in r.InclusionProof)
        {
            w.WriteLine("  " + Convert.ToBase64String(h));
        }
        w.WriteLine("Record (canonical JSON, the exact bytes of the Merkle leaf):");
        w.WriteLine(e.Line);
        w.WriteLine();
        w.WriteLine("Signed checkpoint (C2SP signed note, Ed25519 with the evidence log's key; verify with 'cairn evidence public-key' or docs/evidence.md):");
        w.Write(r.Checkpoint);
        return ExitCodes.Ok;
    }
}
