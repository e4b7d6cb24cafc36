using System.Globalization;
using Cairn.PostgreSql.Connections;
using Npgsql;

namespace Cairn.PostgreSql.Physical;

/// <summary>What the server said when the backup started.</summary>
public sealed record BackupStart(string StartLsn, uint Timeline, string StartWal, string ServerVersion, string SystemIdentifier, string DataDirectory, string TablespaceVersionDirectory, bool FromStandby, DateTimeOffset StartTime, int PageSize)
{
    /// <summary>Whether the cluster has data checksums (initdb --data-checksums or pg_checksums --enable): only then are pages checked while read.</summary>
    public bool DataChecksums { get; init; }
}

/// <summary>What pg_backup_stop returned: the files a restore needs besides the data directory.</summary>
public sealed record BackupStop(string StopLsn, string StopWal, string BackupLabel, string TablespaceMap, DateTimeOffset StopTime);

/// <summary>
/// PostgreSQL's non-exclusive low-level backup API (pg_backup_start / pg_backup_stop, pg_start_backup /
/// pg_stop_backup before 15) on one session that stays open for the whole copy. The caller reads the
/// data directory itself between <see cref="StartAsync"/> and <see cref="StopAsync"/>. Closing the
/// session without stopping aborts the backup on the server; nothing is left behind.
/// </summary>
public sealed class BackupSession : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly int _versionNum;
    private readonly TimeProvider _time;

    private BackupSession(NpgsqlConnection connection, int versionNum, TimeProvider time, BackupStart start)
    {
        _connection = connection;
        _versionNum = versionNum;
        _time = time;
        Start = start;
    }

    public BackupStart Start { get; }

    /// <summary>Checks that the server archives through Cairn and that <paramref name="expectedDataDirectory"/> is its data directory, then starts the backup.</summary>
    public static async Task<BackupSession> StartAsync(PgConnection connection, string expectedDataDirectory, TimeProvider time, CancellationToken ct)
    {
        var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        try
        {
            var rows = await QueryAsync(c, """
                SELECT current_setting('server_version_num'), current_setting('archive_mode'), current_setting('archive_command'),
                       current_setting('data_directory'), pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system()),
                       (SELECT catalog_version_no::text FROM pg_control_system()), current_setting('block_size'), current_setting('data_checksums')
                """, ct).ConfigureAwait(false);
            var r = rows[0];
            var versionNum = int.Parse(r[0], CultureInfo.InvariantCulture);
            if (r[1] == "off" || !r[2].Contains("wal-push", StringComparison.Ordinal))
            {
                throw new PgToolException($"{connection.Redacted} does not archive its WAL through Cairn (archive_mode = {r[1]}, archive_command = '{r[2]}'); set archive_mode = on and archive_command = 'cairn wal-push %p --database NAME' (see README), restart, then back up");
            }
            var serverDir = Path.TrimEndingDirectorySeparator(r[3]);
            var expected = Path.TrimEndingDirectorySeparator(Path.GetFullPath(expectedDataDirectory));
            if (!string.Equals(RealPath(serverDir), RealPath(expected), StringComparison.Ordinal))
            {
                throw new PgToolException($"the server's data directory is {serverDir}, but data_directory in the configuration says {expected}; fix data_directory (Cairn reads the files directly, so it must run on the database host)");
            }
            if (!File.Exists(Path.Combine(expected, "PG_VERSION")))
            {
                throw new PgToolException($"{expected}/PG_VERSION cannot be read here; run cairn as root or as the server's user on the database host");
            }
            var standby = r[4] is "True" or "true" or "t";
            var startTime = time.GetUtcNow();
            var startSql = versionNum >= 150000 ? "SELECT pg_backup_start('cairn', true)::text" : "SELECT pg_start_backup('cairn', true, false)::text";
            var lsnText = (await QueryAsync(c, startSql, ct).ConfigureAwait(false))[0][0];
            var info = await QueryAsync(c, "SELECT timeline_id::text FROM pg_control_checkpoint()", ct).ConfigureAwait(false);
            var tli = uint.Parse(info[0][0], CultureInfo.InvariantCulture);
            var lsn = WalNames.ParseLsn(lsnText);
            var start = new BackupStart(lsnText, tli, WalNames.SegmentOf(tli, lsn), r[0], r[5], expected, $"PG_{versionNum / 10000}_{r[6]}", standby, startTime, int.Parse(r[7], CultureInfo.InvariantCulture))
            {
                DataChecksums = r[8] == "on",
            };
            return new BackupSession(c, versionNum, time, start);
        }
        catch (NpgsqlException e)
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw new PgToolException($"could not start a backup on {connection.Redacted}: {e.Message}{(e is PostgresException { SqlState: "42501" } ? "; the user needs the REPLICATION attribute or EXECUTE on pg_backup_start/pg_backup_stop" : "")}", e);
        }
        catch
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Ends the backup. WAL archiving is not waited for here (a broken archive_command would hang the
    /// server-side wait forever); the caller waits for the segments in its repository, with a timeout.
    /// </summary>
    public async Task<BackupStop> StopAsync(CancellationToken ct)
    {
        var sql = _versionNum >= 150000
            ? "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)"
            : "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, false)";
        List<string[]> rows;
        try
        {
            rows = await QueryAsync(_connection, sql, ct).ConfigureAwait(false);
        }
        catch (NpgsqlException e)
        {
            throw new PgToolException($"pg_backup_stop failed: {e.Message}; no backup was recorded", e);
        }
        var lsn = rows[0][0];
        // The stop LSN's segment is the last one recovery needs; an LSN exactly on a boundary belongs to the previous one.
        var stopWal = WalNames.SegmentOf(Start.Timeline, WalNames.ParseLsn(lsn) - 1);
        return new BackupStop(lsn, stopWal, rows[0][1], rows[0][2], _time.GetUtcNow());
    }

    /// <summary>pg_stat_archiver's last failure, to explain a segment that does not arrive.</summary>
    public async Task<string?> ArchiverFailureAsync(CancellationToken ct)
    {
        var rows = await QueryAsync(_connection, "SELECT coalesce(last_failed_wal, ''), coalesce(last_failed_time::text, ''), coalesce(last_archived_wal, '') FROM pg_stat_archiver", ct).ConfigureAwait(false);
        return rows[0][0].Length == 0 ? null : $"pg_stat_archiver: last failed {rows[0][0]} at {rows[0][1]}, last archived {rows[0][2]}";
    }

    public async ValueTask DisposeAsync()
    {
        // Without pg_backup_stop the server aborts the non-exclusive backup when the session ends.
        await _connection.DisposeAsync().ConfigureAwait(false);
    }

    private static async Task<List<string[]>> QueryAsync(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c) { CommandTimeout = 0 };
        await using var rd = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        var rows = new List<string[]>();
        while (await rd.ReadAsync(ct).ConfigureAwait(false))
        {
            var row = new string[rd.FieldCount];
            for (var i = 0; i < row.Length; i++)
            {
                row[i] = rd.IsDBNull(i) ? "" : Convert.ToString(rd.GetValue(i), CultureInfo.InvariantCulture)!;
            }
            rows.Add(row);
        }
        return rows;
    }

    private static string RealPath(string path)
    {
        try
        {
            var info = new DirectoryInfo(path);
            return info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? info.FullName;
        }
        catch (IOException)
        {
            return path;
        }
    }
}
