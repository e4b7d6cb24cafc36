using System.Globalization;
using System.Text;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Checking;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>The archived WAL of a database as recovery sees it: timelines, continuity, and (reading it) its integrity.</summary>
public static class WalArchive
{
    /// <summary>The archived timeline history files (timeline → content).</summary>
    public static async Task<Dictionary<uint, string>> HistoriesAsync(Repository.Repository repo, string database, IEnumerable<string> walFiles, CancellationToken ct)
    {
        var result = new Dictionary<uint, string>();
        foreach (var h in walFiles.Where(w => w.EndsWith(".history", StringComparison.Ordinal)))
        {
            var data = await NamedFiles.GetAsync(repo, PhysicalOperation.WalObjectName(database, h), ct).ConfigureAwait(false);
            result[Convert.ToUInt32(h[..8], 16)] = Encoding.UTF8.GetString(data);
        }
        return result;
    }

    /// <summary>Segments missing on recovery's path from <paramref name="startWal"/> to the newest archived segment, across timeline switches.</summary>
    public static async Task<List<string>> MissingAsync(Repository.Repository repo, string database, string startWal, CancellationToken ct)
    {
        var wal = await PhysicalOperation.WalFilesAsync(repo, database, ct).ConfigureAwait(false);
        return WalContinuity.Missing(wal, startWal, await HistoriesAsync(repo, database, wal, ct).ConfigureAwait(false));
    }

    /// <summary>
    /// Findings for every database with physical backups: segments missing on the path from each retained
    /// backup's start to the newest segment; with <paramref name="readData"/> also WAL objects that fail
    /// authentication or their hash, and segments whose size differs from the others (a truncated copy).
    /// </summary>
    public static async Task<List<Finding>> CheckAsync(Repository.Repository repo, IReadOnlyList<Snapshot> snapshots, bool readData, double fraction, CancellationToken ct)
    {
        var findings = new List<Finding>();
        foreach (var group in snapshots.Where(x => x.Manifest.Kind == PhysicalOperation.Kind).GroupBy(x => x.Manifest.Name))
        {
            var wal = await PhysicalOperation.WalFilesAsync(repo, group.Key, ct).ConfigureAwait(false);
            Dictionary<uint, string> histories;
            try
            {
                histories = await HistoriesAsync(repo, group.Key, wal, ct).ConfigureAwait(false);
            }
            catch (DataDamagedException e)
            {
                findings.Add(new Finding(FindingKind.Tampered, $"wal/{group.Key}@*.history", e.Message, [.. group.Select(s => s.ShortId)]));
                histories = [];
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var backup in group.OrderBy(x => x.Manifest.Meta["start_wal"], StringComparer.Ordinal))
            {
                foreach (var m in WalContinuity.Missing(wal, backup.Manifest.Meta["start_wal"], histories))
                {
                    if (seen.Add(m))
                    {
                        var affected = group.Where(x => string.CompareOrdinal(x.Manifest.Meta["start_wal"][8..], m[8..]) <= 0).Select(x => x.ShortId).ToList();
                        findings.Add(new Finding(FindingKind.Missing, $"wal/{group.Key}@{m}", $"WAL segment {m} of {group.Key} is missing: point-in-time recovery cannot pass it", affected));
                    }
                }
            }
            foreach (var tli in wal.Where(WalNames.IsSegment).Select(w => Convert.ToUInt32(w[..8], 16)).Distinct().Where(t => t > 1 && !histories.ContainsKey(t)))
            {
                findings.Add(new Finding(FindingKind.Missing, $"wal/{group.Key}@{tli:X8}.history", $"segments of timeline {tli} are archived but its history file is not: recovery cannot follow the switch to it", []));
            }
            if (!readData)
            {
                continue;
            }
            var segments = wal.Where(WalNames.IsSegment).ToList();
            var pick = fraction >= 1 ? segments : [.. segments.Where(s => (uint)s.GetHashCode(StringComparison.Ordinal) % 10000 < fraction * 10000)];
            var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var s in pick)
            {
                try
                {
                    sizes[s] = (await NamedFiles.GetAsync(repo, PhysicalOperation.WalObjectName(group.Key, s), ct).ConfigureAwait(false)).LongLength;
                }
                catch (DataDamagedException e)
                {
                    findings.Add(new Finding(FindingKind.Tampered, $"wal/{group.Key}@{s}", e.Message, Affected(group, s)));
                }
            }
            var usual = sizes.Values.GroupBy(v => v).OrderByDescending(g => g.Count()).Select(g => g.Key).FirstOrDefault();
            foreach (var (s, size) in sizes.Where(x => x.Value != usual || !IsPowerOfTwo(x.Value)))
            {
                findings.Add(new Finding(FindingKind.Truncated, $"wal/{group.Key}@{s}", $"WAL segment {s} holds {size.ToString(CultureInfo.InvariantCulture)} bytes, the others {usual.ToString(CultureInfo.InvariantCulture)}: a partial copy", Affected(group, s)));
            }
        }
        return findings;
    }

    private static bool IsPowerOfTwo(long v) => v > 0 && (v & (v - 1)) == 0;

    private static List<string> Affected(IEnumerable<Snapshot> group, string segment)
        => [.. group.Where(x => string.CompareOrdinal(x.Manifest.Meta["start_wal"][8..], segment[8..]) <= 0).Select(x => x.ShortId)];
}
