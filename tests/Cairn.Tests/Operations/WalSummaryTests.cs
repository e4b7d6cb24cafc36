using System.Runtime.CompilerServices;
using Cairn.Operations.Physical;
using Cairn.Operations.Verification;
using Cairn.Repository;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>
/// The WAL summary (docs/repository-format.md, "WAL summary"): a cache that snapshots' recovery windows read with a
/// listing of what was archived since; restore's gap check and verify list, so a segment deleted after the summary was
/// written is still a gap there; a damaged summary is ignored; a gap seen through a summary is confirmed by a listing.
/// </summary>
public class WalSummaryTests
{
    private static string Seg(int n) => OperationsHarness.Segment(n);

    [Fact]
    public async Task A_segment_deleted_after_the_summary_was_written_is_still_a_gap_for_restore_and_verify()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0);
        await h.ArchiveAsync(repo, "app", 1, 8);
        await WalSummaries.WriteAsync(repo, default);
        await new WalArchive(repo, "app").DeleteAsync(Seg(5), default); // the gap opens after the summary

        // restore's pre-restore check lists the archive from the backup's start: the summary does not hide the gap.
        Assert.Equal([Seg(5)], await new WalArchive(repo, "app").MissingAsync(Seg(2), default));
        var snapshots = await repo.ListSnapshotsAsync(default);
        var findings = await WalVerification.VerifyAsync(repo, snapshots, readData: false, 1.0, 0, default);
        Assert.Contains(findings, f => f.Kind == FindingKind.Missing && f.Object.EndsWith("app@" + Seg(5), StringComparison.Ordinal));

        // snapshots' window trusts the summary (the documented trade-off): proof that the summary is stale and in use.
        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, snapshots, default));
        Assert.False(window.HasGap);
    }

    [Fact]
    public async Task A_gap_seen_through_the_summary_is_confirmed_by_a_listing_so_a_segment_archived_since_closes_it()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0);
        await h.ArchiveAsync(repo, "app", 1, 8, except: [5]);
        await WalSummaries.WriteAsync(repo, default);
        var snapshots = await repo.ListSnapshotsAsync(default);
        Assert.Equal([Seg(5)], Assert.Single(await RecoveryWindow.ComputeAsync(repo, snapshots, default)).Missing);

        // Pushed by hand from pg_wal: its name sorts before the summary's 'through', so only a listing sees it.
        await new WalArchive(repo, "app").PutAsync(Seg(5), TestData.Random(4096, 5), default);

        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, snapshots, default));
        Assert.False(window.HasGap);
        Assert.Equal(Seg(8), window.NewestSegment!.Name);
    }

    [Fact]
    public async Task With_a_summary_snapshots_lists_only_the_WAL_archived_after_it_for_every_database()
    {
        using var h = new OperationsHarness();
        var counting = new NamedListingCounter(h.Storage);
        using var repo = await Repo.InitAsync(counting, TestData.Passphrase, TestData.SmallRepo, h.Clock, default);
        foreach (var db in new[] { "app", "crm" })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, db, 2, OperationsHarness.T0);
            await h.ArchiveAsync(repo, db, 1, 30);
        }
        await WalSummaries.WriteAsync(repo, default);
        await h.ArchiveAsync(repo, "app", 31, 32);
        var lastArchived = h.Clock.GetUtcNow() - TimeSpan.FromMinutes(1);
        var snapshots = await repo.ListSnapshotsAsync(default);

        counting.Listed = 0;
        var windows = await RecoveryWindow.ComputeAsync(repo, snapshots, default);

        Assert.Equal(2, windows.Count);
        Assert.All(windows, w => Assert.False(w.HasGap));
        var app = windows.Single(w => w.Database == "app");
        Assert.Equal(Seg(32), app.NewestSegment!.Name);
        Assert.Equal(lastArchived, app.NewestSegment.LastModified);
        Assert.Equal(Seg(30), windows.Single(w => w.Database == "crm").NewestSegment!.Name); // from the summary
        Assert.InRange(counting.Listed, 2, 4); // app's two new segments (and crm's first name past its prefix), not 62 objects

        // Without the summary every object is listed, and the windows are the same.
        foreach (var name in await repo.ListWalSummariesAsync(default))
        {
            await h.Storage.DeleteAsync(new StorageKey(ObjectKind.WalSummary, name), default);
        }
        counting.Listed = 0;
        var listed = await RecoveryWindow.ComputeAsync(repo, snapshots, default);
        Assert.Equal(62, counting.Listed);
        Assert.Equal(windows.Select(w => (w.Database, w.NewestSegment!.Name, w.HasGap)), listed.Select(w => (w.Database, w.NewestSegment!.Name, w.HasGap)));
    }

    [Fact]
    public async Task One_listing_request_serves_every_database_and_a_gap_archived_after_the_summary_still_shows()
    {
        using var h = new OperationsHarness();
        var counting = new NamedListingCounter(h.Storage);
        using var repo = await Repo.InitAsync(counting, TestData.Passphrase, TestData.SmallRepo, h.Clock, default);
        foreach (var db in new[] { "app", "crm", "erp" })
        {
            await OperationsHarness.PhysicalBackupAsync(repo, db, 2, OperationsHarness.T0);
            await h.ArchiveAsync(repo, db, 1, 20);
        }
        await WalSummaries.WriteAsync(repo, default);
        // After the summary's horizon: app skips 22 (a gap only the listing can show), erp goes on without one.
        await h.ArchiveAsync(repo, "app", 21, 23, except: [22]);
        await h.ArchiveAsync(repo, "erp", 21, 21);
        var snapshots = await repo.ListSnapshotsAsync(default);

        counting.Listed = counting.RangeRequests = counting.PlainRequests = 0;
        var windows = await RecoveryWindow.ComputeAsync(repo, snapshots, default);

        // Three databases' tails from one request, then one more to confirm app's gap (listed from its oldest backup on).
        Assert.Equal(2, counting.RangeRequests);
        Assert.Equal(0, counting.PlainRequests);
        var app = windows.Single(w => w.Database == "app");
        Assert.Equal([Seg(22)], app.Missing);
        Assert.Equal(Seg(23), app.NewestSegment!.Name);
        Assert.False(windows.Single(w => w.Database == "crm").HasGap);
        Assert.Equal(Seg(20), windows.Single(w => w.Database == "crm").NewestSegment!.Name);
        Assert.Equal(Seg(21), windows.Single(w => w.Database == "erp").NewestSegment!.Name);

        // The same windows as from a listing of everything (no summary).
        foreach (var name in await repo.ListWalSummariesAsync(default))
        {
            await h.Storage.DeleteAsync(new StorageKey(ObjectKind.WalSummary, name), default);
        }
        var listed = await RecoveryWindow.ComputeAsync(repo, snapshots, default);
        Assert.Equal(windows.Select(w => (w.Database, w.NewestSegment!.Name, string.Join(",", w.Missing))),
            listed.Select(w => (w.Database, w.NewestSegment!.Name, string.Join(",", w.Missing))));
    }

    [Fact]
    public async Task A_damaged_summary_is_ignored_with_a_warning_and_the_archive_is_listed()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0);
        await h.ArchiveAsync(repo, "app", 1, 6);
        await WalSummaries.WriteAsync(repo, default);
        await h.ArchiveAsync(repo, "app", 7, 8);
        var snapshots = await repo.ListSnapshotsAsync(default);
        var name = Assert.Single(await repo.ListWalSummariesAsync(default));
        h.Storage.Corrupt(new StorageKey(ObjectKind.WalSummary, name), b => { b[^5] ^= 0x40; return b; });

        var warnings = new List<string>();
        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, snapshots, default, null, warnings.Add));

        Assert.Contains("WAL summary", Assert.Single(warnings), StringComparison.Ordinal);
        Assert.Equal(Seg(8), window.NewestSegment!.Name);
        Assert.False(window.HasGap);
    }

    [Fact]
    public async Task A_summary_that_opens_but_breaks_the_format_is_ignored_and_its_false_runs_are_not_believed()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await OperationsHarness.PhysicalBackupAsync(repo, "app", 2, OperationsHarness.T0);
        await h.ArchiveAsync(repo, "app", 1, 4);
        // A summary that claims segments up to 9 and a run across two timelines: believed, it would hide that 5-9 are not there.
        var bad = new WalSummaryFile
        {
            Written = h.Clock.GetUtcNow(),
            Databases = [new WalSummaryDatabase("app", Seg(9), [new WalSummaryRun(Seg(1), Seg(9)), new WalSummaryRun(Seg(1), OperationsHarness.Segment(3, 2))], [], null)],
        };
        await repo.PutWalSummaryAsync(bad, [], default);

        var warnings = new List<string>();
        var window = Assert.Single(await RecoveryWindow.ComputeAsync(repo, await repo.ListSnapshotsAsync(default), default, null, warnings.Add));

        Assert.Contains("not one", Assert.Single(warnings), StringComparison.Ordinal);
        Assert.Equal(Seg(4), window.NewestSegment!.Name);
    }

    /// <summary>Counts the WAL objects listings hand out (what a reader of years of WAL pays for).</summary>
    private sealed class NamedListingCounter(IStorage inner) : IStorage
    {
        public int Listed;

        /// <summary>Requests for several ranges at once (<see cref="IStorage.ListRangesAsync"/>) and listings asked for directly.</summary>
        public int RangeRequests;

        public int PlainRequests;

        public string Location => inner.Location;

        public Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.PutAsync(key, data, cancellationToken);

        public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.PutIfAbsentAsync(key, data, cancellationToken);

        public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken) => inner.GetAsync(key, offset, length, cancellationToken);

        public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => inner.StatAsync(key, cancellationToken);

        public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            if (kind == ObjectKind.Named)
            {
                Interlocked.Increment(ref PlainRequests);
            }
            await foreach (var o in inner.ListAsync(kind, startAfter, cancellationToken))
            {
                if (kind == ObjectKind.Named)
                {
                    Interlocked.Increment(ref Listed);
                }
                yield return o;
            }
        }

        public async IAsyncEnumerable<ObjectInfo> ListRangesAsync(ObjectKind kind, IReadOnlyList<NameRange> ranges, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            if (kind == ObjectKind.Named)
            {
                Interlocked.Increment(ref RangeRequests);
            }
            await foreach (var o in inner.ListRangesAsync(kind, ranges, cancellationToken))
            {
                if (kind == ObjectKind.Named)
                {
                    Interlocked.Increment(ref Listed);
                }
                yield return o;
            }
        }

        public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);
    }
}
