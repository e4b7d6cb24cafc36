using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.Repository.Manifests;

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

    /// <summary>One window per database with physical backups among <paramref name="snapshots"/>.</summary>
    public static async Task<List<RecoveryWindow>> ComputeAsync(Repository.Repository repo, IEnumerable<Snapshot> snapshots, CancellationToken cancellationToken, Configuration.CairnConfig? config = null)
    {
        var windows = new List<RecoveryWindow>();
        foreach (var group in snapshots.Where(x => x.Manifest.Kind == BackupKinds.Physical).GroupBy(x => x.Manifest.Name))
        {
            var oldest = group.Select(s => (Snapshot: s, Meta: PhysicalBackupMeta.Of(s))).MinBy(x => x.Meta.StopLsnValue);
            var archive = new WalArchive(repo, group.Key);
            var archived = await archive.ListAsync(cancellationToken).ConfigureAwait(false);
            var histories = await archive.HistoriesAsync(archived, cancellationToken).ConfigureAwait(false);
            var missing = WalContinuity.Missing(archived.Select(w => w.Name), oldest.Meta.StartWal, histories);
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
