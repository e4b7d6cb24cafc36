using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Scheduling;
using Cairn.Repository;
using Cairn.Repository.Locks;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn check</c>, <c>cairn alert test</c>, <c>cairn schedule</c>, <c>cairn daemon</c>.</summary>
internal static class MonitoringCommands
{
    private static string StateFile(CliContext ctx, EvidenceLog log) => ctx.Env("CAIRN_STATE_FILE") ?? Path.Combine(log.Folder + "-state", "alerts.json");

    private static TimeSpan Reminder(CliContext ctx) => ctx.Env("CAIRN_ALERT_REMINDER") is { } r && CairnConfig.TryParseDuration(r, out var d) ? d : TimeSpan.FromHours(4);

    internal sealed record CheckOutcome(List<HealthFinding> Findings, string Metrics, HealthState Overall, List<Delivery> Deliveries);

    /// <summary>Evaluates freshness, writes metrics, sends alerts on state changes. Used by 'check' and by the daemon.</summary>
    internal static async Task<CheckOutcome> EvaluateAsync(CliContext ctx, string? only, CancellationToken ct, bool sendAlerts = true)
    {
        var config = ctx.Config;
        var log = Evidence.Open(ctx, ctx.RepositoryPathOrNull());
        var evidence = Evidence.ReadVerified(ctx, log);
        var entries = evidence.Entries;
        var databases = only is not null ? [only] : config.Databases.Keys.ToList();
        if (databases.Count == 0)
        {
            databases = [.. entries.Select(e => e.Record?["database"]?.GetValue<string>()).OfType<string>().Distinct()];
        }
        var now = ctx.Time.GetUtcNow();
        var findings = Freshness.Evaluate(entries, databases,
            db => config.Databases.TryGetValue(db, out var d) ? Thresholds.From(d.Monitoring, config.File ?? "cairn.yaml", db) : Thresholds.Default,
            now, expectDrills: true);
        findings.AddRange(evidence.Findings);
        if (databases.Count == 0)
        {
            findings.Add(new HealthFinding("-", "config", HealthState.Unknown, "no databases configured and none on record; nothing to check", null, null));
        }
        if (!log.Exists)
        {
            findings.Add(new HealthFinding("-", "evidence", HealthState.Unknown, $"no evidence log at {log.Folder}", null, null));
        }
        long? repoBytes = null;
        int? stale = null;
        if (ctx.RepositoryPathOrNull() is { } repoPath && Directory.Exists(repoPath))
        {
            repoBytes = Directory.EnumerateFiles(repoPath, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
            var locks = await RepositoryLock.ListAsync(ctx.Storage(null), ctx.Time, ct).ConfigureAwait(false);
            stale = locks.Count(l => l.IsStale);
            if (stale > 0)
            {
                findings.Add(new HealthFinding("-", "locks", HealthState.Warning, $"{stale} stale lock(s) in the repository; run 'cairn unlock'", null, null));
            }
        }
        var walLag = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var db in databases.Where(d => config.Databases.ContainsKey(d)))
        {
            // WAL freshness: the newest segment archived into the repository (when this database archives through Cairn).
            var thresholds = Thresholds.From(config.Databases[db].Monitoring, config.File ?? "cairn.yaml", db);
            if (ctx.RepositoryPathOrNull() is { } rp && Directory.Exists(Path.Combine(rp, "wal")))
            {
                var newest = new DirectoryInfo(Path.Combine(rp, "wal")).EnumerateFiles(db + "@*").Where(f => f.Name.Length == db.Length + 25).MaxBy(f => f.LastWriteTimeUtc);
                if (newest is not null)
                {
                    var age = now - new DateTimeOffset(newest.LastWriteTimeUtc, TimeSpan.Zero);
                    walLag[db] = age.TotalSeconds;
                    findings.Add(new HealthFinding(db, "wal", age > thresholds.WalCritical ? HealthState.Critical : HealthState.Ok,
                        $"newest archived WAL {newest.Name[(db.Length + 1)..]} {Freshness.Ago(age)} ago (critical after {Freshness.Ago(thresholds.WalCritical)})", age.TotalSeconds, new DateTimeOffset(newest.LastWriteTimeUtc, TimeSpan.Zero)));
                }
            }
            // An unreachable database is itself a CRITICAL finding, not a crash.
            var (_, conn, _) = DatabaseCommands.Resolve(ctx, db);
            try
            {
                await using var s = await Cairn.PostgreSql.Sessions.CheckSession.OpenAsync(conn, TimeSpan.FromSeconds(10), ct).ConfigureAwait(false);
                await s.QueryAsync("SELECT 1", null, ct).ConfigureAwait(false);
                findings.Add(new HealthFinding(db, "reachable", HealthState.Ok, $"{conn.Redacted} answers", null, null));
                if (walLag.ContainsKey(db))
                {
                    // The server's own view of archiving: failures since the last success are CRITICAL.
                    var arch = await s.QueryAsync("SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time FROM pg_stat_archiver", null, ct).ConfigureAwait(false);
                    var failedAt = arch[0][2] as DateTime?;
                    var okAt = arch[0][3] as DateTime?;
                    if (failedAt is { } fa && (okAt is null || fa > okAt))
                    {
                        findings.Add(new HealthFinding(db, "archiver", HealthState.Critical, $"pg_stat_archiver: archiving {arch[0][1]} failed at {fa:u} ({arch[0][0]} failures in all); see the server log for cairn wal-push's message", null, null));
                    }
                }
            }
            catch (Exception e) when (e is Cairn.PostgreSql.PgToolException or Cairn.PostgreSql.Sessions.CheckQueryException or System.Data.Common.DbException)
            {
                findings.Add(new HealthFinding(db, "reachable", HealthState.Critical, e.Message, null, null));
            }
        }
        var metrics = Metrics.Render(entries, findings, databases, now, repoBytes, stale, walLag);
        var overall = findings.Count == 0 ? HealthState.Ok : findings.Max(f => f.State);
        var sinks = AlertSink.Parse(config.Alerts, config.File ?? "cairn.yaml");
        var deliveries = new List<Delivery>();
        if (sendAlerts && sinks.Count > 0 && log.Exists)
        {
            var alerter = new Alerter(StateFile(ctx, log), ctx.Time, Reminder(ctx));
            deliveries = await alerter.ProcessAsync(findings, sinks, ct).ConfigureAwait(false);
            foreach (var d in deliveries)
            {
                await Evidence.RecordAsync(ctx, ctx.RepositoryPathOrNull() ?? "", "alert", d.Delivered ? "pass" : "error", new()
                {
                    ["sink"] = d.Sink.Name,
                    ["type"] = d.Sink.Type,
                    ["check"] = d.Alert.Aspect,
                    ["state"] = d.Alert.State.ToString().ToUpperInvariant(),
                    ["previous_state"] = d.Alert.Previous.ToString().ToUpperInvariant(),
                    ["reminder"] = d.Alert.Reminder ? "yes" : "no",
                    ["attempts"] = d.Attempts.ToString(CultureInfo.InvariantCulture),
                    ["error"] = d.Error ?? "",
                }, ct, database: d.Alert.Database).ConfigureAwait(false);
            }
        }
        return new CheckOutcome(findings, metrics, overall, deliveries);
    }

    public static Command Check(CliContext ctx)
    {
        var db = new Argument<string?>("DATABASE") { Description = "Only this database (default: all configured)", Arity = ArgumentArity.ZeroOrOne };
        var nagios = new Option<bool>("--nagios") { Description = "One status line with performance data, as monitoring plugins print" };
        var textfile = new Option<string?>("--prometheus-textfile") { Description = "Also write the metrics to this file (atomically), for node_exporter's textfile collector" };
        var cmd = new Command("check", "Freshness of backups, drills and live verifications against thresholds; alerts on state changes. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN") { db, nagios, textfile };
        cmd.SetAction(async (ParseResult p, CancellationToken ct) =>
        {
            ctx.EvidenceOption = p.GetValue(CommandRunner.EvidenceDir);
            ctx.RepoOption = p.GetValue(CommandRunner.Repo);
            ctx.ConfigOption = p.GetValue(CommandRunner.Config);
            CheckOutcome outcome;
            try
            {
                outcome = await EvaluateAsync(ctx, p.GetValue(db), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is ConfigException or EvidenceException or RepositoryException or IOException)
            {
                ctx.Console.Out.WriteLine($"CAIRN UNKNOWN - {e.Message}");
                return (int)HealthState.Unknown;
            }
            if (p.GetValue(textfile) is { } tf)
            {
                Metrics.WriteTextfile(tf, outcome.Metrics);
            }
            var bad = outcome.Findings.Where(f => f.State != HealthState.Ok).OrderByDescending(f => f.State).ToList();
            var summary = $"CAIRN {Word(outcome.Overall)} - " + (bad.Count == 0 ? $"{outcome.Findings.Count} checks OK" : string.Join("; ", bad.Select(f => $"{f.Database} {f.Aspect}: {f.Message}")));
            if (p.GetValue(CommandRunner.Json))
            {
                var o = new JsonObject
                {
                    ["message_type"] = "summary",
                    ["state"] = Word(outcome.Overall),
                    ["exit_code"] = (int)outcome.Overall,
                    ["summary"] = summary,
                    ["findings"] = new JsonArray([.. outcome.Findings.Select(f => (JsonNode)new JsonObject
                    {
                        ["database"] = f.Database,
                        ["check"] = f.Aspect,
                        ["state"] = Word(f.State),
                        ["message"] = f.Message,
                        ["age_seconds"] = f.AgeSeconds is { } a ? Math.Round(a) : null,
                        ["last"] = f.Last?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
                    })]),
                    ["alerts"] = new JsonArray([.. outcome.Deliveries.Select(d => (JsonNode)new JsonObject { ["sink"] = d.Sink.Name, ["state"] = Word(d.Alert.State), ["delivered"] = d.Delivered, ["error"] = d.Error })]),
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else if (p.GetValue(nagios))
            {
                var perf = string.Join(' ', outcome.Findings.Where(f => f.AgeSeconds is not null).Select(f => $"'{f.Database}_{f.Aspect}_age'={f.AgeSeconds:0}s"));
                ctx.Console.Out.WriteLine(summary + (perf.Length > 0 ? " | " + perf : ""));
            }
            else
            {
                ctx.Console.Out.WriteLine(summary);
                var t = new Table().AddColumns("Database", "Check", "State", "Detail");
                foreach (var f in outcome.Findings)
                {
                    var color = f.State switch { HealthState.Ok => "green", HealthState.Warning => "yellow", _ => "red" };
                    t.AddRow(Markup.Escape(f.Database), f.Aspect, $"[{color}]{Word(f.State)}[/]", Markup.Escape(f.Message));
                }
                ctx.Console.Ansi.Write(t);
                foreach (var d in outcome.Deliveries)
                {
                    ctx.Console.Out.WriteLine($"alert {(d.Delivered ? "sent" : "NOT delivered")} to {d.Sink.Name}: {d.Alert.Database} {d.Alert.Aspect} {Word(d.Alert.Previous)} -> {Word(d.Alert.State)}{(d.Error is not null ? $" ({d.Error}; retried {d.Attempts}x, will retry next run)" : "")}");
                }
            }
            return (int)outcome.Overall;
        });
        return cmd;
    }

    private static string Word(HealthState s) => s.ToString().ToUpperInvariant();

    public static Command Alert(CliContext ctx)
    {
        var sink = new Argument<string?>("SINK") { Description = "Name or type of the alert receiver (default: all)", Arity = ArgumentArity.ZeroOrOne };
        var test = new Command("test", "Send a test alert to the configured receivers") { sink };
        test.SetAction(ctx, async (p, ct) =>
        {
            var sinks = AlertSink.Parse(ctx.Config.Alerts, ctx.Config.File ?? "cairn.yaml").Where(s => p.GetValue(sink) is not { } n || s.Name == n || s.Type == n).ToList();
            if (sinks.Count == 0)
            {
                throw new RepositoryException(ErrorKind.NotFound, "no alert receivers configured (alerts: in cairn.yaml)" + (p.GetValue(sink) is { } n ? $" named {n}" : ""));
            }
            var alerter = new Alerter(Path.Combine(Path.GetTempPath(), $"cairn-alert-test-{Environment.ProcessId}.json"), ctx.Time, TimeSpan.FromHours(4));
            var failed = 0;
            foreach (var s in sinks)
            {
                var d = await alerter.SendAsync(s, new Alert("test", "alert_test", HealthState.Warning, HealthState.Ok, "this is a test alert from 'cairn alert test'", ctx.Time.GetUtcNow(), false, Test: true), ct).ConfigureAwait(false);
                ctx.Console.Out.WriteLine(d.Delivered ? $"sent a test alert to {s.Name}" : $"could not deliver to {s.Name}: {d.Error}");
                failed += d.Delivered ? 0 : 1;
            }
            return failed == 0 ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return new Command("alert", "Alert receivers (webhook/siren, slack, pagerduty, command)") { test };
    }

    public static Command Schedule(CliContext ctx)
    {
        var count = new Option<int>("--count", "-n") { Description = "Next runs to show per job", DefaultValueFactory = _ => 3 };
        var cmd = new Command("schedule", "Print the next run times (UTC) of every scheduled job in cairn.yaml") { count };
        cmd.SetAction(ctx, (p, ct) =>
        {
            var jobs = ScheduledJob.FromConfig(ctx.Config);
            var now = ctx.Time.GetUtcNow();
            var n = Math.Max(1, p.GetValue(count));
            List<DateTimeOffset> NextOf(ScheduledJob j)
            {
                var list = new List<DateTimeOffset>();
                var t = now;
                for (var i = 0; i < n && j.Next(t) is { } next; i++)
                {
                    list.Add(next);
                    t = next;
                }
                return list;
            }
            if (p.GetValue(CommandRunner.Json))
            {
                var arr = new JsonArray([.. jobs.Select(j => (JsonNode)new JsonObject
                {
                    ["database"] = j.Database,
                    ["job"] = j.Job,
                    ["cron"] = j.Expression,
                    ["next"] = new JsonArray([.. NextOf(j).Select(x => (JsonNode?)JsonValue.Create(x.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)))]),
                })]);
                ctx.Console.Out.WriteLine(arr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return Task.FromResult(ExitCodes.Ok);
            }
            if (jobs.Count == 0)
            {
                ctx.Console.Out.WriteLine("no schedules configured: add schedule: { backup: \"0 0 * * *\", drill: \"0 3 * * 0#1\", … } under a database in cairn.yaml");
                return Task.FromResult(ExitCodes.Ok);
            }
            var t = new Table().AddColumns("Database", "Job", "Cron (UTC)", "Next runs (UTC)");
            foreach (var j in jobs)
            {
                t.AddRow(Markup.Escape(j.Database), j.Job, Markup.Escape(j.Expression), string.Join(", ", NextOf(j).Select(Format.Time)));
            }
            ctx.Console.Ansi.Write(t);
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }
}
