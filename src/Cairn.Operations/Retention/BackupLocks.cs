using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Retention;

/// <summary>What <see cref="BackupLocks.ExtendAsync"/> did: objects looked at, locks moved, and why it stopped (null: it did not).</summary>
public sealed record BackupLockReport(int Objects, int Extended, DateTimeOffset? Until, string? Error)
{
    public static readonly BackupLockReport None = new(0, 0, null, null);
}

/// <summary>
/// S3 Object Lock dates per object (docs/repository-format.md, "S3 Object Lock"): deduplication makes a new backup reuse
/// packs (and the indexes that list them, the config and the keys) written long ago, whose retention may end long before the
/// new backup may expire. At the end of a backup, every object it reads whose lock ends before <c>backup start + period</c>
/// (an object this backup created is locked from its put, so at least that long) is retained until <c>now + period</c>;
/// a lock is never shortened and keeps its mode (governance or compliance). A failure is the caller's warning: the backup
/// stands and prune's renewal is still there.
/// </summary>
public static class BackupLocks
{
    public static async Task<BackupLockReport> ExtendAsync(OperationContext context, Repository.Repository repo, Snapshot snapshot, DateTimeOffset started, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(repo);
        if (ObjectLocks.Of(repo.Storage) is not { } locks)
        {
            return BackupLockReport.None;
        }
        var period = locks.ObjectLock!.Period;
        var floor = started + period;
        var until = context.Time.GetUtcNow() + period;
        var objects = 0;
        var extended = 0;
        try
        {
            foreach (var key in await repo.ObjectsOfAsync(snapshot, cancellationToken).ConfigureAwait(false))
            {
                if (key.Kind == ObjectKind.Snapshot && key.Name == snapshot.Id)
                {
                    continue; // written a moment ago, locked a full period from then
                }
                objects++;
                if (await locks.LockedUntilAsync(key, cancellationToken).ConfigureAwait(false) is { } current && current >= floor)
                {
                    continue;
                }
                if (await locks.ExtendLockAsync(key, until, cancellationToken).ConfigureAwait(false))
                {
                    extended++;
                }
            }
        }
        catch (Exception e) when (e is IOException or RepositoryException or UnauthorizedAccessException)
        {
            context.Warn($"the Object Lock of the objects this backup reuses was not extended ({extended} of {objects} done): {e.Message}. 'cairn prune' renews them; the database host needs s3:GetObjectRetention and s3:PutObjectRetention for it");
            return new BackupLockReport(objects, extended, until, e.Message);
        }
        return new BackupLockReport(objects, extended, until, null);
    }
}
