using System.Globalization;
using System.Text;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>Catalog queries shared by backup, restore and checks. Identifiers are always quoted.</summary>
public static class Catalog
{
    public static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    public static string Qualified(string schema, string name) => Quote(schema) + "." + Quote(name);

    public static string Literal(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    /// <summary>Splits "schema.table" (quotes allowed); a bare name means public.</summary>
    public static (string Schema, string Name) ParseQualified(string text)
    {
        var parts = new List<string>();
        var sb = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '"')
            {
                if (quoted && i + 1 < text.Length && text[i + 1] == '"')
                {
                    sb.Append('"');
                    i++;
                }
                else
                {
                    quoted = !quoted;
                }
            }
            else if (c == '.' && !quoted)
            {
                parts.Add(sb.ToString());
                sb.Clear();
            }
            else
            {
                sb.Append(c);
            }
        }
        parts.Add(sb.ToString());
        return parts.Count switch
        {
            1 => ("public", parts[0]),
            2 => (parts[0], parts[1]),
            _ => throw new PgToolException($"'{text}' is not a table name (schema.table)"),
        };
    }

    /// <summary>Tables (and populated materialized views) whose rows a backup fingerprints.</summary>
    public const string TablesQuery = """
        SELECT n.nspname, c.relname, c.relkind::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm') AND (c.relkind <> 'm' OR c.relispopulated)
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
          AND NOT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid WHERE d.objid = c.oid AND d.deptype = 'e')
        ORDER BY 1, 2
        """;

    public static async Task<List<(string Schema, string Name, string Kind)>> TablesAsync(NpgsqlConnection c, CancellationToken ct)
    {
        var result = new List<(string, string, string)>();
        await using var cmd = new NpgsqlCommand(TablesQuery, c);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add((r.GetString(0), r.GetString(1), r.GetString(2) == "m" ? "materialized view" : "table"));
        }
        return result;
    }

    public static async Task<long> CountAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT count(*) FROM ONLY {Qualified(schema, name)}", c);
        return (long)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>Order-independent content hash: sum over rows of the first 64 bits of md5(row::text).</summary>
    public static async Task<string> ContentHashAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            $"SELECT coalesce(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint::numeric), 0)::text FROM ONLY {Qualified(schema, name)} t", c);
        return (string)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>
    /// SQL that creates the roles the current database references (owners, grantees, policy roles,
    /// default privileges) if they do not exist, and their memberships. Password hashes only when
    /// <paramref name="withPasswords"/> (needs superuser: pg_authid).
    /// </summary>
    public static async Task<string> RolesSqlAsync(NpgsqlConnection c, bool withPasswords, CancellationToken ct)
    {
        var sql = $$"""
            WITH refs(oid) AS (
              SELECT relowner FROM pg_class UNION SELECT nspowner FROM pg_namespace
              UNION SELECT proowner FROM pg_proc UNION SELECT typowner FROM pg_type
              UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relacl IS NOT NULL
              UNION SELECT (aclexplode(attacl)).grantee FROM pg_attribute WHERE attacl IS NOT NULL
              UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL
              UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE proacl IS NOT NULL
              UNION SELECT (aclexplode(typacl)).grantee FROM pg_type WHERE typacl IS NOT NULL
              UNION SELECT unnest(polroles) FROM pg_policy
              UNION SELECT datdba FROM pg_database WHERE datname = current_database()
              UNION SELECT defaclrole FROM pg_default_acl
              UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
              UNION SELECT m.roleid FROM pg_auth_members m
            ), used AS (
              SELECT r.* FROM pg_roles r WHERE r.oid IN (SELECT oid FROM refs) AND r.rolname !~ '^pg_'
            )
            SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls, rolconnlimit,
                   {{(withPasswords ? "(SELECT rolpassword FROM pg_authid a WHERE a.oid = used.oid)" : "NULL::text")}}
            FROM used ORDER BY rolname
            """;
        var sb = new StringBuilder("-- Roles referenced by the database, created if missing (Cairn)\n");
        var names = new List<string>();
        await using (var cmd = new NpgsqlCommand(sql, c))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var name = r.GetString(0);
                names.Add(name);
                var attrs = new List<string>
                {
                    r.GetBoolean(1) ? "SUPERUSER" : "NOSUPERUSER",
                    r.GetBoolean(2) ? "INHERIT" : "NOINHERIT",
                    r.GetBoolean(3) ? "CREATEROLE" : "NOCREATEROLE",
                    r.GetBoolean(4) ? "CREATEDB" : "NOCREATEDB",
                    r.GetBoolean(5) ? "LOGIN" : "NOLOGIN",
                    r.GetBoolean(6) ? "REPLICATION" : "NOREPLICATION",
                    r.GetBoolean(7) ? "BYPASSRLS" : "NOBYPASSRLS",
                    "CONNECTION LIMIT " + r.GetInt32(8).ToString(CultureInfo.InvariantCulture),
                };
                if (!r.IsDBNull(9))
                {
                    attrs.Add("PASSWORD " + Literal(r.GetString(9)));
                }
                sb.Append(CultureInfo.InvariantCulture, $"DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {Literal(name)}) THEN CREATE ROLE {Quote(name)} {string.Join(' ', attrs)}; END IF; END $cairn$;\n");
            }
        }
        await using (var cmd = new NpgsqlCommand("SELECT r.rolname, m.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member WHERE r.rolname !~ '^pg_' AND m.rolname !~ '^pg_' ORDER BY 1, 2", c))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var (role, member) = (r.GetString(0), r.GetString(1));
                if (names.Contains(role) && names.Contains(member))
                {
                    sb.Append(CultureInfo.InvariantCulture, $"GRANT {Quote(role)} TO {Quote(member)};\n");
                }
            }
        }
        return sb.ToString();
    }
}
