using System.Globalization;
using System.Net;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Connections;

/// <summary>How a connection's pool mode was learned.</summary>
public enum PoolerEvidence
{
    /// <summary>PgBouncer's admin console (the <c>pgbouncer</c> virtual database) said so.</summary>
    Console,

    /// <summary>Inferred from the server processes behind two client connections (no console answered).</summary>
    ServerProcesses,
}

/// <summary>What the probe found on a connection it did not refuse.</summary>
/// <param name="PoolMode">The pool mode PgBouncer's console reported (<c>session</c>), or null when no console answered.</param>
/// <param name="ConsoleUnavailable">Why the console was not asked or did not answer (null when it answered).</param>
public sealed record PoolerFinding(PoolerEvidence Evidence, string? PoolMode, string? ConsoleUnavailable)
{
    public string Describe() => Evidence == PoolerEvidence.Console
        ? $"through PgBouncer, pool_mode={PoolMode} (its admin console says so)"
        : $"direct or session-mode: no transaction-mode pooler seen (server process IDs; {ConsoleUnavailable})";
}

/// <summary>
/// Finds a transaction-mode (or statement-mode) pooler between Cairn and the server: PgBouncer or Supavisor with
/// <c>pool_mode=transaction</c>, such as Supabase's port 6543. Behind one, the server process behind a client
/// connection changes between transactions, so pg_dump's session settings and the exported snapshot's holder are
/// not where pg_dump expects them: a dump may fail half-way or, worse, run with settings it did not ask for.
/// When the server says it is not where Cairn dialled (another address or port: something sits between), the probe
/// first asks PgBouncer's admin console (<c>SHOW POOLS</c> on the <c>pgbouncer</c> virtual database, through psql:
/// the console speaks only the simple query protocol) for the pool's mode. When no console answers (not PgBouncer,
/// or the user is in neither admin_users nor stats_users), it falls back to the backend PIDs of two client
/// connections open at the same time, then again on the first: two open sessions never share a backend, and one
/// session keeps its backend — unless a pooler multiplexes them.
/// </summary>
public static class PoolerProbe
{
    /// <summary>Throws a <see cref="PgToolException"/> naming the URL to use instead when <paramref name="connection"/> goes through a transaction-mode pooler.</summary>
    /// <param name="postgresBin">Where psql is (configured postgres_bin), for the console question.</param>
    public static async Task<PoolerFinding> RefuseTransactionPoolerAsync(PgConnection connection, string? postgresBin, CancellationToken ct)
    {
        // The first connection stays open while the console is asked, so PgBouncer has a pool for it to report.
        await using var a = await connection.OpenAsync(ct).ConfigureAwait(false);
        var (a1, serverAddress, serverPort) = await BackendAsync(a, ct).ConfigureAwait(false);
        string consoleUnavailable;
        var between = await BetweenAsync(connection, serverAddress, serverPort, ct).ConfigureAwait(false);
        var supavisor = between is null ? null : await SupavisorAsync(a, connection, ct).ConfigureAwait(false);
        if (supavisor is not null)
        {
            // Supavisor has no admin console: asking would only leave a failed login in its log at every backup.
            consoleUnavailable = $"{between}; {supavisor}, which has no PgBouncer admin console, so none was asked";
        }
        else if (between is not null)
        {
            var (mode, why) = await ConsolePoolModeAsync(connection, postgresBin, ct).ConfigureAwait(false);
            if (mode is "transaction" or "statement")
            {
                throw new PgToolException(Message(connection, $"PgBouncer's admin console reports pool_mode={mode} for database {connection.Database}"));
            }
            if (mode is not null)
            {
                return new PoolerFinding(PoolerEvidence.Console, mode, null);
            }
            consoleUnavailable = $"{between}; PgBouncer's admin console was not reachable: {why}";
        }
        else
        {
            consoleUnavailable = "the server answers at the address and port dialled, so no console was asked";
        }
        await using var b = await connection.OpenAsync(ct).ConfigureAwait(false);
        var (b1, _, _) = await BackendAsync(b, ct).ConfigureAwait(false);
        var (a2, _, _) = await BackendAsync(a, ct).ConfigureAwait(false);
        var (b2, _, _) = await BackendAsync(b, ct).ConfigureAwait(false);
        if (a1 == b1 || a1 != a2 || b1 != b2)
        {
            throw new PgToolException(Message(connection, (a1 == b1
                ? $"two open connections were served by the same server process (PID {a1})"
                : a1 != a2 ? $"one connection was served by server process {a1}, then {a2}" : $"one connection was served by server process {b1}, then {b2}")
                + $"; {consoleUnavailable}, so the mode was told by the server processes"));
        }
        return new PoolerFinding(PoolerEvidence.ServerProcesses, null, consoleUnavailable);
    }

    public static string Message(PgConnection connection, string evidence) =>
        $"{connection.Redacted} goes through a transaction-mode pooler ({evidence}): pg_dump needs one server session for its whole run. " +
        "Use a session-mode or direct URL instead: on Supabase, the session pooler (the same pooler host on port 5432, user postgres.<project-ref>) " +
        "or the direct connection (db.<project-ref>.supabase.co:5432); with PgBouncer, a database entry with pool_mode=session";

    /// <summary>
    /// Why something seems to sit between Cairn and the server, or null when the server's own address and port are the
    /// ones dialled (a direct connection: asking a console there would only leave a failed login in the server's log).
    /// </summary>
    private static async Task<string?> BetweenAsync(PgConnection connection, IPAddress? serverAddress, int? serverPort, CancellationToken ct)
    {
        var host = connection.Host ?? Environment.GetEnvironmentVariable("PGHOST");
        var socket = host is null || host.StartsWith('/');
        if (serverAddress is null)
        {
            // A Unix socket at the server: direct when Cairn dialled a socket too; a pooler reaching the server over a socket otherwise.
            return socket ? null : "the server answers over a Unix socket while Cairn dialled TCP";
        }
        if (socket)
        {
            return $"Cairn dialled a Unix socket and the server answers at {serverAddress}";
        }
        if (serverPort != connection.Port)
        {
            return $"the server answers on port {serverPort}, Cairn dialled {connection.Port}";
        }
        IPAddress[] dialled;
        try
        {
            dialled = IPAddress.TryParse(host!.Trim('[', ']'), out var ip) ? [ip] : await Dns.GetHostAddressesAsync(host!, ct).ConfigureAwait(false);
        }
        catch (System.Net.Sockets.SocketException)
        {
            return null; // it resolved for the connection a moment ago; without an answer now, assume direct
        }
        static IPAddress Plain(IPAddress x) => x.IsIPv4MappedToIPv6 ? x.MapToIPv4() : x;
        return dialled.Any(d => Plain(d).Equals(Plain(serverAddress))) ? null : $"the server answers at {serverAddress}, not at an address of {host}";
    }

    /// <summary>
    /// Why the pooler is Supavisor (Supabase's), or null. Supavisor takes the project from the user name
    /// (<c>postgres.&lt;project-ref&gt;</c>) and logs in to the server as the part before the dot, and names its own server
    /// sessions <c>application_name=Supavisor</c>; PgBouncer passes both through.
    /// </summary>
    private static async Task<string?> SupavisorAsync(NpgsqlConnection c, PgConnection connection, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT session_user::text, current_setting('application_name')", c);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await r.ReadAsync(ct).ConfigureAwait(false);
        var (serverUser, application) = (r.GetString(0), r.GetString(1));
        var user = connection.User;
        if (user.Length > serverUser.Length + 1 && user.StartsWith(serverUser + ".", StringComparison.Ordinal))
        {
            return $"the pooler takes user {user} to the server as {serverUser} (Supavisor's <user>.<project-ref>)";
        }
        return application.Equals("Supavisor", StringComparison.OrdinalIgnoreCase) ? $"the server session is named application_name={application} (Supavisor's)" : null;
    }

    /// <summary>The pool mode PgBouncer's console reports for this connection's pool, or null and why not.</summary>
    private static async Task<(string? Mode, string Why)> ConsolePoolModeAsync(PgConnection connection, string? postgresBin, CancellationToken ct)
    {
        string psql;
        try
        {
            psql = PgBinaries.Find(null, postgresBin)["psql"];
        }
        catch (PgToolException e)
        {
            return (null, "psql not found: " + e.Message);
        }
        var console = connection.WithDatabase("pgbouncer");
        var pools = await ShowAsync(console, psql, "SHOW POOLS", ct).ConfigureAwait(false);
        if (pools.Rows is null)
        {
            return (null, pools.Why);
        }
        // A pool is one (database, user) pair; the user may be forced by the database entry, so a pool of this database
        // for another user counts when it is the only mode there.
        var ours = pools.Rows.Where(r => r.GetValueOrDefault("database") == connection.Database).ToList();
        var mine = ours.Where(r => r.GetValueOrDefault("user") == connection.User).ToList();
        var modes = (mine.Count > 0 ? mine : ours).Select(r => r.GetValueOrDefault("pool_mode")).Where(m => !string.IsNullOrEmpty(m)).Distinct(StringComparer.Ordinal).ToList();
        if (modes.Count == 1)
        {
            return (modes[0], "");
        }
        if (modes.Count > 1)
        {
            return (modes.Contains("transaction", StringComparer.Ordinal) ? "transaction" : modes.Contains("statement", StringComparer.Ordinal) ? "statement" : modes[0], "");
        }
        // No pool row (PgBouncer older than 1.9 has no pool_mode column there): the server-wide default.
        var config = await ShowAsync(console, psql, "SHOW CONFIG", ct).ConfigureAwait(false);
        var mode = config.Rows?.FirstOrDefault(r => r.GetValueOrDefault("key") == "pool_mode")?.GetValueOrDefault("value");
        return string.IsNullOrEmpty(mode) ? (null, config.Rows is null ? config.Why : "neither SHOW POOLS nor SHOW CONFIG named a pool_mode") : (mode, "");
    }

    private static async Task<(List<Dictionary<string, string>>? Rows, string Why)> ShowAsync(PgConnection console, string psql, string command, CancellationToken ct)
    {
        using var env = console.ProgramEnvironment();
        ProcessResult r;
        try
        {
            r = await PgProcess.RunAsync(psql, ["--no-psqlrc", "--no-align", "--field-separator=\t", "--pset=footer=off", "--command", command], env.Variables, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
        }
        catch (PgToolException e)
        {
            return (null, e.Message);
        }
        if (r.ExitCode != 0)
        {
            var last = r.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault() ?? $"psql exited with {r.ExitCode}";
            return (null, last.Replace("psql: ", "", StringComparison.Ordinal));
        }
        var lines = r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        if (lines.Length == 0)
        {
            return (null, $"{command} returned nothing");
        }
        var header = lines[0].Split('\t');
        return ([.. lines.Skip(1).Select(l => l.Split('\t')).Select(cells => header.Select((h, i) => (h, v: i < cells.Length ? cells[i] : "")).ToDictionary(x => x.h, x => x.v, StringComparer.Ordinal))], "");
    }

    private static async Task<(int Pid, IPAddress? Address, int? Port)> BackendAsync(NpgsqlConnection c, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_backend_pid(), host(inet_server_addr()), inet_server_port()", c);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await r.ReadAsync(ct).ConfigureAwait(false);
        return (r.GetInt32(0), r.IsDBNull(1) ? null : IPAddress.Parse(r.GetString(1)), r.IsDBNull(2) ? null : r.GetInt32(2));
    }
}
