using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace Cairn.Repository.Storage;

/// <summary>Storage in memory, for tests and for dry runs. Thread-safe; puts are atomic by construction.</summary>
public sealed class InMemoryStorage(TimeProvider? time = null) : IStorage
{
    private readonly ConcurrentDictionary<StorageKey, (byte[] Data, DateTimeOffset Stored)> _objects = new();
    private readonly TimeProvider _time = time ?? TimeProvider.System;

    public string Location => "memory:";

    public int Count => _objects.Count;

    public Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _objects[key] = (data.ToArray(), _time.GetUtcNow());
        return Task.CompletedTask;
    }

    public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        return Task.FromResult(_objects.TryAdd(key, (data.ToArray(), _time.GetUtcNow())));
    }

    public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
    {
        if (!_objects.TryGetValue(key, out var stored))
        {
            throw new ObjectNotFoundException(key);
        }
        var data = stored.Data;
        if (offset >= data.Length)
        {
            return Task.FromResult(Array.Empty<byte>());
        }
        var count = length < 0 ? data.Length - offset : Math.Min(length, data.Length - offset);
        return Task.FromResult(data.AsSpan((int)offset, (int)count).ToArray());
    }

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken)
        => Task.FromResult<ObjectInfo?>(_objects.TryGetValue(key, out var d) ? new ObjectInfo(key, d.Data.Length, d.Stored) : null);

    public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        var objects = _objects.ToArray().Where(o => o.Key.Kind == kind && (startAfter is null || StorageKey.CompareNames(o.Key.Name, startAfter) > 0)).ToList();
        if (startAfter is not null)
        {
            objects.Sort((a, b) => StorageKey.CompareNames(a.Key.Name, b.Key.Name));
        }
        foreach (var (key, value) in objects)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return new ObjectInfo(key, value.Data.Length, value.Stored);
        }
    }

    public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken)
    {
        _objects.TryRemove(key, out _);
        return Task.CompletedTask;
    }

    /// <summary>Test hook: change stored bytes in place (to simulate bit rot or tampering).</summary>
    public void Corrupt(StorageKey key, Func<byte[], byte[]> change) => _objects[key] = (change(_objects[key].Data), _objects[key].Stored);
}
