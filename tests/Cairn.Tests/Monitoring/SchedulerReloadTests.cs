using Cairn.Operations.Configuration;
using Cairn.Operations.Scheduling;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Monitoring;

/// <summary>The scheduler's pass and a reload (SIGHUP): jobs of the old configuration do not start after it.</summary>
public class SchedulerReloadTests
{
    private static CairnConfig Config(string schedule) =>
        CairnConfig.Parse($"databases:\n  app:\n    connection: \"host=/tmp dbname=app\"\n    schedule: {{ {schedule} }}\n", "/etc/cairn/cairn.yaml");

    private sealed class Runner(Func<ScheduledJob, Task> onRun) : IJobRunner
    {
        public List<string> Ran { get; } = [];

        public async Task<JobOutcome> RunAsync(ScheduledJob job, CairnConfig config, CancellationToken cancellationToken)
        {
            Ran.Add(job.Job);
            await onRun(job);
            return new JobOutcome(0, "ok");
        }
    }

    [Fact]
    public async Task A_reload_during_a_pass_stops_it_before_a_job_the_new_configuration_removed()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 2, 0, 0, TimeSpan.Zero));
        Scheduler? scheduler = null;
        var runner = new Runner(job =>
        {
            if (job.Job == "backup_physical")
            {
                // The operator's SIGHUP arrives while the backup runs: the drill is gone from the new configuration.
                scheduler!.Reload(Config("backup_physical: \"*/5 * * * * *\""));
            }
            return Task.CompletedTask;
        });
        scheduler = new Scheduler(time, runner, (_, _) => { });
        scheduler.Reload(Config("backup_physical: \"*/5 * * * * *\", drill: \"*/5 * * * * *\""));
        await scheduler.RunDueAsync(time.GetUtcNow().AddSeconds(10), CancellationToken.None);
        Assert.Equal(["backup_physical"], runner.Ran);

        // The next pass runs the new configuration's jobs.
        await scheduler.RunDueAsync(time.GetUtcNow().AddSeconds(20), CancellationToken.None);
        Assert.Equal(["backup_physical", "backup_physical"], runner.Ran);
    }

    [Fact]
    public async Task Without_a_reload_a_pass_runs_every_due_job_in_order()
    {
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 5, 2, 0, 0, TimeSpan.Zero));
        var runner = new Runner(_ => Task.CompletedTask);
        var scheduler = new Scheduler(time, runner, (_, _) => { });
        scheduler.Reload(Config("backup_physical: \"*/5 * * * * *\", drill: \"*/5 * * * * *\""));
        await scheduler.RunDueAsync(time.GetUtcNow().AddSeconds(10), CancellationToken.None);
        Assert.Equal(["backup_physical", "drill"], runner.Ran);
    }
}
