using Cairn.PostgreSql.Connections;

namespace Cairn.PostgreSql.Sessions;

/// <summary>The server's own view of WAL archiving (pg_stat_archiver).</summary>
public sealed record ArchiverStatus(long FailedCount, string? LastFailedWal, DateTime? LastFailedTime, DateTime? LastArchivedTime)
{
    /// <summary>Archiving failed since it last succeeded.</summary>
    public bool Failing => LastFailedTime is { } failed && (LastArchivedTime is null || failed > LastArchivedTime);
}

/// <summary>What monitoring asks a live server: does it answer, and is its archiver healthy. Read-only, with a statement timeout.</summary>
public static class ServerStatus
{
    /// <summary>Connects and runs a trivial query; throws (PgToolException, CheckQueryException, DbException) when the server does not answer.</summary>
    public static async Task<CheckSession> ReachAsync(PgConnection connection, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var session = await CheckSession.OpenAsync(connection, timeout, cancellationToken).ConfigureAwait(false);
        try
        {
            await session.QueryAsync("SELECT 1", null, cancellationToken).ConfigureAwait(false);
            return session;
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public static async Task<ArchiverStatus> ArchiverAsync(CheckSession session, CancellationToken cancellationToken)
    {
        var rows = await session.QueryAsync("SELECT failed_count, last_failed_wal, last_failed_time, last_archived_time FROM pg_stat_archiver", null, cancellationToken).ConfigureAwait(false);
        var r = rows[0];
        return new ArchiverStatus(Convert.ToInt64(r[0], System.Globalization.CultureInfo.InvariantCulture), r[1] as string, r[2] as DateTime?, r[3] as DateTime?);
    }
}
