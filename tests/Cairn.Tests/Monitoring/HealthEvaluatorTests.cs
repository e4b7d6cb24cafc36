using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Monitoring;
using Cairn.Tests.Support;

namespace Cairn.Tests.Monitoring;

/// <summary>Health from evidence held in memory, WAL from an in-memory repository, time from a fake clock: no PostgreSQL.</summary>
public class HealthEvaluatorTests
{
    // An address nothing listens on: the probe fails at once, which is itself a finding.
    private const string Unreachable = "postgresql://nobody@127.0.0.1:1/app";

    private static List<LogEntry> Entries(DateTimeOffset now, params (string Kind, string Result, TimeSpan Ago)[] records)
        => [.. records.OrderByDescending(r => r.Ago).Select((r, i) => new LogEntry(i, new byte[32], null, new JsonObject
        {
            ["kind"] = r.Kind,
            ["result"] = r.Result,
            ["database"] = "app",
            ["time"] = (now - r.Ago).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", CultureInfo.InvariantCulture),
            ["details"] = new JsonObject { ["scope"] = "live" },
        }, "t"))];

    private static HealthFinding Finding(HealthReport r, string aspect) => r.Findings.Single(f => f.Database == "app" && f.Aspect == aspect);

    [Theory]
    [InlineData(1, HealthState.Ok)]
    [InlineData(2.5, HealthState.Warning)]
    [InlineData(3.5, HealthState.Critical)]
    public async Task Backup_age_is_judged_against_the_thresholds_in_the_config(double hours, HealthState expected)
    {
        using var h = new OperationsHarness($"databases:\n  app:\n    connection: \"{Unreachable}\"\n    monitoring: {{ backup_warn_after: 2h, backup_critical_after: 3h }}\n");
        var entries = Entries(h.Clock.GetUtcNow(), ("backup", "pass", TimeSpan.FromHours(hours)), ("drill", "pass", TimeSpan.FromDays(1)));

        var r = await new HealthEvaluator(h.Context).EvaluateAsync(new HealthRequest(), new EvidenceReading(entries, []), null, default);

        Assert.Equal(expected, Finding(r, "backup").State);
        Assert.Equal(HealthState.Ok, Finding(r, "drill").State);
        Assert.Equal(HealthState.Critical, Finding(r, "reachable").State);
        Assert.Equal(HealthState.Critical, r.Overall);
        Assert.Contains($"cairn_health_state{{database=\"app\",check=\"backup\"}} {(int)expected}", r.Metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Newest_archived_wal_older_than_its_threshold_is_critical_and_its_lag_a_metric()
    {
        using var h = new OperationsHarness($"databases:\n  app:\n    connection: \"{Unreachable}\"\n    monitoring: {{ wal_critical_after: 10m }}\n");
        using (var repo = await h.InitAsync())
        {
            await h.ArchiveAsync(repo, "app", 1, 3); // the last one at T0+2m; the clock then reads T0+3m
        }
        var entries = Entries(h.Clock.GetUtcNow(), ("backup", "pass", TimeSpan.FromHours(1)));
        var fresh = await new HealthEvaluator(h.Context).EvaluateAsync(new HealthRequest(), new EvidenceReading(entries, []), null, default);
        Assert.Equal(HealthState.Ok, Finding(fresh, "wal").State);
        Assert.Contains(OperationsHarness.Segment(3), Finding(fresh, "wal").Message, StringComparison.Ordinal);
        Assert.Contains("cairn_wal_archive_lag_seconds{database=\"app\"} 60", fresh.Metrics, StringComparison.Ordinal);

        h.Clock.Advance(TimeSpan.FromMinutes(10));
        var stale = await new HealthEvaluator(h.Context).EvaluateAsync(new HealthRequest(), new EvidenceReading(entries, []), null, default);
        Assert.Equal(HealthState.Critical, Finding(stale, "wal").State);
        Assert.Equal(660, Finding(stale, "wal").AgeSeconds);
    }

    [Fact]
    public async Task Without_a_repository_there_are_no_wal_or_lock_findings_and_a_missing_log_is_unknown()
    {
        using var h = new OperationsHarness("databases:\n  app:\n    connection: \"" + Unreachable + "\"\n");
        var r = await new HealthEvaluator(h.Context).EvaluateAsync(new HealthRequest(), cancellationToken: default);
        Assert.DoesNotContain(r.Findings, f => f.Aspect is "wal" or "locks");
        Assert.Contains(r.Findings, f => f.Aspect == "evidence" && f.State == HealthState.Unknown);
        Assert.Equal(HealthState.Critical, Finding(r, "backup").State); // nothing on record
    }
}
