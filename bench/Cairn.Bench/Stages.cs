using System.Diagnostics;
using System.Security.Cryptography;
using Cairn.PostgreSql.Physical;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;

namespace Cairn.Bench;

/// <summary>
/// bench/physical-cpu.sh's breakdown: what each stage of the write path costs per GB of a real data directory (a tar
/// of it), on one thread, in the 256 KiB blocks a physical backup stores relation files in. Usage:
/// Cairn.Bench stages FILE. CPU time is the process's (one busy thread), so the machine's load matters little.
/// </summary>
internal static class StagesBench
{
    private const int Block = 256 * 1024;

    public static int Run(string[] args)
    {
        var data = File.ReadAllBytes(args[0]);
        var gb = data.Length / 1e9;
        Console.WriteLine($"file: {data.Length} bytes, {(data.Length + Block - 1) / Block} blocks of 256 KiB; CPU seconds per GB on one thread");
        var key = RandomNumberGenerator.GetBytes(32);
        var hash = new byte[32];
        var output = new byte[Zstd.CompressBound(Block)];
        var sealedBytes = new byte[Zstd.CompressBound(Block) + Aead.Overhead];
        using var aead = new Aead(key);
        var aad = new byte[Aead.BlobContext.Length + ContentId.Size];
        var copy = new byte[Block];

        Measure("copy (memcpy of each block)", gb, data, b => b.CopyTo(copy));
        Measure("CRC-32C (SSE 4.2, one pass)", gb, data, b => Crc32C.Of(b));
        Measure("chunk ID: HMAC-SHA256 (one-shot)", gb, data, b => HMACSHA256.HashData(key, b, hash));
        Measure("SHA-256 (unkeyed, for comparison)", gb, data, b => SHA256.HashData(b, hash));
        foreach (var level in new[] { -1, 1, 2, 3 })
        {
            long stored = 0, incompressible = 0;
            Measure($"zstd level {level}", gb, data, b =>
            {
                var n = Zstd.Compress(b, output, level);
                stored += n;
                incompressible += n > b.Length * 15 / 16 ? 1 : 0;
            });
            Console.WriteLine($"    -> {stored} bytes ({(double)stored / data.Length:0.0000} of the input); blocks saving < 1/16: {incompressible}");
        }
        // Where level 2 gains: per block, the bytes level 2 saves over level 1, and what choosing level 2 only for
        // blocks whose level-1 result is in a band of compression ratios would save and cost.
        var gains = new List<(double Ratio1, int N1, int N2)>();
        var output2 = new byte[Zstd.CompressBound(Block)];
        for (var i = 0; i < data.Length; i += Block)
        {
            var b = data.AsSpan(i, Math.Min(Block, data.Length - i));
            var n1 = Zstd.Compress(b, output, 1);
            var n2 = Zstd.Compress(b, output2, 2);
            gains.Add(((double)n1 / b.Length, n1, n2));
        }
        long all1 = gains.Sum(g => (long)g.N1);
        foreach (var (lo, hi) in new[] { (0.0, 0.05), (0.05, 0.1), (0.1, 0.2), (0.2, 0.3), (0.3, 0.5), (0.5, 1.1) })
        {
            var band = gains.Where(g => g.Ratio1 >= lo && g.Ratio1 < hi).ToList();
            var saved = band.Sum(g => (long)g.N1 - g.N2);
            Console.WriteLine($"    level-1 ratio [{lo:0.00},{hi:0.00}): {band.Count,5} blocks, level 1 {band.Sum(g => (long)g.N1),10} bytes, level 2 saves {saved,9} ({(double)saved / all1:0.0000} of all level-1 bytes)");
        }
        var compressedSizes = new List<int>();
        long total = 0;
        Measure("AES-256-GCM seal of the level-1 output (timed with the compression)", gb, data, b =>
        {
            var n = Zstd.Compress(b, output, 1);
            total += aead.Seal(output.AsSpan(0, n), aad, sealedBytes);
        });
        var t0 = Process.GetCurrentProcess().TotalProcessorTime;
        for (var i = 0; i < data.Length; i += Block)
        {
            var n = Zstd.Compress(data.AsSpan(i, Math.Min(Block, data.Length - i)), output, 1);
            compressedSizes.Add(n);
        }
        var t1 = Process.GetCurrentProcess().TotalProcessorTime;
        var cpu = (t1 - t0).TotalSeconds;
        t0 = Process.GetCurrentProcess().TotalProcessorTime;
        for (var r = 0; r < 3; r++)
        {
            foreach (var n in compressedSizes)
            {
                aead.Seal(output.AsSpan(0, n), aad, sealedBytes);
            }
        }
        t1 = Process.GetCurrentProcess().TotalProcessorTime;
        Console.WriteLine($"{"AES-256-GCM seal alone (level-1 sized messages)",-72} {(t1 - t0).TotalSeconds / 3 / gb,6:0.000} s/GB of input");
        var chunker = new FastCdcChunker(ChunkerParameters.Default, key);
        t0 = Process.GetCurrentProcess().TotalProcessorTime;
        long chunks = 0;
        for (var pos = 0; pos < data.Length;)
        {
            var cut = chunker.FindCut(data.AsSpan(pos), final: true);
            pos += cut;
            chunks++;
        }
        t1 = Process.GetCurrentProcess().TotalProcessorTime;
        Console.WriteLine($"{"gear-hash chunking (FastCDC, repo put / non-relation files)",-72} {(t1 - t0).TotalSeconds / gb,6:0.000} s/GB ({chunks} chunks)");
        _ = cpu;
        return 0;
    }

    private static void Measure(string what, double gb, byte[] data, BlockAction action)
    {
        var t0 = Process.GetCurrentProcess().TotalProcessorTime;
        for (var i = 0; i < data.Length; i += Block)
        {
            action(data.AsSpan(i, Math.Min(Block, data.Length - i)));
        }
        var t1 = Process.GetCurrentProcess().TotalProcessorTime;
        Console.WriteLine($"{what,-72} {(t1 - t0).TotalSeconds / gb,6:0.000} s/GB");
    }

    private delegate void BlockAction(ReadOnlySpan<byte> block);
}
