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
public sealed record LockInfo(string Id, LockData Data, bool IsStale, string? StaleReason, bool ProvablyDead = false)
{
    /// <summary>The lock's objects: <c>ID</c>, and an append-only holder's refreshes <c>ID.N</c> (all removed together).</summary>
    public IReadOnlyList<string> Objects { get; init; } = [Id];
}

/// <summary>Locks of dead processes that acquiring a lock removed; the caller records them (e.g. as evidence).</summary>
public sealed record StaleLockRemoval(IReadOnlyList<LockInfo> Removed, string RemovedBy);

/// <summary>
/// Shared/exclusive repository locks with stale detection. A held lock is refreshed every
/// <see cref="RefreshInterval"/>; one not refreshed for <see cref="StaleAfter"/> is stale on any host.
/// </summary>
/// <remarks>
/// On an <see cref="AppendOnlyStorage"/> (a client whose credentials may not delete or overwrite) a lock never
/// changes an object: it is <c>locks/ID</c>, each refresh is a new object <c>locks/ID.N</c> that supersedes the
/// older ones (the highest N is read), and release is a new object <c>locks/ID.released</c> (a tombstone: every
/// client treats the lock as gone). The objects of released locks are garbage that a client with delete rights
/// removes (the next lock it takes, prune, unlock). The stale rules are the same: a lock whose newest refresh is
/// older than <see cref="StaleAfter"/> is stale, and one of a provably dead process on this host is released.
/// </remarks>
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
    private int _generation;

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
                await EndAsync(storage, dead.Id, dead.Objects, cancellationToken).ConfigureAwait(false);
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
                await EndAsync(storage, id, [id], CancellationToken.None).ConfigureAwait(false);
                throw;
            }
            if (FindConflict(after, exclusive, id) is null)
            {
                if (attempt == 1)
                {
                    try
                    {
                        await CollectReleasedAsync(storage, time, table, cancellationToken).ConfigureAwait(false);
                    }
                    catch
                    {
                        // Cancelled (SIGTERM) or failed while tidying others' leftovers: our lock is already written; end it.
                        await EndAsync(storage, id, [id], CancellationToken.None).ConfigureAwait(false);
                        throw;
                    }
                }
                return new RepositoryLock(storage, time, id, data) { RemovedStale = removed };
            }
            await EndAsync(storage, id, [id], CancellationToken.None).ConfigureAwait(false);
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
        => [.. (await ListAllAsync(storage, time, processes, cancellationToken).ConfigureAwait(false)).Where(l => !l.Released).Select(l => l.Info)];

    /// <summary>Every lock's objects grouped by lock, released ones included (their objects are garbage for a deleting client).</summary>
    private static async Task<List<(LockInfo Info, bool Released)>> ListAllAsync(IStorage storage, TimeProvider time, IProcessTable? processes, CancellationToken cancellationToken)
    {
        var table = processes ?? ProcessLiveness.Linux;
        var groups = new Dictionary<string, List<ObjectInfo>>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(ObjectKind.Lock, cancellationToken).ConfigureAwait(false))
        {
            var id = BaseId(o.Key.Name);
            if (!groups.TryGetValue(id, out var list))
            {
                groups[id] = list = [];
            }
            list.Add(o);
        }
        var result = new List<(LockInfo, bool)>();
        foreach (var (id, objects) in groups)
        {
            var names = objects.Select(o => o.Key.Name).Order(StringComparer.Ordinal).ToList();
            if (names.Contains(id + ReleasedSuffix, StringComparer.Ordinal))
            {
                result.Add((new LockInfo(id, new LockData(), true, "released") { Objects = names }, true));
                continue;
            }
            // The newest refresh (highest N) is the lock's state; the others are what it superseded.
            var newest = objects.Where(o => Generation(o.Key.Name) >= 0).MaxBy(o => Generation(o.Key.Name));
            if (newest.Key.Name is null)
            {
                result.Add((new LockInfo(id, new LockData(), true, "the lock file is unreadable") { Objects = names }, false));
                continue;
            }
            LockData? data;
            try
            {
                // A lock is a few hundred bytes; a huge one is not read (it could only be an attack).
                if (newest.Size > 64 * 1024)
                {
                    data = null;
                }
                else
                {
                    var bytes = await storage.GetAllAsync(newest.Key, cancellationToken).ConfigureAwait(false);
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
                result.Add((new LockInfo(id, new LockData(), true, "the lock file is unreadable") { Objects = names }, false));
                continue;
            }
            var (stale, reason, dead) = Judge(data, time.GetUtcNow(), table);
            result.Add((new LockInfo(id, data, stale, reason, dead) { Objects = names }, false));
        }
        return result;
    }

    private const string ReleasedSuffix = ".released";

    /// <summary>The lock an object belongs to: <c>ID</c>, <c>ID.N</c> and <c>ID.released</c> all belong to <c>ID</c>.</summary>
    private static string BaseId(string name) => name.IndexOf('.', StringComparison.Ordinal) is var dot and > 0 ? name[..dot] : name;

    /// <summary>0 for <c>ID</c>, N for <c>ID.N</c>, -1 for anything else.</summary>
    private static long Generation(string name)
    {
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? 0 : long.TryParse(name.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : -1;
    }

    /// <summary>
    /// Ends a lock: deletes its objects, or on an append-only storage writes its tombstone (a tombstone that is
    /// already there, written by another client, is fine).
    /// </summary>
    private static async Task EndAsync(IStorage storage, string id, IReadOnlyList<string> objects, CancellationToken cancellationToken)
    {
        if (AppendOnlyStorage.Is(storage))
        {
            try
            {
                await storage.PutAsync(new StorageKey(ObjectKind.Lock, id + ReleasedSuffix), "{}"u8.ToArray(), cancellationToken).ConfigureAwait(false);
            }
            catch (AppendOnlyViolationException)
            {
            }
            return;
        }
        foreach (var name in objects)
        {
            await storage.DeleteAsync(new StorageKey(ObjectKind.Lock, name), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Deletes the objects of locks released by append-only clients (a client that may delete does this in passing).</summary>
    private static async Task CollectReleasedAsync(IStorage storage, TimeProvider time, IProcessTable? processes, CancellationToken cancellationToken)
    {
        if (AppendOnlyStorage.Is(storage))
        {
            return;
        }
        foreach (var (info, released) in await ListAllAsync(storage, time, processes, cancellationToken).ConfigureAwait(false))
        {
            if (released)
            {
                await EndAsync(storage, info.Id, info.Objects, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Removes stale locks (or every lock with <paramref name="all"/>); returns the removed ones.</summary>
    public static async Task<List<LockInfo>> RemoveAsync(IStorage storage, TimeProvider time, bool all, CancellationToken cancellationToken)
    {
        var removed = new List<LockInfo>();
        foreach (var (l, released) in await ListAllAsync(storage, time, null, cancellationToken).ConfigureAwait(false))
        {
            if (released)
            {
                await EndAsync(storage, l.Id, l.Objects, cancellationToken).ConfigureAwait(false);
            }
            else if (l.IsStale || all)
            {
                await EndAsync(storage, l.Id, l.Objects, cancellationToken).ConfigureAwait(false);
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
        await EndAsync(_storage, Id, [.. Enumerable.Range(0, _generation + 1).Select(g => g == 0 ? Id : $"{Id}.{g}")], CancellationToken.None).ConfigureAwait(false);
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
            var bytes = JsonSerializer.SerializeToUtf8Bytes(_data, RepositoryJson.Default.LockData);
            if (AppendOnlyStorage.Is(_storage))
            {
                // A new object supersedes the older ones; nothing is overwritten.
                // (The number moves on even when the put fails: a lost answer may have stored it.)
                await _storage.PutAsync(new StorageKey(ObjectKind.Lock, $"{Id}.{++_generation}"), bytes, CancellationToken.None).ConfigureAwait(false);
            }
            else
            {
                await _storage.PutAsync(new StorageKey(ObjectKind.Lock, Id), bytes, CancellationToken.None).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or AppendOnlyViolationException)
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
