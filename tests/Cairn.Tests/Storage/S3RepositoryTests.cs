using Cairn.Repository;
using Cairn.Repository.Verification;
using Cairn.Repository.Locks;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>The repository engine on S3 (s3rver), through the library API: init, write, read, verify, prune, locks.</summary>
public sealed class S3RepositoryTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    [Fact]
    public async Task Repository_on_S3_writes_reads_verifies_and_prunes()
    {
        // WAL puts are create-only (If-None-Match: *), which s3rver ignores: the proxy answers them as AWS does.
        await using var proxy = new FaultProxy(s3.Endpoint) { EmulateConditionalWrites = true };
        var location = s3.NewLocation("repo");
        using var storage = s3.NewStorage(location, endpoint: proxy.Endpoint);
        var a = TestData.Rows(1_500_000, 1);
        var b = TestData.Random(1_200_000, 2);
        var shared = a.Concat(TestData.Random(300_000, 3)).ToArray();
        string cId;
        using (var repo = await TestData.NewRepoAsync(storage))
        {
            await using var l = await repo.LockAsync(exclusive: false, "put", default);
            var sa = await TestData.PutAsync(repo, "a", a);
            await TestData.PutAsync(repo, "b", b);
            cId = (await TestData.PutAsync(repo, "c", shared)).Id;
            Assert.Equal(NamedPutResult.Stored, await NamedFiles.PutAsync(repo, "db@000000010000000000000001", b, default));
            Assert.Equal(NamedPutResult.AlreadyStoredIdentical, await NamedFiles.PutAsync(repo, "db@000000010000000000000001", b, default));
            Assert.Equal(a, await TestData.GetAsync(repo, sa));
        }

        // A second client (a new process) opens the same prefix.
        using var storage2 = s3.NewStorage(location, endpoint: proxy.Endpoint);
        using (var reopened = await Repo.OpenAsync(storage2, TestData.Passphrase, TimeProvider.System, default))
        {
            var snapshots = await reopened.ListSnapshotsAsync(default);
            Assert.Equal(3, snapshots.Count);
            Assert.Equal(b, await NamedFiles.GetAsync(reopened, "db@000000010000000000000001", default));
            var check = await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
            Assert.Empty(check.Findings);

            await using (var x = await reopened.LockAsync(exclusive: true, "prune", default))
            {
                foreach (var s in snapshots.Where(s => s.Id != cId))
                {
                    await reopened.ForgetAsync(s, default);
                }
                var pruned = await new Pruner(reopened).PruneAsync(dryRun: false, default);
                Assert.True(pruned.BytesDeleted > 1_000_000, $"freed only {pruned.BytesDeleted}");
            }
        }

        using var afterPrune = await Repo.OpenAsync(s3.NewStorage(location, endpoint: proxy.Endpoint), TestData.Passphrase, TimeProvider.System, default);
        var left = Assert.Single(await afterPrune.ListSnapshotsAsync(default));
        Assert.Equal(shared, await TestData.GetAsync(afterPrune, left));
        var report = await new Verifier(afterPrune).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(report.Findings);
        await foreach (var l in storage.ListAsync(ObjectKind.Lock, default))
        {
            Assert.Fail($"lock {l.Key} left behind");
        }
    }

    [Fact]
    public async Task Damaged_pack_on_S3_is_found_by_verify()
    {
        var location = s3.NewLocation("damaged");
        using var storage = s3.NewStorage(location);
        using var repo = await TestData.NewRepoAsync(storage);
        await TestData.PutAsync(repo, "a", TestData.Random(600_000, 4));
        ObjectInfo pack = default;
        await foreach (var o in storage.ListAsync(ObjectKind.Data, default))
        {
            pack = o;
        }
        var bytes = await storage.GetAllAsync(pack.Key, default);
        bytes[bytes.Length / 3] ^= 1;
        await storage.PutAsync(pack.Key, bytes, default);

        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);

        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Tampered && f.Object.Contains(pack.Key.Name[..8], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Pack_damaged_at_rest_in_the_servers_storage_is_a_verify_finding_not_an_io_error()
    {
        // Bit rot on the server's disk: the bytes change, the MD5 (ETag) the server keeps beside them does not, so the
        // SDK's check of a whole-object GET fails on every read. Before the fix that was an opaque I/O error (exit 1)
        // that stopped verify at the first such pack; now the bytes reach the repository's own checks.
        var location = s3.NewLocation("rot");
        using var storage = s3.NewStorage(location);
        using var repo = await TestData.NewRepoAsync(storage);
        var snapshots = new[] { await TestData.PutAsync(repo, "kept", TestData.Random(300_000, 6)), await TestData.PutAsync(repo, "a", TestData.Random(600_000, 5)) };
        var packs = new List<ObjectInfo>();
        await foreach (var o in storage.ListAsync(ObjectKind.Data, default))
        {
            packs.Add(o);
        }
        Assert.True(packs.Count >= 2, $"{packs.Count} pack(s)");
        var damaged = packs.OrderByDescending(p => p.Size).First();
        var file = s3.StoredObjectFile(location, damaged.Key);
        var bytes = await File.ReadAllBytesAsync(file);
        bytes[bytes.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(file, bytes);

        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);

        var finding = Assert.Single(report.Findings);
        Assert.Equal(FindingKind.Tampered, finding.Kind);
        Assert.Contains(damaged.Key.Name[..8], finding.Object, StringComparison.Ordinal);
        Assert.Contains("does not match its name", finding.Detail, StringComparison.Ordinal);
        Assert.NotEmpty(finding.AffectedSnapshots);
        Assert.All(finding.AffectedSnapshots, a => Assert.Contains(snapshots, s => s.Id.StartsWith(a, StringComparison.Ordinal)));
        // Verify went on past the damaged pack and read every other one.
        Assert.Equal(packs.Count, report.PacksRead);
    }

    [Fact]
    public async Task An_object_other_than_a_pack_damaged_at_rest_stays_an_error_and_is_never_returned()
    {
        // Only packs, indexes and snapshots (which every reader, the copier included, checks by content) are read
        // without the SDK's MD5 check after two mismatches; a damaged config or key file must not reach a byte copy.
        var location = s3.NewLocation("rot-config");
        using var storage = s3.NewStorage(location, new Cairn.Storage.S3.S3Options { Retry = new Cairn.Storage.S3.S3RetryOptions { MaxAttempts = 4, BaseDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(10) } });
        var key = StorageKey.Config;
        await storage.PutAsync(key, TestData.Random(5_000, 8), default);
        var file = s3.StoredObjectFile(location, key);
        var bytes = await File.ReadAllBytesAsync(file);
        bytes[bytes.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(file, bytes);

        var e = await Assert.ThrowsAnyAsync<Exception>(() => storage.GetAllAsync(key, default));
        Assert.Contains("checksum", e.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task Body_damaged_once_in_transit_is_read_again_and_arrives_whole()
    {
        await using var proxy = new FaultProxy(s3.Endpoint);
        var location = s3.NewLocation("transit");
        using var storage = s3.NewStorage(location, endpoint: proxy.Endpoint);
        var key = new StorageKey(ObjectKind.Data, new string('a', 64));
        var data = TestData.Random(200_000, 7);
        await storage.PutAsync(key, data, default);
        var corrupted = 0;
        proxy.OnRequest = r => r.Method == "GET" && r.Path.Contains(key.Name, StringComparison.Ordinal) && Interlocked.Increment(ref corrupted) == 1 ? new Fault.CorruptResponseBody() : null;

        var read = await storage.GetAllAsync(key, default);

        Assert.Equal(data, read);
        Assert.Equal(2, corrupted);
    }

    [Fact]
    public async Task Two_processes_racing_for_the_exclusive_lock_on_S3_never_both_win()
    {
        var location = s3.NewLocation("locks");
        using var one = s3.NewStorage(location);
        using var two = s3.NewStorage(location);
        for (var round = 0; round < 15; round++)
        {
            using var start = new Barrier(2);
            var results = await Task.WhenAll(new[] { one, two }.Select(storage => Task.Run(async () =>
            {
                start.SignalAndWait();
                try
                {
                    return await RepositoryLock.AcquireAsync(storage, TimeProvider.System, exclusive: true, "prune", default);
                }
                catch (RepositoryLockedException)
                {
                    return null;
                }
            })));
            var winners = results.Where(r => r is not null).ToList();
            Assert.True(winners.Count == 1, $"round {round}: {winners.Count} processes hold the exclusive lock");
            Assert.Single(await RepositoryLock.ListAsync(one, TimeProvider.System, default));
            await winners[0]!.DisposeAsync();
            Assert.Empty(await RepositoryLock.ListAsync(two, TimeProvider.System, default));
        }
    }

    [Fact]
    public async Task Shared_lock_racing_an_exclusive_lock_on_S3_never_both_win()
    {
        var location = s3.NewLocation("locks-mixed");
        using var one = s3.NewStorage(location);
        using var two = s3.NewStorage(location);
        for (var round = 0; round < 10; round++)
        {
            using var start = new Barrier(2);
            var results = await Task.WhenAll(new[] { (one, true), (two, false) }.Select(p => Task.Run(async () =>
            {
                start.SignalAndWait();
                try
                {
                    return await RepositoryLock.AcquireAsync(p.Item1, TimeProvider.System, exclusive: p.Item2, p.Item2 ? "prune" : "backup", default);
                }
                catch (RepositoryLockedException)
                {
                    return null;
                }
            })));
            var winners = results.Where(r => r is not null).ToList();
            Assert.True(winners.Count == 1, $"round {round}: {winners.Count} processes hold conflicting locks");
            await winners[0]!.DisposeAsync();
        }
    }
}
