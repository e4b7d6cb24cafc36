using System.Globalization;
using Cairn.Operations.Physical;
using Cairn.Operations.Pins;
using Cairn.Operations.Retention;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>Pins (legal and forensic holds) and tags: what prune must never forget, and the record of every change.</summary>
public class PinTests
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

    [Fact]
    public async Task A_pinned_snapshot_and_the_wal_after_it_survive_prune_with_keep_last_one()
    {
        using var h = new OperationsHarness(KeepLastOne);
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);

        var pinned = await new PinOperation(h.Context).PinAsync(new PinRequest(backups[0].Id[..10], "legal hold: case 2026-114"), default);
        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        var left = (await repo.ListSnapshotsAsync(default)).Select(s => s.Id).ToList();
        Assert.Equal([backups[0].Id, backups[2].Id], left);
        Assert.Contains("pinned: legal hold: case 2026-114", r.Decisions.Single(d => d.Decision.Id == backups[0].Id).Decision.Reasons);
        // Only WAL before the pinned backup's start (segment 2) may go.
        Assert.Equal(OperationsHarness.Segment(2)[8..], Assert.Single(r.Windows).OldestAfter);
        Assert.Equal(9, (await new WalArchive(repo, "app").ListAsync(default)).Count);
        var record = h.Context.Evidence.ReadVerified().Entries.Single(e => e.Kind == "pin");
        Assert.Equal(pinned.EvidenceSeq, record.Seq);
        Assert.Equal(backups[0].Id, record.Record!["snapshot"]!.GetValue<string>());
        Assert.Equal("legal hold: case 2026-114", record.Record["details"]!["reason"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unpin_is_recorded_and_lets_retention_forget_the_snapshot()
    {
        using var h = new OperationsHarness(KeepLastOne);
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        var ops = new PinOperation(h.Context);
        await ops.PinAsync(new PinRequest(backups[0].Id, "forensics"), default);

        var un = await ops.UnpinAsync(new UnpinRequest(backups[0].Id, "case closed"), default);
        await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default);

        Assert.Equal([backups[2].Id], (await repo.ListSnapshotsAsync(default)).Select(s => s.Id));
        var actions = h.Context.Evidence.ReadVerified().Entries.Where(e => e.Kind == "pin").Select(e => e.Record!["details"]!["action"]!.GetValue<string>()).ToList();
        Assert.Equal(["pin", "unpin"], actions);
        Assert.Equal("forensics", un.Removed.Reason);
        await Assert.ThrowsAsync<RepositoryException>(() => ops.UnpinAsync(new UnpinRequest(backups[0].Id[..8], "again"), default));
    }

    [Fact]
    public async Task An_expired_pin_no_longer_holds_and_a_past_until_is_refused()
    {
        using var h = new OperationsHarness(KeepLastOne);
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        var ops = new PinOperation(h.Context);
        var e = await Assert.ThrowsAsync<RepositoryException>(() => ops.PinAsync(new PinRequest(backups[0].Id, "x", h.Clock.GetUtcNow().AddDays(-1)), default));
        Assert.Contains("not in the future", e.Message, StringComparison.Ordinal);

        await ops.PinAsync(new PinRequest(backups[0].Id, "30-day hold", h.Clock.GetUtcNow().AddDays(30)), default);
        h.Clock.Advance(TimeSpan.FromDays(31));
        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: true), default);

        Assert.False(r.Decisions.Single(d => d.Decision.Id == backups[0].Id).Decision.Keep);
    }

    [Fact]
    public async Task A_tampered_pin_stops_prune_instead_of_being_ignored()
    {
        using var h = new OperationsHarness(KeepLastOne);
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        await new PinOperation(h.Context).PinAsync(new PinRequest(backups[0].Id, "hold"), default);
        // Someone moves the hold onto another snapshot's name: the seal binds the pin to its own snapshot.
        var key = new StorageKey(ObjectKind.Pin, backups[0].Id);
        var bytes = await h.Storage.GetAllAsync(key, default);
        await h.Storage.DeleteAsync(key, default);
        await h.Storage.PutAsync(new StorageKey(ObjectKind.Pin, backups[1].Id), bytes, default);

        await Assert.ThrowsAsync<DataDamagedException>(() => new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: false), default));
        Assert.Equal(3, (await repo.ListSnapshotsAsync(default)).Count);
    }

    [Fact]
    public async Task Keep_tag_keeps_tagged_backups_and_bad_tags_are_refused()
    {
        using var h = new OperationsHarness("databases:\n  app:\n    connection: x\n    retention: { keep_last: 1, keep_tag: [pre-migration] }\n");
        using var repo = await h.InitAsync();
        async Task<Snapshot> Tagged(string? tag)
        {
            await using var w = repo.BeginWrite();
            await w.AddStreamAsync("dump", new MemoryStream(TestData.Rows(100, 1)), null, "file", null, default);
            var meta = new Dictionary<string, string>();
            BackupTags.AddTo(meta, tag is null ? null : [tag]);
            h.Clock.Advance(TimeSpan.FromHours(1));
            return await w.CommitAsync("app", BackupKinds.Logical, meta, default);
        }
        var pre = await Tagged("pre-migration");
        await Tagged("other");
        await Tagged(null);

        var r = await new PruneOperation(h.Context).RunAsync(new PruneRequest(DryRun: true), default);

        Assert.Equal(["tag pre-migration"], r.Decisions.Single(d => d.Decision.Id == pre.Id).Decision.Reasons);
        Assert.Equal(2, r.Kept);
        Assert.Equal(["pre-migration"], BackupTags.Of(pre));
        Assert.Throws<RepositoryException>(() => BackupTags.Validate(["has space"]));
        Assert.Throws<RepositoryException>(() => BackupTags.Validate(["a,b"]));
    }

    [Fact]
    public async Task Snapshots_lists_the_pins_with_their_reasons()
    {
        using var h = new OperationsHarness(KeepLastOne);
        using var repo = await h.InitAsync();
        var backups = await ThreeBackupsAsync(h, repo);
        await new PinOperation(h.Context).PinAsync(new PinRequest(backups[1].Id, "incident 7 evidence", Incident: "inc-7"), default);

        var r = await new SnapshotListOperation(h.Context).RunAsync(new SnapshotListRequest(BackupsOnly: true), default);

        var pin = Assert.Single(r.Pins).Value;
        Assert.Equal(backups[1].Id, pin.Snapshot);
        Assert.Equal("incident 7 evidence", pin.Reason);
        Assert.Equal("inc-7", pin.Incident);
        Assert.Equal(DateTimeOffset.Parse("2026-12-01T03:00:00Z", CultureInfo.InvariantCulture).AddMinutes(10), pin.Created);
    }
}
