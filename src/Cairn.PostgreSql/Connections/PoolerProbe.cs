using Npgsql;

namespace Cairn.PostgreSql.Connections;

/// <summary>
/// Finds a transaction-mode (or statement-mode) pooler between Cairn and the server: PgBouncer or Supavisor with
/// <c>pool_mode=transaction</c>, such as Supabase's port 6543. Behind one, the server process behind a client
/// connection changes between transactions, so pg_dump's session settings and the exported snapshot's holder are
/// not where pg_dump expects them: a dump may fail half-way or, worse, run with settings it did not ask for.
/// The probe asks for the backend PID on two client connections open at the same time, then again on the first:
/// two open sessions never share a backend, and one session keeps its backend — unless a pooler multiplexes them.
/// </summary>
public static class PoolerProbe
{
    /// <summary>Throws a <see cref="PgToolException"/> naming the URL to use instead when <paramref name="connection"/> goes through a transaction-mode pooler.</summary>
    public static async Task RefuseTransactionPoolerAsync(PgConnection connection, CancellationToken ct)
    {
        await using var a = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var b = await connection.OpenAsync(ct).ConfigureAwait(false);
        var a1 = await PidAsync(a, ct).ConfigureAwait(false);
        var b1 = await PidAsync(b, ct).ConfigureAwait(false);
        var a2 = await PidAsync(a, ct).ConfigureAwait(false);
        var b2 = await PidAsync(b, ct).ConfigureAwait(false);
        if (a1 == b1 || a1 != a2 || b1 != b2)
        {
            throw new PgToolException(Message(connection, a1 == b1
                ? $"two open connections were served by the same server process (PID {a1})"
                : a1 != a2 ? $"one connection was served by server process {a1}, then {a2}" : $"one connection was served by server process {b1}, then {b2}"));
        }
    }

    public static string Message(PgConnection connection, string evidence) =>
        $"{connection.Redacted} goes through a transaction-mode pooler ({evidence}): pg_dump needs one server session for its whole run. " +
        "Use a session-mode or direct URL instead: on Supabase, the session pooler (the same pooler host on port 5432, user postgres.<project-ref>) " +
        "or the direct connection (db.<project-ref>.supabase.co:5432); with PgBouncer, a database entry with pool_mode=session";

    private static async Task<int> PidAsync(NpgsqlConnection c, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid()", c);
        return (int)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }
}
