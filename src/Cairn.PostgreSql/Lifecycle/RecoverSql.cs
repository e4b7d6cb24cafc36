using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Lifecycle;

/// <summary>Where the audit trail is and what its rows mean; the images are SQL expressions from cairn.yaml (trusted input).</summary>
public sealed record AuditSpec(string Schema, string Table, string TimeColumn, string EntityColumn, string IdColumn, string EventColumn, string OldImage, string? NewImage);

/// <summary>One audit event: the table it is about (as written in the entity column), the row's id, the event, its time and the row image (JSON text, or null when missing).</summary>
public sealed record AuditEvent(string Entity, string? EntityId, string Event, DateTimeOffset Time, string? Image);

/// <summary>What bringing one row back from its image did: inserted, skipped (exists again), or not applicable and why.</summary>
public sealed record RowRecovery(string Table, string? EntityId, string Event, DateTimeOffset Time, string Outcome, string? Why = null);

/// <summary>The SQL of <c>cairn recover --from-audit</c>: reading events, and rebuilding rows from JSON images into the live table's row type.</summary>
public static class RecoverSql
{
    /// <summary>Checks that the image expression and the audit columns plan on the audit table (EXPLAIN in a read-only transaction).</summary>
    public static async Task<LiveTable> ValidateAsync(NpgsqlConnection c, AuditSpec a, CancellationToken ct)
    {
        var t = await LiveTables.FindAsync(c, a.Schema, a.Table, ct).ConfigureAwait(false);
        foreach (var col in new[] { a.TimeColumn, a.EntityColumn, a.IdColumn, a.EventColumn })
        {
            await LiveTables.RequireColumnAsync(c, t, col, "audit", ct).ConfigureAwait(false);
        }
        await LiveTables.ValidateConditionAsync(c, t, $"({a.OldImage})::jsonb IS NOT NULL", "audit.old_image", ct).ConfigureAwait(false);
        return t;
    }

    /// <summary>Events at or after <paramref name="since"/> (and before <paramref name="until"/> when given) whose event matches the LIKE <paramref name="pattern"/>, oldest first.</summary>
    public static async Task<List<AuditEvent>> EventsAsync(NpgsqlConnection c, NpgsqlTransaction? tx, AuditSpec a, LiveTable audit, DateTimeOffset since, DateTimeOffset? until, string pattern, string? entity,
        bool newImage, CancellationToken ct)
    {
        var image = newImage ? a.NewImage ?? "NULL" : a.OldImage;
        var q = $"""
            SELECT {Catalog.Quote(a.EntityColumn)}::text, {Catalog.Quote(a.IdColumn)}::text, {Catalog.Quote(a.EventColumn)}::text, {Catalog.Quote(a.TimeColumn)}, (({image}))::jsonb::text
            FROM {audit.Sql}
            WHERE {Catalog.Quote(a.TimeColumn)} >= @since {(until is null ? "" : $"AND {Catalog.Quote(a.TimeColumn)} <= @until")}
              AND {Catalog.Quote(a.EventColumn)}::text LIKE @pattern {(entity is null ? "" : $"AND {Catalog.Quote(a.EntityColumn)}::text = @entity")}
            ORDER BY {Catalog.Quote(a.TimeColumn)}
            """;
        await using var cmd = new NpgsqlCommand(q, c, tx);
        cmd.Parameters.AddWithValue("since", since.UtcDateTime);
        if (until is { } u)
        {
            cmd.Parameters.AddWithValue("until", u.UtcDateTime);
        }
        cmd.Parameters.AddWithValue("pattern", pattern);
        if (entity is not null)
        {
            cmd.Parameters.AddWithValue("entity", entity);
        }
        var result = new List<AuditEvent>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            var time = r.GetFieldValue<DateTime>(3);
            result.Add(new AuditEvent(r.IsDBNull(0) ? "" : r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.GetString(2), new DateTimeOffset(DateTime.SpecifyKind(time, DateTimeKind.Utc)),
                r.IsDBNull(4) ? null : r.GetString(4)));
        }
        return result;
    }

    /// <summary>The image's keys that are not columns of the table (reported: the column was dropped since).</summary>
    public static async Task<List<string>> UnknownKeysAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable t, string image, CancellationToken ct)
    {
        var cols = (await LiveTables.ColumnsAsync(c, t, ct).ConfigureAwait(false)).Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        await using var cmd = new NpgsqlCommand("SELECT jsonb_object_keys(@img::jsonb)", c, tx);
        cmd.Parameters.AddWithValue("img", image);
        var result = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            if (!cols.Contains(r.GetString(0)))
            {
                result.Add(r.GetString(0));
            }
        }
        return result;
    }

    /// <summary>
    /// Inserts the row <paramref name="image"/> describes into <paramref name="t"/> unless a row with its primary key exists:
    /// columns the image has (and the table can take) come from it, new columns take their defaults. True when inserted.
    /// </summary>
    public static async Task<bool> InsertIfMissingAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable t, string image, CancellationToken ct)
    {
        var insertable = await InsertableColumnsAsync(c, tx, t, ct).ConfigureAwait(false);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using (var k = new NpgsqlCommand("SELECT jsonb_object_keys(@img::jsonb)", c, tx))
        {
            k.Parameters.AddWithValue("img", image);
            await using var r = await k.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                keys.Add(r.GetString(0));
            }
        }
        var cols = insertable.Where(keys.Contains).ToList();
        if (t.Key.Count == 0 || !t.Key.All(keys.Contains))
        {
            throw new PgToolException($"{t.Display}: the image has no primary key values (a table without a primary key cannot be checked for rows that exist again)");
        }
        var list = string.Join(", ", cols.Select(Catalog.Quote));
        var match = string.Join(" AND ", t.Key.Select(x => $"l.{Catalog.Quote(x)} = r.{Catalog.Quote(x)}"));
        var sql = $"INSERT INTO {t.Sql} ({list}) OVERRIDING SYSTEM VALUE SELECT {string.Join(", ", cols.Select(x => "r." + Catalog.Quote(x)))} FROM jsonb_populate_record(NULL::{t.Sql}, @img::jsonb) r WHERE NOT EXISTS (SELECT 1 FROM {t.Sql} l WHERE {match})";
        await using var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.Parameters.AddWithValue("img", image);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0;
    }

    /// <summary>
    /// Puts the row back to <paramref name="image"/> (the old image of an update) where the row with its key exists; returns the
    /// columns whose current values differ from the image (the diff), and whether it was updated.
    /// </summary>
    public static async Task<(bool Updated, List<string> Changed)> UndoUpdateAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable t, string image, bool apply, CancellationToken ct)
    {
        var insertable = await InsertableColumnsAsync(c, tx, t, ct).ConfigureAwait(false);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using (var k = new NpgsqlCommand("SELECT jsonb_object_keys(@img::jsonb)", c, tx))
        {
            k.Parameters.AddWithValue("img", image);
            await using var r = await k.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                keys.Add(r.GetString(0));
            }
        }
        if (t.Key.Count == 0 || !t.Key.All(keys.Contains))
        {
            throw new PgToolException($"{t.Display}: the image has no primary key values");
        }
        var cols = insertable.Where(x => keys.Contains(x) && !t.Key.Contains(x)).ToList();
        var match = string.Join(" AND ", t.Key.Select(x => $"l.{Catalog.Quote(x)} = r.{Catalog.Quote(x)}"));
        var changed = new List<string>();
        foreach (var col in cols)
        {
            await using var d = new NpgsqlCommand($"SELECT count(*) FROM {t.Sql} l, jsonb_populate_record(NULL::{t.Sql}, @img::jsonb) r WHERE {match} AND l.{Catalog.Quote(col)} IS DISTINCT FROM r.{Catalog.Quote(col)}", c, tx);
            d.Parameters.AddWithValue("img", image);
            if ((long)(await d.ExecuteScalarAsync(ct).ConfigureAwait(false))! > 0)
            {
                changed.Add(col);
            }
        }
        if (!apply || changed.Count == 0)
        {
            return (false, changed);
        }
        var set = string.Join(", ", changed.Select(x => $"{Catalog.Quote(x)} = r.{Catalog.Quote(x)}"));
        await using var u = new NpgsqlCommand($"UPDATE {t.Sql} l SET {set} FROM jsonb_populate_record(NULL::{t.Sql}, @img::jsonb) r WHERE {match}", c, tx);
        u.Parameters.AddWithValue("img", image);
        return (await u.ExecuteNonQueryAsync(ct).ConfigureAwait(false) > 0, changed);
    }

    private static async Task<List<string>> InsertableColumnsAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable t, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT attname::text FROM pg_attribute WHERE attrelid = @o AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", c, tx);
        cmd.Parameters.Add(new NpgsqlParameter("o", NpgsqlTypes.NpgsqlDbType.Oid) { Value = t.Oid });
        var result = new List<string>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add(r.GetString(0));
        }
        return result;
    }

    /// <summary>Tables in foreign-key order among themselves: parents before children.</summary>
    public static async Task<List<LiveTable>> ParentsFirstAsync(NpgsqlConnection c, IReadOnlyList<LiveTable> tables, CancellationToken ct)
    {
        var depth = tables.ToDictionary(t => t.Oid, _ => 0);
        var edges = new List<(uint Parent, uint Child)>();
        foreach (var t in tables)
        {
            foreach (var fk in await LiveTables.ReferencingAsync(c, t, ct).ConfigureAwait(false))
            {
                if (depth.ContainsKey(fk.Child.Oid) && fk.Child.Oid != t.Oid)
                {
                    edges.Add((t.Oid, fk.Child.Oid));
                }
            }
        }
        for (var i = 0; i < tables.Count; i++)
        {
            foreach (var (p, ch) in edges)
            {
                depth[ch] = Math.Max(depth[ch], depth[p] + 1);
            }
        }
        return [.. tables.OrderBy(t => depth[t.Oid])];
    }
}
