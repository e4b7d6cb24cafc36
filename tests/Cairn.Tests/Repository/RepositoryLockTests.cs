using System.Runtime.CompilerServices;
using Cairn.Repository.Locks;
using Cairn.Repository.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Repository;

public sealed class RepositoryLockTests
{
    /// <summary>Holds every put of a lock after the first until the test lets it go (a slow refresh on object storage).</summary>
    private sealed class SlowRefreshStorage(IStorage inner) : IStorage
    {
        private int _lockPuts;

        public TaskCompletionSource RefreshStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource ReleaseRefresh { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Location => inner.Location;

        public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        {
            if (key.Kind == ObjectKind.Lock && Interlocked.Increment(ref _lockPuts) > 1)
            {
                RefreshStarted.TrySetResult();
                await ReleaseRefresh.Task.WaitAsync(cancellationToken);
            }
            await inner.PutAsync(key, data, cancellationToken);
        }

        public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) => inner.PutIfAbsentAsync(key, data, cancellationToken);

        public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken) => inner.GetAsync(key, offset, length, cancellationToken);

        public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => inner.StatAsync(key, cancellationToken);

        public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var o in inner.ListAsync(kind, startAfter, cancellationToken))
            {
                yield return o;
            }
        }

        public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken) => inner.DeleteAsync(key, cancellationToken);
    }

    [Fact]
    public async Task Releasing_a_lock_while_its_refresh_is_in_flight_leaves_no_lock_behind()
    {
        var storage = new SlowRefreshStorage(new InMemoryStorage());
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var l = await RepositoryLock.AcquireAsync(storage, clock, exclusive: true, "prune", default);
        clock.Advance(RepositoryLock.RefreshInterval);
        await storage.RefreshStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));

        var release = l.DisposeAsync().AsTask();
        await Task.Delay(100);
        storage.ReleaseRefresh.SetResult();
        await release.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Empty(await RepositoryLock.ListAsync(storage, clock, default));
    }
}
