using System.Text;
using System.Text.RegularExpressions;
using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Lifecycle;

/// <summary>What a cleanup rule deletes: rows of the table whose time column is before the cutoff and that match the rule's condition.</summary>
/// <param name="Where">User SQL from cairn.yaml (trusted input, docs/security.md), validated with <see cref="LiveTables.ValidateConditionAsync"/>.</param>
public sealed record CleanupTarget(LiveTable Table, string TimeColumn, string? Where, DateTimeOffset Cutoff)
{
    /// <summary>The condition on <paramref name="alias"/> (or unqualified); the cutoff is the parameter @cutoff.</summary>
    public string Condition(string? alias = null)
    {
        var time = (alias is null ? "" : alias + ".") + Catalog.Quote(TimeColumn);
        return Where is null ? $"{time} < @cutoff" : $"{time} < @cutoff AND ({Where})";
    }
}

/// <summary>A leaf partition that lies wholly before the cutoff: detached and dropped instead of deleted row by row.</summary>
public sealed record DroppablePartition(LiveTable Partition, string Bound, long Rows);

/// <summary>One path of foreign keys from the rule's table down to a table whose rows a delete reaches, with the rows it reaches now.</summary>
public sealed record CascadeEffect(IReadOnlyList<ForeignKey> Path, long Rows)
{
    public ForeignKey Last => Path[^1];
}

/// <summary>
/// The SQL of <c>cairn cleanup</c>: counting, cascade analysis, partitions wholly before the cutoff, and the batched
/// keyset delete. Every name is quoted here at execution time; every command is one statement.
/// </summary>
public static partial class CleanupSql
{
    private const int MaxCascadeDepth = 8;

    public static async Task<long> CountAsync(NpgsqlConnection c, CleanupTarget t, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand($"SELECT count(*) FROM {t.Table.Sql} WHERE {t.Condition()}", c);
        cmd.Parameters.AddWithValue("cutoff", t.Cutoff.UtcDateTime);
        return (long)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>
    /// Every foreign-key path by which deleting the target's rows reaches other tables (cascading deletes recursively,
    /// blocking and set-null references one level), with the rows each reaches now.
    /// </summary>
    public static async Task<List<CascadeEffect>> CascadesAsync(NpgsqlConnection c, CleanupTarget t, CancellationToken ct)
    {
        var result = new List<CascadeEffect>();
        await WalkAsync(c, t, [], t.Table, result, ct).ConfigureAwait(false);
        return result;
    }

    private static async Task WalkAsync(NpgsqlConnection c, CleanupTarget t, List<ForeignKey> path, LiveTable table, List<CascadeEffect> result, CancellationToken ct)
    {
        if (path.Count >= MaxCascadeDepth)
        {
            return;
        }
        foreach (var fk in await LiveTables.ReferencingAsync(c, table, ct).ConfigureAwait(false))
        {
            if (path.Any(p => p.Constraint == fk.Constraint && p.Child.Oid == fk.Child.Oid))
            {
                continue;
            }
            List<ForeignKey> next = [.. path, fk];
            result.Add(new CascadeEffect(next, await CountPathAsync(c, t, next, ct).ConfigureAwait(false)));
            if (fk.Cascades)
            {
                await WalkAsync(c, t, next, fk.Child, result, ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Rows of the path's last table that reference (through the whole path) rows the target deletes.</summary>
    private static async Task<long> CountPathAsync(NpgsqlConnection c, CleanupTarget t, List<ForeignKey> path, CancellationToken ct)
    {
        // c0 is the last table; each EXISTS steps one foreign key up; the innermost is the rule's table with its condition.
        var sb = new StringBuilder($"SELECT count(*) FROM {path[^1].Child.Sql} c0 WHERE ");
        for (var i = 0; i < path.Count; i++)
        {
            var fk = path[path.Count - 1 - i];
            var alias = $"c{i + 1}";
            var join = string.Join(" AND ", fk.ChildColumns.Zip(fk.ParentColumns, (a, b) => $"c{i}.{Catalog.Quote(a)} = {alias}.{Catalog.Quote(b)}"));
            sb.Append($"EXISTS (SELECT 1 FROM {fk.Parent.Sql} {alias} WHERE {join} AND ");
        }
        sb.Append(t.Condition($"c{path.Count}"));
        sb.Append(')', path.Count);
        await using var cmd = new NpgsqlCommand(sb.ToString(), c);
        cmd.Parameters.AddWithValue("cutoff", t.Cutoff.UtcDateTime);
        return (long)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>
    /// The leaf partitions of a table range-partitioned on the time column alone whose upper bound is at or before the
    /// cutoff: every row in them is older than the cutoff. The default partition and sub-partitioned ones never are.
    /// </summary>
    public static async Task<List<DroppablePartition>> WhollyBeforeAsync(NpgsqlConnection c, CleanupTarget t, CancellationToken ct)
    {
        var result = new List<DroppablePartition>();
        if (!t.Table.Partitioned)
        {
            return result;
        }
        await using (var key = new NpgsqlCommand("""
            SELECT pt.partstrat::text = 'r' AND pt.partnatts = 1 AND a.attname = @col
            FROM pg_partitioned_table pt LEFT JOIN pg_attribute a ON a.attrelid = pt.partrelid AND a.attnum = pt.partattrs[0]
            WHERE pt.partrelid = @o
            """, c))
        {
            key.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = t.Table.Oid });
            key.Parameters.AddWithValue("col", t.TimeColumn);
            if (await key.ExecuteScalarAsync(ct).ConfigureAwait(false) is not true)
            {
                return result;
            }
        }
        var candidates = new List<(uint Oid, string Bound)>();
        await using (var parts = new NpgsqlCommand("""
            SELECT cl.oid, pg_get_expr(cl.relpartbound, cl.oid) FROM pg_inherits i JOIN pg_class cl ON cl.oid = i.inhrelid
            WHERE i.inhparent = @o AND cl.relkind = 'r' ORDER BY 2
            """, c))
        {
            parts.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = t.Table.Oid });
            await using var r = await parts.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                candidates.Add((r.GetFieldValue<uint>(0), r.GetString(1)));
            }
        }
        foreach (var (oid, bound) in candidates)
        {
            // "FOR VALUES FROM (…) TO ('2026-01-01 00:00:00+00')": the upper bound, compared on the server (never pasted into SQL).
            var m = UpperBound().Match(bound);
            if (!m.Success)
            {
                continue;
            }
            var upper = m.Groups[1].Value.Replace("''", "'", StringComparison.Ordinal);
            await using var cmp = new NpgsqlCommand("SELECT CAST(@v AS timestamptz) <= @cutoff", c);
            cmp.Parameters.AddWithValue("v", upper);
            cmp.Parameters.AddWithValue("cutoff", t.Cutoff.UtcDateTime);
            if (await cmp.ExecuteScalarAsync(ct).ConfigureAwait(false) is true)
            {
                var part = await LiveTables.ByOidAsync(c, oid, ct).ConfigureAwait(false);
                result.Add(new DroppablePartition(part, bound, await Catalog.CountAsync(c, part.Schema, part.Name, ct).ConfigureAwait(false)));
            }
        }
        return result;
    }

    [GeneratedRegex(@"\bTO \('((?:[^']|'')*)'\)\z")]
    private static partial Regex UpperBound();

    /// <summary>Detaches and drops one partition in one transaction (two statements), so it is either attached or gone.</summary>
    public static async Task DetachAndDropAsync(NpgsqlConnection c, LiveTable parent, LiveTable partition, CancellationToken ct)
    {
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        await Catalog.ExecuteOneAsync(c, $"ALTER TABLE {parent.Sql} DETACH PARTITION {partition.Sql}", tx, ct).ConfigureAwait(false);
        await Catalog.ExecuteOneAsync(c, $"DROP TABLE {partition.Sql}", tx, ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The relations rows are deleted from: the table itself, or each leaf partition of a partitioned table (minus <paramref name="except"/>).</summary>
    public static async Task<List<LiveTable>> LeavesAsync(NpgsqlConnection c, LiveTable t, IReadOnlySet<uint> except, CancellationToken ct)
    {
        if (!t.Partitioned)
        {
            return [t];
        }
        var oids = new List<uint>();
        await using (var cmd = new NpgsqlCommand("SELECT relid::oid FROM pg_partition_tree(@o) WHERE isleaf ORDER BY level, relid", c))
        {
            cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = t.Oid });
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                oids.Add(r.GetFieldValue<uint>(0));
            }
        }
        var result = new List<LiveTable>();
        foreach (var oid in oids.Where(o => !except.Contains(o)))
        {
            var leaf = await LiveTables.ByOidAsync(c, oid, ct).ConfigureAwait(false);
            result.Add(leaf with { Key = t.Key });
        }
        return result;
    }

    /// <summary>
    /// Deletes one batch from <paramref name="leaf"/> in its own short transaction (one autocommitted statement): the next
    /// <paramref name="batchSize"/> rows in primary-key order after <paramref name="after"/> (keyset), or by ctid when the
    /// table has no primary key. The batch's rows are deleted by their tuple ids (a TID scan: a join on the key can make
    /// the planner scan the whole table once per batch), and the condition is checked again by the DELETE itself, so a
    /// row changed meanwhile (a new tuple version) is deleted only if it still matches.
    /// Returns the rows deleted and the key to continue after (null when nothing was left).
    /// </summary>
    public static async Task<(long Deleted, object[]? Next)> DeleteBatchAsync(NpgsqlConnection c, CleanupTarget t, LiveTable leaf, int batchSize, object[]? after, CancellationToken ct)
    {
        var cond = t.Condition();
        if (leaf.Key.Count == 0)
        {
            await using var byCtid = new NpgsqlCommand(
                $"DELETE FROM ONLY {leaf.Sql} WHERE ctid = ANY (ARRAY(SELECT ctid FROM ONLY {leaf.Sql} WHERE {cond} LIMIT {batchSize})) AND {cond}", c);
            byCtid.Parameters.AddWithValue("cutoff", t.Cutoff.UtcDateTime);
            var n = await byCtid.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            return (n, n == 0 ? null : []);
        }
        var keys = string.Join(", ", leaf.Key.Select(Catalog.Quote));
        var keyset = after is null ? "" : $" AND ({keys}) > ({string.Join(", ", after.Select((_, i) => $"@k{i}"))})";
        var desc = string.Join(", ", leaf.Key.Select(k => Catalog.Quote(k) + " DESC"));
        var sql = $"""
            WITH batch AS MATERIALIZED (SELECT ctid AS cairn_tid, {keys} FROM ONLY {leaf.Sql} WHERE {cond}{keyset} ORDER BY {keys} LIMIT {batchSize}),
                 gone AS (DELETE FROM ONLY {leaf.Sql} WHERE ctid = ANY (ARRAY(SELECT cairn_tid FROM batch)) AND {cond} RETURNING 1)
            SELECT (SELECT count(*) FROM gone), {keys} FROM batch ORDER BY {desc} LIMIT 1
            """;
        await using var cmd = new NpgsqlCommand(sql, c);
        cmd.Parameters.AddWithValue("cutoff", t.Cutoff.UtcDateTime);
        for (var i = 0; after is not null && i < after.Length; i++)
        {
            cmd.Parameters.AddWithValue($"k{i}", after[i]);
        }
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        if (!await r.ReadAsync(ct).ConfigureAwait(false))
        {
            return (0, null);
        }
        var next = new object[leaf.Key.Count];
        for (var i = 0; i < next.Length; i++)
        {
            next[i] = r.GetValue(i + 1);
        }
        return (r.GetInt64(0), next);
    }
}
