using System.Diagnostics;
using Cairn.Operations.Configuration;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Physical;

/// <summary>
/// Starting the background pusher and prefetcher: this very program again, detached from the call that started it,
/// with an allow-listed environment (file names and non-secret settings only: a passphrase given in the environment
/// cannot be handed on, and then wal-push and wal-fetch simply stay synchronous).
/// </summary>
public static class WalBackground
{
    /// <summary>The <c>wal:</c> settings of <paramref name="database"/> (synchronous when it is not configured).</summary>
    public static WalConfig SettingsOf(OperationContext context, string database)
        => context.Config.Databases.TryGetValue(database, out var d) ? d.Wal : WalConfig.Synchronous;

    /// <summary>Starts <c>cairn ARGS</c> in the background; false (with a warning) when it cannot be started safely.</summary>
    public static bool Start(OperationContext context, IReadOnlyList<string> arguments)
    {
        var passFile = context.Environment("CAIRN_PASSPHRASE_FILE");
        if (passFile is null || context.Config.File is null)
        {
            context.Warn("the background WAL worker needs the passphrase in a file (CAIRN_PASSPHRASE_FILE) and cairn.yaml (CAIRN_CONFIG or --config): a secret is never handed to a child through its environment; working synchronously");
            return false;
        }
        var extra = ChildVariables(context, passFile, context.Config.File);
        // SelfCommand is quoted for archive_command (a literal % doubled); /bin/sh itself wants it plain.
        var command = $"exec {context.SelfCommand.Replace("%%", "%", StringComparison.Ordinal)} {string.Join(' ', arguments.Select(ShellQuote.Quote))} </dev/null >/dev/null";
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        ChildEnvironment.Apply(psi, server: true, extra);
        try
        {
            // Not waited for: it outlives this call. It stays in the server's process group, so stopping the server stops it.
            using var process = Process.Start(psi);
            return process is not null;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            context.Warn($"could not start the background WAL worker ({e.Message}); working synchronously");
            return false;
        }
    }

    /// <summary>
    /// What the background worker gets besides the allow-listed environment: file names and non-secret settings, and
    /// <c>DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0</c>: the pusher's thread-pool workers otherwise spin (sched_yield)
    /// before they sleep between segments, ~1 ms of CPU per 16 MiB segment that the archive_command calls beside it need
    /// on a small machine (measured: docs/benchmarks.md, "The start of a wal-push call and fast levels").
    /// </summary>
    internal static Dictionary<string, string> ChildVariables(OperationContext context, string passFile, string configFile)
    {
        var extra = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["CAIRN_PASSPHRASE_FILE"] = Path.GetFullPath(passFile),
            ["CAIRN_CONFIG"] = Path.GetFullPath(configFile),
            ["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0",
        };
        if (context.Config.AppendOnly || context.Environment("CAIRN_APPEND_ONLY") is "1" or "true" or "yes")
        {
            extra["CAIRN_APPEND_ONLY"] = "1";
        }
        foreach (var name in WalCommands.NonSecretS3Variables)
        {
            if (context.Environment(name) is { Length: > 0 } value)
            {
                extra[name] = value;
            }
        }
        return extra;
    }

    /// <summary>The next <paramref name="count"/> segment names after <paramref name="segment"/> on its timeline.</summary>
    public static List<string> Following(string segment, long segmentSize, int count)
    {
        if (!WalNames.IsSegment(segment) || segmentSize <= 0 || 0x1_0000_0000L % segmentSize != 0)
        {
            return [];
        }
        var perLog = 0x1_0000_0000UL / (ulong)segmentSize;
        var timeline = segment[..8];
        var number = Convert.ToUInt64(segment[8..16], 16) * perLog + Convert.ToUInt64(segment[16..24], 16);
        var result = new List<string>(count);
        for (var i = 1; i <= count; i++)
        {
            var n = number + (ulong)i;
            result.Add($"{timeline}{n / perLog:X8}{n % perLog:X8}");
        }
        return result;
    }
}

/// <summary>The background pusher's work: the data directory's WAL folder, the database, a segment the caller pushes itself.</summary>
public sealed record WalPushAheadRequest(string WalDirectory, string? Database, string? Skip);

public sealed record WalPushAheadResult(int Pushed, int Failed, bool AlreadyRunning);

/// <summary>
/// <c>wal-push-ahead</c> (started by wal-push, not by people): one per spool, it stores the oldest <c>.ready</c>
/// segments in parallel, never more than <c>push_ahead</c> beyond what PostgreSQL acknowledged, and leaves a marker
/// for each only once the object is durably in the repository and seen there. It exits when nothing was ready for a
/// few seconds. Killed at any moment, it loses nothing: a segment without a marker is pushed by wal-push itself.
/// </summary>
public sealed class WalPushAheadOperation(OperationContext context)
{
    private static readonly TimeSpan IdleExit = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(2);

    public async Task<WalPushAheadResult> RunAsync(WalPushAheadRequest request, CancellationToken cancellationToken)
    {
        var db = WalDatabase.Resolve(context, request.Database);
        var settings = WalBackground.SettingsOf(context, db);
        if (!settings.Async || settings.Spool is null)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"databases.{db}.wal.async is not on in cairn.yaml; wal-push-ahead is the background half of asynchronous archiving");
        }
        var walDir = Path.GetFullPath(request.WalDirectory);
        var statusDir = Path.Combine(walDir, "archive_status");
        using var spool = WalSpool.Open(settings.Spool, db, "push", context.RepositoryLocation.Display);
        using var workerLock = spool.TryLockWorker();
        if (workerLock is null)
        {
            return new WalPushAheadResult(0, 0, true);
        }
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        var archive = new WalArchive(repo, db) { CompressionLevel = settings.CompressionLevel };
        var inflight = new Dictionary<string, Task<bool>>(StringComparer.Ordinal);
        var failedAt = new Dictionary<string, long>(StringComparer.Ordinal);
        var idleSince = context.Time.GetTimestamp();
        int pushed = 0, failed = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var ready = ReadySegments(statusDir);
            var readySet = ready.ToHashSet(StringComparer.Ordinal);
            var marked = 0;
            foreach (var entry in spool.Names())
            {
                if (entry.EndsWith(".ok", StringComparison.Ordinal) && WalSpool.WalNameOf(entry) is { } n)
                {
                    // A marker of a segment no longer ready was acknowledged some other way: it only takes a place in the queue.
                    if (!readySet.Contains(n))
                    {
                        spool.Remove(entry);
                    }
                    else
                    {
                        marked++;
                    }
                }
            }
            var room = settings.PushAhead - marked - inflight.Count;
            foreach (var name in ready)
            {
                if (room <= 0)
                {
                    break;
                }
                if (name == request.Skip || inflight.ContainsKey(name) || spool.HasMarker(name)
                    || (failedAt.TryGetValue(name, out var at) && context.Time.GetElapsedTime(at) < RetryAfter))
                {
                    continue;
                }
                inflight[name] = Task.Run(() => PushOneAsync(archive, spool, Path.Combine(walDir, name), cancellationToken), cancellationToken);
                room--;
            }
            if (inflight.Count == 0)
            {
                if (context.Time.GetElapsedTime(idleSince) > IdleExit)
                {
                    break;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(20), context.Time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            idleSince = context.Time.GetTimestamp();
            await Task.WhenAny([.. inflight.Values, Task.Delay(TimeSpan.FromMilliseconds(20), context.Time, cancellationToken)]).ConfigureAwait(false);
            foreach (var (name, task) in inflight.Where(p => p.Value.IsCompleted).ToList())
            {
                inflight.Remove(name);
                if (task.IsCompletedSuccessfully && task.Result)
                {
                    pushed++;
                    failedAt.Remove(name);
                }
                else
                {
                    failed++;
                    failedAt[name] = context.Time.GetTimestamp();
                    if (task.Exception?.GetBaseException() is { } e)
                    {
                        context.Warn($"background wal-push of {name} failed (wal-push will store it itself): {e.Message}");
                    }
                }
            }
        }
        return new WalPushAheadResult(pushed, failed, false);
    }

    /// <summary>Stores one segment, sees it in the repository, then marks it; false when the file changed or vanished meanwhile.</summary>
    private static async Task<bool> PushOneAsync(WalArchive archive, WalSpool spool, string path, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(path);
        if (WalSpool.FileIdentity.Of(path) is not { } before)
        {
            return false;
        }
        await archive.PutFileAsync(path, cancellationToken).ConfigureAwait(false);
        if (!await archive.ExistsAsync(name, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"{archive.ObjectPath(name)} is not in the repository right after it was stored");
        }
        if (WalSpool.FileIdentity.Of(path) != before)
        {
            return false;
        }
        spool.MarkPushed(name, before);
        return true;
    }

    /// <summary>The WAL files PostgreSQL has marked ready, in the order its archiver takes them (history files first, then oldest).</summary>
    public static List<string> ReadySegments(string statusDir)
    {
        var names = new List<string>();
        try
        {
            foreach (var f in Directory.EnumerateFiles(statusDir, "*.ready"))
            {
                var n = Path.GetFileName(f)[..^".ready".Length];
                if (WalNames.IsValid(n))
                {
                    names.Add(n);
                }
            }
        }
        catch (DirectoryNotFoundException)
        {
            return names;
        }
        return [.. names.OrderBy(n => n.EndsWith(".history", StringComparison.Ordinal) ? 0 : 1).ThenBy(n => n, StringComparer.Ordinal)];
    }
}

/// <summary>The prefetcher's database.</summary>
public sealed record WalFetchAheadRequest(string? Database);

public sealed record WalFetchAheadResult(int Fetched, bool AlreadyRunning);

/// <summary>
/// <c>wal-fetch-ahead</c> (started by wal-fetch, not by people): one per spool, it keeps the <c>fetch_ahead</c>
/// segments after the one recovery asked for last fetched, in parallel, into the spool: each through the same
/// authenticated, hash-checked path as a direct fetch, then recorded with its size and SHA-256 and published
/// under its name. It deletes what recovery has passed and exits when recovery has not asked for a while.
/// </summary>
public sealed class WalFetchAheadOperation(OperationContext context)
{
    private static readonly TimeSpan IdleExit = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RetryAfter = TimeSpan.FromSeconds(1);

    public async Task<WalFetchAheadResult> RunAsync(WalFetchAheadRequest request, CancellationToken cancellationToken)
    {
        var db = WalDatabase.Resolve(context, request.Database);
        var settings = WalBackground.SettingsOf(context, db);
        if (!settings.Prefetch || settings.Spool is null)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"databases.{db}.wal.fetch_ahead is not set in cairn.yaml; wal-fetch-ahead is the background half of prefetching");
        }
        using var spool = WalSpool.Open(settings.Spool, db, "fetch", context.RepositoryLocation.Display);
        using var workerLock = spool.TryLockWorker();
        if (workerLock is null)
        {
            return new WalFetchAheadResult(0, true);
        }
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        var archive = new WalArchive(repo, db);
        var parallel = Math.Min(settings.FetchAhead, Math.Max(2, Environment.ProcessorCount));
        var inflight = new Dictionary<string, Task<bool>>(StringComparer.Ordinal);
        var missingAt = new Dictionary<string, long>(StringComparer.Ordinal);
        (string Name, long SegmentSize)? lastWant = null;
        var lastChange = context.Time.GetTimestamp();
        var fetched = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var want = spool.ReadWant();
            if (want != lastWant)
            {
                lastWant = want;
                lastChange = context.Time.GetTimestamp();
            }
            var targets = want is { } w ? WalBackground.Following(w.Name, w.SegmentSize, settings.FetchAhead) : [];
            var keep = new HashSet<string>(targets, StringComparer.Ordinal);
            if (want is { } w2)
            {
                keep.Add(w2.Name);
            }
            foreach (var name in spool.Names().Select(WalSpool.WalNameOf).OfType<string>().Distinct().Where(n => !keep.Contains(n) && !inflight.ContainsKey(n)).ToList())
            {
                spool.Forget(name);
            }
            foreach (var name in targets)
            {
                if (inflight.Count >= parallel)
                {
                    break;
                }
                if (inflight.ContainsKey(name) || spool.HasPrefetched(name) || (missingAt.TryGetValue(name, out var at) && context.Time.GetElapsedTime(at) < RetryAfter))
                {
                    continue;
                }
                inflight[name] = Task.Run(() => FetchOneAsync(archive, spool, name, cancellationToken), cancellationToken);
            }
            if (inflight.Count == 0)
            {
                if (context.Time.GetElapsedTime(lastChange) > IdleExit)
                {
                    break;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(20), context.Time, cancellationToken).ConfigureAwait(false);
                continue;
            }
            await Task.WhenAny([.. inflight.Values, Task.Delay(TimeSpan.FromMilliseconds(20), context.Time, cancellationToken)]).ConfigureAwait(false);
            foreach (var (name, task) in inflight.Where(p => p.Value.IsCompleted).ToList())
            {
                inflight.Remove(name);
                if (task.IsCompletedSuccessfully && task.Result)
                {
                    fetched++;
                }
                else
                {
                    missingAt[name] = context.Time.GetTimestamp();
                    if (task.Exception?.GetBaseException() is { } e)
                    {
                        context.Warn($"prefetch of {name} failed (wal-fetch will fetch it itself): {e.Message}");
                    }
                }
            }
        }
        return new WalFetchAheadResult(fetched, false);
    }

    /// <summary>Fetches one segment into the spool; false when it is not archived (yet).</summary>
    private static async Task<bool> FetchOneAsync(WalArchive archive, WalSpool spool, string name, CancellationToken cancellationToken)
    {
        try
        {
            await archive.GetToFileAsync(name, spool.PartialPath(name), cancellationToken).ConfigureAwait(false);
        }
        catch (RepositoryException e) when (e.Kind == ErrorKind.NotFound)
        {
            return false;
        }
        spool.PublishPrefetched(name);
        return true;
    }
}
