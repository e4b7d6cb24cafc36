using Cairn.Operations.Physical;
using Cairn.Operations.Pins;
using Cairn.Operations.Retention;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>Prune and pin on a repository whose storage retains objects (S3 Object Lock, through <see cref="LockingStorage"/>).</summary>
public class ObjectLockTests
{
    private const string KeepLastOne = "databases:\n  app:\n    connection: x\n    retention: { keep_last: 1 }\n";

    private static async Task<List<Snapshot>> ThreeBackupsAsync(OperationsHarness h, Repo repo)
    {
        var list = new List<Snapshot>();
        foreach (var start in new[] { 2, 5, 8 })
        {
            list.Add(await OperationsHarness.PhysicalBackupAsync(repo, "app", start, h.Clock.GetUtcNow()));
            h.Clock.Advance(TimeSpan.FromHours(1));
        }
        await h.ArchiveAsync(repo, "app", 1, 10);
        return list;
    }

    private static (OperationsHarness Harness, Func<LockingStorage> Locking) Harness()
    {
        LockingStorage? locking = null;
        var h = new OperationsHarness(KeepLastOne, (s, clock) => locking = new LockingStorage(s, clock));
        return (h, () => locking!);
    }

    [Fact]
    public async Task Prune_keeps_a_backup_whose_manifest_is_still_locked_says_so_and_forgets_it_after_the_date()
    {
        var (h, locking) = Harness();
        using var _ = h;
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        var until = h.Clock.GetUtcNow().AddDays(2);
        locking().Locks[new StorageKey(ObjectKind.Snapshot, backups[0].Id)] = until;

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        Assert.Equal([backups[0].Id, backups[2].Id], (await repo.ListSnapshotsAsync(default)).Select(s => s.Id));
        var kept = r.Decisions.Single(d => d.Decision.Id == backups[0].Id).Decision;
        Assert.True(kept.Keep);
        Assert.Contains(kept.Reasons, x => x.Contains("Object Lock", StringComparison.Ordinal));
        Assert.Contains(r.Locked, l => l.Path == $"snapshots/{backups[0].Id}" && l.Until == until);
        // The locked backup is still a backup: the WAL from its start stays.
        Assert.Equal(OperationsHarness.Segment(2)[8..], Assert.Single(r.Windows).OldestAfter);

        h.Clock.Advance(TimeSpan.FromDays(3));
        r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);
        Assert.Equal([backups[2].Id], (await repo.ListSnapshotsAsync(default)).Select(s => s.Id));
        Assert.Empty(r.Locked);
    }

    [Theory]
    [InlineData(true, "index/")]
    [InlineData(false, "data/")]
    public async Task Prune_leaves_locked_packs_and_indexes_even_in_a_dry_run_and_every_kept_backup_still_verifies(bool lockIndexes, string reported)
    {
        var (h, locking) = Harness();
        using var _ = h;
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        // Data and indexes locked, manifests not: the two old backups are forgotten, their packs must stay.
        await locking().LockAllAsync(h.Clock.GetUtcNow().AddDays(1));
        foreach (var key in locking().Locks.Keys.Where(k => k.Kind == ObjectKind.Snapshot || (!lockIndexes && k.Kind == ObjectKind.Index)).ToList())
        {
            locking().Locks.Remove(key);
        }

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);
        Assert.Equal([backups[2].Id], (await repo.ListSnapshotsAsync(default)).Select(s => s.Id));
        Assert.Empty(r.Data.DeletedObjects);
        Assert.Contains(r.Locked, l => l.Path.StartsWith(reported, StringComparison.Ordinal));
        Assert.Contains(r.Locked, l => l.Path.StartsWith("wal/", StringComparison.Ordinal));
        await repo.LoadIndexAsync(default);
        Assert.DoesNotContain((await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default)).Findings, f => f.IsDamage);
        // Now the forgotten backups' packs are unused: a dry run must not promise to delete them while they are locked.
        var dry = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: true), default);
        Assert.Empty(dry.Data.DeletedObjects);
        Assert.Contains(dry.Locked, l => l.Path.StartsWith(reported, StringComparison.Ordinal));

        // A day later nothing is locked: the packs only the forgotten backups used go, and the rest still verifies.
        h.Clock.Advance(TimeSpan.FromDays(2));
        r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);
        Assert.Empty(r.Locked);
        Assert.NotEmpty(r.Data.DeletedObjects);
        await repo.LoadIndexAsync(default);
        Assert.DoesNotContain((await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default)).Findings, f => f.IsDamage);
    }

    [Fact]
    public async Task Prune_renews_the_locks_the_kept_backups_need_but_not_of_what_it_left_only_because_it_was_locked()
    {
        var (h, locking) = Harness();
        using var _ = h;
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        var start = h.Clock.GetUtcNow();
        // Every lock runs out in 6 hours (less than half the 1-day period); the oldest backup's manifest in 2 days.
        await locking().LockAllAsync(start.AddHours(6));
        locking().Locks[new StorageKey(ObjectKind.Snapshot, backups[0].Id)] = start.AddDays(2);

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        Assert.True(r.LocksRenewed > 0);
        var renewed = locking().Extended.Select(e => e.Key).ToHashSet();
        Assert.All(locking().Extended, e => Assert.Equal(start.AddDays(1), e.Until));
        Assert.Contains(new StorageKey(ObjectKind.Snapshot, backups[2].Id), renewed);
        Assert.Contains(StorageKey.Config, renewed);
        Assert.Contains(renewed, k => k.Kind == ObjectKind.Key);
        Assert.Contains(renewed, k => k.Kind == ObjectKind.Data);
        // The old indexes are locked and stay beside the new one that supersedes them, which is locked a full period from birth.
        var current = new List<StorageKey>();
        await foreach (var o in h.Storage.ListAsync(ObjectKind.Index, default))
        {
            current.Add(o.Key);
        }
        var fresh = Assert.Single(current, k => r.Locked.All(l => l.Path != k.Path));
        Assert.Equal(start.AddDays(1), locking().Locks[fresh]);
        // Kept only by its lock, or left only because locked: never renewed, so they can go after their dates.
        Assert.DoesNotContain(new StorageKey(ObjectKind.Snapshot, backups[0].Id), renewed);
        Assert.DoesNotContain(renewed, k => r.Locked.Any(l => l.Path == k.Path));

        // A second prune the same hour renews nothing (every needed lock is a full period away).
        var again = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);
        Assert.Equal(0, again.LocksRenewed);
    }

    [Fact]
    public async Task A_backup_that_reuses_a_pack_moves_its_lock_to_a_full_period_from_now_and_shortens_none()
    {
        var (h, locking) = Harness();
        using var _ = h;
        using var repo = await h.InitAsync();
        var content = TestData.Random(300_000, 7);
        var put = new Cairn.Operations.Files.FilePutOperation(h.Context);
        var first = await put.RunAsync(new Cairn.Operations.Files.FilePutRequest("blob", () => new MemoryStream(content)), null, default);
        var t0 = h.Clock.GetUtcNow();
        await locking().LockAllAsync(t0.AddDays(1)); // what init wrote is locked like the rest (the harness wrote it directly)
        locking().Locks[StorageKey.Config] = t0.AddDays(30); // already locked past any backup: never shortened
        var packs = locking().Locks.Keys.Where(k => k.Kind == ObjectKind.Data).ToList();
        Assert.NotEmpty(packs);
        locking().Extended.Clear();

        // Six hours later the same bytes again: every pack is reused, and its lock would end six hours before this backup may.
        h.Clock.Advance(TimeSpan.FromHours(6));
        var second = await put.RunAsync(new Cairn.Operations.Files.FilePutRequest("blob", () => new MemoryStream(content)), null, default);
        Assert.Equal(0, second.Stats.BytesAdded);

        var until = h.Clock.GetUtcNow().AddDays(1);
        var extended = locking().Extended.ToDictionary(e => e.Key, e => e.Until);
        Assert.All(packs, p => Assert.Equal(until, extended[p]));
        Assert.Contains(extended.Keys, k => k.Kind == ObjectKind.Index);
        Assert.Contains(extended.Keys, k => k.Kind == ObjectKind.Key);
        Assert.DoesNotContain(StorageKey.Config, extended.Keys);
        Assert.Equal(t0.AddDays(30), locking().Locks[StorageKey.Config]);
        Assert.DoesNotContain(new StorageKey(ObjectKind.Snapshot, second.Snapshot.Id), extended.Keys);
        // The first backup's manifest is not read by the second: its date stays.
        Assert.DoesNotContain(new StorageKey(ObjectKind.Snapshot, first.Snapshot.Id), extended.Keys);

        // Right after it, another backup of the same bytes finds every lock long enough: nothing moves.
        locking().Extended.Clear();
        await put.RunAsync(new Cairn.Operations.Files.FilePutRequest("blob", () => new MemoryStream(content)), null, default);
        Assert.DoesNotContain(locking().Extended, e => e.Key.Kind != ObjectKind.Evidence);
    }

    [Fact]
    public async Task Pin_extends_the_lock_of_every_object_the_snapshot_reads_and_unpin_shortens_none()
    {
        var (h, locking) = Harness();
        using var _ = h;
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        var first = h.Clock.GetUtcNow().AddDays(1);
        await locking().LockAllAsync(first);
        var until = h.Clock.GetUtcNow().AddDays(30);

        var pinned = await new PinOperation(h.Context).PinAsync(new PinRequest(backups[0].Id, "legal hold", until), default);

        Assert.Equal(until, pinned.LockedUntil);
        var extended = locking().Extended.Select(e => e.Key).ToHashSet();
        Assert.All(locking().Extended, e => Assert.Equal(until, e.Until));
        Assert.Contains(StorageKey.Config, extended);
        Assert.Contains(new StorageKey(ObjectKind.Snapshot, backups[0].Id), extended);
        Assert.DoesNotContain(new StorageKey(ObjectKind.Snapshot, backups[1].Id), extended);
        Assert.Contains(extended, k => k.Kind == ObjectKind.Key);
        Assert.Contains(extended, k => k.Kind == ObjectKind.Index);
        var packs = extended.Where(k => k.Kind == ObjectKind.Data).Select(k => k.Name).ToHashSet();
        Assert.NotEmpty(packs);
        // Its WAL: the segment it starts in (it has no stop segment recorded), not the next backup's.
        var archive = new WalArchive(repo, "app");
        Assert.Contains(new StorageKey(ObjectKind.Named, archive.ObjectName(OperationsHarness.Segment(2))), extended);
        Assert.DoesNotContain(new StorageKey(ObjectKind.Named, archive.ObjectName(OperationsHarness.Segment(5))), extended);
        Assert.Equal(pinned.LockedObjects, pinned.LocksExtended);

        // A second pin with an earlier date moves nothing; unpin leaves every date as it was.
        var before = locking().Locks.ToDictionary();
        var again = await new PinOperation(h.Context).PinAsync(new PinRequest(backups[0].Id, "shorter hold", h.Clock.GetUtcNow().AddDays(5)), default);
        Assert.Equal(0, again.LocksExtended);
        var un = await new PinOperation(h.Context).UnpinAsync(new UnpinRequest(backups[0].Id, "case closed"), default);
        Assert.True(un.LocksKept);
        Assert.Equal(before, locking().Locks);
    }
}
