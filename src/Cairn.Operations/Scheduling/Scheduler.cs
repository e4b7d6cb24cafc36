using System.Diagnostics;
using System.Globalization;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;

namespace Cairn.Operations.Scheduling;

/// <summary>How one run of a job ended: its exit code (0 is success, as the command's) and a one-line summary.</summary>
public sealed record JobOutcome(int ExitCode, string Summary);

/// <summary>Runs one scheduled job (an operation) with a given configuration. Failures are outcomes, not exceptions.</summary>
public interface IJobRunner
{
    Task<JobOutcome> RunAsync(ScheduledJob job, CairnConfig config, CancellationToken cancellationToken);
}

/// <summary>
/// The daemon's loop: cron schedules in UTC, one job at a time (so prune never runs during a backup and no job runs
/// twice at once), a failed job does not stop the others, a slot missed while the daemon was down runs once at
/// start-up (the latest one, not once per missed slot), a new configuration takes effect at the next tick, and a
/// cancellation stops after the current job.
/// </summary>
public sealed class Scheduler(TimeProvider time, IJobRunner runner, Action<string, string> log)
{
    private readonly Dictionary<string, DateTimeOffset> _last = new(StringComparer.Ordinal);
    private CairnConfig _config = CairnConfig.Empty;
    private IReadOnlyList<ScheduledJob> _jobs = [];
    // RunAsync sets it again; a pass run without it (tests) must not look for slots since the year 1.
    private DateTimeOffset _started = time.GetUtcNow();
    // Start-up counts as a tick: /healthz must not answer 503 before the loop's first look at the jobs.
    private long _lastTickTicks = time.GetUtcNow().UtcTicks;

    /// <summary>When the loop last looked for due jobs (for /healthz).</summary>
    public DateTimeOffset LastTick => new(Interlocked.Read(ref _lastTickTicks), TimeSpan.Zero);

    public int JobCount => _jobs.Count;

    /// <summary>Swaps in a configuration (SIGHUP): its jobs run from the next tick, with the state of jobs that stay.</summary>
    public void Reload(CairnConfig config)
    {
        var jobs = config.Schedules;
        Volatile.Write(ref _config, config);
        Volatile.Write(ref _jobs, jobs);
    }

    /// <summary>
    /// Runs until <paramref name="cancellationToken"/> is cancelled. <paramref name="history"/> is the evidence log:
    /// a job's last successful run there decides whether a slot was missed.
    /// </summary>
    public async Task RunAsync(CairnConfig config, IReadOnlyList<LogEntry> history, TimeSpan tick, CancellationToken cancellationToken)
    {
        Reload(config);
        _started = time.GetUtcNow();
        SetTick(_started);
        foreach (var j in _jobs)
        {
            var last = history.LastOrDefault(e => e.Kind == j.EvidenceKind && (j.Job is "prune" or "verify" or ScheduledJob.CopyJob || e.Record?["database"]?.GetValue<string>() == j.Database) && j.IsRun(e.Record))?.Time;
            // The first tick then runs the latest slot since that run once (not once per missed slot).
            _last[j.Key] = last ?? _started;
            if (last is { } l && j.LastSlotBetween(l, _started) is { } missed)
            {
                log("info", $"msg=\"missed run will run once now\" database={j.Database} job={j.Job} slot={missed:O}");
            }
        }
        while (!cancellationToken.IsCancellationRequested)
        {
            var now = time.GetUtcNow();
            SetTick(now);
            await RunDueAsync(now, cancellationToken).ConfigureAwait(false);
            try
            {
                await Task.Delay(tick, time, cancellationToken).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
    }

    /// <summary>Runs, one after the other, every job with a slot since its last run.</summary>
    public async Task RunDueAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var config = Volatile.Read(ref _config);
        var jobs = Volatile.Read(ref _jobs);
        foreach (var j in jobs)
        {
            // A reload (SIGHUP) during this pass ends it: a job the new configuration removed or changed must not start
            // with the old one (seen: a drill the reload had removed started after it and held up the new backups).
            if (!ReferenceEquals(jobs, Volatile.Read(ref _jobs)))
            {
                break;
            }
            var since = _last.TryGetValue(j.Key, out var s) ? s : _started;
            if (j.LastSlotBetween(since, now) is not { } slot)
            {
                continue;
            }
            _last[j.Key] = now;
            log("info", $"msg=\"job started\" database={j.Database} job={j.Job} slot={slot:O}");
            var sw = Stopwatch.StartNew();
            JobOutcome outcome;
            try
            {
                outcome = await runner.RunAsync(j, config, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                outcome = new JobOutcome(1, e.Message);
            }
            log(outcome.ExitCode == 0 ? "info" : "error", $"msg=\"job finished\" database={j.Database} job={j.Job} exit={outcome.ExitCode} seconds={sw.Elapsed.TotalSeconds.ToString("0.0", CultureInfo.InvariantCulture)} summary=\"{Logfmt(outcome.Summary)}\"");
            if (cancellationToken.IsCancellationRequested)
            {
                break;
            }
        }
    }

    /// <summary>A value inside a logfmt double-quoted field: no double quotes, no newlines.</summary>
    public static string Logfmt(string s) => s.Replace("\"", "'", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);

    private void SetTick(DateTimeOffset t) => Interlocked.Exchange(ref _lastTickTicks, t.UtcTicks);
}
