using Cairn.Repository;
using Cairn.Repository.Compression;

namespace Cairn.Tests.Repository;

/// <summary>The per-item zstd level of fixed-block items (physical relation files) is chosen by the measured gain on a probe block.</summary>
public class LevelProbeTests
{
    private const int Block = 256 * 1024;

    /// <summary>Records drawn from a vocabulary of 3 000 random 24-byte words: level 2's longer match search finds what level 1's table misses.</summary>
    private static byte[] Vocabulary()
    {
        var rng = new Random(1);
        const string letters = "abcdefghijklmnopqrstuvwxyz0123456789";
        var words = Enumerable.Range(0, 3000).Select(_ => Enumerable.Range(0, 24).Select(_ => (byte)letters[rng.Next(letters.Length)]).ToArray()).ToArray();
        var data = new byte[Block];
        for (var i = 0; i < Block; i += 24)
        {
            words[rng.Next(words.Length)].AsSpan(0, Math.Min(24, Block - i)).CopyTo(data.AsSpan(i));
        }
        return data;
    }

    [Fact]
    public void A_block_on_which_level_2_saves_more_than_the_threshold_gets_level_2()
    {
        var data = Vocabulary();
        var weak = Zstd.Compress(data, 1).Length;
        var strong = Zstd.Compress(data, ItemWriter.LevelProbe.Stronger).Length;
        Assert.True(strong < weak * (1 - ItemWriter.LevelProbe.MinimumGain), $"the test data must favour level 2: {weak} vs {strong} bytes");
        Assert.Equal(ItemWriter.LevelProbe.Stronger, ItemWriter.LevelProbe.Choose(data, 1));
    }

    [Fact]
    public void Blocks_on_which_level_2_saves_little_keep_the_repository_level()
    {
        var filler = new byte[Block];
        filler.AsSpan().Fill((byte)' '); // pgbench's filler: compresses to almost nothing at any level
        var random = new byte[Block];
        new Random(2).NextBytes(random); // does not compress at all
        Assert.Equal(1, ItemWriter.LevelProbe.Choose(filler, 1));
        Assert.Equal(1, ItemWriter.LevelProbe.Choose(random, 1));
        // A repository already at a stronger level is never weakened.
        Assert.Equal(3, ItemWriter.LevelProbe.Choose(Vocabulary(), 3));
    }
}
