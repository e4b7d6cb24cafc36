using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Lifecycle;

/// <summary>A table of a live database, with the catalog facts the lifecycle commands need.</summary>
/// <param name="Key">The primary key's columns in order (empty when it has none).</param>
public sealed record LiveTable(string Schema, string Name, uint Oid, bool Partitioned, IReadOnlyList<string> Key)
{
    public string Sql => Catalog.Qualified(Schema, Name);

    public string Display => $"{Catalog.Display(Schema)}.{Catalog.Display(Name)}";
}

/// <summary>
/// A foreign key: <see cref="Child"/>.<see cref="ChildColumns"/> references <see cref="Parent"/>.<see cref="ParentColumns"/>;
/// <see cref="OnDelete"/> is pg_constraint.confdeltype (a no action, r restrict, c cascade, n set null, d set default).
/// </summary>
public sealed record ForeignKey(string Constraint, LiveTable Child, IReadOnlyList<string> ChildColumns, LiveTable Parent, IReadOnlyList<string> ParentColumns, char OnDelete)
{
    public string Action => OnDelete switch { 'c' => "cascade", 'n' => "set null", 'd' => "set default", 'r' => "restrict", _ => "no action" };

    public bool Cascades => OnDelete == 'c';

    public bool Blocks => OnDelete is 'a' or 'r';
}

/// <summary>Catalog reads about live tables: their keys, their columns, and the foreign keys between them. Names come back raw; SQL quotes them.</summary>
public static class LiveTables
{
    /// <summary>The table, or a clear error naming it when it does not exist.</summary>
    public static async Task<LiveTable> FindAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("""
            SELECT cl.oid, cl.relkind = 'p',
                   coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
                             JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum = k.attnum WHERE i.indrelid = cl.oid AND i.indisprimary), '{}')
            FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace
            WHERE n.nspname = @s AND cl.relname = @t AND cl.relkind IN ('r', 'p')
            """, c);
        cmd.Parameters.AddWithValue("s", schema);
        cmd.Parameters.AddWithValue("t", name);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            throw new PgToolException($"table {Catalog.Display(schema)}.{Catalog.Display(name)} does not exist in the database (check the table name in cairn.yaml)");
        }
        return new LiveTable(schema, name, r.GetFieldValue<uint>(0), r.GetBoolean(1), r.GetFieldValue<string[]>(2));
    }

    /// <summary>The table's columns and their types (format_type), in order.</summary>
    public static async Task<List<(string Name, string Type)>> ColumnsAsync(NpgsqlConnection c, LiveTable t, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = @o AND attnum > 0 AND NOT attisdropped ORDER BY attnum", c);
        cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = t.Oid });
        var result = new List<(string, string)>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add((r.GetString(0), r.GetString(1)));
        }
        return result;
    }

    /// <summary>Fails naming the column and table when <paramref name="column"/> is not a column of <paramref name="t"/>.</summary>
    public static async Task RequireColumnAsync(NpgsqlConnection c, LiveTable t, string column, string what, CancellationToken ct)
    {
        var cols = await ColumnsAsync(c, t, ct).ConfigureAwait(false);
        if (!cols.Any(x => x.Name == column))
        {
            throw new PgToolException($"{what}: table {t.Display} has no column {Catalog.Display(column)} (it has {string.Join(", ", cols.Select(x => Catalog.Display(x.Name)))})");
        }
    }

    /// <summary>The foreign keys that reference <paramref name="parent"/> (top-level constraints only, not their per-partition clones).</summary>
    public static async Task<List<ForeignKey>> ReferencingAsync(NpgsqlConnection c, LiveTable parent, CancellationToken ct)
    {
        var raw = new List<(string Con, uint Child, string[] ChildCols, string[] ParentCols, char Action)>();
        await using (var cmd = new NpgsqlCommand("""
            SELECT con.conname::text, con.conrelid,
                   (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum),
                   (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY k(attnum, ord) JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum),
                   con.confdeltype::text
            FROM pg_constraint con
            WHERE con.contype = 'f' AND con.confrelid = @o AND con.conparentid = 0
            ORDER BY 1
            """, c))
        {
            cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = parent.Oid });
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                raw.Add((r.GetString(0), r.GetFieldValue<uint>(1), r.GetFieldValue<string[]>(2), r.GetFieldValue<string[]>(3), r.GetString(4)[0]));
            }
        }
        var result = new List<ForeignKey>();
        foreach (var f in raw)
        {
            var child = await ByOidAsync(c, f.Child, ct).ConfigureAwait(false);
            result.Add(new ForeignKey(f.Con, child, f.ChildCols, parent, f.ParentCols, f.Action));
        }
        return result;
    }

    public static async Task<LiveTable> ByOidAsync(NpgsqlConnection c, uint oid, CancellationToken ct)
    {
        string schema, name;
        await using (var cmd = new NpgsqlCommand("SELECT n.nspname::text, cl.relname::text FROM pg_class cl JOIN pg_namespace n ON n.oid = cl.relnamespace WHERE cl.oid = @o", c))
        {
            cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = oid });
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (!await r.ReadAsync(ct).ConfigureAwait(false))
            {
                throw new PgToolException($"relation {oid} disappeared while Cairn read the catalog; run again");
            }
            (schema, name) = (r.GetString(0), r.GetString(1));
        }
        return await FindAsync(c, schema, name, ct).ConfigureAwait(false);
    }

    /// <summary>The server's clock (now(): the start of this transaction), the one time every cutoff is computed from.</summary>
    public static async Task<DateTimeOffset> ServerNowAsync(NpgsqlConnection c, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT now()", c);
        var v = (DateTime)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        return new DateTimeOffset(DateTime.SpecifyKind(v, DateTimeKind.Utc));
    }

    /// <summary>
    /// Checks that <paramref name="expression"/> (user SQL from cairn.yaml) parses and plans as a boolean condition on
    /// <paramref name="t"/>: EXPLAIN in a read-only transaction, so nothing it names runs. The error names the rule.
    /// </summary>
    public static async Task ValidateConditionAsync(NpgsqlConnection c, LiveTable t, string expression, string what, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        try
        {
            await Catalog.ExecuteOneAsync(c, "SET TRANSACTION READ ONLY", tx, ct).ConfigureAwait(false);
            await Catalog.ExecuteOneAsync(c, $"EXPLAIN SELECT 1 FROM {t.Sql} WHERE ({expression})", tx, ct).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            throw new PgToolException($"{what}: '{expression}' is not a condition on {t.Display}: {e.MessageText} (fix it in cairn.yaml)", e);
        }
        finally
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Sets lock_timeout and statement_timeout for the session, so no statement of a long job waits or runs unbounded.</summary>
    public static async Task SetTimeoutsAsync(NpgsqlConnection c, TimeSpan lockTimeout, TimeSpan statementTimeout, CancellationToken ct)
    {
        await Catalog.ExecuteOneAsync(c, $"SET lock_timeout = {(long)lockTimeout.TotalMilliseconds}", ct).ConfigureAwait(false);
        await Catalog.ExecuteOneAsync(c, $"SET statement_timeout = {(long)statementTimeout.TotalMilliseconds}", ct).ConfigureAwait(false);
    }
}
