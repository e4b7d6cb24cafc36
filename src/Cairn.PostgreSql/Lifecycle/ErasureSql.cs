using System.Text;
using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Lifecycle;

/// <summary>Rows whose <see cref="Column"/> holds the subject's identifier are deleted (a reference that is not a foreign key).</summary>
public sealed record NamedDelete(string Schema, string Table, string Column);

/// <summary>Rows whose <see cref="MatchColumn"/> holds the identifier: <see cref="Set"/> columns get values, <see cref="RemoveJsonKeys"/> keys leave jsonb columns.</summary>
public sealed record NamedAnonymize(string Schema, string Table, string MatchColumn, IReadOnlyDictionary<string, string> Set, IReadOnlyDictionary<string, IReadOnlyList<string>> RemoveJsonKeys);

/// <summary>How one subject is erased: the subject's table and key, named references, or the application's function.</summary>
public sealed record ErasureSpec(string SubjectSchema, string SubjectTable, string KeyColumn, IReadOnlyList<NamedDelete> Delete, IReadOnlyList<NamedAnonymize> Anonymize,
    string? FunctionSchema, string? FunctionName);

/// <summary>One step of an erasure: the table, what was done (delete, anonymize, …) and why, and the rows it touched.</summary>
public sealed record ErasureStep(string Table, string Action, long Rows);

/// <param name="SubjectFound">Whether the subject's own row was there.</param>
public sealed record ErasureOutcome(bool SubjectFound, IReadOnlyList<ErasureStep> Steps)
{
    public long Rows => Steps.Sum(s => s.Rows);
}

/// <summary>
/// The SQL of an erasure, inside a transaction the caller owns: every row that references the subject through foreign
/// keys (recursively, deepest first, so no foreign key blocks), the named deletes, the anonymisations, then the subject's
/// row; or the application's function. Identifiers are quoted; the subject's identifier is only ever a parameter.
/// </summary>
public static class ErasureSql
{
    private const int MaxDepth = 8;

    public static async Task<ErasureOutcome> ApplyAsync(NpgsqlConnection c, NpgsqlTransaction tx, ErasureSpec spec, string identifier, CancellationToken ct)
    {
        var subject = await LiveTables.FindAsync(c, spec.SubjectSchema, spec.SubjectTable, ct).ConfigureAwait(false);
        await LiveTables.RequireColumnAsync(c, subject, spec.KeyColumn, "erasure subject", ct).ConfigureAwait(false);
        // Tells the application's audit triggers that this is an erasure (so they can skip copying the erased data into a log).
        await Catalog.ExecuteOneAsync(c, "SELECT set_config('cairn.erasure', 'on', true)", tx, ct).ConfigureAwait(false);
        object? key;
        await using (var find = new NpgsqlCommand($"SELECT {Catalog.Quote(spec.KeyColumn)} FROM {subject.Sql} WHERE {Catalog.Quote(spec.KeyColumn)}::text = @id", c, tx))
        {
            find.Parameters.AddWithValue("id", identifier);
            key = await find.ExecuteScalarAsync(ct).ConfigureAwait(false);
        }
        var steps = new List<ErasureStep>();
        if (spec.FunctionName is { } fn)
        {
            if (key is null)
            {
                return new ErasureOutcome(false, steps);
            }
            var before = await ChangesAsync(c, tx, ct).ConfigureAwait(false);
            await using (var call = new NpgsqlCommand($"SELECT {Catalog.Qualified(spec.FunctionSchema ?? "public", fn)}(@k)", c, tx))
            {
                call.Parameters.AddWithValue("k", key);
                await call.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            var after = await ChangesAsync(c, tx, ct).ConfigureAwait(false);
            foreach (var (table, n) in after)
            {
                var d = n - before.GetValueOrDefault(table);
                if (d > 0)
                {
                    steps.Add(new ErasureStep(table, $"changed by {Catalog.Display(spec.FunctionSchema ?? "public")}.{Catalog.Display(fn)}", d));
                }
            }
            return new ErasureOutcome(true, steps);
        }
        if (key is not null)
        {
            var paths = new List<List<ForeignKey>>();
            await WalkAsync(c, subject, [], paths, ct).ConfigureAwait(false);
            foreach (var path in paths.OrderByDescending(p => p.Count))
            {
                var n = await ExecuteAsync(c, tx, DeletePathSql(path, spec.KeyColumn), key, null, ct).ConfigureAwait(false);
                steps.Add(new ErasureStep(path[^1].Child.Display, $"delete (foreign key {string.Join(" → ", path.Select(f => f.Constraint).Reverse())})", n));
            }
        }
        foreach (var d in spec.Delete)
        {
            var t = await LiveTables.FindAsync(c, d.Schema, d.Table, ct).ConfigureAwait(false);
            await LiveTables.RequireColumnAsync(c, t, d.Column, "erasure delete", ct).ConfigureAwait(false);
            var n = await ExecuteAsync(c, tx, $"DELETE FROM {t.Sql} WHERE {Catalog.Quote(d.Column)}::text = @id", null, identifier, ct).ConfigureAwait(false);
            steps.Add(new ErasureStep(t.Display, $"delete (named: {Catalog.Display(d.Column)})", n));
        }
        foreach (var a in spec.Anonymize)
        {
            steps.Add(await AnonymizeAsync(c, tx, a, identifier, ct).ConfigureAwait(false));
        }
        if (key is not null)
        {
            var n = await ExecuteAsync(c, tx, $"DELETE FROM {subject.Sql} WHERE {Catalog.Quote(spec.KeyColumn)} = @k", key, null, ct).ConfigureAwait(false);
            steps.Add(new ErasureStep(subject.Display, "delete (the subject)", n));
        }
        return new ErasureOutcome(key is not null, steps);
    }

    private static async Task<ErasureStep> AnonymizeAsync(NpgsqlConnection c, NpgsqlTransaction tx, NamedAnonymize a, string identifier, CancellationToken ct)
    {
        var t = await LiveTables.FindAsync(c, a.Schema, a.Table, ct).ConfigureAwait(false);
        var cols = (await LiveTables.ColumnsAsync(c, t, ct).ConfigureAwait(false)).ToDictionary(x => x.Name, x => x.Type, StringComparer.Ordinal);
        await LiveTables.RequireColumnAsync(c, t, a.MatchColumn, "erasure anonymize", ct).ConfigureAwait(false);
        var sets = new List<string>();
        var values = new List<object>();
        foreach (var (col, value) in a.Set)
        {
            if (!cols.TryGetValue(col, out var type))
            {
                throw new PgToolException($"erasure anonymize: table {t.Display} has no column {Catalog.Display(col)} (fix set: in cairn.yaml)");
            }
            // The type name comes from the server's format_type, which quotes what needs quoting; the value is a parameter.
            sets.Add($"{Catalog.Quote(col)} = CAST(@v{values.Count} AS {type})");
            values.Add(value);
        }
        foreach (var (col, keys) in a.RemoveJsonKeys)
        {
            if (!cols.TryGetValue(col, out var type) || type != "jsonb")
            {
                throw new PgToolException($"erasure anonymize: {t.Display}.{Catalog.Display(col)} is not a jsonb column, so remove_json_keys cannot apply to it");
            }
            sets.Add($"{Catalog.Quote(col)} = {Catalog.Quote(col)} - CAST(@v{values.Count} AS text[])");
            values.Add(keys.ToArray());
        }
        await using var cmd = new NpgsqlCommand($"UPDATE {t.Sql} SET {string.Join(", ", sets)} WHERE {Catalog.Quote(a.MatchColumn)}::text = @id", c, tx);
        cmd.Parameters.AddWithValue("id", identifier);
        for (var i = 0; i < values.Count; i++)
        {
            cmd.Parameters.AddWithValue($"v{i}", values[i]);
        }
        return new ErasureStep(t.Display, $"anonymize (named: {Catalog.Display(a.MatchColumn)})", await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false));
    }

    private static async Task<long> ExecuteAsync(NpgsqlConnection c, NpgsqlTransaction tx, string sql, object? key, string? identifier, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c, tx);
        if (key is not null)
        {
            cmd.Parameters.AddWithValue("k", key);
        }
        if (identifier is not null)
        {
            cmd.Parameters.AddWithValue("id", identifier);
        }
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Every foreign-key path into the subject's table (children, their children, …), cycles cut.</summary>
    public static async Task WalkAsync(NpgsqlConnection c, LiveTable table, List<ForeignKey> path, List<List<ForeignKey>> paths, CancellationToken ct)
    {
        if (path.Count >= MaxDepth)
        {
            return;
        }
        foreach (var fk in await LiveTables.ReferencingAsync(c, table, ct).ConfigureAwait(false))
        {
            if (fk.Child.Oid == fk.Parent.Oid || path.Any(p => p.Parent.Oid == fk.Child.Oid))
            {
                continue;
            }
            List<ForeignKey> next = [.. path, fk];
            paths.Add(next);
            await WalkAsync(c, fk.Child, next, paths, ct).ConfigureAwait(false);
        }
    }

    /// <summary>DELETE of the rows of the path's last table that reach the subject's row (@k) through the whole path.</summary>
    private static string DeletePathSql(List<ForeignKey> path, string keyColumn)
    {
        var sb = new StringBuilder($"DELETE FROM {path[^1].Child.Sql} AS c0 WHERE ");
        for (var i = 0; i < path.Count; i++)
        {
            var fk = path[path.Count - 1 - i];
            var join = string.Join(" AND ", fk.ChildColumns.Zip(fk.ParentColumns, (a, b) => $"c{i}.{Catalog.Quote(a)} = c{i + 1}.{Catalog.Quote(b)}"));
            sb.Append($"EXISTS (SELECT 1 FROM {fk.Parent.Sql} c{i + 1} WHERE {join} AND ");
        }
        sb.Append($"c{path.Count}.{Catalog.Quote(keyColumn)} = @k");
        sb.Append(')', path.Count);
        return sb.ToString();
    }

    /// <summary>Rows deleted and updated per table so far in this transaction (pg_stat_xact_user_tables).</summary>
    private static async Task<Dictionary<string, long>> ChangesAsync(NpgsqlConnection c, NpgsqlTransaction tx, CancellationToken ct)
    {
        var result = new Dictionary<string, long>(StringComparer.Ordinal);
        await using var cmd = new NpgsqlCommand("SELECT schemaname::text, relname::text, n_tup_del + n_tup_upd FROM pg_stat_xact_user_tables", c, tx);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result[$"{Catalog.Display(r.GetString(0))}.{Catalog.Display(r.GetString(1))}"] = r.GetInt64(2);
        }
        return result;
    }
}
