using Cairn.Operations.Physical;
using Cairn.Operations.Retention;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>Prune's WAL window rule on an in-memory repository: WAL goes only from before the oldest physical backup that stays.</summary>
public class PruneOperationTests
{
    private const string KeepLastTwo = "databases:\n  app:\n    connection: x\n    retention: { keep_last: 2 }\n";

    private static async Task<List<string>> WalAsync(Repo repo, string database)
        => [.. (await new WalArchive(repo, database).ListAsync(default)).Select(w => w.Name)];

    [Fact]
    public async Task Prune_deletes_only_the_wal_before_the_oldest_kept_physical_backup()
    {
        using var h = new OperationsHarness(KeepLastTwo);
        using var repo = await h.InitAsync();
        // Three backups starting in segments 3, 6 and 9; WAL 1..12 archived, plus a history file.
        await h.ArchiveAsync(repo, "app", 1, 12);
        await new WalArchive(repo, "app").PutAsync("00000002.history", "1\t0/C000000\tno recovery target specified\n"u8.ToArray(), default);
        foreach (var start in new[] { 3, 6, 9 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow());
            h.Clock.Advance(TimeSpan.FromHours(1));
        }

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        Assert.Equal(1, r.Forgotten);
        var window = Assert.Single(r.Windows);
        Assert.Equal(OperationsHarness.Segment(3)[8..], window.OldestBefore);
        Assert.Equal(OperationsHarness.Segment(6)[8..], window.OldestAfter);
        // Segments 1..5 went (before the kept backup that starts in 6); 6..12 and the history file stay.
        Assert.Equal([.. Enumerable.Range(1, 5).Select(n => $"app@{OperationsHarness.Segment(n)}")], r.WalObjectsDeleted);
        Assert.Equal([.. Enumerable.Range(6, 7).Select(n => OperationsHarness.Segment(n)), "00000002.history"], await WalAsync(repo, "app"));
    }

    [Fact]
    public async Task Prune_dry_run_plans_the_same_window_and_deletes_nothing()
    {
        using var h = new OperationsHarness(KeepLastTwo);
        using var repo = await h.InitAsync();
        await h.ArchiveAsync(repo, "app", 1, 12);
        foreach (var start in new[] { 3, 6, 9 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow());
            h.Clock.Advance(TimeSpan.FromHours(1));
        }

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: true), default);

        Assert.Equal(5, r.WalObjectsDeleted.Count);
        Assert.Equal(12, (await WalAsync(repo, "app")).Count);
        Assert.Equal(3, (await repo.ListSnapshotsAsync(default)).Count);
    }

    [Fact]
    public async Task Prune_never_touches_another_databases_wal_or_a_database_without_kept_backups()
    {
        using var h = new OperationsHarness(KeepLastTwo);
        using var repo = await h.InitAsync();
        await h.ArchiveAsync(repo, "app", 1, 8);
        await h.ArchiveAsync(repo, "other", 1, 8);
        foreach (var start in new[] { 2, 4, 6 })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow());
            h.Clock.Advance(TimeSpan.FromHours(1));
        }

        await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        Assert.Equal(8, (await WalAsync(repo, "other")).Count); // no physical backup of "other": its WAL is not judged
        Assert.Equal(5, (await WalAsync(repo, "app")).Count);   // 4..8 stay
    }

    [Fact]
    public async Task Wal_is_kept_whole_when_every_physical_backup_of_the_database_is_forgotten()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        var only = await OperationsHarness.PhysicalBackupAsync(repo, "app", 3, h.Clock.GetUtcNow());
        var archived = Enumerable.Range(1, 4).Select(n => new WalObject(OperationsHarness.Segment(n), 16, OperationsHarness.T0)).ToList();
        Assert.Null(PruneOperation.WalWindow("app", [only], new HashSet<string> { only.Id }, archived));
        Assert.Equal(2, PruneOperation.WalWindow("app", [only], new HashSet<string>(), archived)!.SegmentsDeleted.Count);
    }
}
