using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Cairn.Cli.Terminal;
using Cairn.Operations.Configuration;
using Cairn.Operations.Scheduling;

namespace Cairn.Cli.Commands;

/// <summary>
/// <c>cairn daemon</c>: runs the schedules in cairn.yaml (cron, UTC), one job at a time (so prune never
/// runs during a backup and no job runs twice at once), survives failed jobs, runs a missed slot once
/// at start-up, reloads on SIGHUP (keeping the old config when the new one is bad), stops on SIGTERM
/// after the current step, and serves /metrics and /healthz on a local address.
/// </summary>
internal static class DaemonCommand
{
    public static Command Build(CliContext ctx)
    {
        var listen = new Option<string>("--listen") { Description = "Address for /metrics and /healthz", DefaultValueFactory = _ => "127.0.0.1:9187" };
        var tick = new Option<int>("--tick-seconds") { Description = "How often to look for due jobs", DefaultValueFactory = _ => 5 };
        var cmd = new Command("daemon", "Run the schedules, serve /metrics (Prometheus) and /healthz; stop with SIGTERM, reload with SIGHUP") { listen, tick };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var log = new Action<string, string>((level, msg) => ctx.Console.Error.WriteLine($"ts={ctx.Time.GetUtcNow().UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ} level={level} {msg}"));
            var config = ctx.Config;
            var jobs = ScheduledJob.FromConfig(config);
            var configPath = config.File;
            using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
            {
                c.Cancel = true;
                try
                {
                    var fresh = configPath is null ? CairnConfig.Empty : CairnConfig.Load(configPath);
                    var freshJobs = ScheduledJob.FromConfig(fresh);
                    config = fresh;
                    jobs = freshJobs;
                    ctx.ReplaceConfig(fresh);
                    log("info", $"msg=\"configuration reloaded\" jobs={freshJobs.Count}");
                }
                catch (ConfigException e)
                {
                    log("error", $"msg=\"configuration reload refused; keeping the old one\" error=\"{Esc(e.Message)}\"");
                }
            });
            var started = ctx.Time.GetUtcNow();
            var lastTick = started;
            using var http = StartHttp(ctx, p.GetValue(listen)!, () => lastTick, log, ct);
            log("info", $"msg=\"daemon started\" jobs={jobs.Count} listen={p.GetValue(listen)}");
            var state = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
            // Missed runs: the last slot since the previous successful run of this job (from the evidence log), run once.
            var evidence = Evidence.Open(ctx, ctx.RepositoryPathOrNull());
            var entries = Evidence.ReadVerified(ctx, evidence).Entries;
            foreach (var j in jobs)
            {
                var kind = j.Job switch { "verify_live" => "verify", var k => k };
                var last = entries.LastOrDefault(e => e.Kind == kind && (j.Job == "prune" || e.Record?["database"]?.GetValue<string>() == j.Database))?.Time;
                // The first tick then runs the latest slot since that run once (not once per missed slot).
                state[Key(j)] = last ?? started;
                if (last is { } l && j.LastSlotBetween(l, started) is { } missed)
                {
                    log("info", $"msg=\"missed run will run once now\" database={j.Database} job={j.Job} slot={missed:O}");
                }
            }
            var tickEvery = TimeSpan.FromSeconds(Math.Max(1, p.GetValue(tick)));
            while (!ct.IsCancellationRequested)
            {
                var now = ctx.Time.GetUtcNow();
                lastTick = now;
                foreach (var j in jobs.ToList())
                {
                    var since = state.TryGetValue(Key(j), out var s) ? s : started;
                    if (j.LastSlotBetween(since, now) is not { } slot)
                    {
                        continue;
                    }
                    state[Key(j)] = now;
                    log("info", $"msg=\"job started\" database={j.Database} job={j.Job} slot={slot:O}");
                    var sw = System.Diagnostics.Stopwatch.StartNew();
                    var output = new StringWriter();
                    var sub = new CliContext(new CliConsole(output, output, false, false), ctx.Time, ctx.Env) { RepoOption = ctx.RepoOption, EvidenceOption = ctx.EvidenceOption };
                    sub.ReplaceConfig(config); // jobs use the daemon's config: a broken file on disk does not break them until a reload succeeds
                    int code;
                    try
                    {
                        code = await CairnCli.RunAsync([.. j.Arguments, .. GlobalArgs(ctx)], sub).ConfigureAwait(false);
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        code = ExitCodes.Failure;
                        output.WriteLine(e.Message);
                    }
                    var lastLine = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(l => !l.StartsWith('\u250c') && !l.StartsWith('\u2502')) ?? "";
                    log(code == 0 ? "info" : "error", $"msg=\"job finished\" database={j.Database} job={j.Job} exit={code} seconds={sw.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} summary=\"{Esc(lastLine)}\"");
                    if (ct.IsCancellationRequested)
                    {
                        break;
                    }
                }
                try
                {
                    await Task.Delay(tickEvery, ctx.Time, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            log("info", "msg=\"daemon stopped\"");
            return ExitCodes.Ok;
        });
        return cmd;
    }



    private static List<string> GlobalArgs(CliContext ctx)
    {
        var args = new List<string>();
        if (ctx.RepoOption is not null)
        {
            args.AddRange(["--repo", ctx.RepoOption]);
        }
        if (ctx.EvidenceOption is not null)
        {
            args.AddRange(["--evidence", ctx.EvidenceOption]);
        }
        return args;
    }

    private static string Key(ScheduledJob j) => $"{j.Database}/{j.Job}";

    private static string Esc(string s) => s.Replace("\"", "'", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    private static HttpListener StartHttp(CliContext ctx, string listen, Func<DateTimeOffset> lastTick, Action<string, string> log, CancellationToken ct)
    {
        var listener = new HttpListener();
        listener.Prefixes.Add($"http://{listen}/");
        listener.Start();
        _ = Task.Run(async () =>
        {
            while (!ct.IsCancellationRequested && listener.IsListening)
            {
                HttpListenerContext c;
                try
                {
                    c = await listener.GetContextAsync().WaitAsync(ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
                {
                    break;
                }
                try
                {
                    var path = c.Request.Url?.AbsolutePath ?? "/";
                    string body;
                    if (path == "/metrics")
                    {
                        // Scrapes only read: alerts are sent by the check job, so a scrape never duplicates one.
                        var outcome = await MonitoringCommands.EvaluateAsync(ctx, null, ct, sendAlerts: false).ConfigureAwait(false);
                        body = outcome.Metrics;
                        c.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    }
                    else if (path == "/healthz")
                    {
                        var age = ctx.Time.GetUtcNow() - lastTick();
                        c.Response.StatusCode = age < TimeSpan.FromMinutes(2) ? 200 : 503;
                        body = c.Response.StatusCode == 200 ? "ok\n" : $"scheduler loop stalled for {age.TotalSeconds:0}s\n";
                    }
                    else
                    {
                        c.Response.StatusCode = 404;
                        body = "try /metrics or /healthz\n";
                    }
                    var bytes = Encoding.UTF8.GetBytes(body);
                    await c.Response.OutputStream.WriteAsync(bytes, ct).ConfigureAwait(false);
                    c.Response.Close();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    log("error", $"msg=\"http request failed\" error=\"{Esc(e.Message)}\"");
                    try
                    {
                        c.Response.StatusCode = 500;
                        c.Response.Close();
                    }
                    catch (Exception)
                    {
                        // the client went away
                    }
                }
            }
        }, ct);
        return listener;
    }
}
