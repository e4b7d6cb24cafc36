using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository.Manifests;
using Cairn.Repository.Pruning;

namespace Cairn.Operations.Retention;

public sealed record PruneRequest(bool DryRun);

/// <summary>A backup the retention planner judged, and the database it belongs to.</summary>
public sealed record PruneDecision(string Database, RetentionDecision Decision);

/// <summary>One database's recovery window before and after prune, as WAL positions (segment numbers without the timeline).</summary>
public sealed record PruneWindow(string Database, string OldestBefore, string OldestAfter, IReadOnlyList<string> SegmentsDeleted);

public sealed record PruneResult(bool DryRun, IReadOnlyList<PruneDecision> Decisions, IReadOnlyList<PruneWindow> Windows, IReadOnlyList<string> WalObjectsDeleted, PruneReport Data)
{
    public int Forgotten => Decisions.Count(d => !d.Decision.Keep);

    public int Kept => Decisions.Count - Forgotten;
}

/// <summary>
/// Applies each database's retention, then deletes the data no snapshot references, under an exclusive lock.
/// Logical and physical backups of a database are judged separately (each kind keeps its own history). WAL
/// MUST NOT be deleted from or after the start of the oldest physical backup that stays: every restorable
/// point inside the kept window keeps the WAL it needs, so prune never creates a gap.
/// </summary>
public sealed class PruneOperation(OperationContext context)
{
    public async Task<PruneResult> RunAsync(PruneRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        OperationContext.RequireDeleteRights(repo.Storage, "prune");
        await using var l = await repo.LockAsync(exclusive: true, "prune", cancellationToken).ConfigureAwait(false);
        var snapshots = await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false);
        var decisions = Plan(snapshots, context.Config);
        var forgotten = decisions.Where(d => !d.Decision.Keep).Select(d => d.Decision.Id).ToHashSet(StringComparer.Ordinal);

        var windows = new List<PruneWindow>();
        var walDeleted = new List<(WalArchive Archive, string Segment)>();
        foreach (var group in snapshots.Where(s => s.Manifest.Kind == BackupKinds.Physical).GroupBy(s => s.Manifest.Name))
        {
            var archive = new WalArchive(repo, group.Key);
            var window = WalWindow(group.Key, [.. group], forgotten, await archive.ListAsync(cancellationToken).ConfigureAwait(false));
            if (window is null)
            {
                continue;
            }
            windows.Add(window);
            walDeleted.AddRange(window.SegmentsDeleted.Select(s => (archive, s)));
        }
        if (!request.DryRun)
        {
            foreach (var s in snapshots.Where(s => forgotten.Contains(s.Id)))
            {
                await repo.ForgetAsync(s, cancellationToken).ConfigureAwait(false);
            }
            foreach (var (archive, segment) in walDeleted)
            {
                await archive.DeleteAsync(segment, cancellationToken).ConfigureAwait(false);
            }
        }
        var data = await new Pruner(repo).PruneAsync(request.DryRun, cancellationToken).ConfigureAwait(false);
        var result = new PruneResult(request.DryRun, decisions, windows, [.. walDeleted.Select(w => w.Archive.ObjectName(w.Segment))], data);
        if (!request.DryRun)
        {
            context.Evidence.Record(new PruneEvent(result.Forgotten, walDeleted.Count, result.Kept, data.PacksDeleted, data.PacksRepacked, data.BytesDeleted, data.BytesKept)
            {
                Repository = repo.Storage.Location,
            });
        }
        return result;
    }

    /// <summary>Retention decisions for every database backup (files stored with <c>repo put</c> are not judged).</summary>
    public static List<PruneDecision> Plan(IEnumerable<Snapshot> snapshots, Configuration.CairnConfig config)
    {
        var decisions = new List<PruneDecision>();
        foreach (var group in snapshots.Where(s => s.Manifest.Kind != BackupKinds.File).GroupBy(s => (s.Manifest.Name, s.Manifest.Kind)))
        {
            var policy = config.Databases.TryGetValue(group.Key.Name, out var db) ? db.Retention : new Configuration.RetentionPolicy();
            decisions.AddRange(RetentionPlanner.Plan(group.Select(s => (s.Id, s.Manifest.Time)), policy).Select(d => new PruneDecision(group.Key.Name, d)));
        }
        return decisions;
    }

    /// <summary>
    /// The WAL segments of one database that may go: those before the start of the oldest physical backup that stays.
    /// Null when no physical backup of it stays (then its WAL is kept whole).
    /// </summary>
    public static PruneWindow? WalWindow(string database, IReadOnlyList<Snapshot> physical, IReadOnlySet<string> forgotten, IEnumerable<WalObject> archived)
    {
        var kept = physical.Where(s => !forgotten.Contains(s.Id)).ToList();
        if (kept.Count == 0)
        {
            return null;
        }
        var oldestAll = physical.Select(s => PhysicalBackupMeta.Of(s).StartPosition).Min(StringComparer.Ordinal)!;
        var oldestKept = kept.Select(s => PhysicalBackupMeta.Of(s).StartPosition).Min(StringComparer.Ordinal)!;
        var goes = archived.Where(w => w.IsSegment && string.CompareOrdinal(w.Name[8..], oldestKept) < 0).Select(w => w.Name).ToList();
        return new PruneWindow(database, oldestAll, oldestKept, goes);
    }
}
