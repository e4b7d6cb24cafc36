using System.Runtime.CompilerServices;
using Cairn.Repository.Storage;

namespace Cairn.Tests.Support;

/// <summary>Wraps a storage and injects faults. Hooks belong to the instance, so tests stay parallel.</summary>
public sealed class FaultyStorage(IStorage inner) : IStorage
{
    private int _puts;

    /// <summary>Called before each put with the key and the put's ordinal; return an exception to fail it.</summary>
    public Func<StorageKey, int, Exception?>? OnPut { get; set; }

    public Func<StorageKey, Exception?>? OnGet { get; set; }

    public int Puts => _puts;

    public string Location => inner.Location;

    public Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var n = Interlocked.Increment(ref _puts);
        if (OnPut?.Invoke(key, n) is { } e)
        {
            throw e;
        }
        return inner.PutAsync(key, data, cancellationToken);
    }

    public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var n = Interlocked.Increment(ref _puts);
        if (OnPut?.Invoke(key, n) is { } e)
        {
            throw e;
        }
        return inner.PutIfAbsentAsync(key, data, cancellationToken);
    }

    public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
    {
        if (OnGet?.Invoke(key) is { } e)
        {
            throw e;
        }
        return inner.GetAsync(key, offset, length, cancellationToken);
    }

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => inner.StatAsync(key, cancellationToken);

    public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (var o in inner.ListAsync(kind, startAfter, cancellationToken))
        {
            yield return o;
        }
    }

    public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);

    /// <summary>An IOException like the one the OS raises for ENOSPC.</summary>
    public static IOException DiskFull() => new("No space left on device", 28);
}
