using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Incidents;

/// <summary>A database's connection settings before an incident changed them: what lifting maintenance restores.</summary>
/// <param name="ConnectionLimit">pg_database.datconnlimit (-1: no limit).</param>
/// <param name="EffectiveAcl">The database's privileges as text (its default ACL when datacl is null), to prove the lift restored them.</param>
public sealed record ConnectionSettings(int ConnectionLimit, string EffectiveAcl);

/// <summary>
/// The SQL of an incident's maintenance mode, swap and forensics (the runbook's "isolate" and "resume"). Names come from
/// cairn.yaml or the catalog and are quoted at execution time; one statement per command.
/// </summary>
public static class Isolation
{
    /// <summary>Cairn's own sessions carry this application_name prefix (<see cref="PgConnection.NpgsqlConnectionString"/>); they are never terminated.</summary>
    public const string OwnApplication = "cairn";

    public static async Task<ConnectionSettings> ReadAsync(PgConnection connection, string database, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("SELECT datconnlimit, coalesce(datacl, acldefault('d', datdba))::text FROM pg_database WHERE datname = $1", c);
        cmd.Parameters.Add(new NpgsqlParameter { Value = database });
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            throw new PgToolException($"database {Catalog.Display(database)} does not exist on {connection.Redacted}");
        }
        return new ConnectionSettings(r.GetInt32(0), r.GetString(1));
    }

    /// <summary><c>ALTER DATABASE … CONNECTION LIMIT n</c> (superusers are not bound by it: PostgreSQL's rule).</summary>
    public static async Task SetConnectionLimitAsync(PgConnection connection, string database, int limit, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await ExecuteAsync(c, $"ALTER DATABASE {Catalog.Quote(database)} CONNECTION LIMIT {limit.ToString(CultureInfo.InvariantCulture)}", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Terminates the client sessions on <paramref name="database"/> except this one, Cairn's own (application_name
    /// cairn…) and those of <paramref name="keepRoles"/>; with <paramref name="onlyRoles"/>, only sessions of those roles.
    /// Returns how many were terminated.
    /// </summary>
    public static async Task<int> TerminateSessionsAsync(PgConnection connection, string database, IReadOnlyList<string> keepRoles, IReadOnlyList<string>? onlyRoles, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(
            """
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
            WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
              AND coalesce(application_name, '') NOT LIKE 'cairn%'
              AND NOT (usename = ANY($2)) AND ($3::text[] IS NULL OR usename = ANY($3))
            """, c);
        cmd.Parameters.Add(new NpgsqlParameter { Value = database });
        cmd.Parameters.Add(new NpgsqlParameter { Value = keepRoles.ToArray() });
        cmd.Parameters.Add(new NpgsqlParameter { Value = (object?)onlyRoles?.ToArray() ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Text });
        return Convert.ToInt32(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The grantees (roles, or PUBLIC as the empty string) among <paramref name="roles"/> and PUBLIC that hold CONNECT on the
    /// database directly: revoking from these is what blocks <paramref name="roles"/>.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ConnectGranteesAsync(PgConnection connection, string database, IReadOnlyList<string> roles, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(
            """
            SELECT DISTINCT CASE WHEN a.grantee = 0 THEN '' ELSE r.rolname END
            FROM pg_database d CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a LEFT JOIN pg_roles r ON r.oid = a.grantee
            WHERE d.datname = $1 AND a.privilege_type = 'CONNECT' AND (a.grantee = 0 OR r.rolname = ANY($2))
            ORDER BY 1
            """, c);
        cmd.Parameters.Add(new NpgsqlParameter { Value = database });
        cmd.Parameters.Add(new NpgsqlParameter { Value = roles.ToArray() });
        var list = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            list.Add(r.GetString(0));
        }
        return list;
    }

    /// <summary>REVOKE (or GRANT) CONNECT on the database from (to) each grantee; the empty string is PUBLIC.</summary>
    public static async Task SetConnectAsync(PgConnection connection, string database, IReadOnlyList<string> grantees, bool grant, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        foreach (var g in grantees)
        {
            var who = g.Length == 0 ? "PUBLIC" : Catalog.Quote(g);
            await ExecuteAsync(c, grant ? $"GRANT CONNECT ON DATABASE {Catalog.Quote(database)} TO {who}" : $"REVOKE CONNECT ON DATABASE {Catalog.Quote(database)} FROM {who}", ct).ConfigureAwait(false);
        }
    }

    /// <summary>Whether a database of that name exists on the server.</summary>
    public static async Task<bool> DatabaseExistsAsync(PgConnection connection, string database, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = $1", c);
        cmd.Parameters.Add(new NpgsqlParameter { Value = database });
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null;
    }

    /// <summary>The statements that put <paramref name="restored"/> in place of <paramref name="production"/>, keeping the old one as <paramref name="retired"/>.</summary>
    public static IReadOnlyList<string> SwapStatements(string production, string restored, string retired) =>
    [
        $"ALTER DATABASE {Catalog.Quote(production)} RENAME TO {Catalog.Quote(retired)}",
        $"ALTER DATABASE {Catalog.Quote(restored)} RENAME TO {Catalog.Quote(production)}",
    ];

    /// <summary>
    /// Runs the swap from the <c>postgres</c> database: the sessions on both databases are terminated first (a database
    /// with sessions cannot be renamed), then the two renames in one transaction.
    /// </summary>
    public static async Task SwapAsync(PgConnection connection, string production, string restored, string retired, CancellationToken ct)
    {
        var admin = connection.WithDatabase("postgres");
        await using var c = await admin.OpenAsync(ct).ConfigureAwait(false);
        foreach (var db in new[] { production, restored })
        {
            await using var t = new NpgsqlCommand("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", c);
            t.Parameters.Add(new NpgsqlParameter { Value = db });
            await t.ExecuteScalarAsync(ct).ConfigureAwait(false);
        }
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        foreach (var s in SwapStatements(production, restored, retired))
        {
            await using var cmd = new NpgsqlCommand(s, c, tx);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Login roles that have a password (pg_authid; needs a superuser), or null when the catalog cannot be read.</summary>
    public static async Task<IReadOnlyList<string>?> LoginRolesWithPasswordsAsync(PgConnection connection, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        try
        {
            await using var cmd = new NpgsqlCommand("SELECT rolname FROM pg_authid WHERE rolcanlogin AND rolpassword IS NOT NULL ORDER BY rolname", c);
            var list = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                list.Add(r.GetString(0));
            }
            return list;
        }
        catch (PostgresException e) when (e.SqlState == "42501")
        {
            return null;
        }
    }

    /// <summary>
    /// The breach snapshot for forensics, as JSON: pg_stat_activity, pg_roles (with rolvaliduntil), pg_hba_file_rules and, when
    /// given, the newest <paramref name="auditRows"/> rows of the audit table ordered by its time column. A part that cannot be
    /// read (permission) is recorded as an error string in its place, never skipped silently.
    /// </summary>
    public static async Task<JsonObject> ForensicSnapshotAsync(PgConnection connection, (string Schema, string Table, string TimeColumn)? audit, int auditRows, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        var result = new JsonObject
        {
            ["taken_at"] = await ScalarTextAsync(c, "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')", ct).ConfigureAwait(false),
            ["pg_stat_activity"] = await RowsAsync(c, "SELECT pid, datname, usename, application_name, client_addr::text, backend_start, xact_start, query_start, state_change, state, backend_type, left(query, 2000) AS query FROM pg_stat_activity ORDER BY pid", ct).ConfigureAwait(false),
            ["pg_roles"] = await RowsAsync(c, "SELECT oid::bigint, rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil, rolconfig::text FROM pg_roles ORDER BY rolname", ct).ConfigureAwait(false),
            ["pg_hba_file_rules"] = await RowsAsync(c, "SELECT line_number, type, database::text, user_name::text, address, netmask, auth_method, options::text, error FROM pg_hba_file_rules ORDER BY line_number", ct).ConfigureAwait(false),
        };
        if (audit is { } a)
        {
            var sql = $"SELECT row_to_json(t)::text FROM (SELECT * FROM {Catalog.Qualified(a.Schema, a.Table)} ORDER BY {Catalog.Quote(a.TimeColumn)} DESC LIMIT {auditRows.ToString(CultureInfo.InvariantCulture)}) t";
            result["audit_tail"] = await JsonRowsAsync(c, sql, ct).ConfigureAwait(false);
        }
        return result;
    }

    private static async Task<string> ScalarTextAsync(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        return Convert.ToString(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture) ?? "";
    }

    private static async Task<JsonNode> RowsAsync(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new JsonArray();
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var row = new JsonObject();
                for (var i = 0; i < r.FieldCount; i++)
                {
                    row[r.GetName(i)] = r.IsDBNull(i) ? null : r.GetValue(i) switch
                    {
                        bool b => JsonValue.Create(b),
                        int n => JsonValue.Create(n),
                        long n => JsonValue.Create(n),
                        short n => JsonValue.Create((int)n),
                        DateTime t => JsonValue.Create(t.ToString("O", CultureInfo.InvariantCulture)),
                        var v => JsonValue.Create(Convert.ToString(v, CultureInfo.InvariantCulture)),
                    };
                }
                rows.Add((JsonNode)row);
            }
            return rows;
        }
        catch (PostgresException e)
        {
            return JsonValue.Create($"error: {e.MessageText}");
        }
    }

    private static async Task<JsonNode> JsonRowsAsync(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        try
        {
            await using var cmd = new NpgsqlCommand(sql, c);
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            var rows = new JsonArray();
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                rows.Add(JsonNode.Parse(r.GetString(0)));
            }
            return rows;
        }
        catch (PostgresException e)
        {
            return JsonValue.Create($"error: {e.MessageText}");
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }
}
