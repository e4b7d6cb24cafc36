using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Checks;
using Cairn.Operations.Drills;
using Cairn.Operations.Verification;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn drill</c> and <c>cairn verify DATABASE --live</c>: the checks, judged by real expectations.</summary>
internal static class DrillCommands
{
    public static Command Drill(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "The database whose backup to drill (name in cairn.yaml)" };
        var snapshot = new Option<string>("--snapshot", "-s") { Description = "Snapshot ID (prefix) or latest", DefaultValueFactory = _ => "latest" };
        var keep = new Option<bool>("--keep") { Description = "Keep the restored scratch server running afterwards and print how to connect" };
        var physical = new Option<bool>("--physical") { Description = "Drill a physical backup: restore the data directory and recover it (to --target-time, a --random-target, or the end of the archive)" };
        var targetTime = new Option<string?>("--target-time") { Description = "Point-in-time target for a physical drill" };
        var random = new Option<bool>("--random-target") { Description = "Pick a random point inside the recovery window and prove recovery stopped exactly there" };
        var allowSkipped = AllowSkippedOption();
        var cmd = new Command("drill", "Restore a backup into a scratch server Cairn starts, run every check, measure RTO and data age, tear down. Exit 12 when a check fails")
        {
            db, snapshot, keep, physical, targetTime, random, allowSkipped,
        };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (p.GetValue(physical) || p.GetValue(targetTime) is not null || p.GetValue(random))
            {
                if (p.GetValue(targetTime) is not null && p.GetValue(random))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, "give --target-time or --random-target, not both");
                }
                DateTimeOffset? time = null;
                if (p.GetValue(targetTime) is { } t)
                {
                    time = DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
                        ? parsed
                        : throw new RepositoryException(ErrorKind.InvalidInput, $"--target-time '{t}' is not a time; write e.g. '2026-12-01 14:30:00+00'");
                }
                return PhysicalDrillAsync(inv, new PhysicalDrillRequest(target, p.GetValue(snapshot), time, p.GetValue(random), p.GetValue(keep), AllowSkipped: p.GetValue(allowSkipped)), ct);
            }
            return DrillAsync(inv, new DrillRequest(target, p.GetValue(snapshot), p.GetValue(keep), p.GetValue(allowSkipped)), ct);
        }, "drill");
        return cmd;
    }

    /// <summary><c>--allow-skipped</c> (drill, verify --live): a check that could not run does not fail the run.</summary>
    public static Option<bool> AllowSkippedOption() => new("--allow-skipped")
    {
        Description = "Do not fail when a check could not run (it is still shown and recorded as skipped); per check: optional: true in cairn.yaml",
    };

    public static async Task<int> DrillAsync(Invocation inv, DrillRequest request, CancellationToken ct)
    {
        var name = request.Database.Name;
        var result = await inv.Console.WithProgressAsync($"drill {name}", null, sink =>
            new DrillOperation(inv.Operations).RunAsync(request, new Progress<string>(x => sink.Describe($"drill {name}: {x}")), ct)).ConfigureAwait(false);
        Warn(inv, result.Warnings);
        Print(inv, $"drill of {name} (backup {result.Snapshot.ShortId})", result.Checks, request.AllowSkipped, result.Rto, result.DataAge, result.Total, result.Snapshot.Id, result.RolesCreated);
        if (result.KeptUrl is not null && result.KeptDataDirectory is null)
        {
            inv.Console.Error.WriteLine($"kept the restored database {result.On}: psql \"{result.KeptUrl}\"; drop it with DROP DATABASE when done (drills on a chosen server leave no other database behind)");
        }
        else if (result.KeptUrl is not null)
        {
            inv.Console.Error.WriteLine($"kept the restored server: psql \"{result.KeptUrl}\" as root or the postgres user (peer authentication on a private socket; no password); stop it with: pg_ctl -D {result.KeptDataDirectory} stop (as the postgres user when root), then remove {Path.GetDirectoryName(result.KeptDataDirectory)}");
        }
        return Verdict(inv, "drill failed", result.Checks, request.AllowSkipped);
    }

    public static async Task<int> PhysicalDrillAsync(Invocation inv, PhysicalDrillRequest request, CancellationToken ct)
    {
        var result = await new PhysicalDrillOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (result.Kept is { } k)
        {
            inv.Console.Error.WriteLine($"kept the restored server: psql \"{k.Url}\"; stop with pg_ctl -D {k.DataDirectory} stop, then remove {k.Root}");
        }
        Print(inv, $"physical drill of {request.Database.Name} (backup {result.Snapshot.ShortId})", result.Checks, request.AllowSkipped, result.Rto, result.DataAge, result.Total, result.Snapshot.Id);
        return Verdict(inv, "drill failed", result.Checks, request.AllowSkipped);
    }

    /// <summary>The runbook's daily verification: the configured checks against the live database, read-only.</summary>
    public static async Task<int> VerifyLiveAsync(Invocation inv, LiveVerifyRequest request, CancellationToken ct)
    {
        var result = await new LiveVerifyOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        Warn(inv, result.Warnings);
        Print(inv, $"live verification of {result.Database}", result.Checks, request.AllowSkipped, null, null, result.Elapsed, null);
        if (result.EvidenceFile is { } file)
        {
            inv.Console.Error.WriteLine($"evidence file: {file}");
        }
        return Verdict(inv, "verification failed", result.Checks, request.AllowSkipped);
    }

    private static void Warn(Invocation inv, IEnumerable<string> warnings)
    {
        foreach (var w in warnings)
        {
            inv.Console.Error.WriteLine($"cairn: warning: {w}");
        }
    }

    private static int Verdict(Invocation inv, string failed, IReadOnlyList<CheckResult> checks, bool allowSkipped)
    {
        if (CheckTally.Of(checks, allowSkipped).Ok)
        {
            return ExitCodes.Ok;
        }
        var failures = checks.Where(c => c.Failed).Select(c => c.Name).ToList();
        var skipped = checks.Where(c => c.Skipped && c.Blocks(allowSkipped)).Select(c => c.Name).ToList();
        var parts = new List<string>();
        if (failures.Count > 0)
        {
            parts.Add(string.Join(", ", failures));
        }
        if (skipped.Count > 0)
        {
            parts.Add($"skipped (could not run): {string.Join(", ", skipped)}; a skipped check is not a pass: run it where it can run, mark it optional: true in cairn.yaml, or pass --allow-skipped");
        }
        inv.Console.Error.WriteLine($"cairn: {failed}: {string.Join("; ", parts)}");
        return ExitCodes.ChecksFailed;
    }

    public static CheckRow Row(CheckResult r) => new(r.Name, r.Kind, r.Expected, r.Actual, r.Status.ToString().ToLowerInvariant(), r.Optional, (long)r.Duration.TotalMilliseconds, r.Detail);

    private static void Print(Invocation inv, string title, IReadOnlyList<CheckResult> results, bool allowSkipped, TimeSpan? rto, TimeSpan? dataAge, TimeSpan total, string? snapshot, IReadOnlyList<CreatedRole>? roles = null)
    {
        var tally = CheckTally.Of(results, allowSkipped);
        var passed = tally.Ok;
        if (inv.Json)
        {
            var o = new DrillOutput("summary", passed, snapshot, rto is { } r ? Math.Round(r.TotalSeconds, 3) : null, dataAge is { } a ? Math.Round(a.TotalSeconds, 0) : null,
                Math.Round(total.TotalSeconds, 3), [.. results.Select(Row)], roles is null ? null : RolesText.Rows(roles))
            {
                ChecksPassed = tally.Passed,
                ChecksFailed = tally.Failed,
                ChecksSkipped = tally.Skipped,
                AllowSkipped = allowSkipped,
            };
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(o, CliJson.Default.DrillOutput));
            return;
        }
        foreach (var line in RolesText.Lines(roles ?? []))
        {
            inv.Console.Out.WriteLine(line);
        }
        var t = new Table().Title(Markup.Escape(title)).AddColumns("Check", "Expected", "Actual", "Result", "Time", "Why");
        foreach (var c in results)
        {
            var status = c.Status switch
            {
                CheckStatus.Pass => "[green]PASS[/]",
                CheckStatus.Skip => c.Optional || allowSkipped ? "[yellow]SKIPPED[/]" : "[red]SKIPPED[/]",
                CheckStatus.Error => "[red]ERROR[/]",
                _ => "[red]FAIL[/]",
            };
            t.AddRow(Markup.Escape(c.Name), Markup.Escape(c.Expected), Markup.Escape(c.Actual), status, Format.Duration(c.Duration), Markup.Escape(c.Detail ?? ""));
        }
        inv.Console.Ansi.Write(t);
        var figures = new List<string>();
        if (rto is { } rr)
        {
            figures.Add($"RTO {Format.Duration(rr)} (start to a restored server answering queries)");
        }
        if (dataAge is { } da)
        {
            figures.Add($"data age {Format.Duration(da)} (newest restored data)");
        }
        figures.Add($"total {Format.Duration(total)}");
        inv.Console.Out.WriteLine($"{(passed ? "PASS" : "FAIL")}: {tally} of {results.Count} checks; {string.Join("; ", figures)}");
    }
}
