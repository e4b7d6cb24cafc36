using System.Globalization;

namespace Cairn.PostgreSql.Sessions;

/// <summary>The database as a whole: its size, whether pages carry checksums, and what pg_stat_database counted.</summary>
/// <param name="ChecksumFailures">pg_stat_database.checksum_failures; null when data checksums are off (PostgreSQL then counts nothing).</param>
public sealed record DatabaseFacts(string Name, long SizeBytes, bool DataChecksums, long? ChecksumFailures, DateTimeOffset? ChecksumLastFailure, int ServerVersionNum, bool InRecovery);

public sealed record RelationSize(string Schema, string Name, string Kind, long TotalBytes, long HeapBytes)
{
    public string Display => Schema + "." + Name;
}

public sealed record InvalidIndex(string Schema, string Name, string TableSchema, string Table)
{
    public string Display => Schema + "." + Name;
}

/// <summary>A relation whose file is not where the catalog says it is (or cannot be looked at).</summary>
/// <param name="IsIndex">True for an index; then <see cref="TableSchema"/>.<see cref="Table"/> is the table it indexes.</param>
public sealed record MissingFile(string Schema, string Name, bool IsIndex, string TableSchema, string Table, string Path)
{
    public string Display => Schema + "." + Name;
}

/// <param name="RetainedBytes">WAL kept for the slot (from its restart_lsn to the current position); null on a standby or an unused slot.</param>
public sealed record ReplicationSlotFacts(string Name, string Type, bool Active, string? Database, long? RetainedBytes, string? WalStatus);

/// <summary>
/// What <c>assess</c> asks a live server, besides amcheck (<see cref="Amcheck"/>): read-only queries on one
/// <see cref="CheckSession"/>. Each is a separate method so a failure of one (a missing privilege) is reported as that
/// probe not run, not as the assessment failing.
/// </summary>
public static class DamageSurvey
{
    public static async Task<DatabaseFacts> DatabaseAsync(CheckSession session, CancellationToken cancellationToken)
    {
        var r = (await session.QueryAsync(
            "SELECT current_database(), pg_database_size(current_database())::int8, current_setting('data_checksums'), current_setting('server_version_num')::int4, pg_is_in_recovery()",
            null, cancellationToken).ConfigureAwait(false))[0];
        var name = (string)r[0]!;
        var checksums = (string)r[2]! == "on";
        var version = Convert.ToInt32(r[3], CultureInfo.InvariantCulture);
        long? failures = null;
        DateTimeOffset? last = null;
        if (checksums && version >= 120000)
        {
            var f = await session.QueryAsync("SELECT coalesce(checksum_failures, 0)::int8, checksum_last_failure FROM pg_stat_database WHERE datname = current_database()", null, cancellationToken).ConfigureAwait(false);
            if (f.Count > 0)
            {
                failures = Convert.ToInt64(f[0][0], CultureInfo.InvariantCulture);
                last = f[0][1] is DateTime t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : null;
            }
        }
        return new DatabaseFacts(name, Convert.ToInt64(r[1], CultureInfo.InvariantCulture), checksums, failures, last, version, (bool)r[4]!);
    }

    /// <summary>Tables and materialized views outside the system schemas, largest first (with indexes and TOAST in the total).</summary>
    public static async Task<List<RelationSize>> TableSizesAsync(CheckSession session, CancellationToken cancellationToken)
        => [.. (await session.QueryAsync(
            "SELECT n.nspname, c.relname, c.relkind::text, pg_total_relation_size(c.oid)::int8, pg_relation_size(c.oid)::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            + "WHERE c.relkind IN ('r','m','p') AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 4 DESC, 1, 2",
            null, cancellationToken).ConfigureAwait(false))
            .Select(r => new RelationSize((string)r[0]!, (string)r[1]!, (string)r[2]! switch { "m" => "materialized view", "p" => "partitioned table", _ => "table" },
                Convert.ToInt64(r[3], CultureInfo.InvariantCulture), Convert.ToInt64(r[4], CultureInfo.InvariantCulture)))];

    public static async Task<List<InvalidIndex>> InvalidIndexesAsync(CheckSession session, CancellationToken cancellationToken)
        => [.. (await session.QueryAsync(
            "SELECT n.nspname, c.relname, tn.nspname, t.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            + "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace WHERE NOT i.indisvalid ORDER BY 1, 2",
            null, cancellationToken).ConfigureAwait(false))
            .Select(r => new InvalidIndex((string)r[0]!, (string)r[1]!, (string)r[2]!, (string)r[3]!))];

    /// <summary>
    /// Relations (catalogs included) whose main file does not exist: pg_stat_file with missing_ok. Needs superuser or
    /// EXECUTE on pg_stat_file (pg_read_server_files); without it this throws <see cref="CheckQueryException"/>.
    /// </summary>
    public static async Task<List<MissingFile>> MissingFilesAsync(CheckSession session, CancellationToken cancellationToken)
        => [.. (await session.QueryAsync(
            "SELECT n.nspname, c.relname, c.relkind = 'i', coalesce(tn.nspname, n.nspname), coalesce(t.relname, c.relname), pg_relation_filepath(c.oid) "
            + "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid "
            + "LEFT JOIN pg_class t ON t.oid = i.indrelid LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            + "WHERE c.relkind IN ('r','i','m','t','S') AND c.relpersistence <> 't' AND pg_relation_filepath(c.oid) IS NOT NULL "
            + "AND (c.reltablespace = 0 OR c.reltablespace <> (SELECT oid FROM pg_tablespace WHERE spcname = 'pg_global')) "
            + "AND pg_stat_file(pg_relation_filepath(c.oid), true) IS NULL ORDER BY 1, 2",
            null, cancellationToken).ConfigureAwait(false))
            .Select(r => new MissingFile((string)r[0]!, (string)r[1]!, (bool)r[2]!, (string)r[3]!, (string)r[4]!, (string)r[5]!))];

    /// <summary>Each relation's file path (relative to the data directory), to name the relation a physical backup's bad page was in.</summary>
    public static async Task<Dictionary<string, (string Schema, string Name, bool IsIndex, string TableSchema, string Table)>> RelationPathsAsync(CheckSession session, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, (string, string, bool, string, string)>(StringComparer.Ordinal);
        foreach (var r in await session.QueryAsync(
            "SELECT pg_relation_filepath(c.oid), n.nspname, c.relname, c.relkind = 'i', coalesce(tn.nspname, n.nspname), coalesce(t.relname, c.relname) "
            + "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid "
            + "LEFT JOIN pg_class t ON t.oid = i.indrelid LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace "
            + "WHERE c.relkind IN ('r','i','m','t') AND c.relpersistence <> 't' AND pg_relation_filepath(c.oid) IS NOT NULL",
            null, cancellationToken).ConfigureAwait(false))
        {
            result[(string)r[0]!] = ((string)r[1]!, (string)r[2]!, (bool)r[3]!, (string)r[4]!, (string)r[5]!);
        }
        return result;
    }

    public static async Task<List<ReplicationSlotFacts>> ReplicationSlotsAsync(CheckSession session, int serverVersionNum, CancellationToken cancellationToken)
        => [.. (await session.QueryAsync(
            "SELECT slot_name::text, slot_type, active, database::text, CASE WHEN pg_is_in_recovery() OR restart_lsn IS NULL THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 END, "
            + (serverVersionNum >= 130000 ? "wal_status" : "NULL::text") + " FROM pg_replication_slots ORDER BY 1",
            null, cancellationToken).ConfigureAwait(false))
            .Select(r => new ReplicationSlotFacts((string)r[0]!, (string)r[1]!, (bool)r[2]!, r[3] as string, r[4] is null ? null : Convert.ToInt64(r[4], CultureInfo.InvariantCulture), r[5] as string))];
}
