using System.CommandLine;
using System.Net;
using System.Runtime.InteropServices;
using System.Text;
using Cairn.Cli.Terminal;
using Cairn.Operations.Configuration;
using Cairn.Operations.Drills;
using Cairn.Operations.Logical;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Physical;
using Cairn.Operations.Reports;
using Cairn.Operations.Retention;
using Cairn.Operations.Scheduling;
using Cairn.Operations.Verification;
using Cairn.Repository;

namespace Cairn.Cli.Commands;

/// <summary>
/// <c>cairn daemon</c>: hosts the <see cref="Scheduler"/> (which runs the schedules in cairn.yaml), reloads on
/// SIGHUP (keeping the old config when the new one is bad), stops on SIGTERM after the current step, and serves
/// /metrics and /healthz on a local address.
/// </summary>
internal static class DaemonCommand
{
    public static Command Build(CliContext ctx)
    {
        var listen = new Option<string?>("--listen") { Description = "Address for /metrics and /healthz (default: daemon.listen in cairn.yaml, else 127.0.0.1:9187)" };
        var tick = new Option<int?>("--tick-seconds") { Description = "How often to look for due jobs (default: daemon.tick in cairn.yaml, else 5 s)" };
        var stale = new Option<string>("--healthz-stale-after") { Description = "/healthz answers 503 when the scheduler loop has not looked for due jobs for this long (a job that hangs stalls it)", DefaultValueFactory = _ => "2m" };
        var cmd = new Command("daemon", "Run the schedules, serve /metrics (Prometheus) and /healthz; stop with SIGTERM, reload with SIGHUP") { listen, tick, stale };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            if (!CairnConfig.TryParseDuration(p.GetValue(stale)!, out var staleAfter) || staleAfter <= TimeSpan.Zero)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"--healthz-stale-after wants a duration like 2m or 30s, not '{p.GetValue(stale)}'");
            }
            var log = new Action<string, string>((level, msg) => ctx.Console.Error.WriteLine($"ts={ctx.Time.GetUtcNow().UtcDateTime:yyyy-MM-ddTHH:mm:ss.fffZ} level={level} {msg}"));
            var config = inv.Config;
            var address = p.GetValue(listen) ?? config.Daemon.Listen;
            var interval = p.GetValue(tick) is { } seconds ? TimeSpan.FromSeconds(Math.Max(1, seconds)) : config.Daemon.TickOrDefault;
            var scheduler = new Scheduler(ctx.Time, new JobRunner(ctx, inv.Options), log);
            var configPath = config.File;
            using var hup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
            {
                c.Cancel = true;
                try
                {
                    var fresh = configPath is null ? CairnConfig.Empty : CairnConfig.Load(configPath);
                    config = fresh;
                    scheduler.Reload(fresh);
                    RecordConfig(new Invocation(ctx, inv.Options, fresh), "reload", log);
                    log("info", $"msg=\"configuration reloaded\" jobs={scheduler.JobCount}");
                }
                catch (ConfigException e)
                {
                    log("error", $"msg=\"configuration reload refused; keeping the old one\" error=\"{Scheduler.Logfmt(e.Message)}\"");
                }
            });
            // Scrapes use the daemon's current configuration, like its jobs.
            using var http = StartHttp(address, () => new Invocation(ctx, inv.Options, config), () => scheduler.LastTick, staleAfter, ctx.Time, log, ct);
            log("info", $"msg=\"daemon started\" jobs={config.Schedules.Count} listen={address}");
            RecordConfig(inv, "load", log);
            // Only records a verified checkpoint covers decide whether a slot was missed.
            var history = inv.Operations.Evidence.ReadVerified().Entries;
            await scheduler.RunAsync(config, history, interval, ct).ConfigureAwait(false);
            log("info", "msg=\"daemon stopped\"");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The configuration the daemon runs with goes on the record (its SHA-256); a log that cannot be written is logged, not fatal.</summary>
    private static void RecordConfig(Invocation inv, string action, Action<string, string> log)
    {
        try
        {
            if (new ConfigRecordOperation(inv.Operations).Record(action) is { } sha)
            {
                log("info", $"msg=\"configuration recorded\" action={action} sha256={sha}");
            }
        }
        catch (Exception e) when (e is Cairn.Evidence.Log.EvidenceException or IOException or UnauthorizedAccessException)
        {
            log("error", $"msg=\"could not record the configuration\" error=\"{Scheduler.Logfmt(e.Message)}\"");
        }
    }

    /// <summary>
    /// Runs a scheduled job as its command would (the same operation, the same rendering, the same exit code and
    /// failure evidence), with the daemon's configuration: a broken file on disk does not break jobs until a reload succeeds.
    /// </summary>
    private sealed class JobRunner(CliContext ctx, GlobalOptions options) : IJobRunner
    {
        public async Task<JobOutcome> RunAsync(ScheduledJob job, CairnConfig config, CancellationToken cancellationToken)
        {
            var output = new StringWriter();
            var inv = new Invocation(new CliContext(new CliConsole(output, output, false, false), ctx.Time, ctx.Environment), options with { Json = false }, config);
            var kind = job.Job is "check" or "cleanup" ? null : job.EvidenceKind;
            var code = await CommandRunner.ExecuteAsync(inv, () => Run(inv, job, cancellationToken), kind, cancellationToken).ConfigureAwait(false);
            var summary = output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(l => !l.StartsWith('\u250c') && !l.StartsWith('\u2502')) ?? "";
            if (code != ExitCodes.Ok && job.Job is "backup" or "backup_physical" && !cancellationToken.IsCancellationRequested)
            {
                // A failed backup alerts now (the backup_failed finding), through the sinks and their deduplication, not when freshness runs out.
                var quiet = new Invocation(new CliContext(new CliConsole(new StringWriter(), new StringWriter(), false, false), ctx.Time, ctx.Environment), options with { Json = false }, config);
                await CommandRunner.ExecuteAsync(quiet, () => MonitoringCommands.CheckAsync(quiet, new HealthRequest(job.Database), nagios: false, textfile: null, cancellationToken), null, cancellationToken).ConfigureAwait(false);
            }
            return new JobOutcome(code, summary);
        }

        private static async Task<int> Run(Invocation inv, ScheduledJob job, CancellationToken ct) => job.Job switch
        {
            "backup" => await DatabaseCommands.BackupAsync(inv, new LogicalBackupRequest(inv.ResolveDatabase(job.Database)), ct).ConfigureAwait(false),
            "backup_physical" => await DatabaseCommands.PhysicalBackupAsync(inv, new PhysicalBackupRequest(inv.ResolveDatabase(job.Database), new FileBackupOptions(Environment.ProcessorCount, TimeSpan.FromMinutes(5))), ct).ConfigureAwait(false),
            "drill" when await ScheduledDrill.PhysicalOnlyAsync(inv.Operations, job.Database, ct).ConfigureAwait(false)
                => await DrillCommands.PhysicalDrillAsync(inv, new PhysicalDrillRequest(inv.ResolveDatabase(job.Database), RandomTarget: true), ct).ConfigureAwait(false),
            "drill" => await DrillCommands.DrillAsync(inv, new DrillRequest(inv.ResolveDatabase(job.Database)), ct).ConfigureAwait(false),
            "drill_physical" => await DrillCommands.PhysicalDrillAsync(inv, new PhysicalDrillRequest(inv.ResolveDatabase(job.Database), RandomTarget: true), ct).ConfigureAwait(false),
            "verify" => await RepositoryCommands.VerifyAsync(inv, new VerifyRequest(ReadData: true, Fraction: job.ReadDataSubset), ct).ConfigureAwait(false),
            "verify_live" => await DrillCommands.VerifyLiveAsync(inv, new LiveVerifyRequest(inv.ResolveDatabase(job.Database)), ct).ConfigureAwait(false),
            "prune" => await RepositoryCommands.PruneAsync(inv, new PruneRequest(DryRun: false), ct).ConfigureAwait(false),
            "check" => await MonitoringCommands.CheckAsync(inv, new HealthRequest(job.Database), nagios: false, textfile: null, ct).ConfigureAwait(false),
            "cleanup" => await LifecycleCommands.CleanupAsync(inv, new Operations.Lifecycle.Cleanup.CleanupRequest(inv.ResolveDatabase(job.Database)), ct).ConfigureAwait(false),
            ScheduledJob.CopyJob => await CopyCommands.CopyAsync(inv, new Operations.Copying.CopyRequest(job.CopyTarget), ct).ConfigureAwait(false),
            "report" => ReportCommands.Write(inv, ReportSchedule.JobRequest(inv.Config, job.Database, inv.Operations.Time.GetUtcNow())),
            _ => throw new InvalidOperationException($"unknown job {job.Job}"),
        };
    }

    private static HttpListener StartHttp(string listen, Func<Invocation> invocation, Func<DateTimeOffset> lastTick, TimeSpan staleAfter, TimeProvider time, Action<string, string> log, CancellationToken ct)
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
                        var report = await new HealthEvaluator(invocation().Operations).EvaluateAsync(new HealthRequest(), ct).ConfigureAwait(false);
                        body = report.Metrics;
                        c.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
                    }
                    else if (path == "/healthz")
                    {
                        var age = time.GetUtcNow() - lastTick();
                        c.Response.StatusCode = age < staleAfter ? 200 : 503;
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
                    log("error", $"msg=\"http request failed\" error=\"{Scheduler.Logfmt(e.Message)}\"");
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
