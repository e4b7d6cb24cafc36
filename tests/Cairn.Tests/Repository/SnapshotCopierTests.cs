using System.Text;
using Cairn.Repository;
using Cairn.Repository.Copying;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>
/// The blob-level copier into a repository with other keys, on the engine alone: everything that goes with a snapshot
/// (its pin, the WAL, the ledger, incident objects) is re-sealed under the target's keys and reads back there, and a
/// second run copies nothing.
/// </summary>
public class SnapshotCopierTests
{
    [Fact]
    public async Task A_reencrypting_copy_carries_pins_WAL_ledger_and_incidents_under_the_targets_keys_and_a_second_run_copies_nothing()
    {
        using var dir = new TempDir();
        using var source = await Repo.InitAsync(new FileSystemStorage(dir.File("a")), TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        using var target = await Repo.InitAsync(new FileSystemStorage(dir.File("b")), "another passphrase 7e21", TestData.SmallRepo, TimeProvider.System, default);
        var content = TestData.Random(900_000, 71);
        await using (var lk = await source.LockAsync(exclusive: false, "test", default))
        await using (var w = source.BeginWrite())
        {
            await w.AddStreamAsync("data.bin", new MemoryStream(content), null, default);
            await w.CommitAsync("app", "logical", new Dictionary<string, string> { ["database"] = "app" }, default);
        }
        var snapshot = Assert.Single(await source.ListSnapshotsAsync(default));
        await source.PutPinAsync(new Pin(1, snapshot.Id, "legal hold: case 9", DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture), "db1"), default);
        var segment = TestData.Random(300_000, 72);
        await NamedFiles.PutAsync(source, "app@000000010000000000000003", segment, default);
        var entry = Encoding.UTF8.GetBytes("{\"version\":1,\"database\":\"app\",\"subject\":\"42\"}");
        var ledgerName = await ErasureLedger.AppendAsync(source, "app", entry, default);
        var incident = "inc-20261205-120000-abcdef.state.000001";
        Assert.True(await source.PutIncidentObjectAsync(incident, Encoding.UTF8.GetBytes("{\"id\":\"inc-20261205-120000-abcdef\"}"), default));

        var plan = new SnapshotCopyPlan([snapshot], ["app@000000010000000000000003"], ["app"]);
        var report = await SnapshotCopier.CopyAsync(source, target, plan, null, default);
        Assert.True(report.Reencrypted);
        Assert.Empty(report.Findings);
        Assert.Equal((1, 1, 1, 1, 1), (report.SnapshotsCopied, report.PinsCopied, report.WalCopied, report.LedgerCopied, report.IncidentsCopied));

        // Everything reads back through the target's keys (and none of it is the primary's bytes).
        using var reopened = await Repo.OpenAsync(new FileSystemStorage(dir.File("b")), "another passphrase 7e21", TimeProvider.System, default);
        var copied = Assert.Single(await reopened.ListSnapshotsAsync(default));
        Assert.Equal(snapshot.Id, copied.Manifest.Meta[SnapshotCopier.CopiedFrom]);
        Assert.Equal(source.Config.Id, copied.Manifest.Meta[SnapshotCopier.CopySource]);
        Assert.Equal("app", copied.Manifest.Meta["database"]);
        using (var back = new MemoryStream())
        {
            await reopened.ReadItemAsync(copied.Manifest.Items[0], back, null, default);
            Assert.Equal(content, back.ToArray());
        }
        var pin = Assert.Single(await reopened.ListPinsAsync(default));
        Assert.Equal((copied.Id, "legal hold: case 9"), (pin.Key, pin.Value.Reason));
        Assert.Equal(segment, await NamedFiles.GetAsync(reopened, "app@000000010000000000000003", default));
        Assert.NotEqual(await File.ReadAllBytesAsync(dir.File("a/wal/app@000000010000000000000003")), await File.ReadAllBytesAsync(dir.File("b/wal/app@000000010000000000000003")));
        var ledger = Assert.Single(await ErasureLedger.ReadAsync(reopened, "app", default));
        Assert.Equal(ledgerName, ledger.Name);
        Assert.Equal(entry, ledger.Entry);
        Assert.Equal("{\"id\":\"inc-20261205-120000-abcdef\"}", Encoding.UTF8.GetString(await reopened.GetIncidentObjectAsync(incident, default)));

        var again = await SnapshotCopier.CopyAsync(source, reopened, plan, null, default);
        Assert.Equal((0, 0L, 0, 0, 0, 0, 0L), (again.SnapshotsCopied, again.BlobsCopied, again.PinsCopied, again.WalCopied, again.LedgerCopied, again.IncidentsCopied, again.BytesRead));
        Assert.Equal(1, again.SnapshotsPresent);
    }
}
