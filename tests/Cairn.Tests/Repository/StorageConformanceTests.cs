using System.Text;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>The contract of <see cref="IStorage"/>; every backend runs these.</summary>
public abstract class StorageConformanceTests : IDisposable
{
    protected abstract IStorage Storage { get; }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    private static StorageKey Pack(string seed) => new(ObjectKind.Data, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(seed))));

    [Fact]
    public async Task Put_then_get_returns_the_same_bytes()
    {
        var key = Pack("a");
        var data = TestData.Random(100_000, 1);
        await Storage.PutAsync(key, data, default);
        Assert.Equal(data, await Storage.GetAllAsync(key, default));
        Assert.Equal(data.Length, (await Storage.StatAsync(key, default))!.Value.Size);
    }

    [Fact]
    public async Task Get_of_a_range_returns_that_range_and_clips_at_the_end()
    {
        var key = Pack("b");
        var data = TestData.Random(1000, 2);
        await Storage.PutAsync(key, data, default);
        Assert.Equal(data[100..150], await Storage.GetAsync(key, 100, 50, default));
        Assert.Equal(data[990..], await Storage.GetAsync(key, 990, 50, default));
        Assert.Empty(await Storage.GetAsync(key, 5000, 10, default));
    }

    [Fact]
    public async Task Missing_object_throws_not_found_and_stat_is_null()
    {
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => Storage.GetAllAsync(Pack("nope"), default));
        Assert.Null(await Storage.StatAsync(Pack("nope"), default));
    }

    [Fact]
    public async Task List_returns_objects_of_one_kind_only()
    {
        await Storage.PutAsync(Pack("c"), new byte[] { 1 }, default);
        await Storage.PutAsync(new StorageKey(ObjectKind.Index, "i1"), new byte[] { 2 }, default);
        await Storage.PutAsync(new StorageKey(ObjectKind.Snapshot, "s1"), new byte[] { 3 }, default);
        var data = new List<ObjectInfo>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Data, default))
        {
            data.Add(o);
        }
        Assert.Contains(data, o => o.Key == Pack("c"));
        Assert.DoesNotContain(data, o => o.Key.Kind != ObjectKind.Data);
        var idx = new List<ObjectInfo>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, default))
        {
            idx.Add(o);
        }
        Assert.Equal([new StorageKey(ObjectKind.Index, "i1")], idx.Select(o => o.Key));
    }

    [Fact]
    public async Task List_with_a_start_returns_only_the_names_after_it_in_name_order()
    {
        // Three "databases" of WAL names, put out of order, plus a name that sorts between them: the listing after db2's
        // second segment is db2's tail and then everything of db3, in order, and nothing at or before the start.
        var names = new List<string>();
        foreach (var db in new[] { "db3", "db1", "db2" })
        {
            for (var i = 5; i >= 1; i--)
            {
                names.Add($"{db}@0000000100000000000000{i:X2}");
            }
        }
        names.Add("db2@00000002.history");
        names.Add("db2x@000000010000000000000001");
        foreach (var n in names)
        {
            await Storage.PutAsync(new StorageKey(ObjectKind.Named, n), new byte[] { 7 }, default);
        }
        await Storage.PutAsync(new StorageKey(ObjectKind.Snapshot, "db2@000000010000000000000009"), new byte[] { 1 }, default); // another kind
        var listed = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Named, "db2@000000010000000000000002", default))
        {
            Assert.Equal(1, o.Size);
            listed.Add(o.Key.Name);
        }
        var expected = names.Where(n => string.CompareOrdinal(n, "db2@000000010000000000000002") > 0).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, listed);
        Assert.Equal("db2@000000010000000000000003", listed[0]);

        // A caller that wants one prefix stops at its end; a start past every name lists nothing.
        var tail = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Named, "db2@00000001", default))
        {
            if (!o.Key.Name.StartsWith("db2@", StringComparison.Ordinal))
            {
                break;
            }
            tail.Add(o.Key.Name);
        }
        Assert.Equal(6, tail.Count);
        Assert.Equal("db2@00000002.history", tail[^1]);
        await foreach (var o in Storage.ListAsync(ObjectKind.Named, "zz", default))
        {
            Assert.Fail($"listed {o.Key.Name} after the last name");
        }
    }

    [Fact]
    public async Task A_listing_of_several_ranges_returns_exactly_the_names_of_each_range_after_its_start()
    {
        // Three databases' WAL, a name between them (db2x, which starts with "db2" but not "db2@"), a database whose name
        // holds '@' nested in another's prefix (a@b inside a@), and another kind: each range is its prefix's names after its start.
        var names = new List<string>();
        foreach (var db in new[] { "db3", "db1", "db2", "a", "a@b" })
        {
            for (var i = 5; i >= 1; i--)
            {
                names.Add($"{db}@0000000100000000000000{i:X2}");
            }
        }
        names.Add("db2x@000000010000000000000001");
        foreach (var n in names)
        {
            await Storage.PutAsync(new StorageKey(ObjectKind.Named, n), new byte[] { 7 }, default);
        }
        await Storage.PutAsync(new StorageKey(ObjectKind.Snapshot, "db2@000000010000000000000009"), new byte[] { 1 }, default);
        NameRange[] ranges =
        [
            new("db1@", "db1@000000010000000000000004"),
            new("db2@", "db2@00000001000000000000000"),
            new("a@", "a@000000010000000000000003"),
            new("zz@", "zz@"),
        ];
        var listed = new List<string>();
        await foreach (var o in Storage.ListRangesAsync(ObjectKind.Named, ranges, default))
        {
            Assert.Equal(ObjectKind.Named, o.Key.Kind);
            Assert.Equal(1, o.Size);
            listed.Add(o.Key.Name);
        }
        var expected = names.Where(n => ranges.Any(r => n.StartsWith(r.Prefix, StringComparison.Ordinal) && string.CompareOrdinal(n, r.StartAfter) > 0))
            .Order(StringComparer.Ordinal).ToList();
        Assert.Equal(expected, listed.Distinct().Order(StringComparer.Ordinal).ToList());
        Assert.Contains("db1@000000010000000000000005", listed);
        Assert.DoesNotContain("db1@000000010000000000000004", listed); // the start itself is not after it
        Assert.Equal(5, listed.Count(n => n.StartsWith("db2@", StringComparison.Ordinal)));
        Assert.DoesNotContain(listed, n => n.StartsWith("db3@", StringComparison.Ordinal) || n.StartsWith("db2x@", StringComparison.Ordinal));
        Assert.Contains("a@b@000000010000000000000001", listed); // in a@'s range by name (its database is a@b: the caller decides)
        await foreach (var o in Storage.ListRangesAsync(ObjectKind.Named, [], default))
        {
            Assert.Fail($"listed {o.Key.Name} for no range");
        }
    }

    [Fact]
    public async Task Stat_and_list_report_when_the_object_was_stored_in_utc()
    {
        var key = new StorageKey(ObjectKind.Named, "db@000000010000000000000001");
        var before = TimeProvider.System.GetUtcNow();
        await Storage.PutAsync(key, new byte[] { 1, 2, 3 }, default);
        var after = TimeProvider.System.GetUtcNow();
        var stat = (await Storage.StatAsync(key, default))!.Value;
        // File systems stamp with a coarse clock: allow a little slack either side.
        Assert.InRange(stat.LastModified, before - TimeSpan.FromSeconds(2), after + TimeSpan.FromSeconds(2));
        Assert.Equal(TimeSpan.Zero, stat.LastModified.Offset);
        var listed = new List<ObjectInfo>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Named, default))
        {
            listed.Add(o);
        }
        // HTTP dates (an S3 HEAD) have whole seconds, listings may have milliseconds.
        Assert.InRange(listed.Single(o => o.Key == key).LastModified, stat.LastModified - TimeSpan.FromSeconds(1), stat.LastModified + TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Delete_is_idempotent()
    {
        var key = Pack("d");
        await Storage.PutAsync(key, new byte[] { 1 }, default);
        await Storage.DeleteAsync(key, default);
        await Storage.DeleteAsync(key, default);
        Assert.Null(await Storage.StatAsync(key, default));
    }

    [Fact]
    public async Task Put_replaces_an_existing_object_whole()
    {
        var key = new StorageKey(ObjectKind.Lock, "l1");
        await Storage.PutAsync(key, TestData.Random(5000, 3), default);
        await Storage.PutAsync(key, new byte[] { 9, 9 }, default);
        Assert.Equal(new byte[] { 9, 9 }, await Storage.GetAllAsync(key, default));
    }

    [Fact]
    public async Task Cancelled_put_leaves_no_object()
    {
        var key = Pack("e");
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Storage.PutAsync(key, TestData.Random(1000, 4), cts.Token));
        Assert.Null(await Storage.StatAsync(key, default));
    }

    [Fact]
    public async Task Put_if_absent_creates_once_and_never_replaces()
    {
        var key = new StorageKey(ObjectKind.Named, "db@000000010000000000000001");
        Assert.True(await Storage.PutIfAbsentAsync(key, new byte[] { 1, 2, 3 }, default));
        Assert.False(await Storage.PutIfAbsentAsync(key, new byte[] { 4, 5 }, default));
        Assert.Equal(new byte[] { 1, 2, 3 }, await Storage.GetAllAsync(key, default));
    }

    [Fact]
    public async Task Concurrent_puts_if_absent_of_one_key_exactly_one_wins_and_its_bytes_stay()
    {
        for (var round = 0; round < 20; round++)
        {
            var key = new StorageKey(ObjectKind.Named, $"db@0000000100000000000000{round:X2}");
            var payloads = Enumerable.Range(0, 8).Select(i => TestData.Random(64 * 1024, (round * 8) + i)).ToList();
            using var start = new Barrier(payloads.Count);
            var results = await Task.WhenAll(payloads.Select(p => Task.Run(async () =>
            {
                start.SignalAndWait();
                return await Storage.PutIfAbsentAsync(key, p, default);
            })));
            Assert.Equal(1, results.Count(r => r));
            Assert.Equal(payloads[Array.IndexOf(results, true)], await Storage.GetAllAsync(key, default));
        }
    }

    [Fact]
    public async Task Cancelled_put_if_absent_leaves_no_object()
    {
        var key = new StorageKey(ObjectKind.Named, "db@000000010000000000000099");
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Storage.PutIfAbsentAsync(key, TestData.Random(1000, 4), cts.Token));
        Assert.Null(await Storage.StatAsync(key, default));
    }

    [Fact]
    public async Task Concurrent_puts_of_different_objects_all_land()
    {
        var keys = Enumerable.Range(0, 32).Select(i => Pack("p" + i)).ToList();
        await Task.WhenAll(keys.Select((k, i) => Storage.PutAsync(k, TestData.Random(10_000, i), default)));
        foreach (var (k, i) in keys.Select((k, i) => (k, i)))
        {
            Assert.Equal(TestData.Random(10_000, i), await Storage.GetAllAsync(k, default));
        }
    }
}

public sealed class FileSystemStorageConformanceTests : StorageConformanceTests
{
    private readonly TempDir _dir = new();
    private readonly FileSystemStorage _storage;

    public FileSystemStorageConformanceTests() => _storage = new FileSystemStorage(_dir.Path);

    protected override IStorage Storage => _storage;

    public override void Dispose()
    {
        _dir.Dispose();
        base.Dispose();
    }

    [Fact]
    public async Task Leftover_temp_files_are_not_listed_and_are_cleaned()
    {
        Directory.CreateDirectory(Path.Combine(_dir.Path, "data", "ab"));
        await File.WriteAllTextAsync(Path.Combine(_dir.Path, "data", "ab", ".tmp-123"), "half");
        await foreach (var o in _storage.ListAsync(ObjectKind.Data, default))
        {
            Assert.Fail($"listed {o.Key}");
        }
        Assert.Equal(1, await _storage.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: true, default));
        Assert.Equal(1, await _storage.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, default));
        Assert.False(File.Exists(Path.Combine(_dir.Path, "data", "ab", ".tmp-123")));
    }

    [Fact]
    public async Task Cleanup_never_removes_a_live_processes_temp_key_or_lock_file_but_removes_a_dead_ones()
    {
        var self = FileSystemStorage.TempName();
        var dead = self.Replace($"-{Environment.ProcessId}-", "-999999-", StringComparison.Ordinal);
        var old = TimeProvider.System.GetUtcNow().UtcDateTime.AddHours(-3);
        var files = new List<string>();
        foreach (var folder in new[] { "keys", "locks", "wal", "index" })
        {
            Directory.CreateDirectory(Path.Combine(_dir.Path, folder));
            foreach (var name in new[] { self, dead })
            {
                var f = Path.Combine(_dir.Path, folder, name);
                await File.WriteAllTextAsync(f, "in flight");
                File.SetLastWriteTimeUtc(f, old);
                files.Add(f);
            }
        }
        var removed = await _storage.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, default);
        Assert.Equal(4, removed);
        Assert.All(files.Where(f => f.EndsWith(self, StringComparison.Ordinal)), f => Assert.True(File.Exists(f), $"{f} of this live process was removed"));
        Assert.All(files.Where(f => f.EndsWith(dead, StringComparison.Ordinal)), f => Assert.False(File.Exists(f), $"{f} of a dead process was kept"));
    }

    [Fact]
    public async Task Fresh_unattributed_temp_files_in_folders_written_without_a_lock_are_spared()
    {
        Directory.CreateDirectory(Path.Combine(_dir.Path, "keys"));
        var fresh = Path.Combine(_dir.Path, "keys", ".tmp-0123456789abcdef");
        await File.WriteAllTextAsync(fresh, "a key add on another host");
        var stale = Path.Combine(_dir.Path, "keys", ".tmp-fedcba9876543210");
        await File.WriteAllTextAsync(stale, "left by a crash long ago");
        File.SetLastWriteTimeUtc(stale, TimeProvider.System.GetUtcNow().UtcDateTime.AddHours(-2));
        Assert.Equal(1, await _storage.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, default));
        Assert.True(File.Exists(fresh));
        Assert.False(File.Exists(stale));
    }

    [Fact]
    public async Task Object_names_cannot_escape_the_repository()
    {
        await Assert.ThrowsAsync<ArgumentException>(() => _storage.PutAsync(new StorageKey(ObjectKind.Index, "../evil"), new byte[] { 1 }, default));
    }
}

public sealed class InMemoryStorageConformanceTests : StorageConformanceTests
{
    protected override IStorage Storage { get; } = new InMemoryStorage();
}

public sealed class FaultyStorageWithoutFaultsConformanceTests : StorageConformanceTests
{
    protected override IStorage Storage { get; } = new FaultyStorage(new InMemoryStorage());
}
