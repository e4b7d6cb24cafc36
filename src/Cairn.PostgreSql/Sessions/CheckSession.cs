using Cairn.PostgreSql.Connections;
using Npgsql;

namespace Cairn.PostgreSql.Sessions;

/// <summary>
/// A connection for checks: every statement runs in a READ ONLY transaction with a statement timeout,
/// so a check can never change data or hang a drill. Values come back as plain CLR objects, so the
/// checks themselves need no Npgsql types.
/// </summary>
public sealed class CheckSession : IAsyncDisposable
{
    private readonly PgConnection _target;
    private readonly TimeSpan _timeout;
    private NpgsqlConnection _connection;

    private CheckSession(PgConnection target, TimeSpan timeout, NpgsqlConnection connection)
    {
        _target = target;
        _timeout = timeout;
        _connection = connection;
    }

    public static async Task<CheckSession> OpenAsync(PgConnection connection, TimeSpan statementTimeout, CancellationToken ct)
        => new(connection, statementTimeout, await ConnectAsync(connection, statementTimeout, ct).ConfigureAwait(false));

    private static async Task<NpgsqlConnection> ConnectAsync(PgConnection connection, TimeSpan statementTimeout, CancellationToken ct)
    {
        var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using (var cmd = new NpgsqlCommand($"SET default_transaction_read_only = on; SET statement_timeout = {(long)statementTimeout.TotalMilliseconds}; SET lock_timeout = 10000", c))
        {
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        return c;
    }

    /// <summary>A check that crashed the server's backend (severe corruption can) must not end the others: reconnect.</summary>
    private async Task EnsureOpenAsync(CancellationToken ct)
    {
        if (_connection.State == System.Data.ConnectionState.Open)
        {
            return;
        }
        await _connection.DisposeAsync().ConfigureAwait(false);
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                _connection = await ConnectAsync(_target, _timeout, ct).ConfigureAwait(false);
                return;
            }
            catch (PgToolException) when (attempt < 20)
            {
                await Task.Delay(250, ct).ConfigureAwait(false); // the server is restarting after a crashed backend
            }
        }
    }

    /// <summary>Rows of a query as arrays of values (DBNull becomes null). Named parameters as @name.</summary>
    public async Task<List<object?[]>> QueryAsync(string sql, IReadOnlyDictionary<string, object?>? parameters, CancellationToken ct)
    {
        await EnsureOpenAsync(ct).ConfigureAwait(false);
        await using var tx = await _connection.BeginTransactionAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, _connection, tx);
        foreach (var (k, v) in parameters ?? new Dictionary<string, object?>())
        {
            cmd.Parameters.AddWithValue(k, v ?? DBNull.Value);
        }
        var rows = new List<object?[]>();
        try
        {
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var row = new object?[r.FieldCount];
                for (var i = 0; i < r.FieldCount; i++)
                {
                    row[i] = r.IsDBNull(i) ? null : r.GetValue(i);
                }
                rows.Add(row);
            }
        }
        catch (PostgresException e)
        {
            throw new CheckQueryException($"{e.MessageText}{(e.Position > 0 ? $" (at character {e.Position})" : "")}", e.SqlState);
        }
        catch (NpgsqlException e)
        {
            throw new CheckQueryException($"the server connection broke while running the check ({e.Message}); the server process may have crashed", "08006");
        }
        await tx.RollbackAsync(ct).ConfigureAwait(false);
        return rows;
    }

    /// <summary>Runs a statement outside the read-only guard (only for our own scratch copies, e.g. CREATE EXTENSION amcheck).</summary>
    public async Task ExecuteWritableAsync(string sql, CancellationToken ct)
    {
        await EnsureOpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand($"BEGIN READ WRITE; {sql}; COMMIT", _connection);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    public ValueTask DisposeAsync() => _connection.DisposeAsync();
}

/// <summary>A check's SQL failed (bad SQL, missing table, timeout): the check fails with this reason.</summary>
public sealed class CheckQueryException(string message, string sqlState) : Exception(message)
{
    public string SqlState { get; } = sqlState;
}
