using Cairn.Operations.Physical;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>The recovery window from storage alone: the oldest backup's end to the newest archived segment, with gaps.</summary>
public class RecoveryWindowTests
{
    [Fact]
    public async Task Window_runs_from_the_end_of_the_oldest_backup_to_the_newest_segment_and_when_it_was_archived()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        var oldest = await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0.AddMinutes(1));
        await h.ArchiveAsync(repo, "app", 1, 6);
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 4, OperationsHarness.T0.AddMinutes(5));
        var lastArchived = h.Clock.GetUtcNow() - TimeSpan.FromMinutes(1);

        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, await repo.ListSnapshotsAsync(default), default));

        Assert.Equal(oldest.Id, window.Oldest.Id);
        Assert.Equal(OperationsHarness.T0.AddMinutes(1), window.OldestMeta.StopTime);
        Assert.Equal(OperationsHarness.Segment(6), window.NewestSegment!.Name);
        Assert.Equal(lastArchived, window.NewestSegment.LastModified);
        Assert.False(window.HasGap);
    }

    [Fact]
    public async Task A_missing_segment_inside_the_window_is_a_gap_named_by_its_first_segment()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0);
        await h.ArchiveAsync(repo, "app", 2, 8, except: [4, 5]);

        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, await repo.ListSnapshotsAsync(default), default));

        Assert.True(window.HasGap);
        Assert.Equal([OperationsHarness.Segment(4), OperationsHarness.Segment(5)], window.Missing);
    }

    [Fact]
    public async Task Databases_without_physical_backups_have_no_window()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await h.ArchiveAsync(repo, "app", 1, 3);
        await TestData.PutAsync(repo, "app", TestData.Rows(1000, 1));
        Assert.Empty(await RecoveryWindow.ComputeAsync(repo, await repo.ListSnapshotsAsync(default), default));
    }
}
