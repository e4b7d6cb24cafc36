using Cairn.Repository.Chunking;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

public class ChunkerTests
{
    private static readonly ChunkerParameters Small = new(4 * 1024, 16 * 1024, 64 * 1024);
    private static readonly byte[] Seed = new byte[32];

    private static async Task<List<byte[]>> ChunksOf(byte[] data, FastCdcChunker chunker)
    {
        var result = new List<byte[]>();
        await foreach (var c in chunker.ChunkAsync(new MemoryStream(data), CancellationToken.None))
        {
            result.Add(c.Span.ToArray());
            c.Return();
        }
        return result;
    }

    [Fact]
    public async Task Chunks_concatenate_to_the_input_and_respect_size_bounds()
    {
        var data = TestData.Random(1_000_000, 1);
        var chunks = await ChunksOf(data, new FastCdcChunker(Small, Seed));
        Assert.Equal(data, chunks.SelectMany(c => c).ToArray());
        Assert.All(chunks.SkipLast(1), c => Assert.InRange(c.Length, Small.Min, Small.Max));
        var avg = data.Length / (double)chunks.Count;
        Assert.InRange(avg, Small.Average / 2.0, Small.Average * 2.0);
    }

    [Fact]
    public async Task Insertion_in_the_middle_changes_only_nearby_chunks()
    {
        var data = TestData.Random(2_000_000, 2);
        var changed = data[..1_000_000].Concat(TestData.Random(65536, 3)).Concat(data[1_000_000..]).ToArray();
        var chunker = new FastCdcChunker(Small, Seed);
        var a = (await ChunksOf(data, chunker)).Select(Convert.ToHexString).ToHashSet();
        var b = await ChunksOf(changed, chunker);
        var reused = b.Count(c => a.Contains(Convert.ToHexString(c)));
        Assert.True(reused >= b.Count - 8, $"only {reused} of {b.Count} chunks were reused after an insertion");
    }

    [Fact]
    public async Task Different_seeds_cut_differently()
    {
        var data = TestData.Random(500_000, 4);
        var a = await ChunksOf(data, new FastCdcChunker(Small, Seed));
        var b = await ChunksOf(data, new FastCdcChunker(Small, Enumerable.Repeat((byte)7, 32).ToArray()));
        Assert.NotEqual(a.Select(c => c.Length), b.Select(c => c.Length));
    }

    [Fact]
    public async Task Empty_input_gives_no_chunks()
    {
        Assert.Empty(await ChunksOf([], new FastCdcChunker(Small, Seed)));
    }

    [Fact]
    public void Invalid_parameters_are_refused()
    {
        Assert.Throws<InvalidDataException>(() => new FastCdcChunker(new ChunkerParameters(1024, 3000, 8192), Seed));
    }
}
