using System.Diagnostics;
using System.Text.Json;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>Key files someone planted in keys/ must not stall or exhaust an open (every wal-push opens the repository).</summary>
public class KeyFileBoundsTests
{
    private static async Task<(InMemoryStorage Storage, string GoodKey)> RepoWithPlantedKeyAsync(int memoryKib, int iterations, int parallelism)
    {
        var storage = new InMemoryStorage();
        string good;
        using (var repo = await TestData.NewRepoAsync(storage))
        {
            good = repo.KeyId;
        }
        var planted = new KeyFileData
        {
            MemoryKib = memoryKib,
            Iterations = iterations,
            Parallelism = parallelism,
            Salt = Convert.ToBase64String(TestData.Random(16, 1)),
            Created = TimeProvider.System.GetUtcNow(),
            Wrapped = Convert.ToBase64String(TestData.Random(60, 2)),
        };
        // Named to sort first, so no ordering luck hides it.
        await storage.PutAsync(new StorageKey(ObjectKind.Key, "00000000000000000000000000000000"), JsonSerializer.SerializeToUtf8Bytes(planted, RepositoryJson.Default.KeyFileData), default);
        return (storage, good);
    }

    [Fact]
    public async Task A_key_file_with_a_billion_iterations_is_skipped_with_a_warning_and_the_good_key_opens_at_once()
    {
        var (storage, good) = await RepoWithPlantedKeyAsync(8, 1_000_000_000, 1);
        var sw = Stopwatch.StartNew();
        using var repo = await Task.Run(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"open took {sw.Elapsed}"); // a billion Argon2 passes would take hours; 5 s leaves room for a loaded machine
        Assert.Equal(good, repo.KeyId);
        var warning = Assert.Single(repo.Warnings);
        Assert.Contains("00000000000000000000000000000000", warning, StringComparison.Ordinal);
        Assert.Contains("iterations 1000000000", warning, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_wrong_passphrase_does_not_try_an_out_of_bounds_key_file()
    {
        var (storage, _) = await RepoWithPlantedKeyAsync(8, 1_000_000_000, 1);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<WrongPassphraseException>(() => Task.Run(() => Repo.OpenAsync(storage, "wrong", TimeProvider.System, default)).WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"open took {sw.Elapsed}"); // a billion Argon2 passes would take hours; 5 s leaves room for a loaded machine
        Assert.Contains("skipped", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(8, 1, 1 << 20)]            // a million lanes: 8 GiB of Argon2 memory
    [InlineData(8 * 1024 * 1024, 1, 1)]    // 8 GiB
    [InlineData(-5, 1, 1)]
    [InlineData(64, 1, 64)]                // 64 lanes need 512 KiB
    public async Task Key_files_outside_the_bounds_are_skipped(int memoryKib, int iterations, int parallelism)
    {
        var (storage, good) = await RepoWithPlantedKeyAsync(memoryKib, iterations, parallelism);
        using var repo = await Task.Run(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default)).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(good, repo.KeyId);
        Assert.Single(repo.Warnings);
    }

    [Fact]
    public async Task A_huge_key_file_is_not_read_and_can_be_listed_and_removed()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        await storage.PutAsync(new StorageKey(ObjectKind.Key, "ffffffffffffffffffffffffffffffff"), new byte[10 * 1024 * 1024], default);
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        Assert.Contains(reopened.Warnings, w => w.Contains("skipped without reading", StringComparison.Ordinal));
        Assert.Contains(await reopened.ListKeysAsync(default), k => k.Id == "ffffffffffffffffffffffffffffffff");
        await reopened.RemoveKeyAsync("ffff", default);
        Assert.Null(await storage.StatAsync(new StorageKey(ObjectKind.Key, "ffffffffffffffffffffffffffffffff"), default));
    }

    [Fact]
    public async Task Adding_a_key_with_parameters_an_open_would_skip_is_refused()
    {
        using var repo = await TestData.NewRepoAsync();
        var e = await Assert.ThrowsAsync<RepositoryException>(() => repo.AddKeyAsync("another passphrase", new KdfParameters(64 * 1024, 101, 2), null, default));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
    }
}
