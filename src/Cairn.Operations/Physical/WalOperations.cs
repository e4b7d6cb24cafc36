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

public sealed record WalPushResult(string Name, string Database, bool AlreadyArchived);

/// <summary><c>wal-push</c>: archive one WAL file. Identical content pushed again succeeds; different content is refused.</summary>
public sealed class WalPushOperation(OperationContext context)
{
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
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        var result = await new WalArchive(repo, db).PutFileAsync(request.Path, cancellationToken).ConfigureAwait(false);
        return new WalPushResult(name, db, result == NamedPutResult.AlreadyStoredIdentical);
    }
}

/// <summary>The WAL file PostgreSQL asks restore_command for (%f), where to write it (%p), and the database.</summary>
public sealed record WalFetchRequest(string Name, string Destination, string? Database);

/// <summary><see cref="Found"/> is false when the file is not archived (PostgreSQL then ends recovery there).</summary>
public sealed record WalFetchResult(string Name, string Database, bool Found);

/// <summary><c>wal-fetch</c>: one archived WAL file for recovery. A name that is not a WAL file name is refused before anything is read.</summary>
public sealed class WalFetchOperation(OperationContext context)
{
    public async Task<WalFetchResult> RunAsync(WalFetchRequest request, CancellationToken cancellationToken)
    {
        if (!WalNames.IsValid(request.Name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{request.Name}' is not a WAL file name; refusing it");
        }
        var db = WalDatabase.Resolve(context, request.Database);
        using var repo = await context.OpenRepositoryForWalAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            await new WalArchive(repo, db).GetToFileAsync(request.Name, Path.GetFullPath(request.Destination), cancellationToken).ConfigureAwait(false);
            return new WalFetchResult(request.Name, db, true);
        }
        catch (RepositoryException e) when (e.Kind == ErrorKind.NotFound)
        {
            return new WalFetchResult(request.Name, db, false);
        }
    }
}
