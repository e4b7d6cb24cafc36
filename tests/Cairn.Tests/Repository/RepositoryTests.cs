using Cairn.Repository;
using Cairn.Repository.Verification;
using Cairn.Repository.Crypto;
using Cairn.Repository.Locks;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Repository;

public class RepositoryTests
{
    [Fact]
    public async Task Put_and_get_round_trip_many_chunks_and_packs()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var data = TestData.Rows(3_000_000, 1);
        var s = await TestData.PutAsync(repo, "big", data);
        Assert.True(s.Manifest.Items[0].Chunks.Count > 50);
        Assert.Equal(data, await TestData.GetAsync(repo, s));
        var packs = 0;
        await foreach (var _ in storage.ListAsync(ObjectKind.Data, default))
        {
            packs++;
        }
        Assert.True(packs > 1, "small pack size should give several packs");
    }

    [Fact]
    public async Task Second_put_of_unchanged_data_adds_almost_nothing()
    {
        using var repo = await TestData.NewRepoAsync();
        var data = TestData.Rows(2_000_000, 2);
        var first = await TestData.PutAsync(repo, "x", data);
        var second = await TestData.PutAsync(repo, "x", data);
        Assert.True(first.Manifest.AddedBytes > 100_000);
        Assert.Equal(0, second.Manifest.AddedBytes);
    }

    [Fact]
    public async Task A_change_in_the_middle_adds_only_a_few_chunks()
    {
        using var repo = await TestData.NewRepoAsync();
        var data = TestData.Random(2_000_000, 3);
        var first = await TestData.PutAsync(repo, "x", data);
        var changed = data[..1_000_000].Concat(TestData.Random(65536, 9)).Concat(data[1_000_000..]).ToArray();
        var second = await TestData.PutAsync(repo, "x", changed);
        // The chunker's gear table is derived from each repository's random key, so where the cuts re-align after the
        // insert varies by repository: seen once at 258 KB of 2 MB (4 chunk re-alignments). A fifth still means "a few chunks, not the file".
        Assert.True(second.Manifest.AddedBytes < first.Manifest.AddedBytes / 5, $"added {second.Manifest.AddedBytes} of {first.Manifest.AddedBytes}");
        Assert.Equal(changed, await TestData.GetAsync(repo, second));
    }

    [Fact]
    public async Task Stored_bytes_do_not_contain_the_plaintext()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var marker = "SECRET-ROW-CONTENT-1234567890"u8.ToArray();
        var data = Enumerable.Repeat(marker, 2000).SelectMany(x => x).ToArray();
        await TestData.PutAsync(repo, "x", data);
        await foreach (var kind in new[] { ObjectKind.Data, ObjectKind.Index, ObjectKind.Snapshot, ObjectKind.Config }.ToAsyncEnumerable())
        {
            await foreach (var o in storage.ListAsync(kind, default))
            {
                var bytes = await storage.GetAllAsync(o.Key, default);
                Assert.Equal(-1, bytes.AsSpan().IndexOf(marker));
            }
        }
    }

    [Fact]
    public async Task Wrong_passphrase_is_refused_and_nothing_is_written()
    {
        var storage = new InMemoryStorage();
        (await TestData.NewRepoAsync(storage)).Dispose();
        var before = storage.Count;
        await Assert.ThrowsAsync<WrongPassphraseException>(() => Repo.OpenAsync(storage, "wrong", TimeProvider.System, default));
        Assert.Equal(before, storage.Count);
    }

    [Fact]
    public async Task Init_refuses_an_existing_repository()
    {
        var storage = new InMemoryStorage();
        (await TestData.NewRepoAsync(storage)).Dispose();
        var e = await Assert.ThrowsAsync<RepositoryException>(() => TestData.NewRepoAsync(storage));
        Assert.Equal(ErrorKind.AlreadyExists, e.Kind);
    }

    [Fact]
    public async Task Added_passphrase_opens_the_same_data_and_removed_one_does_not()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var s = await TestData.PutAsync(repo, "x", TestData.Rows(100_000, 4));
        var packsBefore = await CountAsync(storage, ObjectKind.Data);
        var second = await repo.AddKeyAsync("second one", KdfParameters.Fast, "backup operator", default);
        Assert.Equal(packsBefore, await CountAsync(storage, ObjectKind.Data));
        using (var viaSecond = await Repo.OpenAsync(storage, "second one", TimeProvider.System, default))
        {
            Assert.Equal(TestData.Rows(100_000, 4), await TestData.GetAsync(viaSecond, s));
            await Assert.ThrowsAsync<RepositoryException>(() => viaSecond.RemoveKeyAsync(second, default));
            await viaSecond.RemoveKeyAsync(repo.KeyId, default);
        }
        await Assert.ThrowsAsync<WrongPassphraseException>(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));
        using var again = await Repo.OpenAsync(storage, "second one", TimeProvider.System, default);
        var last = await Assert.ThrowsAsync<RepositoryException>(() => again.RemoveKeyAsync(second, default));
        Assert.Contains("key", last.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_of_a_clean_repository_finds_nothing()
    {
        using var repo = await TestData.NewRepoAsync();
        await TestData.PutAsync(repo, "a", TestData.Rows(500_000, 5));
        await TestData.PutAsync(repo, "b", TestData.Random(500_000, 6));
        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(report.Findings);
        Assert.Equal(2, report.Snapshots);
        Assert.True(report.PacksRead > 0);
    }

    public static TheoryData<string, int> Damage => new()
    {
        { "flip", 0 }, { "flip", 1 }, { "flip", 2 }, { "truncate", 0 }, { "truncate", 1 }, { "truncate", 2 },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public async Task Damaged_pack_is_named_by_verify_and_get_fails_loudly(string how, int where)
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var s = await TestData.PutAsync(repo, "a", TestData.Rows(600_000, 7));
        var pack = (await ListAsync(storage, ObjectKind.Data)).OrderBy(k => k.Name, StringComparer.Ordinal).First();
        storage.Corrupt(pack, b =>
        {
            var pos = where switch { 0 => 10, 1 => b.Length / 2, _ => b.Length - 2 };
            if (how == "flip")
            {
                b[pos] ^= 0x40;
                return b;
            }
            return b[..pos];
        });
        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.True(report.HasDamage);
        var f = Assert.Single(report.Findings, x => x.IsDamage && x.Object.EndsWith(pack.Name, StringComparison.Ordinal));
        Assert.Contains(s.ShortId, f.AffectedSnapshots);
        Assert.Equal(how == "flip" ? FindingKind.Tampered : FindingKind.Truncated, f.Kind);
        // A read either fails loudly or returns exactly the original bytes (when only the pack header was hit).
        try
        {
            Assert.Equal(TestData.Rows(600_000, 7), await TestData.GetAsync(repo, s));
            Assert.True(where == 2, "a damaged blob was read back without error");
        }
        catch (DataDamagedException)
        {
        }
    }

    [Fact]
    public async Task Damaged_manifest_index_and_key_are_reported()
    {
        var storage = new InMemoryStorage();
        using (var repo = await TestData.NewRepoAsync(storage))
        {
            await TestData.PutAsync(repo, "a", TestData.Rows(200_000, 8));
            await TestData.PutAsync(repo, "b", TestData.Rows(200_000, 9));
            var snap = (await ListAsync(storage, ObjectKind.Snapshot)).First();
            storage.Corrupt(snap, b => { b[20] ^= 1; return b; });
            var index = (await ListAsync(storage, ObjectKind.Index)).First();
            storage.Corrupt(index, b => { b[^3] ^= 1; return b; });
            var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: false), null, default);
            Assert.Contains(report.Findings, f => f.Kind == FindingKind.Tampered && f.Object == snap.Path);
            Assert.Contains(report.Findings, f => f.Kind == FindingKind.Tampered && f.Object == index.Path);
        }
        var key = (await ListAsync(storage, ObjectKind.Key)).Single();
        var original = await storage.GetAllAsync(key, default);

        // A key file that is no longer JSON is damaged, and the error names it.
        storage.Corrupt(key, b => { b[0] = (byte)'['; return b; });
        var e = await Assert.ThrowsAnyAsync<RepositoryException>(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));
        Assert.Equal(ErrorKind.Damaged, e.Kind);
        Assert.Contains($"key file {key.Name} is damaged", e.Message, StringComparison.Ordinal);

        // A flipped bit in the wrapped key fails its AES-GCM tag exactly as a wrong passphrase does: the tag cannot
        // tell the two apart, so the one honest answer is "no key opens with this passphrase".
        storage.Corrupt(key, _ =>
        {
            var data = System.Text.Json.JsonSerializer.Deserialize(original, global::Cairn.Repository.RepositoryJson.Default.KeyFileData)!;
            var wrapped = Convert.FromBase64String(data.Wrapped);
            wrapped[20] ^= 0x01;
            return System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(data with { Wrapped = Convert.ToBase64String(wrapped) }, global::Cairn.Repository.RepositoryJson.Default.KeyFileData);
        });
        e = await Assert.ThrowsAnyAsync<RepositoryException>(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));
        Assert.Equal(ErrorKind.WrongPassphrase, e.Kind);

        storage.Corrupt(key, _ => original);
        using var intact = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
    }

    [Fact]
    public async Task Lost_index_shows_as_missing_blobs_of_the_snapshot()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var s = await TestData.PutAsync(repo, "a", TestData.Rows(200_000, 8));
        await storage.DeleteAsync((await ListAsync(storage, ObjectKind.Index)).Single(), default);
        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: false), null, default);
        var f = Assert.Single(report.Findings, f => f.Kind == FindingKind.Missing);
        Assert.Contains(s.ShortId, f.AffectedSnapshots);
    }

    [Fact]
    public async Task Disk_full_during_put_commits_nothing_and_prune_cleans_up()
    {
        var inner = new InMemoryStorage();
        var faulty = new FaultyStorage(inner);
        using var repo = await TestData.NewRepoAsync(faulty);
        var ok = await TestData.PutAsync(repo, "kept", TestData.Rows(300_000, 10));
        var snapshotsBefore = await CountAsync(inner, ObjectKind.Snapshot);
        var start = faulty.Puts;
        faulty.OnPut = (k, n) => n > start + 2 ? FaultyStorage.DiskFull() : null;
        var e = await Assert.ThrowsAnyAsync<IOException>(() => TestData.PutAsync(repo, "failed", TestData.Random(2_000_000, 11)));
        Assert.True(ErrorClassifier.IsNoSpace(e));
        faulty.OnPut = null;
        Assert.Equal(snapshotsBefore, await CountAsync(inner, ObjectKind.Snapshot));
        using var reopened = await Repo.OpenAsync(inner, TestData.Passphrase, TimeProvider.System, default);
        var report = await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.False(report.HasDamage);
        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Orphaned);
        await new Pruner(reopened).PruneAsync(dryRun: false, default);
        var after = await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(after.Findings);
        Assert.Equal(TestData.Rows(300_000, 10), await TestData.GetAsync(reopened, ok));
    }

    [Fact]
    public async Task Disk_full_is_reported_as_disk_full_not_as_a_cancellation_every_time()
    {
        for (var i = 0; i < 25; i++)
        {
            var faulty = new FaultyStorage(new InMemoryStorage());
            using var repo = await TestData.NewRepoAsync(faulty);
            var start = faulty.Puts;
            faulty.OnPut = (k, n) => k.Kind == ObjectKind.Data && n > start + (i % 3) ? FaultyStorage.DiskFull() : null;
            var e = await Assert.ThrowsAnyAsync<Exception>(() => TestData.PutAsync(repo, "x", TestData.Random(1_500_000, i)));
            Assert.True(ErrorClassifier.IsNoSpace(e), $"round {i}: {e.GetType().Name}: {e.Message}");
        }
    }

    [Fact]
    public async Task Prune_frees_forgotten_data_and_keeps_what_is_referenced()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var a = await TestData.PutAsync(repo, "a", TestData.Random(1_000_000, 12));
        var b = await TestData.PutAsync(repo, "b", TestData.Random(1_000_000, 13));
        var shared = TestData.Random(1_000_000, 12).Concat(TestData.Random(300_000, 14)).ToArray();
        var c = await TestData.PutAsync(repo, "c", shared);
        await repo.ForgetAsync(a, default);
        await repo.ForgetAsync(b, default);
        var treeBefore = await TreeAsync(storage);
        var dry = await new Pruner(repo).PruneAsync(dryRun: true, default);
        Assert.True(dry.PacksDeleted > 0);
        // The dry run wrote, replaced and deleted nothing: every object of every kind is still there, unchanged in size.
        Assert.Equal(treeBefore, await TreeAsync(storage));
        var real = await new Pruner(repo).PruneAsync(dryRun: false, default);
        Assert.Equal(dry.PacksDeleted, real.PacksDeleted);
        Assert.Equal(dry.BytesDeleted, real.BytesDeleted);
        Assert.True(real.BytesDeleted > 900_000, $"freed only {real.BytesDeleted}");
        Assert.Equal(shared, await TestData.GetAsync(repo, c));
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        Assert.Equal(shared, await TestData.GetAsync(reopened, c));
        var report = await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(report.Findings);
        Assert.Equal(1, await CountAsync(storage, ObjectKind.Index));
    }

    [Fact]
    public async Task Exclusive_lock_excludes_others_and_shared_locks_coexist()
    {
        var storage = new InMemoryStorage();
        var time = TimeProvider.System;
        await using var s1 = await RepositoryLock.AcquireAsync(storage, time, false, "put", default);
        await using var s2 = await RepositoryLock.AcquireAsync(storage, time, false, "get", default);
        var e = await Assert.ThrowsAsync<RepositoryLockedException>(() => RepositoryLock.AcquireAsync(storage, time, true, "prune", default));
        Assert.Contains("wait for it to finish", e.Message, StringComparison.Ordinal);
        await s1.DisposeAsync();
        await s2.DisposeAsync();
        await using var x = await RepositoryLock.AcquireAsync(storage, time, true, "prune", default);
        await Assert.ThrowsAsync<RepositoryLockedException>(() => RepositoryLock.AcquireAsync(storage, time, false, "put", default));
    }

    [Fact]
    public async Task Lock_of_a_dead_process_on_this_host_is_removed_by_the_next_acquisition_and_reported()
    {
        var storage = new InMemoryStorage();
        var data = new LockData { Host = Environment.MachineName, Pid = 999_999, ProcessStart = "1", Exclusive = true, Created = DateTimeOffset.UnixEpoch, Refreshed = TimeProvider.System.GetUtcNow(), Operation = "prune" };
        await storage.PutAsync(new StorageKey(ObjectKind.Lock, "dead"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(data, global::Cairn.Repository.RepositoryJson.Default.LockData), default);
        var listed = (await RepositoryLock.ListAsync(storage, TimeProvider.System, default)).Single();
        Assert.True(listed.IsStale && listed.ProvablyDead, listed.StaleReason);
        await using var ok = await RepositoryLock.AcquireAsync(storage, TimeProvider.System, false, "put", default);
        var removed = Assert.Single(ok.RemovedStale);
        Assert.Equal("dead", removed.Id);
        Assert.Contains("no longer exists", removed.StaleReason, StringComparison.Ordinal);
        Assert.Equal([ok.Id], (await RepositoryLock.ListAsync(storage, TimeProvider.System, default)).Select(l => l.Id));
    }

    [Fact]
    public async Task Stale_lock_of_another_host_still_needs_unlock()
    {
        var storage = new InMemoryStorage();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var data = new LockData { Host = "another-host", Pid = 1, Exclusive = true, Created = clock.GetUtcNow(), Refreshed = clock.GetUtcNow(), Operation = "prune" };
        await storage.PutAsync(new StorageKey(ObjectKind.Lock, "remote"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(data, global::Cairn.Repository.RepositoryJson.Default.LockData), default);
        clock.Advance(TimeSpan.FromHours(2));
        var e = await Assert.ThrowsAsync<RepositoryLockedException>(() => RepositoryLock.AcquireAsync(storage, clock, false, "put", default));
        Assert.Contains("stale", e.Message, StringComparison.Ordinal);
        Assert.Contains("cairn unlock", e.Message, StringComparison.Ordinal);
        Assert.Single(await RepositoryLock.RemoveAsync(storage, clock, all: false, default));
        await using var ok = await RepositoryLock.AcquireAsync(storage, clock, false, "put", default);
    }

    [Fact]
    public async Task Lock_not_refreshed_for_30_minutes_is_stale_on_any_host()
    {
        var storage = new InMemoryStorage();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var data = new LockData { Host = "another-host", Pid = 1, Exclusive = false, Created = clock.GetUtcNow(), Refreshed = clock.GetUtcNow(), Operation = "put" };
        await storage.PutAsync(new StorageKey(ObjectKind.Lock, "remote"), System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(data, global::Cairn.Repository.RepositoryJson.Default.LockData), default);
        Assert.False((await RepositoryLock.ListAsync(storage, clock, default)).Single().IsStale);
        clock.Advance(TimeSpan.FromMinutes(31));
        Assert.True((await RepositoryLock.ListAsync(storage, clock, default)).Single().IsStale);
    }

    [Fact]
    public async Task Held_lock_is_refreshed_by_the_timer()
    {
        var storage = new InMemoryStorage();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        await using var l = await RepositoryLock.AcquireAsync(storage, clock, false, "put", default);
        for (var i = 0; i < 12; i++)
        {
            clock.Advance(TimeSpan.FromMinutes(5));
            // The refresh runs on the timer's thread: wait for it to have written, rather than hoping 20 ms is enough.
            await Eventually.UntilAsync(async () => (await RepositoryLock.ListAsync(storage, clock, default)).Single().Data.Refreshed == clock.GetUtcNow(), TimeSpan.FromSeconds(30), $"refresh {i + 1}");
        }
        Assert.False((await RepositoryLock.ListAsync(storage, clock, default)).Single().IsStale);
    }

    [Fact]
    public async Task Concurrent_writers_under_shared_locks_both_commit_and_verify_clean()
    {
        var storage = new InMemoryStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var common = TestData.Random(800_000, 20);
        await Task.WhenAll(
            Task.Run(() => TestData.PutAsync(repo, "w1", common.Concat(TestData.Random(200_000, 21)).ToArray())),
            Task.Run(() => TestData.PutAsync(repo, "w2", common.Concat(TestData.Random(200_000, 22)).ToArray())));
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var report = await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.False(report.HasDamage);
        var snapshots = await reopened.ListSnapshotsAsync(default);
        // Both writers committed: exactly one snapshot each, each reading back the bytes its writer put.
        Assert.Equal(["w1", "w2"], snapshots.Select(s => s.Manifest.Items[0].Name).Order(StringComparer.Ordinal));
        foreach (var s in snapshots)
        {
            var tail = s.Manifest.Items[0].Name == "w1" ? 21 : 22;
            Assert.Equal(common.Concat(TestData.Random(200_000, tail)).ToArray(), await TestData.GetAsync(reopened, s));
        }
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

    /// <summary>Every stored object of every kind with its size, in a stable order: a tree to compare before and after.</summary>
    private static async Task<List<string>> TreeAsync(IStorage storage)
    {
        var r = new List<string>();
        foreach (var kind in Enum.GetValues<ObjectKind>())
        {
            await foreach (var o in storage.ListAsync(kind, default))
            {
                r.Add($"{kind}/{o.Key.Name}:{o.Size}");
            }
        }
        r.Sort(StringComparer.Ordinal);
        return r;
    }

    private static async Task<int> CountAsync(IStorage storage, ObjectKind kind) => (await ListAsync(storage, kind)).Count;
}
