using System.Text;
using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Lifecycle;

/// <summary>One audit event about one table with both row images, and the audit row's own key (how a report names it).</summary>
public sealed record ReplayEvent(string AuditKey, string? EntityId, string Event, DateTimeOffset Time, string? OldImage, string? NewImage);

/// <summary>What replaying one event did to the copy: applied (and how), or not applied and why.</summary>
public sealed record ReplayOutcome(string Table, string AuditKey, string? EntityId, string Event, DateTimeOffset Time, bool Applied, string What);

/// <summary>
/// The SQL of rebuilding a table as it was at a time from a logical backup plus the audit trail: reading one table's events in
/// the order they were written, and applying each to a copy of the table that has no constraints (the pre-data of a
/// pg_dump): a delete event removes the row by its key, any other event with a new image sets the row to that image
/// (inserted when missing), which makes replaying an event the copy already holds harmless.
/// </summary>
public static class AuditReplaySql
{
    /// <summary>
    /// The events about <paramref name="table"/> with <paramref name="from"/> &lt;= time &lt;= <paramref name="until"/>, in the
    /// order their audit rows were written: by the audit table's sequence-backed key when its first key column has one (for
    /// one row that is the order its changes committed, since each change waited for the row lock), else by time then key.
    /// </summary>
    public static async Task<List<ReplayEvent>> EventsAsync(NpgsqlConnection c, AuditSpec a, LiveTable audit, LiveTable table, DateTimeOffset from, DateTimeOffset until, CancellationToken ct)
    {
        var time = Catalog.Quote(a.TimeColumn);
        var key = audit.Key.Count > 0 ? string.Join(" || ',' || ", audit.Key.Select(k => $"{Catalog.Quote(k)}::text")) : "ctid::text";
        // Ordered by the table's own columns (qualified: an output column of the same name, the key as text, would sort as text).
        string order;
        if (audit.Key.Count > 0 && await SequenceBackedAsync(c, audit, audit.Key[0], ct).ConfigureAwait(false))
        {
            order = $"{audit.Sql}.{Catalog.Quote(audit.Key[0])}";
        }
        else
        {
            order = string.Join(", ", new[] { time }.Concat(audit.Key.Select(Catalog.Quote)).Select(x => $"{audit.Sql}.{x}"));
        }
        var q = $"""
            SELECT {key} AS audit_key, {Catalog.Quote(a.IdColumn)}::text AS entity_id, {Catalog.Quote(a.EventColumn)}::text AS event, {time} AS at,
                   (({a.OldImage}))::jsonb::text AS old_image, (({a.NewImage ?? "NULL"}))::jsonb::text AS new_image
            FROM {audit.Sql}
            WHERE {time} >= @from AND {time} <= @until AND {Catalog.Quote(a.EntityColumn)}::text = ANY(@entities)
            ORDER BY {order}
            """;
        await using var cmd = new NpgsqlCommand(q, c);
        cmd.Parameters.AddWithValue("from", from.UtcDateTime);
        cmd.Parameters.AddWithValue("until", until.UtcDateTime);
        // How the entity column may name the table: schema.table, and the bare name for public (as recover --from-audit reads it).
        string[] entities = table.Schema == "public" ? [table.Name, $"public.{table.Name}"] : [$"{table.Schema}.{table.Name}"];
        cmd.Parameters.AddWithValue("entities", entities);
        var result = new List<ReplayEvent>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            var t = r.GetFieldValue<DateTime>(3);
            result.Add(new ReplayEvent(r.IsDBNull(0) ? "?" : r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? "" : r.GetString(2),
                new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)), Image(r, 4), Image(r, 5)));
        }
        return result;
    }

    private static string? Image(NpgsqlDataReader r, int i) => r.IsDBNull(i) || r.GetString(i) is "null" ? null : r.GetString(i);

    private static async Task<bool> SequenceBackedAsync(NpgsqlConnection c, LiveTable t, string column, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT pg_get_serial_sequence(@t, @c) IS NOT NULL", c);
        cmd.Parameters.AddWithValue("t", t.Sql);
        cmd.Parameters.AddWithValue("c", column);
        return (bool)(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>Whether the event deletes its row: its name ends in <c>_deleted</c> (the convention recover --from-audit reads).</summary>
    public static bool IsDelete(string eventName) => eventName.EndsWith("_deleted", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Applies <paramref name="events"/> in order to <paramref name="table"/> (by name, in the copy <paramref name="c"/> is
    /// connected to), each under a savepoint so one that fails is reported and the rest go on. <paramref name="key"/> is the
    /// live table's primary key (the copy has no constraints). Image keys that are not columns of the copy are collected in
    /// <paramref name="unknownColumns"/> and left out.
    /// </summary>
    public static async Task<List<ReplayOutcome>> ApplyAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable table, IReadOnlyList<string> key, IReadOnlyList<ReplayEvent> events,
        bool hasNewImage, SortedSet<string> unknownColumns, CancellationToken ct)
    {
        var described = await ColumnsAsync(c, tx, table, ct).ConfigureAwait(false);
        var columns = described.Where(x => !x.Generated).Select(x => x.Name).ToList();
        var all = described.Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        var result = new List<ReplayOutcome>();
        ReplayOutcome Outcome(ReplayEvent e, bool applied, string what) => new(table.Display, e.AuditKey, e.EntityId, e.Event, e.Time, applied, what);
        if (key.Count == 0)
        {
            return [.. events.Select(e => Outcome(e, false, "the table has no primary key, so an event cannot be matched to its row"))];
        }
        // The copy has no constraints: without an index on the key every event would scan the whole table.
        await Catalog.ExecuteOneAsync(c, $"CREATE INDEX ON {table.Sql} ({string.Join(", ", key.Select(Catalog.Quote))})", tx, ct).ConfigureAwait(false);
        foreach (var e in events)
        {
            if (!IsDelete(e.Event) && e.NewImage is null)
            {
                result.Add(Outcome(e, false, hasNewImage ? "no new image: the event does not say what the row became" : "no new image: the audit section has no new_image, so changes cannot be replayed"));
                continue;
            }
            await Catalog.ExecuteOneAsync(c, "SAVEPOINT cairn_event", tx, ct).ConfigureAwait(false);
            try
            {
                ReplayOutcome o;
                if (IsDelete(e.Event))
                {
                    o = await DeleteAsync(c, tx, table, key, e, ct).ConfigureAwait(false) is { } n
                        ? Outcome(e, true, n > 0 ? "deleted" : "deleted (the copy had no such row)")
                        : Outcome(e, false, "a delete without the row's key: no old image with the key columns, and the table's key is not one column matching the event's id");
                }
                else
                {
                    var image = e.NewImage!;
                    var imageKeys = await KeysAsync(c, tx, image, ct).ConfigureAwait(false);
                    if (!key.All(imageKeys.Contains))
                    {
                        o = Outcome(e, false, "the new image has no primary key values");
                    }
                    else
                    {
                        var gone = imageKeys.Where(k => !all.Contains(k)).ToList();
                        unknownColumns.UnionWith(gone);
                        var upd = columns.Where(x => imageKeys.Contains(x) && !key.Contains(x)).ToList();
                        var match = string.Join(" AND ", key.Select(k => $"l.{Catalog.Quote(k)} = r.{Catalog.Quote(k)}"));
                        long n;
                        if (upd.Count > 0)
                        {
                            n = await ExecuteAsync(c, tx, $"UPDATE {table.Sql} l SET {string.Join(", ", upd.Select(x => $"{Catalog.Quote(x)} = r.{Catalog.Quote(x)}"))} FROM jsonb_populate_record(NULL::{table.Sql}, @img::jsonb) r WHERE {match}", image, ct).ConfigureAwait(false);
                        }
                        else
                        {
                            n = await ExecuteAsync(c, tx, $"SELECT 1 FROM {table.Sql} l, jsonb_populate_record(NULL::{table.Sql}, @img::jsonb) r WHERE {match}", image, ct).ConfigureAwait(false);
                        }
                        if (n == 0)
                        {
                            var ins = columns.Where(imageKeys.Contains).ToList();
                            await ExecuteAsync(c, tx, $"INSERT INTO {table.Sql} ({string.Join(", ", ins.Select(Catalog.Quote))}) OVERRIDING SYSTEM VALUE SELECT {string.Join(", ", ins.Select(x => "r." + Catalog.Quote(x)))} FROM jsonb_populate_record(NULL::{table.Sql}, @img::jsonb) r", image, ct).ConfigureAwait(false);
                        }
                        o = Outcome(e, true, n == 0 ? "inserted from the new image" : "set to the new image");
                        if (gone.Count > 0)
                        {
                            o = o with { What = o.What + $" (image keys that are not columns of the backup's table were left out: {string.Join(", ", gone)})" };
                        }
                    }
                }
                await Catalog.ExecuteOneAsync(c, "RELEASE SAVEPOINT cairn_event", tx, ct).ConfigureAwait(false);
                result.Add(o);
            }
            catch (PostgresException x)
            {
                await Catalog.ExecuteOneAsync(c, "ROLLBACK TO SAVEPOINT cairn_event", tx, ct).ConfigureAwait(false);
                await Catalog.ExecuteOneAsync(c, "RELEASE SAVEPOINT cairn_event", tx, ct).ConfigureAwait(false);
                result.Add(Outcome(e, false, $"conflict: {x.MessageText} ({x.SqlState})"));
            }
        }
        return result;
    }

    /// <summary>Deletes the event's row by the key in its old image, else by its id when the key is one column; null when neither names the row.</summary>
    private static async Task<long?> DeleteAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable table, IReadOnlyList<string> key, ReplayEvent e, CancellationToken ct)
    {
        if (e.OldImage is { } old && key.All((await KeysAsync(c, tx, old, ct).ConfigureAwait(false)).Contains))
        {
            var match = string.Join(" AND ", key.Select(k => $"l.{Catalog.Quote(k)} = r.{Catalog.Quote(k)}"));
            return await ExecuteAsync(c, tx, $"DELETE FROM {table.Sql} l USING jsonb_populate_record(NULL::{table.Sql}, @img::jsonb) r WHERE {match}", old, ct).ConfigureAwait(false);
        }
        if (key.Count == 1 && e.EntityId is { } id)
        {
            await using var cmd = new NpgsqlCommand($"DELETE FROM {table.Sql} WHERE {Catalog.Quote(key[0])}::text = @id", c, tx);
            cmd.Parameters.AddWithValue("id", id);
            return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        return null;
    }

    private static async Task<HashSet<string>> KeysAsync(NpgsqlConnection c, NpgsqlTransaction tx, string image, CancellationToken ct)
    {
        var keys = new HashSet<string>(StringComparer.Ordinal);
        await using var k = new NpgsqlCommand("SELECT jsonb_object_keys(@img::jsonb) WHERE jsonb_typeof(@img::jsonb) = 'object'", c, tx);
        k.Parameters.AddWithValue("img", image);
        await using var r = await k.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            keys.Add(r.GetString(0));
        }
        return keys;
    }

    private static async Task<long> ExecuteAsync(NpgsqlConnection c, NpgsqlTransaction tx, string sql, string image, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c, tx);
        cmd.Parameters.AddWithValue("img", image);
        if (sql.StartsWith("SELECT", StringComparison.Ordinal))
        {
            return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is null ? 0 : 1;
        }
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>The table's columns in order, and which are generated (derived: never written from an image).</summary>
    private static async Task<List<(string Name, bool Generated)>> ColumnsAsync(NpgsqlConnection c, NpgsqlTransaction tx, LiveTable t, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT attname::text, attgenerated <> '' FROM pg_attribute WHERE attrelid = (quote_ident(@s) || '.' || quote_ident(@t))::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum", c, tx);
        cmd.Parameters.AddWithValue("s", t.Schema);
        cmd.Parameters.AddWithValue("t", t.Name);
        var result = new List<(string, bool)>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add((r.GetString(0), r.GetBoolean(1)));
        }
        return result;
    }

    /// <summary>
    /// Deletes from the last table of <paramref name="path"/> (a foreign-key path from the subject's table, as the live
    /// catalog has it) the rows that reach the subject <paramref name="identifier"/> through the whole path, in a copy that
    /// has the path's tables but not their constraints. When the path's first key references the subject's key column
    /// itself, the subject's row is not needed (it may be long gone): its referencing column is compared with the identifier.
    /// </summary>
    public static async Task<long> DeleteReachingAsync(NpgsqlConnection c, NpgsqlTransaction tx, IReadOnlyList<ForeignKey> path, string keyColumn, string identifier, CancellationToken ct)
    {
        var direct = DirectFirstHop(path, keyColumn);
        var hops = direct ? path.Count - 1 : path.Count;
        var sb = new StringBuilder($"DELETE FROM {path[^1].Child.Sql} AS c0 WHERE ");
        for (var i = 0; i < hops; i++)
        {
            var fk = path[path.Count - 1 - i];
            var join = string.Join(" AND ", fk.ChildColumns.Zip(fk.ParentColumns, (a, b) => $"c{i}.{Catalog.Quote(a)} = c{i + 1}.{Catalog.Quote(b)}"));
            sb.Append($"EXISTS (SELECT 1 FROM {fk.Parent.Sql} c{i + 1} WHERE {join} AND ");
        }
        sb.Append(direct ? $"c{hops}.{Catalog.Quote(path[0].ChildColumns[0])}::text = @id" : $"c{hops}.{Catalog.Quote(keyColumn)}::text = @id");
        sb.Append(')', hops);
        await using var cmd = new NpgsqlCommand(sb.ToString(), c, tx);
        cmd.Parameters.AddWithValue("id", identifier);
        return await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Whether the path's first foreign key references exactly the subject's key column (so the identifier can be compared directly).</summary>
    public static bool DirectFirstHop(IReadOnlyList<ForeignKey> path, string keyColumn) => path[0].ParentColumns is [var p] && p == keyColumn && path[0].ChildColumns.Count == 1;

    /// <summary>Every foreign-key path from <paramref name="subject"/> down to <paramref name="table"/> in the live catalog (cycles cut, as an erasure walks them).</summary>
    public static async Task<List<List<ForeignKey>>> PathsToAsync(NpgsqlConnection c, LiveTable subject, LiveTable table, CancellationToken ct)
    {
        var paths = new List<List<ForeignKey>>();
        await ErasureSql.WalkAsync(c, subject, [], paths, ct).ConfigureAwait(false);
        return [.. paths.Where(p => p[^1].Child.Oid == table.Oid)];
    }
}
