using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Assessment;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn assess DATABASE</c>: the runbook's "assess damage", with a ranked repair plan.</summary>
internal static class AssessCommand
{
    public static Command Build(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "The database to assess (name in cairn.yaml, or connection string)" };
        var jobs = new Option<int>("--jobs", "-j") { Description = "amcheck sessions at once (default 2)", DefaultValueFactory = _ => 2 };
        var heapAll = new Option<bool>("--heapallindexed") { Description = "amcheck also checks that every table row is in each index (reads every table once per index: slower)" };
        var cmd = new Command("assess", "Assess damage on a live database (read-only): sizes, checksum failures, amcheck of every B-tree index and table in parallel, invalid indexes, missing files, archiver, replication slots, the newest archived WAL; a ranked repair plan per damaged relation from the newest backup taken before the damage that passed a drill. Exit 5 when damage is found, 12 when a probe could not run")
        {
            db, jobs, heapAll,
        };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (p.GetValue(jobs) is < 1 or > 64)
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--jobs must be between 1 and 64");
            }
            var r = await inv.Console.WithProgressAsync($"assess {target.Name}", null, sink =>
                new AssessOperation(inv.Operations).RunAsync(new AssessRequest(target, p.GetValue(jobs), p.GetValue(heapAll)), new Progress<string>(x => sink.Describe($"assess {target.Name}: {x}")), ct)).ConfigureAwait(false);
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(Output(r), CliJson.Default.AssessOutput));
            }
            else
            {
                Render(inv.Console.Out, r);
            }
            return r.Damaged ? ExitCodes.Damaged : r.Incomplete.Count > 0 ? ExitCodes.ChecksFailed : ExitCodes.Ok;
        }, "assess");
        return cmd;
    }

    private static string Iso(DateTimeOffset t) => t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    private static AssessOutput Output(AssessResult r) => new("summary", r.Database, r.Damaged, r.Facts.SizeBytes, r.Facts.DataChecksums, r.Facts.ChecksumFailures,
        r.Facts.ChecksumLastFailure is { } t ? Iso(t) : null, r.IndexesChecked, r.HeapsChecked,
        [.. r.Tables.Select(x => new AssessTableRow(x.Display, x.Kind, x.TotalBytes, x.HeapBytes))],
        [.. r.AmcheckFindings.Select(f => new AssessFindingRow(f.Target.Display, f.Target.IsIndex ? "index" : "table", f.Target.TableDisplay, f.Block, f.Message))],
        [.. r.InvalidIndexes.Select(i => i.Display)],
        [.. r.MissingFiles.Select(m => new AssessMissingRow(m.Display, m.Path))],
        r.Archiver is { } a ? new AssessArchiverRow(a.FailedCount, a.LastFailedWal, a.LastFailedTime is { } lf ? Iso(new DateTimeOffset(DateTime.SpecifyKind(lf, DateTimeKind.Utc))) : null, a.Failing) : null,
        [.. r.Slots.Select(s => new AssessSlotRow(s.Name, s.Type, s.Active, s.Database, s.RetainedBytes, s.WalStatus))],
        r.Wal?.NewestSegment, r.Wal?.NewestArchived is { } na ? Iso(na) : null, [.. (r.Wal?.CoveringBackups ?? []).Select(s => s.Id)],
        [.. r.Plans.Select(p => new AssessPlanRow(p.Relation.Display, p.Relation.IsIndex ? "index" : "table", p.Relation.TableDisplay, p.Relation.IndexOnly, p.Relation.Sources, p.Relation.Details,
            Iso(p.FirstSeen.Time), p.FirstSeen.Source,
            [.. p.Options.Select(o => new AssessOptionRow(o.Rank, o.Method, o.Available, o.SnapshotId, o.SnapshotTime is { } st ? Iso(st) : null, o.DrillSeq, o.Commands, o.Why))]))],
        r.Incomplete, r.Warnings, r.Elapsed.TotalSeconds, r.EvidenceSeq);

    private static void Render(TextWriter o, AssessResult r)
    {
        var f = r.Facts;
        o.WriteLine($"assessment of {r.Database} ({f.Name}): {Format.Bytes(f.SizeBytes)}, data checksums {(f.DataChecksums ? "on" : "off")}"
            + (f.ChecksumFailures is { } cf ? $", {cf} checksum failure(s){(f.ChecksumLastFailure is { } lt ? $", last {Format.Time(lt)}" : "")}" : ""));
        o.WriteLine();
        o.WriteLine("largest tables:");
        foreach (var t in r.Tables.Take(10))
        {
            o.WriteLine($"  {t.Display,-40} {Format.Bytes(t.TotalBytes),10} ({t.Kind}; heap {Format.Bytes(t.HeapBytes)})");
        }
        if (r.Tables.Count > 10)
        {
            o.WriteLine($"  … and {r.Tables.Count - 10} more (--json lists them all)");
        }
        o.WriteLine();
        o.WriteLine($"amcheck: {r.IndexesChecked} B-tree indexes, {r.HeapsChecked} tables checked, {r.AmcheckFindings.Count} finding(s)");
        foreach (var x in r.AmcheckFindings)
        {
            o.WriteLine($"  DAMAGE {x.Line}");
        }
        foreach (var i in r.InvalidIndexes)
        {
            o.WriteLine($"  INVALID index {i.Display} on {i.TableSchema}.{i.Table}");
        }
        foreach (var m in r.MissingFiles)
        {
            o.WriteLine($"  MISSING {m.Display}: {m.Path}");
        }
        if (r.Archiver is { } a)
        {
            o.WriteLine($"archiver: {(a.Failing ? $"FAILING ({a.FailedCount} failures, last {a.LastFailedWal})" : "ok")}");
        }
        foreach (var s in r.Slots)
        {
            o.WriteLine($"replication slot {s.Name} ({s.Type}, {(s.Active ? "active" : "inactive")}): holds {(s.RetainedBytes is { } b ? Format.Bytes(b) : "?")} of WAL{(s.WalStatus is { } w ? $", {w}" : "")}");
        }
        if (r.Wal is { } wal)
        {
            o.WriteLine(wal.NewestSegment is null
                ? "archived WAL: none"
                : $"newest archived WAL: {wal.NewestSegment} ({(wal.NewestArchived is { } t ? Format.Time(t) : "?")}); physical backups that reach it without a gap: {(wal.CoveringBackups.Count == 0 ? "none" : string.Join(", ", wal.CoveringBackups.Select(s => s.ShortId)))}");
        }
        o.WriteLine();
        if (r.Plans.Count == 0)
        {
            o.WriteLine(r.UnlocatedChecksumFailures
                ? $"PostgreSQL counted {f.ChecksumFailures} checksum failure(s) that amcheck did not locate (they may be in another database's relations, in shared catalogs or in pages since rewritten): run pg_checksums --check on a stopped copy (cairn restore --physical) to find them"
                : "no damaged relation found");
        }
        foreach (var p in r.Plans)
        {
            o.WriteLine($"plan for {(p.Relation.IsIndex ? "index" : "table")} {p.Relation.Display}{(p.Relation.IsIndex ? $" (on {p.Relation.TableDisplay})" : "")}: first seen {Format.Time(p.FirstSeen.Time)} ({p.FirstSeen.Source})");
            foreach (var opt in p.Options)
            {
                o.WriteLine($"  {opt.Rank}. {opt.Method}{(opt.Available ? "" : " (not available)")}: {opt.Why}");
                foreach (var c in opt.Commands)
                {
                    o.WriteLine($"       {c}");
                }
            }
        }
        foreach (var w in r.Warnings)
        {
            o.WriteLine($"warning: {w}");
        }
        foreach (var i in r.Incomplete)
        {
            o.WriteLine($"NOT CHECKED: {i}");
        }
        o.WriteLine($"assessed in {Format.Duration(r.Elapsed)} (evidence {r.EvidenceSeq})");
    }
}
