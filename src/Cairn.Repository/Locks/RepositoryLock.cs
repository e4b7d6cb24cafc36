using System.Security.Cryptography;
using System.Text.Json;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Locks;

/// <summary>The JSON form of <c>locks/&lt;id&gt;</c>.</summary>
public sealed record LockData
{
    public string Host { get; init; } = "";
    public int Pid { get; init; }
    public string? ProcessStart { get; init; }
    public bool Exclusive { get; init; }
    public DateTimeOffset Created { get; init; }
    public DateTimeOffset Refreshed { get; init; }
    public string Operation { get; init; } = "";
}

/// <summary>
/// A lock found in the repository, with the verdict on its holder. <see cref="ProvablyDead"/>: the holder
/// ran on this host and is gone (pid gone, exited, or reused by a process that started later); such a
/// lock is removed by the next process that takes a lock. Other stale locks (another host not
/// refreshing, an unreadable lock file) need <c>cairn unlock</c>.
/// </summary>
public sealed record LockInfo(string Id, LockData Data, bool IsStale, string? StaleReason, bool ProvablyDead = false);

/// <summary>Locks of dead processes that acquiring a lock removed; the caller records them (e.g. as evidence).</summary>
public sealed record StaleLockRemoval(IReadOnlyList<LockInfo> Removed, string RemovedBy);

/// <summary>
/// Shared/exclusive repository locks with stale detection. A held lock is refreshed every
/// <see cref="RefreshInterval"/>; one not refreshed for <see cref="StaleAfter"/> is stale on any host.
/// </summary>
public sealed class RepositoryLock : IAsyncDisposable
{
    public static readonly TimeSpan RefreshInterval = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(30);

    /// <summary>How often a process that lost a race for the lock (see <see cref="AcquireAsync"/>) tries again.</summary>
    private const int RaceAttempts = 4;

    private readonly IStorage _storage;
    private readonly TimeProvider _time;
    private readonly ITimer _timer;
    private readonly Lock _gate = new();
    private LockData _data;
    private bool _released;
    private Task _refresh = Task.CompletedTask;

    private RepositoryLock(IStorage storage, TimeProvider time, string id, LockData data)
    {
        _storage = storage;
        _time = time;
        Id = id;
        _data = data;
        _timer = time.CreateTimer(_ => StartRefresh(), null, RefreshInterval, RefreshInterval);
    }

    public string Id { get; }

    public bool Exclusive => _data.Exclusive;

    /// <summary>Locks of provably dead processes this acquisition removed (empty almost always).</summary>
    public IReadOnlyList<LockInfo> RemovedStale { get; private init; } = [];

    /// <summary>
    /// Takes a shared or exclusive lock. Locks whose holder is provably dead (<see cref="LockInfo.ProvablyDead"/>)
    /// are removed first and listed in <see cref="RemovedStale"/>; any other conflicting lock that was
    /// there before makes it fail at once. Then it writes its lock object and lists the locks again
    /// (restic's scheme, which needs no rename): the storage is read-after-write consistent (the IStorage
    /// contract; AWS S3 has been since 2020), so of two processes racing for conflicting locks at least
    /// one sees the other's lock on its re-list and backs off. Both may see each other; each then deletes
    /// its own lock and tries again after a random wait, a few times, so one of them wins.
    /// </summary>
    public static Task<RepositoryLock> AcquireAsync(IStorage storage, TimeProvider time, bool exclusive, string operation, CancellationToken cancellationToken)
        => AcquireAsync(storage, time, exclusive, operation, null, cancellationToken);

    /// <summary>Like <see cref="AcquireAsync(IStorage, TimeProvider, bool, string, CancellationToken)"/>, judging holders' liveness with <paramref name="processes"/> (Linux's /proc when null).</summary>
    public static async Task<RepositoryLock> AcquireAsync(IStorage storage, TimeProvider time, bool exclusive, string operation, IProcessTable? processes, CancellationToken cancellationToken)
    {
        var table = processes ?? ProcessLiveness.Linux;
        var removed = new List<LockInfo>();
        for (var attempt = 1; ; attempt++)
        {
            var existing = await ListAsync(storage, time, table, cancellationToken).ConfigureAwait(false);
            foreach (var dead in existing.Where(l => l.ProvablyDead))
            {
                await storage.DeleteAsync(new StorageKey(ObjectKind.Lock, dead.Id), cancellationToken).ConfigureAwait(false);
                removed.Add(dead);
            }
            ThrowIfConflict([.. existing.Where(l => !l.ProvablyDead)], exclusive, null);
            var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
            var now = time.GetUtcNow();
            var data = new LockData
            {
                Host = Environment.MachineName,
                Pid = Environment.ProcessId,
                ProcessStart = ProcessLiveness.OwnStartTicks,
                Exclusive = exclusive,
                Created = now,
                Refreshed = now,
                Operation = operation,
            };
            var key = new StorageKey(ObjectKind.Lock, id);
            await storage.PutAsync(key, JsonSerializer.SerializeToUtf8Bytes(data, RepositoryJson.Default.LockData), cancellationToken).ConfigureAwait(false);
            List<LockInfo> after;
            try
            {
                after = [.. (await ListAsync(storage, time, table, cancellationToken).ConfigureAwait(false)).Where(l => !l.ProvablyDead)];
            }
            catch
            {
                await storage.DeleteAsync(key, CancellationToken.None).ConfigureAwait(false);
                throw;
            }
            if (FindConflict(after, exclusive, id) is null)
            {
                return new RepositoryLock(storage, time, id, data) { RemovedStale = removed };
            }
            await storage.DeleteAsync(key, CancellationToken.None).ConfigureAwait(false);
            if (attempt >= RaceAttempts)
            {
                ThrowIfConflict(after, exclusive, id);
            }
            await Task.Delay(TimeSpan.FromMilliseconds(RandomNumberGenerator.GetInt32(20, 20 + (200 * attempt))), time, cancellationToken).ConfigureAwait(false);
        }
    }

    public static Task<List<LockInfo>> ListAsync(IStorage storage, TimeProvider time, CancellationToken cancellationToken)
        => ListAsync(storage, time, null, cancellationToken);

    /// <summary>The locks in <paramref name="storage"/>, holders' liveness judged with <paramref name="processes"/> (Linux's /proc when null).</summary>
    public static async Task<List<LockInfo>> ListAsync(IStorage storage, TimeProvider time, IProcessTable? processes, CancellationToken cancellationToken)
    {
        var table = processes ?? ProcessLiveness.Linux;
        var result = new List<LockInfo>();
        await foreach (var o in storage.ListAsync(ObjectKind.Lock, cancellationToken).ConfigureAwait(false))
        {
            LockData? data;
            try
            {
                // A lock is a few hundred bytes; a huge one is not read (it could only be an attack).
                if (o.Size > 64 * 1024)
                {
                    data = null;
                }
                else
                {
                    var bytes = await storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false);
                    data = JsonSerializer.Deserialize(bytes, RepositoryJson.Default.LockData);
                }
            }
            catch (ObjectNotFoundException)
            {
                continue; // released meanwhile
            }
            catch (JsonException)
            {
                data = null;
            }
            if (data is null)
            {
                result.Add(new LockInfo(o.Key.Name, new LockData(), true, "the lock file is unreadable"));
                continue;
            }
            var (stale, reason, dead) = Judge(data, time.GetUtcNow(), table);
            result.Add(new LockInfo(o.Key.Name, data, stale, reason, dead));
        }
        return result;
    }

    /// <summary>Removes stale locks (or every lock with <paramref name="all"/>); returns the removed ones.</summary>
    public static async Task<List<LockInfo>> RemoveAsync(IStorage storage, TimeProvider time, bool all, CancellationToken cancellationToken)
    {
        var removed = new List<LockInfo>();
        foreach (var l in await ListAsync(storage, time, cancellationToken).ConfigureAwait(false))
        {
            if (l.IsStale || all)
            {
                await storage.DeleteAsync(new StorageKey(ObjectKind.Lock, l.Id), cancellationToken).ConfigureAwait(false);
                removed.Add(l);
            }
        }
        return removed;
    }

    public async ValueTask DisposeAsync()
    {
        Task refresh;
        lock (_gate)
        {
            if (_released)
            {
                return;
            }
            _released = true;
            refresh = _refresh;
        }
        await _timer.DisposeAsync().ConfigureAwait(false);
        // A refresh still in flight (slow or retried on object storage) would write the lock again after
        // the delete below and leave a live-looking lock behind for 30 minutes: let it land first.
        await refresh.ConfigureAwait(false);
        await _storage.DeleteAsync(new StorageKey(ObjectKind.Lock, Id), CancellationToken.None).ConfigureAwait(false);
    }

    private void StartRefresh()
    {
        lock (_gate)
        {
            if (!_released && _refresh.IsCompleted)
            {
                _refresh = RefreshAsync();
            }
        }
    }

    private async Task RefreshAsync()
    {
        try
        {
            _data = _data with { Refreshed = _time.GetUtcNow() };
            await _storage.PutAsync(new StorageKey(ObjectKind.Lock, Id), JsonSerializer.SerializeToUtf8Bytes(_data, RepositoryJson.Default.LockData), CancellationToken.None).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // A failed refresh is retried at the next tick; the lock only turns stale after 30 minutes.
        }
    }

    private static LockInfo? FindConflict(List<LockInfo> locks, bool exclusive, string? own)
        => locks.FirstOrDefault(l => l.Id != own && (exclusive || l.Data.Exclusive));

    private static void ThrowIfConflict(List<LockInfo> locks, bool exclusive, string? own)
    {
        if (FindConflict(locks, exclusive, own) is { } l)
        {
            if (l.IsStale)
            {
                throw new RepositoryLockedException(
                    $"the repository is locked by a stale lock {Short(l.Id)} ({l.Data.Operation} by pid {l.Data.Pid} on {l.Data.Host}, {l.StaleReason}); Cairn removes a lock by itself only when its holder ran on this host and is provably gone: if that process is gone, run 'cairn unlock'");
            }
            throw new RepositoryLockedException(
                $"the repository is locked {(l.Data.Exclusive ? "exclusively" : "")} by {l.Data.Operation} (pid {l.Data.Pid} on {l.Data.Host}, since {l.Data.Created:u}); wait for it to finish, or if that process is gone run 'cairn unlock'".Replace("locked  by", "locked by", StringComparison.Ordinal));
        }
    }

    private static string Short(string id) => id.Length > 8 ? id[..8] : id;

    private static (bool Stale, string? Reason, bool ProvablyDead) Judge(LockData data, DateTimeOffset now, IProcessTable table)
    {
        if (string.Equals(data.Host, Environment.MachineName, StringComparison.Ordinal))
        {
            var verdict = ProcessLiveness.Judge(data.Pid, data.ProcessStart, table);
            if (verdict.ProvablyDead)
            {
                return (true, verdict.Reason, true);
            }
        }
        if (now - data.Refreshed > StaleAfter)
        {
            return (true, $"not refreshed since {data.Refreshed:u}", false);
        }
        return (false, null, false);
    }
}
