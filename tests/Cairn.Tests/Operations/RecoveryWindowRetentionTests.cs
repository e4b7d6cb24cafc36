using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Physical;
using Cairn.Operations.Retention;
using Cairn.Repository;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>keep_within keeps the whole recovery window: the base before it, a bridge when needed, and a refusal when WAL inside it is missing.</summary>
public class RecoveryWindowRetentionTests
{
    private const string KeepWithinThreeHours = "databases:\n  app:\n    connection: x\n    retention: { keep_within: 3h }\n";

    private static RestoreBase Base(string id, int startSegment, DateTimeOffset from) => new(id, OperationsHarness.Segment(startSegment), from);

    [Fact]
    public void Bridge_keeps_an_older_backup_when_the_base_before_the_window_finished_after_its_start()
    {
        var t = OperationsHarness.T0;
        // b1 started before the window's start (t+1h) but finished after it: only b0 can reach the window's first minute.
        var bases = new[] { Base("b0", 2, t.AddMinutes(5)), Base("b1", 4, t.AddMinutes(90)), Base("b2", 6, t.AddHours(4)) };
        var decisions = new List<RetentionDecision>
        {
            new("b2", t.AddHours(4), true, ["within"]),
            new("b1", t.AddMinutes(50), true, ["base"]),
            new("b0", t, false, []),
        };
        var archived = Enumerable.Range(1, 10).Select(n => OperationsHarness.Segment(n)).ToList();

        var plan = WindowCoverage.Bridge("app", decisions, bases, new RetentionPolicy { KeepWithin = TimeSpan.FromHours(3) }, archived, null);

        Assert.Null(plan.Gap);
        var b0 = plan.Decisions.Single(d => d.Id == "b0");
        Assert.True(b0.Keep);
        Assert.StartsWith("bridges the 3h window's start", b0.Reasons.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public void Bridge_keeps_nothing_more_when_the_window_is_already_covered()
    {
        var t = OperationsHarness.T0;
        var bases = new[] { Base("b0", 2, t.AddMinutes(5)), Base("b1", 4, t.AddMinutes(55)), Base("b2", 6, t.AddHours(4)) };
        var decisions = new List<RetentionDecision> { new("b2", t.AddHours(4), true, ["within"]), new("b1", t.AddMinutes(50), true, ["base"]), new("b0", t, false, []) };
        var archived = Enumerable.Range(1, 10).Select(n => OperationsHarness.Segment(n)).ToList();

        var plan = WindowCoverage.Bridge("app", decisions, bases, new RetentionPolicy { KeepWithin = TimeSpan.FromHours(3) }, archived, null);

        Assert.Null(plan.Gap);
        Assert.False(plan.Decisions.Single(d => d.Id == "b0").Keep);
    }

    [Fact]
    public async Task Prune_refuses_a_plan_that_leaves_a_wal_gap_inside_the_window_and_deletes_nothing()
    {
        using var h = new OperationsHarness(KeepWithinThreeHours);
        using var repo = await h.InitAsync();
        // Backups at 0h, 2h, 4h, 6h; the window (3h back from 6h) starts at 3h; WAL segment 7 (after the 2h base) is missing.
        foreach (var start in new[] { 2, 5, 8, 11 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow().AddMinutes(1));
            h.Clock.Advance(TimeSpan.FromHours(2));
        }
        await h.ArchiveAsync(repo, "app", 1, 12, except: [7]);

        var e = await Assert.ThrowsAsync<RepositoryException>(() => new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains($"WAL {OperationsHarness.Segment(7)}", e.Message, StringComparison.Ordinal);
        Assert.Contains("--accept-gap", e.Message, StringComparison.Ordinal);
        Assert.Equal(4, (await repo.ListSnapshotsAsync(default)).Count);
        Assert.Equal(11, (await new WalArchive(repo, "app").ListAsync(default)).Count);
    }

    [Fact]
    public async Task Prune_with_accept_gap_prunes_and_puts_the_gap_on_the_record()
    {
        using var h = new OperationsHarness(KeepWithinThreeHours);
        using var repo = await h.InitAsync();
        foreach (var start in new[] { 2, 5, 8, 11 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow().AddMinutes(1));
            h.Clock.Advance(TimeSpan.FromHours(2));
        }
        await h.ArchiveAsync(repo, "app", 1, 12, except: [7]);

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false, AcceptGap: true), default);

        Assert.Equal(1, r.Forgotten); // the 0h backup: the 2h one is the window's base
        Assert.Contains(OperationsHarness.Segment(7), Assert.Single(r.AcceptedGaps), StringComparison.Ordinal);
        var record = h.Context.Evidence.ReadVerified().Entries.Last(x => x.Kind == "prune");
        Assert.Contains(OperationsHarness.Segment(7), record.Record!["details"]!["accepted_window_gaps"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Prune_keeps_the_base_before_the_window_and_its_wal()
    {
        using var h = new OperationsHarness(KeepWithinThreeHours);
        using var repo = await h.InitAsync();
        foreach (var start in new[] { 2, 5, 8, 11 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow().AddMinutes(1));
            h.Clock.Advance(TimeSpan.FromHours(2));
        }
        await h.ArchiveAsync(repo, "app", 1, 12);

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        // 0h goes; 2h stays as the base of the window starting at 3h, with the WAL from its start (segment 5).
        Assert.Equal(1, r.Forgotten);
        Assert.Equal(OperationsHarness.Segment(5)[8..], Assert.Single(r.Windows).OldestAfter);
        Assert.Equal(8, (await new WalArchive(repo, "app").ListAsync(default)).Count);
    }

    private static LogEntry Backup(long seq, string id, int startSegment, DateTimeOffset time) => new(seq, [], "{}", new System.Text.Json.Nodes.JsonObject
    {
        ["kind"] = "backup", ["result"] = "pass", ["database"] = "app", ["snapshot"] = id, ["time"] = time.UtcDateTime.ToString("O", System.Globalization.CultureInfo.InvariantCulture),
        ["details"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "physical", ["start_lsn"] = $"0/{startSegment:X}000028", ["timeline"] = 1 },
    }, "seg");

    [Fact]
    public void Check_is_critical_when_the_oldest_restorable_point_is_younger_than_the_window()
    {
        var t = OperationsHarness.T0;
        var now = t.AddDays(10);
        var entries = new[] { Backup(1, "old", 2, t), Backup(2, "mid", 5, t.AddDays(5)), Backup(3, "new", 8, t.AddDays(9)) };
        var wal = Enumerable.Range(1, 10).Select(n => OperationsHarness.Segment(n)).ToList();
        var all = new HashSet<string> { "old", "mid", "new" };

        var ok = WindowHealth.Evaluate("app", TimeSpan.FromDays(7), entries, all, wal, now)!;
        var oldGone = WindowHealth.Evaluate("app", TimeSpan.FromDays(7), entries, new HashSet<string> { "mid", "new" }, wal, now)!;
        var young = WindowHealth.Evaluate("app", TimeSpan.FromDays(30), entries, new HashSet<string> { "new" }, wal, now)!;

        Assert.Equal(HealthState.Ok, ok.State);
        Assert.Equal(HealthState.Critical, oldGone.State);
        Assert.Contains("younger than the 7d recovery window", oldGone.Message, StringComparison.Ordinal);
        Assert.Equal(HealthState.Ok, young.State); // the first backup is younger than 30 days: the window has not passed yet
    }

    [Fact]
    public void Check_is_critical_when_wal_inside_the_window_is_missing()
    {
        var t = OperationsHarness.T0;
        var entries = new[] { Backup(1, "old", 2, t), Backup(2, "new", 8, t.AddDays(9)) };
        var wal = Enumerable.Range(1, 10).Where(n => n != 4).Select(n => OperationsHarness.Segment(n)).ToList();

        var f = WindowHealth.Evaluate("app", TimeSpan.FromDays(7), entries, new HashSet<string> { "old", "new" }, wal, t.AddDays(10))!;

        Assert.Equal(HealthState.Critical, f.State);
    }
}
