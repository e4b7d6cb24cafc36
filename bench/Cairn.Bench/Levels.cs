using System.Diagnostics;
using System.Security.Cryptography;
using Cairn.PostgreSql.Physical;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;

namespace Cairn.Bench;

/// <summary>
/// bench/physical-levels.sh's measurement: what each zstd level (1..6) and each per-file choice of level costs and saves on
/// a real data directory, split the way a physical backup splits it (relation files in fixed 256 KiB blocks, other files
/// in content-defined chunks). Usage: Cairn.Bench levels DATA_DIRECTORY. Every piece is compressed at every level once,
/// timed per piece on one thread (Stopwatch: wall time, so on a loaded machine it includes waiting for a core and
/// only the ratios between levels mean much), and the strategies are
/// computed from those sizes and times, including what their probes cost.
/// </summary>
internal static class LevelsBench
{
    private const int Block = 256 * 1024;
    private static readonly int[] Levels = [1, 2, 3, 4, 5, 6];

    private sealed record Piece(string File, bool Relation, bool FirstFull, long[] Bytes, double[] Seconds);

    public static int Run(string[] args)
    {
        var root = Path.GetFullPath(args[0]);
        var chunker = new FastCdcChunker(ChunkerParameters.Default, RandomNumberGenerator.GetBytes(32));
        var output = new byte[Zstd.CompressBound(8 * 1024 * 1024)];
        var pieces = new List<Piece>();
        long input = 0, relationInput = 0;
        foreach (var path in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var rel = Path.GetRelativePath(root, path);
            if (rel.StartsWith("pg_wal/", StringComparison.Ordinal) || rel is "postmaster.pid" or "postmaster.opts")
            {
                continue;
            }
            byte[] data;
            try
            {
                data = File.ReadAllBytes(path);
            }
            catch (FileNotFoundException)
            {
                continue; // removed by the running server meanwhile (pg_internal.init, temporary files)
            }
            input += data.Length;
            var relation = RelationPages.IsRelationData(rel);
            if (relation)
            {
                relationInput += data.Length;
            }
            var first = true;
            for (var pos = 0; pos < data.Length;)
            {
                var n = relation ? Math.Min(Block, data.Length - pos) : chunker.FindCut(data.AsSpan(pos), final: true);
                var piece = data.AsSpan(pos, n);
                var bytes = new long[Levels.Length];
                var seconds = new double[Levels.Length];
                for (var l = 0; l < Levels.Length; l++)
                {
                    var t0 = Stopwatch.GetTimestamp();
                    bytes[l] = Zstd.Compress(piece, output, Levels[l]);
                    seconds[l] = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                }
                pieces.Add(new Piece(rel, relation, relation && first && n == Block, bytes, seconds));
                first = false;
                pos += n;
            }
        }
        var gb = input / 1e9;
        Console.WriteLine($"data directory {root}: {input} bytes ({relationInput} in relation files, fixed 256 KiB blocks; the rest in content-defined chunks), {pieces.Count} pieces");
        Console.WriteLine("seconds = one thread's compression time per GB of the whole directory (Stopwatch per piece); bytes = zstd output (no encryption, no pack overhead)");
        Console.WriteLine($"| strategy | compressed bytes | vs level 1 | s/GB | vs level 1 |");
        Console.WriteLine("|---|---|---|---|---|");
        long base1 = pieces.Sum(p => p.Bytes[0]);
        var t1 = pieces.Sum(p => p.Seconds[0]);
        void Row(string name, long bytes, double seconds)
            => Console.WriteLine($"| {name} | {bytes} | {(double)bytes / base1:0.0000} | {seconds / gb:0.000} | {seconds / t1:0.00} |");
        for (var l = 0; l < Levels.Length; l++)
        {
            Row($"level {Levels[l]} everywhere", pieces.Sum(p => p.Bytes[l]), pieces.Sum(p => p.Seconds[l]));
        }
        // Relation files at level R, other files at level 1 (what a per-file choice can reach at most per level).
        for (var l = 1; l < Levels.Length; l++)
        {
            Row($"relation files level {Levels[l]}, others 1", pieces.Sum(p => p.Relation ? p.Bytes[l] : p.Bytes[0]), pieces.Sum(p => p.Relation ? p.Seconds[l] : p.Seconds[0]));
        }
        // Per file, by a probe of its first full block: level S when S saved at least `gain` of level W's bytes there.
        foreach (var (weak, strong) in new[] { (1, 2), (1, 3), (1, 4), (2, 4), (1, 5), (1, 6), (2, 6), (2, 5) })
        {
            foreach (var gain in new[] { 0.0, 0.02, 0.05, 0.10, 0.15, 0.20 })
            {
                var (bytes, seconds) = Probe(pieces, weak, strong, gain);
                Row($"probe per file: {strong} if it saves >= {gain:0%} of {weak} on the first block, else {weak}", bytes, seconds);
            }
        }
        // Per block, both levels, the smaller kept (the upper bound of a per-block choice, paying both compressions).
        foreach (var (weak, strong) in new[] { (1, 2), (1, 3), (2, 3) })
        {
            Row($"per block: {weak} and {strong}, the smaller kept", pieces.Sum(p => Math.Min(p.Bytes[weak - 1], p.Bytes[strong - 1])), pieces.Sum(p => p.Seconds[weak - 1] + p.Seconds[strong - 1]));
        }
        // Where the bytes and the time go: the largest files, level 1 / 2 / 4 / 6 bytes and one thread's seconds.
        Console.WriteLine();
        Console.WriteLine("| file | bytes | level 1 | level 2 | level 4 | level 6 | s at 1 / 2 / 4 / 6 |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var f in pieces.GroupBy(p => p.File).OrderByDescending(g => g.Sum(p => p.Bytes[0])).Take(15))
        {
            long B(int l) => f.Sum(p => p.Bytes[l - 1]);
            double S(int l) => f.Sum(p => p.Seconds[l - 1]);
            Console.WriteLine($"| {f.Key} | {new FileInfo(Path.Combine(root, f.Key)).Length} | {B(1)} | {B(2)} | {B(4)} | {B(6)} | {S(1):0.000} / {S(2):0.000} / {S(4):0.000} / {S(6):0.000} |");
        }
        return 0;
    }

    /// <summary>Each relation file's level decided by its first full block (compressed at both levels: the probe's cost counted).</summary>
    private static (long Bytes, double Seconds) Probe(List<Piece> pieces, int weak, int strong, double gain)
    {
        long bytes = 0;
        double seconds = 0;
        var w = weak - 1;
        var s = strong - 1;
        foreach (var file in pieces.GroupBy(p => p.File))
        {
            var level = w;
            if (file.FirstOrDefault(p => p.FirstFull) is { } probe)
            {
                seconds += probe.Seconds[w] + probe.Seconds[s];
                level = probe.Bytes[s] <= probe.Bytes[w] * (1 - gain) ? s : w;
            }
            foreach (var p in file)
            {
                var l = p.Relation ? level : 0;
                bytes += p.Bytes[l];
                seconds += p.Seconds[l];
            }
        }
        return (bytes, seconds);
    }
}
