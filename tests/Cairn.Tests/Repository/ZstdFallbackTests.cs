using Cairn.Repository.Compression;

namespace Cairn.Tests.Repository;

/// <summary>The managed fallback (ZstdSharp) and the system's libzstd read each other's frames.</summary>
public class ZstdFallbackTests
{
    public static TheoryData<int> Sizes => [0, 1, 4096, 1 << 20, (5 << 20) + 17];

    private static byte[] Data(int size)
    {
        var rng = new Random(size);
        var b = new byte[size];
        for (var i = 0; i < size; i++)
        {
            b[i] = (byte)(i % 251 < 200 ? 'a' + (i % 7) : rng.Next(256)); // compressible, not trivial
        }
        return b;
    }

    [Fact]
    public void The_system_libzstd_is_loaded_here_so_the_cross_checks_compare_two_implementations() => Assert.True(Zstd.NativeAvailable, "libzstd.so.1 did not load: the tests below would compare ZstdSharp with itself");

    [Theory]
    [MemberData(nameof(Sizes))]
    public void What_libzstd_wrote_the_managed_fallback_reads(int size)
    {
        var data = Data(size);
        var frame = Zstd.CompressWith(native: true, data, 3);
        Assert.Equal(data, Zstd.DecompressWith(native: false, frame, size));
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public void What_the_managed_fallback_wrote_libzstd_reads_whole_and_streaming(int size)
    {
        var data = Data(size);
        var frame = Zstd.CompressWith(native: false, data, 3);
        Assert.Equal(data, Zstd.DecompressWith(native: true, frame, size));
        var streamed = new MemoryStream();
        Zstd.DecompressStreaming(frame, new byte[64 << 10], piece => streamed.Write(piece));
        Assert.Equal(data, streamed.ToArray());
    }
}
