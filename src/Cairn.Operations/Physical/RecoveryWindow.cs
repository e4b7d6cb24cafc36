using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Physical;

/// <summary>
/// How far back and forward a database can be recovered to a point in time: from the end of its oldest
/// physical backup to the newest archived WAL segment, and the first gap on the way (recovery cannot pass it).
/// </summary>
public sealed record RecoveryWindow(string Database, Snapshot Oldest, PhysicalBackupMeta OldestMeta, WalObject? NewestSegment, IReadOnlyList<string> Missing)
{
    public bool HasGap => Missing.Count > 0;

    /// <summary>
    /// The guaranteed window's start: every point from here to the newest archived segment can be recovered (the stop
    /// of the oldest backup whose WAL runs without a gap to the end). Null when no backup's WAL reaches the end.
    /// </summary>
    public DateTimeOffset? GuaranteedFrom { get; init; }

    /// <summary>The configured keep_within, when there is one (the window the repository promises).</summary>
    public TimeSpan? Promised { get; init; }

    /// <summary>
    /// One window per database with physical backups among <paramref name="snapshots"/>. The archived WAL comes from the
    /// WAL summary and a listing of what was archived since (<see cref="WalSummaries"/>), or from a listing where there is
    /// no usable summary; a gap seen through the summary is confirmed by listing that database's WAL before it is shown
    /// (a segment archived out of order after the summary was written is not in it). <paramref name="onIgnored"/> hears
    /// of a summary that was not used.
    /// </summary>
    public static async Task<List<RecoveryWindow>> ComputeAsync(Repository.Repository repo, IEnumerable<Snapshot> snapshots, CancellationToken cancellationToken,
        Configuration.CairnConfig? config = null, Action<string>? onIgnored = null)
    {
        var windows = new List<RecoveryWindow>();
        var groups = snapshots.Where(x => x.Manifest.Kind == BackupKinds.Physical).GroupBy(x => x.Manifest.Name).ToList();
        var from = groups.ToDictionary(g => g.Key, g => g.Select(s => PhysicalBackupMeta.Of(s).StartWal).Min(StringComparer.Ordinal)!, StringComparer.Ordinal);
        var (listed, fromSummary) = await WalSummaries.ArchivedAsync(repo, from, onIgnored, cancellationToken).ConfigureAwait(false);
        // A gap seen through the summary may be a segment archived out of order since it was written: what is listed
        // decides. Every such database is listed again in one request, from its oldest backup's start.
        var seen = new Dictionary<string, (Dictionary<uint, string>? Histories, List<string>? Missing)>(StringComparer.Ordinal);
        var confirm = new Dictionary<string, WalListStart>(StringComparer.Ordinal);
        foreach (var group in groups)
        {
            var oldest = group.Select(s => PhysicalBackupMeta.Of(s)).MinBy(m => m.StopLsnValue)!;
            if (!fromSummary.Contains(group.Key))
            {
                continue;
            }
            var archived = listed.GetValueOrDefault(group.Key) ?? [];
            try
            {
                var histories = await new WalArchive(repo, group.Key).HistoriesAsync(archived, cancellationToken).ConfigureAwait(false);
                var missing = WalContinuity.Missing(archived.Select(w => w.Name), oldest.StartWal, histories);
                if (missing.Count == 0)
                {
                    seen[group.Key] = (histories, missing);
                    continue;
                }
            }
            catch (ObjectNotFoundException)
            {
                // A history file the summary names is gone: the listing decides.
            }
            confirm[group.Key] = WalListStart.From(from[group.Key]);
        }
        if (confirm.Count > 0)
        {
            foreach (var (db, list) in await WalArchive.ListFromByDatabaseAsync(repo.Storage, confirm, cancellationToken).ConfigureAwait(false))
            {
                listed[db] = list;
            }
        }
        foreach (var group in groups)
        {
            var oldest = group.Select(s => (Snapshot: s, Meta: PhysicalBackupMeta.Of(s))).MinBy(x => x.Meta.StopLsnValue);
            var archive = new WalArchive(repo, group.Key);
            var archived = listed.GetValueOrDefault(group.Key) ?? [];
            var (histories, missing) = seen.GetValueOrDefault(group.Key);
            histories ??= await archive.HistoriesAsync(archived, cancellationToken).ConfigureAwait(false);
            missing ??= WalContinuity.Missing(archived.Select(w => w.Name), oldest.Meta.StartWal, histories);
            var bases = group.Select(s => (s.Id, Meta: PhysicalBackupMeta.Of(s))).Select(x => new Retention.RestoreBase(x.Id, x.Meta.StartWal, x.Meta.StopTime));
            var guaranteed = Retention.WindowCoverage.GuaranteedBase(bases, [.. archived.Select(w => w.Name)], histories);
            windows.Add(new RecoveryWindow(group.Key, oldest.Snapshot, oldest.Meta, WalArchive.NewestSegment(archived), missing)
            {
                GuaranteedFrom = guaranteed?.RestorableFrom,
                Promised = config is not null && config.Databases.TryGetValue(group.Key, out var db) ? db.Retention.KeepWithin : null,
            });
        }
        return windows;
    }
}
