using Cairn.Repository.Storage;

namespace Cairn.Tests.Support;

/// <summary>
/// A storage with object retention the way S3 Object Lock behaves to Cairn: an object of a locked kind created through
/// it is locked for the period, a delete of an object retained past the clock is refused with
/// <see cref="ObjectLockedException"/>, a lock only ever moves later. The test also sets dates itself (<see cref="Locks"/>,
/// <see cref="LockAllAsync"/>) and reads what Cairn extended (<see cref="Extended"/>).
/// </summary>
public sealed class LockingStorage(IStorage inner, TimeProvider time) : IStorage, IObjectLockStorage
{
    public ObjectLockPolicy? ObjectLock { get; } = new(ObjectLockMode.Governance, TimeSpan.FromDays(1));

    public Dictionary<StorageKey, DateTimeOffset> Locks { get; } = [];

    public List<(StorageKey Key, DateTimeOffset Until)> Extended { get; } = [];

    public string Location => inner.Location;

    /// <summary>Locks every object of a locked kind that exists now until <paramref name="until"/>.</summary>
    public async Task LockAllAsync(DateTimeOffset until)
    {
        foreach (var kind in Enum.GetValues<ObjectKind>().Where(ObjectLockPolicy.Applies))
        {
            await foreach (var o in inner.ListAsync(kind, default))
            {
                Locks[o.Key] = until;
            }
        }
    }

    public Task<DateTimeOffset?> LockedUntilAsync(StorageKey key, CancellationToken cancellationToken)
        => Task.FromResult<DateTimeOffset?>(Locks.TryGetValue(key, out var u) && u > time.GetUtcNow() ? u : null);

    public async Task<bool> ExtendLockAsync(StorageKey key, DateTimeOffset until, CancellationToken cancellationToken)
    {
        if (await inner.StatAsync(key, cancellationToken) is null)
        {
            throw new ObjectNotFoundException(key);
        }
        if (Locks.TryGetValue(key, out var current) && current >= until)
        {
            return false;
        }
        Locks[key] = until;
        Extended.Add((key, until));
        return true;
    }

    public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken)
        => Locks.TryGetValue(key, out var u) && u > time.GetUtcNow() ? throw new ObjectLockedException(key, u) : inner.DeleteAsync(key, cancellationToken);

    public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await inner.PutAsync(key, data, cancellationToken);
        LockNew(key);
    }

    public async Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var created = await inner.PutIfAbsentAsync(key, data, cancellationToken);
        if (created)
        {
            LockNew(key);
        }
        return created;
    }

    private void LockNew(StorageKey key)
    {
        if (ObjectLockPolicy.Applies(key.Kind))
        {
            Locks[key] = time.GetUtcNow() + ObjectLock!.Period;
        }
    }

    public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken) => inner.GetAsync(key, offset, length, cancellationToken);

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => inner.StatAsync(key, cancellationToken);

    public IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, CancellationToken cancellationToken) => inner.ListAsync(kind, startAfter, cancellationToken);
}
