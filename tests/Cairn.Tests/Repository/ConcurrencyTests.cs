using Cairn.Repository;
using Cairn.Repository.Verification;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>Races between processes that share one repository.</summary>
public class ConcurrencyTests
{
    [Fact]
    public async Task Two_concurrent_named_puts_of_different_content_exactly_one_wins()
    {
        using var dir = new TempDir();
        var storage = new FileSystemStorage(dir.File("repo"));
        using var first = await TestData.NewRepoAsync(storage);
        using var second = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default);
        var a = TestData.Random(256 * 1024, 1);
        var b = TestData.Random(256 * 1024, 2);
        for (var round = 0; round < 60; round++)
        {
            var name = $"app@0000000100000000000000{round:X2}";
            using var start = new Barrier(2);
            async Task<string> Push(Repo repo, byte[] data)
            {
                await Task.Yield();
                start.SignalAndWait();
                try
                {
                    return (await NamedFiles.PutAsync(repo, name, data, default)).ToString();
                }
                catch (RepositoryException e) when (e.Kind == ErrorKind.AlreadyExists)
                {
                    return "refused";
                }
            }
            var results = await Task.WhenAll(Task.Run(() => Push(first, a)), Task.Run(() => Push(second, b)));
            Assert.True(results.Count(r => r == nameof(NamedPutResult.Stored)) == 1 && results.Count(r => r == "refused") == 1,
                $"round {round}: {string.Join(", ", results)}");
            // What is stored is the winner's content, whole.
            var stored = await NamedFiles.GetAsync(first, name, default);
            Assert.True(stored.AsSpan().SequenceEqual(results[0] == "refused" ? b : a));
        }
    }

    [Fact]
    public async Task A_prune_between_open_and_lock_does_not_leave_the_backup_referencing_deleted_blobs()
    {
        using var dir = new TempDir();
        var path = dir.File("repo");
        using var setup = await TestData.NewRepoAsync(new FileSystemStorage(path));
        var content = TestData.Random(600_000, 7);
        var old = await TestData.PutAsync(setup, "old", content);

        // The backup opens the repository (the index is loaded) ...
        using var backup = await Repo.OpenAsync(new FileSystemStorage(path), TestData.Passphrase, TimeProvider.System, default);
        // ... a prune runs before it takes its lock and frees the old snapshot's packs ...
        using (var pruner = await Repo.OpenAsync(new FileSystemStorage(path), TestData.Passphrase, TimeProvider.System, default))
        {
            await using var x = await pruner.LockAsync(exclusive: true, "prune", default);
            await pruner.ForgetAsync(old, default);
            var r = await new Pruner(pruner).PruneAsync(dryRun: false, default);
            Assert.True(r.PacksDeleted > 0);
        }
        // ... then the backup locks and writes the same content.
        Cairn.Repository.Manifests.Snapshot snap;
        await using (var l = await backup.LockAsync(exclusive: false, "backup", default))
        {
            snap = await TestData.PutAsync(backup, "new", content);
        }
        using var check = await Repo.OpenAsync(new FileSystemStorage(path), TestData.Passphrase, TimeProvider.System, default);
        var report = await new Verifier(check).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.False(report.HasDamage, string.Join("\n", report.Findings));
        Assert.Equal(content, await TestData.GetAsync(check, snap));
    }
}
