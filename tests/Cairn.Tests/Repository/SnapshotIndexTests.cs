using System.Runtime.CompilerServices;
using System.Text.Json;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>
/// The snapshot index (docs/repository-format.md, "Snapshot index"): listings read it instead of every manifest, and it
/// is only a cache: deleted, tampered or wrong, the manifests decide.
/// </summary>
public sealed class SnapshotIndexTests
{
    [Fact]
    public async Task Summaries_come_from_the_index_without_reading_a_manifest_and_match_the_manifests()
    {
        var storage = new InMemoryStorage();
        using (var repo = await TestData.NewRepoAsync(storage))
        {
            for (var i = 0; i < 3; i++)
            {
                await TestData.PutAsync(repo, $"x{i}", TestData.Rows(50_000, i));
            }
        }
        var counting = new CountingStorage(storage);
        using var reopened = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default);
        var summaries = await reopened.ListSnapshotSummariesAsync(null, null, default);
        Assert.Equal(0, counting.ManifestReads);
        var full = await reopened.ListSnapshotsAsync(default);
        Assert.Equal(3, summaries.Count);
        Assert.Equal(full.Select(s => (s.Id, s.Manifest.Name, s.Manifest.Time, s.Size, s.ItemCount)), summaries.Select(s => (s.Id, s.Manifest.Name, s.Manifest.Time, s.Size, s.ItemCount)));
        Assert.All(summaries, s => Assert.True(s.IsSummary));
    }

    [Fact]
    public async Task A_repository_without_an_index_lists_everything_and_gets_one_on_its_next_write()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        await TestData.PutAsync(repo, "a", TestData.Rows(50_000, 1));
        await TestData.PutAsync(repo, "b", TestData.Rows(50_000, 2));
        // A repository of the format before the index (or one whose index was deleted): no index object at all.
        await foreach (var o in storage.ListAsync(ObjectKind.SnapshotIndex, default))
        {
            await storage.DeleteAsync(o.Key, default);
        }
        var counting = new CountingStorage(storage);
        using (var reader = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default))
        {
            Assert.Equal(2, (await reader.ListSnapshotSummariesAsync(null, null, default)).Count);
            Assert.Equal(2, counting.ManifestReads);
        }
        Assert.Equal(0, await CountAsync(storage, ObjectKind.SnapshotIndex)); // a reader writes nothing

        await TestData.PutAsync(repo, "c", TestData.Rows(50_000, 3));
        Assert.Equal(1, await CountAsync(storage, ObjectKind.SnapshotIndex));
        counting = new CountingStorage(storage);
        using var after = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default);
        Assert.Equal(["a", "b", "c"], (await after.ListSnapshotSummariesAsync(null, null, default)).Select(s => s.Manifest.Name));
        Assert.Equal(0, counting.ManifestReads);
    }

    [Fact]
    public async Task A_tampered_index_is_ignored_with_a_warning_and_the_manifests_are_read()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        await TestData.PutAsync(repo, "a", TestData.Rows(50_000, 1));
        await TestData.PutAsync(repo, "b", TestData.Rows(50_000, 2));
        var index = Assert.Single(await ListAsync(storage, ObjectKind.SnapshotIndex));
        var bytes = await storage.GetAllAsync(index, default);
        bytes[^20] ^= 0x01;
        await storage.PutAsync(index, bytes, default);
        var ignored = new List<string>();
        var counting = new CountingStorage(storage);
        using var reader = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default);
        var summaries = await reader.ListSnapshotSummariesAsync(null, ignored.Add, default);
        Assert.Equal(["a", "b"], summaries.Select(s => s.Manifest.Name));
        Assert.Equal(2, counting.ManifestReads);
        Assert.Contains("snapshot index", Assert.Single(ignored), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_entry_of_a_forgotten_snapshot_is_not_listed()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var a = await TestData.PutAsync(repo, "a", TestData.Rows(50_000, 1));
        await TestData.PutAsync(repo, "b", TestData.Rows(50_000, 2));
        await repo.ForgetAsync(a, default); // prune and 'repo rm' forget without rewriting the index
        Assert.Equal(["b"], (await repo.ListSnapshotSummariesAsync(null, null, default)).Select(s => s.Manifest.Name));
    }

    [Fact]
    public async Task A_chosen_backup_whose_manifest_disagrees_with_its_entry_is_chosen_again_from_the_manifests()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        await TestData.PutAsync(repo, "db", TestData.Rows(50_000, 1));
        var b = await TestData.PutAsync(repo, "db", TestData.Rows(50_000, 2));
        // An index (sealed with the key, so it opens) whose entry for b claims a physical backup: b is a file.
        var entries = (await repo.ListSnapshotsAsync(default)).Select(SnapshotIndexEntry.Of)
            .Select(e => e.Id == b.Id ? e with { Kind = BackupKinds.Physical } : e).ToList();
        await foreach (var o in storage.ListAsync(ObjectKind.SnapshotIndex, default))
        {
            await storage.DeleteAsync(o.Key, default);
        }
        await repo.PutIndexObjectAsync(JsonSerializer.SerializeToUtf8Bytes(new SnapshotIndexFile { Snapshots = entries }, RepositoryJson.Default.SnapshotIndexFile), default);
        var filter = new SnapshotFilter("db", BackupKinds.Physical);
        Assert.Equal(b.Id, (await repo.ListSnapshotSummariesAsync(null, null, default)).Last(filter.Matches).Id); // the index is wrong

        var e = await Assert.ThrowsAsync<RepositoryException>(() => SnapshotSelector.ChooseAsync(repo, all => SnapshotSelector.Select(all, null, filter), default));
        Assert.Equal(ErrorKind.NotFound, e.Kind); // the manifests hold no physical backup of db
    }

    [Fact]
    public async Task An_append_only_client_writes_the_index_and_deletes_none()
    {
        var inner = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(new AppendOnlyStorage(inner));
        for (var i = 0; i < 3; i++)
        {
            await using var w = repo.BeginWrite(new RepositoryOptions { Workers = 2 });
            await w.AddStreamAsync("x", new MemoryStream(TestData.Rows(50_000, i)), null, default);
            await w.CommitAsync($"x{i}", "file", null, default);
            Assert.Null(w.IndexWarning);
        }
        Assert.Equal(3, await CountAsync(inner, ObjectKind.SnapshotIndex));
        var counting = new CountingStorage(inner);
        using var reader = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default);
        Assert.Equal(["x0", "x1", "x2"], (await reader.ListSnapshotSummariesAsync(null, null, default)).Select(s => s.Manifest.Name));
        Assert.Equal(0, counting.ManifestReads);
        Assert.Equal(1, counting.IndexReads); // the newest object covers every snapshot: the older ones are not read
    }

    private static async Task<List<StorageKey>> ListAsync(IStorage storage, ObjectKind kind)
    {
        var r = new List<StorageKey>();
        await foreach (var o in storage.ListAsync(kind, default))
        {
            r.Add(o.Key);
        }
        return r;
    }

    private static async Task<int> CountAsync(IStorage storage, ObjectKind kind) => (await ListAsync(storage, kind)).Count;

    /// <summary>Counts the manifests, index objects and pack reads (ranged GETs of data objects) read through it.</summary>
    internal sealed class CountingStorage(IStorage inner) : IStorage, IRangeReadStorage
    {
        private int _manifestReads;
        private int _indexReads;
        private int _dataReads;

        public int DataReads => _dataReads;

        public int ManifestReads => _manifestReads;

        public int IndexReads => _indexReads;

        public string Location => inner.Location;

        public Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.PutAsync(key, data, cancellationToken);

        public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.PutIfAbsentAsync(key, data, cancellationToken);

        public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
        {
            if (key.Kind == ObjectKind.Snapshot)
            {
                Interlocked.Increment(ref _manifestReads);
            }
            if (key.Kind == ObjectKind.SnapshotIndex)
            {
                Interlocked.Increment(ref _indexReads);
            }
            if (key.Kind == ObjectKind.Data)
            {
                Interlocked.Increment(ref _dataReads);
            }
            return inner.GetAsync(key, offset, length, cancellationToken);
        }

        /// <summary>Reads into the caller's buffer as the inner storage does (a restore's ranges), counted like a get.</summary>
        public async Task<int> ReadRangeAsync(StorageKey key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
        {
            if (key.Kind == ObjectKind.Data)
            {
                Interlocked.Increment(ref _dataReads);
            }
            if (inner is IRangeReadStorage reader)
            {
                return await reader.ReadRangeAsync(key, offset, destination, cancellationToken);
            }
            var bytes = await inner.GetAsync(key, offset, destination.Length, cancellationToken);
            bytes.CopyTo(destination);
            return bytes.Length;
        }

        public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => inner.StatAsync(key, cancellationToken);

        public IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, CancellationToken cancellationToken) => inner.ListAsync(kind, startAfter, cancellationToken);

        public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);
    }
}

/// <summary>The snapshot index on S3 (s3rver): written by a backup, read by another client instead of the manifests.</summary>
public sealed class SnapshotIndexS3Tests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    [Fact]
    public async Task On_S3_a_second_client_lists_from_the_index_without_reading_a_manifest()
    {
        var location = s3.NewLocation("index");
        using (var storage = s3.NewStorage(location))
        using (var repo = await TestData.NewRepoAsync(storage))
        {
            await TestData.PutAsync(repo, "a", TestData.Rows(50_000, 1));
            await TestData.PutAsync(repo, "b", TestData.Rows(50_000, 2));
        }
        using var storage2 = s3.NewStorage(location);
        var counting = new SnapshotIndexTests.CountingStorage(storage2);
        using var reopened = await Repo.OpenAsync(counting, TestData.Passphrase, TimeProvider.System, default);
        Assert.Equal(["a", "b"], (await reopened.ListSnapshotSummariesAsync(null, null, default)).Select(s => s.Manifest.Name));
        Assert.Equal(0, counting.ManifestReads);
        Assert.Equal(1, counting.IndexReads);
    }
}
