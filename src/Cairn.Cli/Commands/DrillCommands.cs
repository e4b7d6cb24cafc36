using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Operations.Checks;
using Cairn.Operations.Drills;
using Cairn.Operations.Logical;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Sessions;
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
        var cmd = new Command("drill", "Restore a backup into a scratch server Cairn starts, run every check, measure RTO and data age, tear down. Exit 12 when a check fails")
        {
            db, snapshot, keep, physical, targetTime, random,
        };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var (name, connection, config) = DatabaseCommands.Resolve(ctx, p.GetValue(db)!);
            ctx.LastDatabase = name;
            var checks = CheckParser.Parse(config?.Checks, ctx.Config.File ?? "cairn.yaml", name);
            if (p.GetValue(physical) || p.GetValue(targetTime) is not null || p.GetValue(random))
            {
                if (p.GetValue(targetTime) is not null && p.GetValue(random))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, "give --target-time or --random-target, not both");
                }
                var snapshotArg = p.GetValue(snapshot) is "latest" ? null : p.GetValue(snapshot);
                return await PhysicalDrill.RunAsync(ctx, p, name, connection, checks, snapshotArg, p.GetValue(targetTime), p.GetValue(random), p.GetValue(keep), ct).ConfigureAwait(false);
            }
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            DrillResult result;
            await using (var l = await repo.LockAsync(exclusive: false, $"drill {name}", ct).ConfigureAwait(false))
            {
                result = await ctx.Console.WithProgressAsync($"drill {name}", null, async sink =>
                    await DrillOperation.RunAsync(repo, name, p.GetValue(snapshot), checks, p.GetValue(keep), ctx.Time, new Progress<string>(x => sink.Describe($"drill {name}: {x}")), ct, ctx.Config.WorkDirectory, ctx.Config.PostgresBin).ConfigureAwait(false)).ConfigureAwait(false);
            }
            var seq = await Evidence.RecordAsync(ctx, repo.Storage.Location, "drill", result.Passed ? "pass" : "fail", new()
            {
                ["type"] = "logical",
                ["rto_ms"] = ((long?)result.Rto?.TotalMilliseconds)?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["data_age_s"] = ((long?)result.DataAge?.TotalSeconds)?.ToString(CultureInfo.InvariantCulture) ?? "",
                ["backup_time"] = result.Fingerprint?.BackupTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture) ?? "",
                ["checks_passed"] = result.Checks.Count(c => c.Passed).ToString(CultureInfo.InvariantCulture),
                ["checks_failed"] = result.Failed.Count().ToString(CultureInfo.InvariantCulture),
                ["roles_created"] = RolesText.Summary(result.RolesCreated ?? []),
            }, ct, database: name, snapshot: result.Snapshot.Id, durationMs: (long)result.Total.TotalMilliseconds, checks: ChecksJson(result.Checks)).ConfigureAwait(false);
            await MirrorAsync(ctx, connection, result.Checks, seq, ct).ConfigureAwait(false);
            Print(ctx, p.GetValue(CommandRunner.Json), $"drill of {name} (backup {result.Snapshot.ShortId})", result.Checks, result.Rto, result.DataAge, result.Total, result.Snapshot.Id, result.RolesCreated);
            if (result.KeptUrl is not null)
            {
                ctx.Console.Error.WriteLine($"kept the restored server: psql \"{result.KeptUrl}\" as root or the postgres user (peer authentication on a private socket; no password); stop it with: pg_ctl -D {result.KeptDataDirectory} stop (as the postgres user when root), then remove {Path.GetDirectoryName(result.KeptDataDirectory)}");
            }
            if (!result.Passed)
            {
                ctx.Console.Error.WriteLine($"cairn: drill failed: {string.Join(", ", result.Failed.Select(c => c.Name))}");
                return ExitCodes.ChecksFailed;
            }
            return ExitCodes.Ok;
        }, "drill");
        return cmd;
    }

    /// <summary>The runbook's daily verification: the configured checks against the live database, read-only.</summary>
    public static async Task<int> VerifyLiveAsync(CliContext ctx, ParseResult p, string database, CancellationToken ct)
    {
        var (name, connection, config) = DatabaseCommands.Resolve(ctx, database);
        ctx.LastDatabase = name;
        var checks = CheckParser.Parse(config?.Checks, ctx.Config.File ?? "cairn.yaml", name);
        if (checks.Count == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"no checks are configured for {name}: add a checks: list under databases.{name} in cairn.yaml");
        }
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var now = ctx.Time.GetUtcNow();
        List<CheckResult> results;
        using (var commandEnvironment = connection.ProgramEnvironment())
        {
            results = await CheckRunner.RunAsync(checks, new CheckTarget(connection, now, null, null, IsScratchCopy: false, connection.Redacted, commandEnvironment.Variables), TimeSpan.FromSeconds(60), ct).ConfigureAwait(false);
        }
        var passed = results.All(r => r.Passed);
        var repoPath = ctx.RepositoryPathOrNull() ?? "";
        var seq = await Evidence.RecordAsync(ctx, repoPath, "verify", passed ? "pass" : "fail", new()
        {
            ["scope"] = "live",
            ["source"] = connection.Redacted,
            ["checks_passed"] = results.Count(c => c.Passed).ToString(CultureInfo.InvariantCulture),
            ["checks_failed"] = results.Count(c => !c.Passed).ToString(CultureInfo.InvariantCulture),
        }, ct, database: name, durationMs: sw.ElapsedMilliseconds, checks: ChecksJson(results)).ConfigureAwait(false);
        await MirrorAsync(ctx, connection, results, seq, ct).ConfigureAwait(false);
        Print(ctx, p.GetValue(CommandRunner.Json), $"live verification of {name}", results, null, null, sw.Elapsed, null);
        if (!passed)
        {
            ctx.Console.Error.WriteLine($"cairn: verification failed: {string.Join(", ", results.Where(r => !r.Passed).Select(c => c.Name))}");
            return ExitCodes.ChecksFailed;
        }
        return ExitCodes.Ok;
    }

    private static async Task MirrorAsync(CliContext ctx, PgConnection connection, IReadOnlyList<CheckResult> results, long seq, CancellationToken ct)
    {
        if (!ctx.Config.Evidence.MirrorTable)
        {
            return;
        }
        var now = ctx.Time.GetUtcNow();
        try
        {
            await VerificationMirror.WriteAsync(connection, results.Select(r => (r.Name, r.Status.ToString().ToLowerInvariant(), r.Kind, r.Detail)), now, now, seq, ct).ConfigureAwait(false);
        }
        catch (Cairn.PostgreSql.PgToolException e)
        {
            ctx.Console.Error.WriteLine($"cairn: warning: could not write backup_verification_log: {e.Message}");
        }
        catch (System.Data.Common.DbException e)
        {
            ctx.Console.Error.WriteLine($"cairn: warning: could not write backup_verification_log ({e.Message}); the user needs INSERT/CREATE rights, or set evidence.mirror_table: false");
        }
    }

    internal static JsonArray ChecksJson(IEnumerable<CheckResult> results) => new([.. results.Select(r => (JsonNode)new JsonObject
    {
        ["name"] = r.Name,
        ["kind"] = r.Kind,
        ["expected"] = r.Expected,
        ["actual"] = r.Actual,
        ["result"] = r.Status.ToString().ToLowerInvariant(),
        ["duration_ms"] = (long)r.Duration.TotalMilliseconds,
        ["detail"] = r.Detail,
    })]);

    internal static void PrintResults(CliContext ctx, bool json, string title, IReadOnlyList<CheckResult> results, TimeSpan? rto, TimeSpan? dataAge, TimeSpan total, string? snapshot)
        => Print(ctx, json, title, results, rto, dataAge, total, snapshot);

    private static void Print(CliContext ctx, bool json, string title, IReadOnlyList<CheckResult> results, TimeSpan? rto, TimeSpan? dataAge, TimeSpan total, string? snapshot, IReadOnlyList<Cairn.PostgreSql.Logical.CreatedRole>? roles = null)
    {
        var passed = results.All(r => r.Passed);
        if (json)
        {
            var o = new JsonObject
            {
                ["message_type"] = "summary",
                ["ok"] = passed,
                ["snapshot_id"] = snapshot,
                ["rto_seconds"] = rto is { } r ? Math.Round(r.TotalSeconds, 3) : null,
                ["data_age_seconds"] = dataAge is { } a ? Math.Round(a.TotalSeconds, 0) : null,
                ["total_seconds"] = Math.Round(total.TotalSeconds, 3),
                ["checks"] = ChecksJson(results),
            };
            if (roles is not null)
            {
                o["roles_created"] = RolesText.Json(roles);
            }
            ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }
        foreach (var line in RolesText.Lines(roles ?? []))
        {
            ctx.Console.Out.WriteLine(line);
        }
        var t = new Table().Title(Markup.Escape(title)).AddColumns("Check", "Expected", "Actual", "Result", "Time", "Why");
        foreach (var c in results)
        {
            var status = c.Status switch
            {
                CheckStatus.Pass => "[green]PASS[/]",
                CheckStatus.Skip => "[grey]skip[/]",
                CheckStatus.Error => "[red]ERROR[/]",
                _ => "[red]FAIL[/]",
            };
            t.AddRow(Markup.Escape(c.Name), Markup.Escape(c.Expected), Markup.Escape(c.Actual), status, Format.Duration(c.Duration), Markup.Escape(c.Detail ?? ""));
        }
        ctx.Console.Ansi.Write(t);
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
        ctx.Console.Out.WriteLine($"{(passed ? "PASS" : "FAIL")}: {results.Count(x => x.Passed)}/{results.Count} checks passed; {string.Join("; ", figures)}");
    }
}
