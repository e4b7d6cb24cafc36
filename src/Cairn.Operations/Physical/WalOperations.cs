using Cairn.Operations.Configuration;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;

namespace Cairn.Operations.Physical;

/// <summary>Which database a WAL file belongs to: the one named, else CAIRN_DATABASE, else the only one configured.</summary>
public static class WalDatabase
{
    public static string Resolve(OperationContext context, string? database)
    {
        if (database is not null)
        {
            return database;
        }
        if (context.Environment("CAIRN_DATABASE") is { Length: > 0 } e)
        {
            return e;
        }
        return context.Config.Databases.Count == 1 ? context.Config.Databases.Keys.Single()
            : throw new RepositoryException(ErrorKind.InvalidInput, "say which database this WAL belongs to: --database NAME (or CAIRN_DATABASE)");
    }
}

/// <summary>The WAL file PostgreSQL hands archive_command (%p), and the database it belongs to.</summary>
public sealed record WalPushRequest(string Path, string? Database);

/// <summary>
/// <see cref="Acknowledged"/>: stored earlier by the background pusher (asynchronous archiving), so this call only
/// confirmed it; <see cref="AlreadyArchived"/>: this call found identical content already stored.
/// </summary>
public sealed record WalPushResult(string Name, string Database, bool AlreadyArchived, bool Acknowledged = false);

/// <summary>
/// <c>wal-push</c>: archive one WAL file. Identical content pushed again succeeds; different content is refused.
/// With <c>wal.async</c>, a segment the background pusher already stored (its marker names this very file, and the
/// object is in the repository) is acknowledged at once; otherwise it is stored here, and the pusher is started on
/// the following <c>.ready</c> segments. Success is only ever returned for a segment durably in the repository.
/// </summary>
public sealed class WalPushOperation(OperationContext context)
{
    /// <summary>How long a call waits for a running pusher to store its segment before storing it itself.</summary>
    private static readonly TimeSpan PusherWait = TimeSpan.FromSeconds(10);

    public async Task<WalPushResult> RunAsync(WalPushRequest request, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(request.Path);
        if (!WalNames.IsValid(name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not a WAL file name; archive_command should pass %p");
        }
        var db = WalDatabase.Resolve(context, request.Database);
        if (!File.Exists(request.Path))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"{request.Path} does not exist");
        }
        var settings = WalBackground.SettingsOf(context, db);
        if (settings.Async && settings.Spool is not null)
        {
            return await AsyncAsync(request.Path, name, db, settings, cancellationToken).ConfigureAwait(false);
        }
        return await StoreAsync(request.Path, name, db, settings, cancellationToken).ConfigureAwait(false);
    }

    private async Task<WalPushResult> StoreAsync(string path, string name, string db, WalConfig settings, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        var result = await new WalArchive(repo, db) { CompressionLevel = settings.CompressionLevel }.PutFileAsync(path, cancellationToken).ConfigureAwait(false);
        return new WalPushResult(name, db, result == NamedPutResult.AlreadyStoredIdentical);
    }

    private async Task<WalPushResult> AsyncAsync(string path, string name, string db, WalConfig settings, CancellationToken cancellationToken)
    {
        using var spool = WalSpool.Open(settings.Spool!, db, "push", context.RepositoryLocation.Display);
        var identity = WalSpool.FileIdentity.Of(path) ?? throw new RepositoryException(ErrorKind.NotFound, $"{path} is not a regular file");
        if (await AcknowledgedAsync(spool, name, identity, db, cancellationToken).ConfigureAwait(false))
        {
            return new WalPushResult(name, db, false, Acknowledged: true);
        }
        var walDir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (spool.WorkerRunning())
        {
            // The pusher takes the oldest ready segments first, and PostgreSQL asks for the oldest: it is on this one already.
            var start = context.Time.GetTimestamp();
            while (spool.WorkerRunning() && context.Time.GetElapsedTime(start) < PusherWait)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(5), context.Time, cancellationToken).ConfigureAwait(false);
                if (await AcknowledgedAsync(spool, name, identity, db, cancellationToken).ConfigureAwait(false))
                {
                    return new WalPushResult(name, db, false, Acknowledged: true);
                }
            }
        }
        else if (WalPushAheadOperation.ReadySegments(Path.Combine(walDir, "archive_status")).Any(n => n != name))
        {
            WalBackground.Start(context, ["--repo", context.RepositoryLocation.Display, "wal-push-ahead", walDir, "--database", db, "--skip", name]);
        }
        var stored = await StoreAsync(path, name, db, settings, cancellationToken).ConfigureAwait(false);
        spool.Remove(name + ".ok");
        return stored;
    }

    /// <summary>
    /// A marker for this very file and the object in the repository: then PostgreSQL may recycle the segment. The marker
    /// stays: PostgreSQL turns .ready into .done only after this call returns, and a pusher that saw the segment still
    /// ready without its marker would store it a second time (measured: a duplicate put, which hashes the file and reads
    /// back the stored object, for most acknowledged segments). The pusher deletes markers of segments no longer ready.
    /// </summary>
    private async Task<bool> AcknowledgedAsync(WalSpool spool, string name, WalSpool.FileIdentity identity, string db, CancellationToken cancellationToken)
    {
        if (!spool.IsMarkedPushed(name, identity))
        {
            return false;
        }
        if (!await new WalArchive(context.OpenStorage(), db).ExistsAsync(name, cancellationToken).ConfigureAwait(false))
        {
            spool.Remove(name + ".ok");
            return false;
        }
        return true;
    }
}

/// <summary>The WAL file PostgreSQL asks restore_command for (%f), where to write it (%p), and the database.</summary>
public sealed record WalFetchRequest(string Name, string Destination, string? Database);

/// <summary><see cref="Found"/> is false when the file is not archived (PostgreSQL then ends recovery there).</summary>
public sealed record WalFetchResult(string Name, string Database, bool Found);

/// <summary>
/// <c>wal-fetch</c>: one archived WAL file for recovery. A name that is not a WAL file name is refused before anything
/// is read. With <c>wal.fetch_ahead</c>, a segment the prefetcher already fetched is copied from the spool when it
/// is exactly what was recorded (else it is deleted and fetched directly), and the prefetcher is kept on the
/// segments that follow.
/// </summary>
public sealed class WalFetchOperation(OperationContext context)
{
    /// <summary>How long a call waits for a segment the prefetcher is fetching right now.</summary>
    private static readonly TimeSpan InFlightWait = TimeSpan.FromSeconds(5);

    public async Task<WalFetchResult> RunAsync(WalFetchRequest request, CancellationToken cancellationToken)
    {
        if (!WalNames.IsValid(request.Name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{request.Name}' is not a WAL file name; refusing it");
        }
        var db = WalDatabase.Resolve(context, request.Database);
        var destination = Path.GetFullPath(request.Destination);
        var settings = WalBackground.SettingsOf(context, db);
        if (settings.Prefetch && settings.Spool is not null && WalNames.IsSegment(request.Name))
        {
            using var spool = WalSpool.Open(settings.Spool, db, "fetch", context.RepositoryLocation.Display);
            if (await FromSpoolAsync(spool, request.Name, destination, cancellationToken).ConfigureAwait(false))
            {
                return new WalFetchResult(request.Name, db, true);
            }
            var direct = await DirectAsync(request.Name, destination, db, cancellationToken).ConfigureAwait(false);
            if (direct.Found)
            {
                Prefetch(spool, request.Name, new FileInfo(destination).Length, db);
            }
            return direct;
        }
        return await DirectAsync(request.Name, destination, db, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> FromSpoolAsync(WalSpool spool, string name, string destination, CancellationToken cancellationToken)
    {
        var start = context.Time.GetTimestamp();
        while (!spool.HasPrefetched(name) && File.Exists(spool.PartialPath(name)) && spool.WorkerRunning() && context.Time.GetElapsedTime(start) < InFlightWait)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(5), context.Time, cancellationToken).ConfigureAwait(false);
        }
        if (!spool.HasPrefetched(name))
        {
            return false;
        }
        // The prefetcher moves on before this copy is made, so the next segments are on their way meanwhile.
        if (spool.PrefetchedRecord(name) is { } recorded)
        {
            Prefetch(spool, name, recorded.Size, spool.Database);
        }
        if (spool.TryDeliverPrefetched(name, destination, out var rejected))
        {
            return true;
        }
        if (rejected is not null)
        {
            context.Warn($"the prefetched {name} in {spool.Path} was not used ({rejected}); fetching it from the repository");
        }
        return false;
    }

    private void Prefetch(WalSpool spool, string name, long segmentSize, string db)
    {
        spool.WriteWant(name, segmentSize);
        if (!spool.WorkerRunning())
        {
            WalBackground.Start(context, ["--repo", context.RepositoryLocation.Display, "wal-fetch-ahead", "--database", db]);
        }
    }

    private async Task<WalFetchResult> DirectAsync(string name, string destination, string db, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await new WalArchive(repo, db).GetToFileAsync(name, destination, cancellationToken).ConfigureAwait(false);
            return new WalFetchResult(name, db, true);
        }
        catch (RepositoryException e) when (e.Kind == ErrorKind.NotFound)
        {
            return new WalFetchResult(name, db, false);
        }
    }
}
