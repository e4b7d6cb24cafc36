using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;
using Counting = Cairn.Tests.Repository.SnapshotIndexTests.CountingStorage;

namespace Cairn.Tests.Repository;

/// <summary>
/// Coalesced reads (Repository.Coalescing): neighbouring blobs of a pack come in one ranged request, every blob is still
/// authenticated before a byte of its batch is written, and damage names the blob. Run on a folder and on s3rver.
/// </summary>
public abstract class CoalescedReadCases
{
    protected abstract IStorage NewStorage();

    [Fact]
    public async Task An_item_is_read_with_one_request_per_pack_instead_of_one_per_blob()
    {
        var counting = new Counting(NewStorage());
        using var repo = await TestData.NewRepoAsync(counting);
        var data = TestData.Rows(1_500_000, 11);
        var s = await TestData.PutAsync(repo, "a", data);
        var item = s.Manifest.Items[0];
        var blobs = item.Chunks.Distinct().Count();
        var packs = item.Chunks.Select(c => repo.Index[ContentId.Parse(c)].Pack).Distinct().Count();
        Assert.True(blobs > 4 * packs, $"the test needs many blobs per pack: {blobs} blobs in {packs} packs");

        var before = counting.DataReads;
        Assert.Equal(data, await TestData.GetAsync(repo, s));
        Assert.Equal(packs, counting.DataReads - before);

        // The counter counts what the reader asks for: one request per blob without coalescing.
        repo.Coalescing = ReadCoalescing.PerBlob;
        before = counting.DataReads;
        Assert.Equal(data, await TestData.GetAsync(repo, s));
        Assert.Equal(blobs, counting.DataReads - before);
    }

    [Fact]
    public async Task Blobs_across_packs_out_of_order_and_repeated_come_back_in_item_order()
    {
        var counting = new Counting(NewStorage());
        using var repo = await TestData.NewRepoAsync(counting);
        var a = TestData.Rows(1_200_000, 12);
        await TestData.PutAsync(repo, "a", a);
        // b's chunks are mostly a's (deduplicated): its second half first, then its first half twice.
        var b = a[400_000..].Concat(a[..400_000]).Concat(a[..400_000]).ToArray();
        var s = await TestData.PutAsync(repo, "b", b);
        var item = s.Manifest.Items[0];
        var locations = item.Chunks.Select(c => repo.Index[ContentId.Parse(c)]).ToList();
        var packs = locations.Select(l => l.Pack).Distinct().Count();
        Assert.True(packs >= 3, $"the item should span packs: {packs}");
        Assert.True(item.Chunks.Count > item.Chunks.Distinct().Count() + 10, "the item should repeat chunks");
        Assert.Contains(locations.GroupBy(l => l.Pack), g => !g.Select(l => l.Offset).SequenceEqual(g.Select(l => l.Offset).Order()));

        var before = counting.DataReads;
        Assert.Equal(b, await TestData.GetAsync(repo, s));
        Assert.Equal(packs, counting.DataReads - before);
    }

    [Fact]
    public async Task A_damaged_blob_in_the_middle_of_a_range_is_named_and_nothing_of_its_batch_is_written()
    {
        var storage = NewStorage();
        var counting = new Counting(storage);
        using var repo = await TestData.NewRepoAsync(counting);
        var data = TestData.Rows(1_500_000, 13);
        var s = await TestData.PutAsync(repo, "a", data);
        var item = s.Manifest.Items[0];
        var (victim, at) = MiddleBlob(repo, item);
        await ChangePackAsync(storage, at.Pack, b => b[at.Offset + (at.Length / 2)] ^= 0x20);

        var output = new MemoryStream();
        var before = counting.DataReads;
        var e = await Assert.ThrowsAsync<DataDamagedException>(() => repo.ReadItemAsync(item, output, null, default));
        Assert.Contains(victim.Short, e.Message, StringComparison.Ordinal);
        Assert.True(counting.DataReads - before < item.Chunks.Count / 4, "the damaged blob should sit in a coalesced range");
        // Whatever was written is the item's start, and it ends before the damaged blob.
        Assert.True(output.Length <= OffsetInItem(repo, item, victim), $"{output.Length} bytes written");
        Assert.Equal(data[..(int)output.Length], output.ToArray());
    }

    [Fact]
    public async Task A_truncated_or_missing_pack_names_the_blob()
    {
        var storage = NewStorage();
        using var repo = await TestData.NewRepoAsync(storage);
        var s = await TestData.PutAsync(repo, "a", TestData.Rows(1_500_000, 14));
        var item = s.Manifest.Items[0];
        var (victim, at) = MiddleBlob(repo, item);
        var key = new StorageKey(ObjectKind.Data, at.Pack.ToHex());
        var whole = await storage.GetAsync(key, 0, -1, default);
        await storage.DeleteAsync(key, default);
        await storage.PutAsync(key, whole.AsMemory(0, (int)at.Offset + 10), default);
        var e = await Assert.ThrowsAsync<DataDamagedException>(() => repo.ReadItemAsync(item, new MemoryStream(), null, default));
        Assert.Contains($"pack {at.Pack.Short} is truncated: blob {victim.Short} should be {at.Length} bytes at offset {at.Offset}, found 10", e.Message, StringComparison.Ordinal);

        await storage.DeleteAsync(key, default);
        e = await Assert.ThrowsAsync<DataDamagedException>(() => repo.ReadItemAsync(item, new MemoryStream(), null, default));
        Assert.Contains($"pack {at.Pack.Short} holding blob", e.Message, StringComparison.Ordinal);
        Assert.Contains("is missing from the repository", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Many_small_items_are_read_many_per_request_and_a_damaged_one_is_never_handed_out()
    {
        var storage = NewStorage();
        var counting = new Counting(storage);
        using var repo = await TestData.NewRepoAsync(counting);
        var contents = Enumerable.Range(0, 60).ToDictionary(i => $"f{i}", i => TestData.Rows(3_000 + (i * 97), 100 + i));
        Snapshot s;
        await using (var w = repo.BeginWrite(new RepositoryOptions { Workers = 2 }))
        {
            foreach (var (name, bytes) in contents)
            {
                await w.AddStreamAsync(name, new MemoryStream(bytes), null, default);
            }
            s = await w.CommitAsync("small", "file", null, default);
        }
        var items = s.Manifest.Items.Where(i => i.Type == "stream").ToList();
        Assert.Equal(60, items.Count);
        var blobs = items.SelectMany(i => i.Chunks).Distinct().Count();
        var packs = items.SelectMany(i => i.Chunks).Select(c => repo.Index[ContentId.Parse(c)].Pack).Distinct().Count();

        var before = counting.DataReads;
        var got = await ReadAllAsync(repo, items);
        Assert.Equal(contents.OrderBy(kv => kv.Key), got.OrderBy(kv => kv.Key));
        Assert.Equal(packs, counting.DataReads - before);
        Assert.True(packs * 5 < blobs, $"{blobs} blobs in {packs} packs");

        repo.Coalescing = ReadCoalescing.PerBlob;
        before = counting.DataReads;
        Assert.Equal(contents.OrderBy(kv => kv.Key), (await ReadAllAsync(repo, items)).OrderBy(kv => kv.Key));
        Assert.Equal(blobs, counting.DataReads - before);
        repo.Coalescing = ReadCoalescing.Default;

        var victimItem = items[30];
        var victim = ContentId.Parse(victimItem.Chunks[0]);
        var at = repo.Index[victim];
        await ChangePackAsync(storage, at.Pack, b => b[at.Offset + 20] ^= 0x01);
        var handedOut = new System.Collections.Concurrent.ConcurrentBag<string>();
        var e = await Assert.ThrowsAsync<DataDamagedException>(() => repo.ReadItemsAsync(items, async (item, fill, c) =>
        {
            await fill(new MemoryStream(), c);
            handedOut.Add(item.Name);
        }, 2, default));
        Assert.Contains(victim.Short, e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(victimItem.Name, handedOut);
    }

    [Fact]
    public async Task Reading_a_range_into_a_buffer_returns_what_a_get_returns()
    {
        var storage = NewStorage();
        var reader = Assert.IsAssignableFrom<IRangeReadStorage>(storage);
        var key = new StorageKey(ObjectKind.Data, ContentId.Sha256("x"u8).ToHex());
        var bytes = TestData.Random(100_000, 15);
        await storage.PutAsync(key, bytes, default);
        var buffer = new byte[30_000];
        Assert.Equal(30_000, await reader.ReadRangeAsync(key, 1_000, buffer, default));
        Assert.Equal(bytes[1_000..31_000], buffer);
        Assert.Equal(10_000, await reader.ReadRangeAsync(key, 90_000, buffer, default)); // the bytes that exist
        Assert.Equal(bytes[90_000..], buffer[..10_000]);
        Assert.Equal(0, await reader.ReadRangeAsync(key, 100_000, buffer, default));
        await Assert.ThrowsAsync<ObjectNotFoundException>(() => reader.ReadRangeAsync(new StorageKey(ObjectKind.Data, ContentId.Sha256("y"u8).ToHex()), 0, buffer, default));
    }

    private static async Task<Dictionary<string, byte[]>> ReadAllAsync(Repo repo, List<ManifestItem> items)
    {
        var got = new System.Collections.Concurrent.ConcurrentDictionary<string, byte[]>();
        await repo.ReadItemsAsync(items, async (item, fill, c) =>
        {
            var ms = new MemoryStream();
            await fill(ms, c);
            Assert.True(got.TryAdd(item.Name, ms.ToArray()), $"{item.Name} handed out twice");
        }, 2, default);
        return new Dictionary<string, byte[]>(got);
    }

    /// <summary>A blob of the item with other blobs of the item before and after it in the same pack.</summary>
    private static (ContentId Id, BlobLocation At) MiddleBlob(Repo repo, ManifestItem item)
    {
        var byPack = item.Chunks.Distinct().Select(ContentId.Parse).Select(id => (Id: id, At: repo.Index[id]))
            .GroupBy(x => x.At.Pack).OrderByDescending(g => g.Count()).First().OrderBy(x => x.At.Offset).ToList();
        Assert.True(byPack.Count >= 5, $"{byPack.Count} blobs in the fullest pack");
        return byPack[byPack.Count / 2];
    }

    private static long OffsetInItem(Repo repo, ManifestItem item, ContentId id)
    {
        long offset = 0;
        foreach (var c in item.Chunks.Select(ContentId.Parse))
        {
            if (c == id)
            {
                return offset;
            }
            offset += repo.Index[c].RawLength;
        }
        throw new InvalidOperationException("not in the item");
    }

    private static async Task ChangePackAsync(IStorage storage, ContentId pack, Action<byte[]> change)
    {
        var key = new StorageKey(ObjectKind.Data, pack.ToHex());
        var bytes = await storage.GetAsync(key, 0, -1, default);
        change(bytes);
        await storage.DeleteAsync(key, default);
        await storage.PutAsync(key, bytes, default);
    }
}

public sealed class CoalescedReadFolderTests : CoalescedReadCases, IDisposable
{
    private readonly TempDir _dir = new();

    protected override IStorage NewStorage() => new FileSystemStorage(_dir.File($"repo-{Guid.NewGuid():N}"));

    public void Dispose() => _dir.Dispose();
}

public sealed class CoalescedReadS3Tests(S3rverFixture s3) : CoalescedReadCases, IClassFixture<S3rverFixture>
{
    protected override IStorage NewStorage() => s3.NewStorage("coalesce");
}

/// <summary>The range planner's bounds: holes and range size.</summary>
public sealed class ReadRangePlanTests
{
    private static readonly ContentId PackA = ContentId.Sha256("a"u8);
    private static readonly ContentId PackB = ContentId.Sha256("b"u8);

    [Fact]
    public void Neighbours_merge_within_the_hole_and_size_limits_and_packs_never_mix()
    {
        var limits = new ReadCoalescing(MaxRangeBytes: 1000, MaxGapBytes: 50, BatchRawBytes: 1 << 20, ReadAhead: 2);
        var blobs = new Dictionary<ContentId, BlobLocation>
        {
            [Id(1)] = new(PackA, 300, 100, 1), // out of order on purpose
            [Id(2)] = new(PackA, 0, 100, 1),
            [Id(3)] = new(PackA, 100, 100, 1),
            [Id(4)] = new(PackA, 250, 50, 1),   // hole of 50 after [0, 200): merged
            [Id(5)] = new(PackA, 451, 100, 1),  // hole of 51: a new range
            [Id(6)] = new(PackA, 551, 400, 1),
            [Id(7)] = new(PackA, 951, 200, 1),  // 451..1151 = 700 <= 1000: merged
            [Id(8)] = new(PackA, 1151, 400, 1), // 451..1551 = 1100 > 1000: a new range
            [Id(9)] = new(PackA, 2000, 5000, 1), // larger than the limit: alone
            [Id(10)] = new(PackB, 400, 10, 1),
        };
        var ranges = Repo.PlanRanges(blobs, limits).Select(r => (r.Pack, r.Offset, r.Length, string.Join(",", r.Blobs.Select(b => Array.IndexOf(blobs.Keys.ToArray(), b.Id) + 1)))).ToList();
        Assert.Equal(
            [(PackA, 0L, 400L, "2,3,4,1"), (PackA, 451L, 700L, "5,6,7"), (PackA, 1151L, 400L, "8"), (PackA, 2000L, 5000L, "9"), (PackB, 400L, 10L, "10")],
            ranges.OrderBy(r => r.Pack == PackB).ThenBy(r => r.Offset));
    }

    private static ContentId Id(int i) => ContentId.Sha256(BitConverter.GetBytes(i));
}
