using System.Text;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>Catalog queries shared by backup, restore and checks. Identifiers are always quoted.</summary>
public static class Catalog
{
    /// <summary>
    /// A quoted identifier: any character but NUL may appear between double quotes, a double quote doubled.
    /// Quoting does not depend on any server setting, so it is safe for names read from a backup or a catalog.
    /// </summary>
    public static string Quote(string identifier)
    {
        RejectNul(identifier, "name");
        return "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }

    public static string Qualified(string schema, string name) => Quote(schema) + "." + Quote(name);

    /// <summary>
    /// A string literal that means the same under either standard_conforming_strings setting: with a
    /// backslash inside, the escape-string form (E'...', backslashes doubled) as quote_literal writes it.
    /// </summary>
    public static string Literal(string value)
    {
        RejectNul(value, "text value");
        var body = value.Replace("'", "''", StringComparison.Ordinal);
        return value.Contains('\\', StringComparison.Ordinal) ? "E'" + body.Replace("\\", "\\\\", StringComparison.Ordinal) + "'" : "'" + body + "'";
    }

    /// <summary>
    /// A name for messages and the terminal: bare when it is a plain lower-case identifier, else quoted,
    /// with control and direction-changing characters escaped so a name cannot forge or hide output lines.
    /// </summary>
    public static string Display(string name)
    {
        if (name.Length > 0 && (char.IsAsciiLetterLower(name[0]) || name[0] == '_') && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_' || c == '$'))
        {
            return name;
        }
        var sb = new StringBuilder("\"");
        foreach (var c in name)
        {
            switch (c)
            {
                case '"':
                    sb.Append("\"\"");
                    break;
                case '\n':
                    sb.Append("\\n");
                    break;
                case '\r':
                    sb.Append("\\r");
                    break;
                case '\t':
                    sb.Append("\\t");
                    break;
                case '\\':
                    sb.Append("\\\\");
                    break;
                default:
                    if (char.IsControl(c) || c is (>= '\u200B' and <= '\u200F') or (>= '\u202A' and <= '\u202E') or (>= '\u2066' and <= '\u2069'))
                    {
                        sb.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
                    }
                    else
                    {
                        sb.Append(c);
                    }
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    private static void RejectNul(string text, string what)
    {
        if (text.Contains('\0', StringComparison.Ordinal))
        {
            throw new PgToolException($"a {what} holds a NUL character, which PostgreSQL cannot store; refusing it");
        }
    }

    /// <summary>
    /// Runs exactly one statement. Npgsql splits a command's text at semicolons into several statements;
    /// a batch command is sent as one extended-protocol Parse message, which the server refuses if it
    /// holds more than one statement. So text built from catalog data can never smuggle in a second one.
    /// </summary>
    public static Task<int> ExecuteOneAsync(NpgsqlConnection connection, string sql, CancellationToken ct) => ExecuteOneAsync(connection, sql, null, ct);

    /// <summary>Like <see cref="ExecuteOneAsync(NpgsqlConnection, string, CancellationToken)"/>, inside <paramref name="transaction"/>.</summary>
    public static async Task<int> ExecuteOneAsync(NpgsqlConnection connection, string sql, NpgsqlTransaction? transaction, CancellationToken ct)
    {
        await using var batch = new NpgsqlBatch(connection, transaction) { BatchCommands = { new NpgsqlBatchCommand(sql) } };
        return await batch.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

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

    /// <summary>The database's schemas, PostgreSQL's own (pg_catalog, information_schema, pg_toast, temporary) left out.</summary>
    /// <summary>Tables and sequences (outside @excluded schemas) the current role may not read: no SELECT, or no USAGE on the schema.</summary>
    public const string UnreadableTablesQuery = """
        SELECT n.nspname::text, c.relname::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'm', 'S') AND NOT (n.nspname = ANY(@excluded))
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
          AND NOT (has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT'))
        ORDER BY 1, 2
        """;

    public static async Task<List<string>> SchemasAsync(NpgsqlConnection c, CancellationToken ct)
    {
        var result = new List<string>();
        await using var cmd = new NpgsqlCommand("SELECT nspname::text FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_)' ORDER BY 1", c);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add(r.GetString(0));
        }
        return result;
    }

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
}
