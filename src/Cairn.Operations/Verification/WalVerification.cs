using System.Globalization;
using System.Text;
using Cairn.Operations.Physical;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Verification;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Verification;

/// <summary>
/// The archived WAL as recovery needs it, for every database with physical backups: segments missing on the
/// path from each retained backup's start to the newest segment (across timeline switches), timelines without
/// their history file; with read-data also WAL objects that fail authentication or their hash, and segments
/// whose size differs from the others (a partial copy).
/// </summary>
public static class WalVerification
{
    public static async Task<List<Finding>> VerifyAsync(Repository.Repository repo, IReadOnlyList<Snapshot> snapshots, bool readData, double fraction, int seed, CancellationToken ct)
    {
        var findings = new List<Finding>();
        var groups = snapshots.Where(x => x.Manifest.Kind == BackupKinds.Physical).GroupBy(x => x.Manifest.Name).ToList();
        // The archive as it is now (never a cache), listed once for every database.
        var all = groups.Count > 0 ? await WalArchive.ListByDatabaseAsync(repo.Storage, ct).ConfigureAwait(false) : [];
        foreach (var group in groups)
        {
            var archive = new WalArchive(repo, group.Key);
            var backups = group.Select(s => (Snapshot: s, Meta: PhysicalBackupMeta.Of(s))).ToList();
            var archived = all.GetValueOrDefault(group.Key) ?? [];
            Dictionary<uint, string> histories;
            try
            {
                histories = await archive.HistoriesAsync(archived, ct).ConfigureAwait(false);
            }
            catch (DataDamagedException e)
            {
                findings.Add(new Finding(FindingKind.Tampered, archive.ObjectPath("*.history"), e.Message, [.. group.Select(s => s.ShortId)]));
                histories = [];
            }
            var names = archived.Select(w => w.Name).ToList();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (_, meta) in backups.OrderBy(x => x.Meta.StartWal, StringComparer.Ordinal))
            {
                foreach (var m in WalContinuity.Missing(names, meta.StartWal, histories))
                {
                    if (seen.Add(m))
                    {
                        findings.Add(new Finding(FindingKind.Missing, archive.ObjectPath(m), $"WAL segment {m} of {group.Key} is missing: point-in-time recovery cannot pass it", Affected(backups, m)));
                    }
                }
            }
            foreach (var tli in archived.Where(w => w.IsSegment).Select(w => Convert.ToUInt32(w.Name[..8], 16)).Distinct().Where(t => t > 1 && !histories.ContainsKey(t)))
            {
                findings.Add(new Finding(FindingKind.Missing, archive.ObjectPath($"{tli:X8}.history"), $"segments of timeline {tli} are archived but its history file is not: recovery cannot follow the switch to it", []));
            }
            if (!readData)
            {
                continue;
            }
            var segments = archived.Where(w => w.IsSegment).Select(w => w.Name).ToList();
            var pick = fraction >= 1 ? segments : [.. segments.Where(s => Picked(s, seed, fraction))];
            var sizes = new Dictionary<string, long>(StringComparer.Ordinal);
            foreach (var s in pick)
            {
                try
                {
                    sizes[s] = (await archive.GetAsync(s, ct).ConfigureAwait(false)).LongLength;
                }
                catch (DataDamagedException e)
                {
                    findings.Add(new Finding(FindingKind.Tampered, archive.ObjectPath(s), e.Message, Affected(backups, s)));
                }
            }
            var usual = sizes.Values.GroupBy(v => v).OrderByDescending(g => g.Count()).Select(g => g.Key).FirstOrDefault();
            foreach (var (s, size) in sizes.Where(x => x.Value != usual || !IsPowerOfTwo(x.Value)))
            {
                findings.Add(new Finding(FindingKind.Truncated, archive.ObjectPath(s), $"WAL segment {s} holds {size.ToString(CultureInfo.InvariantCulture)} bytes, the others {usual.ToString(CultureInfo.InvariantCulture)}: a partial copy", Affected(backups, s)));
            }
        }
        return findings;
    }

    /// <summary>
    /// Whether a read-data subset reads <paramref name="segment"/>: a hash of the seed and the name that is the same
    /// in every process (string.GetHashCode is not), so one seed always reads the same segments.
    /// </summary>
    public static bool Picked(string segment, int seed, double fraction)
    {
        var hash = 14695981039346656037UL; // FNV-1a, 64 bits
        foreach (var b in BitConverter.GetBytes(seed).Concat(Encoding.UTF8.GetBytes(segment)))
        {
            hash = (hash ^ b) * 1099511628211UL;
        }
        return hash % 10000 < fraction * 10000;
    }

    private static bool IsPowerOfTwo(long v) => v > 0 && (v & (v - 1)) == 0;

    private static List<string> Affected(IEnumerable<(Snapshot Snapshot, PhysicalBackupMeta Meta)> backups, string segment)
        => [.. backups.Where(x => string.CompareOrdinal(x.Meta.StartPosition, segment[8..]) <= 0).Select(x => x.Snapshot.ShortId)];
}
