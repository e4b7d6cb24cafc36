using System.Globalization;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.PostgreSql.Sessions;
using Cairn.Repository;

namespace Cairn.Operations.Demo;

/// <summary>
/// The demo's scratch "production" server: the runbook's schema with realistic rows, archiving its WAL through
/// <c>cairn wal-push</c>, and the changes the demo makes to it (a day of traffic, a mistake, two known transactions).
/// </summary>
public sealed class DemoProduction : IAsyncDisposable
{
    public const string Database = "app";

    private ScratchServer? _server;

    private DemoProduction(ScratchServer server) => _server = server;

    public ScratchServer Server => _server ?? throw new ObjectDisposedException(nameof(DemoProduction));

    /// <summary>Starts the server with <paramref name="archiveCommand"/> and loads the demo database; returns it and its row count.</summary>
    public static async Task<(DemoProduction Production, long Rows)> StartAsync(string archiveCommand, int profiles, CancellationToken cancellationToken)
    {
        var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string>
        {
            ["wal_level"] = "replica",
            ["archive_mode"] = "on",
            ["archive_command"] = ConfValue.Quote(archiveCommand),
        }, cancellationToken: cancellationToken).ConfigureAwait(false);
        var production = new DemoProduction(server);
        try
        {
            await server.ExecuteAsync($"CREATE DATABASE {Database}", cancellationToken: cancellationToken).ConfigureAwait(false);
            await server.ExecuteAsync(DemoSchema.Sql(profiles), Database, cancellationToken).ConfigureAwait(false);
            var rows = await server.ScalarAsync<long>("SELECT (SELECT count(*) FROM profiles) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM wa_messages)", Database, cancellationToken).ConfigureAwait(false);
            return (production, rows);
        }
        catch
        {
            await production.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>A day of changes: new orders and messages, updates, a few deletes.</summary>
    public Task DayOfChangesAsync(CancellationToken cancellationToken) => Server.ExecuteAsync("""
        INSERT INTO orders (profile_id, status, amount, created_at) SELECT id, 'paid', 42.00, now() FROM profiles WHERE random() < 0.05;
        INSERT INTO wa_messages (profile_id, direction, body, created_at) SELECT id, 'out', 'Obrigado pela sua compra!', now() FROM profiles WHERE random() < 0.05;
        UPDATE orders SET status = 'shipped' WHERE status = 'paid' AND id % 50 = 0;
        DELETE FROM wa_automation_flows WHERE status = 'completed' AND id % 20 = 0;
        """, Database, cancellationToken);

    /// <summary>Someone deletes 25 orders by mistake.</summary>
    public Task DeleteOrdersByMistakeAsync(CancellationToken cancellationToken)
        => Server.ExecuteAsync("DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 25)", Database, cancellationToken);

    /// <summary>The data subject the demo erases: the oldest profile's id.</summary>
    public Task<string> OldestProfileAsync(CancellationToken cancellationToken)
        => Server.ScalarAsync<string>("SELECT id::text FROM profiles ORDER BY created_at, id LIMIT 1", Database, cancellationToken);

    /// <summary>How many profiles rows of <paramref name="database"/> (a restored copy) hold <paramref name="subject"/>: 0 once the erasure ledger was applied.</summary>
    public Task<long> ProfileRowsAsync(string database, string subject, CancellationToken cancellationToken)
    {
        // The id goes into SQL text only as a parsed UUID: nothing else can be in it.
        var id = Guid.Parse(subject).ToString("D", CultureInfo.InvariantCulture);
        return Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{id}'::uuid", database, cancellationToken);
    }

    /// <summary>
    /// Someone deletes the 5 newest orders (the audit trigger keeps their old images); returns a window that covers the
    /// accident, measured on the server's clock, for <c>recover --from-audit --since</c>, and a moment just before it
    /// (the form <c>recover --at</c> takes).
    /// </summary>
    public async Task<(TimeSpan Window, string Before)> DeleteNewestOrdersByMistakeAsync(CancellationToken cancellationToken)
    {
        var start = await Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", Database, cancellationToken).ConfigureAwait(false);
        await Server.ExecuteAsync("DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id DESC LIMIT 5)", Database, cancellationToken).ConfigureAwait(false);
        var end = await Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", Database, cancellationToken).ConfigureAwait(false);
        return (TimeSpan.FromSeconds(Math.Ceiling((end - start).TotalSeconds) + 2), start.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");
    }

    /// <summary>
    /// Transaction A, then about a second later transaction B, both archived; returns a recovery target time between
    /// them (the form restore --target-time takes).
    /// </summary>
    public async Task<string> TwoTransactionsAsync(CancellationToken cancellationToken)
    {
        // Markers of the demo itself, not events about a row: their entity names no table, so no replay reads them.
        await Server.ExecuteAsync("INSERT INTO audit_log (actor, event, entity, created_at) VALUES ('demo', 'transaction A: refund approved', 'demo', now())", Database, cancellationToken).ConfigureAwait(false);
        var between = await Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", Database, cancellationToken).ConfigureAwait(false);
        // The two commits must lie apart in time for a time target to fall between them.
        await Task.Delay(1100, cancellationToken).ConfigureAwait(false);
        await Server.ExecuteAsync("INSERT INTO audit_log (actor, event, entity, created_at) VALUES ('demo', 'transaction B: all orders deleted by mistake', 'demo', now())", Database, cancellationToken).ConfigureAwait(false);
        await ArchiveCurrentSegmentAsync(cancellationToken).ConfigureAwait(false);
        return between.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
    }

    /// <summary>
    /// The demo's audit events in a restored copy on <paramref name="socketDirectory"/>; it must hold transaction A and not
    /// B (recovery stopped between them), else the demo fails.
    /// </summary>
    public static async Task<List<string>> StoppedBetweenAsync(string socketDirectory, int port, CancellationToken cancellationToken)
    {
        await using var session = await CheckSession.OpenAsync(PgConnection.Parse(SocketUrl.For(socketDirectory, port, Database)), TimeSpan.FromSeconds(30), cancellationToken).ConfigureAwait(false);
        List<string> events = [.. (await session.QueryAsync("SELECT event FROM audit_log WHERE actor = 'demo' ORDER BY created_at", null, cancellationToken).ConfigureAwait(false)).Select(r => (string)r[0]!)];
        if (events.Count != 1 || !events[0].StartsWith("transaction A", StringComparison.Ordinal))
        {
            throw new RepositoryException(ErrorKind.General, $"point-in-time recovery did not stop between the two transactions (the restored copy holds: {(events.Count == 0 ? "neither" : string.Join("; ", events))})");
        }
        return events;
    }

    /// <summary>Stops a restored copy the demo started (fast shutdown).</summary>
    public async Task StopRestoredAsync(string dataDirectory)
        => await PgProcess.RunAsServerUserAsync(Server.Binaries["pg_ctl"], ["-D", dataDirectory, "-m", "fast", "-w", "stop"], null, CancellationToken.None).ConfigureAwait(false);

    /// <summary>Keeps the server running after the demo (its folder too); the caller prints how to reach it.</summary>
    public ScratchServer Keep()
    {
        var server = Server;
        _server = null;
        return server;
    }

    /// <summary>Switches WAL segment and waits until the archiver has pushed everything written so far.</summary>
    private async Task ArchiveCurrentSegmentAsync(CancellationToken ct)
    {
        var last = await Server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", cancellationToken: ct).ConfigureAwait(false);
        await Server.ExecuteAsync("SELECT pg_switch_wal()", cancellationToken: ct).ConfigureAwait(false);
        for (var i = 0; i < 300; i++)
        {
            var archived = await Server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", cancellationToken: ct).ConfigureAwait(false);
            if (string.CompareOrdinal(archived, last) >= 0)
            {
                return;
            }
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        throw new RepositoryException(ErrorKind.General, $"the demo server did not archive {last} within 30 s; see {Server.LogFile}");
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync().ConfigureAwait(false);
            _server = null;
        }
    }
}
