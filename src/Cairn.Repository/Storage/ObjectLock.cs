namespace Cairn.Repository.Storage;

/// <summary>The retention mode a locked object gets (S3 Object Lock's two modes).</summary>
public enum ObjectLockMode
{
    /// <summary>Nobody deletes or shortens the lock without the s3:BypassGovernanceRetention permission (and asking for the bypass).</summary>
    Governance,

    /// <summary>Nobody deletes or shortens the lock before it expires, the account's root user included.</summary>
    Compliance,
}

/// <summary>How objects are locked: every object Cairn creates (but locks, pins and the snapshot-index and WAL-summary caches) is retained for <see cref="Period"/>.</summary>
public sealed record ObjectLockPolicy(ObjectLockMode Mode, TimeSpan Period)
{
    /// <summary>Where <see cref="Period"/> came from when the retention policies gave it (<c>days: retention</c>); null for a fixed <c>days: N</c>.</summary>
    public string? Source { get; init; }

    /// <summary>Which kinds are locked. Locks are refreshed and removed, pins are lifted by unpin, the snapshot index and the WAL summary are caches that are replaced.</summary>
    public static bool Applies(ObjectKind kind) => kind is not (ObjectKind.Lock or ObjectKind.Pin or ObjectKind.SnapshotIndex or ObjectKind.WalSummary);
}

/// <summary>
/// A delete that the storage refuses because the object is retained until <see cref="Until"/> (S3 Object Lock).
/// Prune expects it and skips the object; elsewhere it is an error that names the date.
/// </summary>
public sealed class ObjectLockedException(StorageKey key, DateTimeOffset until)
    : RepositoryException(ErrorKind.Locked, $"{key.Path} is locked (S3 Object Lock) until {until:yyyy-MM-dd HH:mm:ss}Z and cannot be deleted before then")
{
    public StorageKey Key { get; } = key;

    public DateTimeOffset Until { get; } = until;
}

/// <summary>
/// The narrow ability a storage with object retention offers (the S3 backend with <c>s3.object_lock</c>); IStorage stays tiny.
/// Its <see cref="IStorage.DeleteAsync"/> throws <see cref="ObjectLockedException"/> for an object still retained.
/// </summary>
public interface IObjectLockStorage
{
    /// <summary>How this storage locks what it creates; null when it does not.</summary>
    ObjectLockPolicy? ObjectLock { get; }

    /// <summary>The date until which the object is retained (null: not locked or already expired, or no such object).</summary>
    Task<DateTimeOffset?> LockedUntilAsync(StorageKey key, CancellationToken cancellationToken);

    /// <summary>Retains the object until at least <paramref name="until"/>; never shortens a lock. True when the date moved.</summary>
    Task<bool> ExtendLockAsync(StorageKey key, DateTimeOffset until, CancellationToken cancellationToken);
}

/// <summary>An object left in place because it is locked until <see cref="Until"/>.</summary>
public sealed record LockedObject(string Path, DateTimeOffset Until);

public static class ObjectLocks
{
    /// <summary>The object-lock ability of a storage, through the append-only wrapper; null when it has none or locking is off.</summary>
    public static IObjectLockStorage? Of(IStorage storage)
    {
        var inner = storage is AppendOnlyStorage a ? a.Inner : storage;
        return inner is IObjectLockStorage l && l.ObjectLock is not null ? l : null;
    }

    /// <summary>Deletes an object unless it is locked; the date it is locked until when it was not deleted.</summary>
    public static async Task<DateTimeOffset?> DeleteUnlessLockedAsync(this IStorage storage, StorageKey key, CancellationToken cancellationToken)
    {
        try
        {
            await storage.DeleteAsync(key, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (ObjectLockedException e)
        {
            return e.Until;
        }
    }
}
