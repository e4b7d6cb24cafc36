using System.Formats.Tar;
using System.Globalization;
using System.Text;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Physical;

/// <summary>Where recovery should stop; exactly one kind is set (or none for the end of the archive).</summary>
public sealed record RecoveryTarget(string? Time = null, string? Lsn = null, string? Xid = null, string? Name = null, string? Immediate = null, string Action = "promote", string? Timeline = null)
{
    public IEnumerable<string> Settings()
    {
        if (Time is not null)
        {
            yield return $"recovery_target_time = '{Time.Replace("'", "''", StringComparison.Ordinal)}'";
        }
        if (Lsn is not null)
        {
            yield return $"recovery_target_lsn = '{Lsn}'";
        }
        if (Xid is not null)
        {
            yield return $"recovery_target_xid = '{Xid}'";
        }
        if (Name is not null)
        {
            yield return $"recovery_target_name = '{Name.Replace("'", "''", StringComparison.Ordinal)}'";
        }
        if (Immediate is not null)
        {
            yield return "recovery_target = 'immediate'";
        }
        if (Time is not null || Lsn is not null || Xid is not null || Name is not null || Immediate is not null)
        {
            yield return $"recovery_target_action = '{Action}'";
        }
        yield return $"recovery_target_timeline = '{Timeline ?? "latest"}'";
    }
}

public sealed record RecoveryResult(bool InRecovery, string? ReplayLsn, string? PausedState, DateTimeOffset? LastReplayedTransaction);

/// <summary>Writes a physical backup into a data directory with recovery settings, and optionally starts it.</summary>
public static class PhysicalRestorer
{
    /// <summary>Extracts the base backup tar into <paramref name="target"/> (which must be empty unless <paramref name="force"/>).</summary>
    public static async Task ExtractAsync(Stream tar, string target, bool force, CancellationToken ct)
    {
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            if (!force)
            {
                throw new PgToolException($"{target} is not empty; choose an empty folder, or pass --force to replace its contents");
            }
            Directory.Delete(target, recursive: true);
        }
        Directory.CreateDirectory(target);
        var root = Path.GetFullPath(target) + Path.DirectorySeparatorChar;
        await using var reader = new TarReader(tar);
        while (await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false) is { } entry)
        {
            var path = Path.GetFullPath(Path.Combine(target, entry.Name));
            if (!path.StartsWith(root, StringComparison.Ordinal) && path + Path.DirectorySeparatorChar != root)
            {
                throw new PgToolException($"the backup holds an entry outside the data directory ({entry.Name}); refusing it");
            }
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    Directory.CreateDirectory(path);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile:
                    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                    await entry.ExtractToFileAsync(path, overwrite: true, ct).ConfigureAwait(false);
                    break;
                case TarEntryType.SymbolicLink:
                    File.CreateSymbolicLink(path, entry.LinkName);
                    break;
            }
        }
    }

    /// <summary>recovery.signal and the recovery settings, with restore_command calling cairn wal-fetch.</summary>
    public static async Task ConfigureRecoveryAsync(string target, string restoreCommand, RecoveryTarget recovery, int? port, string? socketDir, CancellationToken ct, bool keepArchiving = false)
    {
        await File.WriteAllTextAsync(Path.Combine(target, "recovery.signal"), "", ct).ConfigureAwait(false);
        var sb = new StringBuilder("\n# Written by cairn restore --physical\n");
        sb.Append(CultureInfo.InvariantCulture, $"restore_command = '{restoreCommand.Replace("'", "''", StringComparison.Ordinal)}'\n");
        foreach (var s in recovery.Settings())
        {
            sb.Append(s).Append('\n');
        }
        if (port is { } p)
        {
            sb.Append(CultureInfo.InvariantCulture, $"port = {p}\n");
        }
        if (socketDir is not null)
        {
            // Cairn starts this copy: like a scratch server, only Cairn's OS user and the server's user reach
            // it (private socket, peer authentication through Cairn's own hba/ident files; the backup's
            // pg_hba.conf stays in place for when these lines are removed).
            sb.Append(CultureInfo.InvariantCulture, $"unix_socket_directories = {Servers.ServerAccess.Setting(socketDir)}\nlisten_addresses = ''\nunix_socket_permissions = 0700\n");
            sb.Append(CultureInfo.InvariantCulture, $"hba_file = {Servers.ServerAccess.Setting(Path.Combine(Path.GetFullPath(target), "cairn_hba.conf"))}\n");
            sb.Append(CultureInfo.InvariantCulture, $"ident_file = {Servers.ServerAccess.Setting(Path.Combine(Path.GetFullPath(target), "cairn_ident.conf"))}\n");
            await Servers.ServerAccess.WriteNewFileAsync(target, "cairn_hba.conf", Servers.ServerAccess.Hba, ct).ConfigureAwait(false);
            await Servers.ServerAccess.WriteNewFileAsync(target, "cairn_ident.conf", Servers.ServerAccess.Ident("postgres"), ct).ConfigureAwait(false);
            if (Directory.Exists(socketDir))
            {
                Servers.ServerAccess.MakePrivate(socketDir);
            }
        }
        // A restored copy must not archive into the original's place, unless it is to become the new primary.
        if (!keepArchiving)
        {
            sb.Append("archive_mode = off\n");
        }
        await File.AppendAllTextAsync(Path.Combine(target, "postgresql.auto.conf"), sb.ToString(), ct).ConfigureAwait(false);
        foreach (var f in new[] { "postmaster.pid", "postmaster.opts" })
        {
            File.Delete(Path.Combine(target, f));
        }
        Directory.CreateDirectory(Path.Combine(target, "pg_wal"));
        if (OperatingSystem.IsLinux())
        {
            File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        PgProcess.GiveToServerUser(target);
    }

    /// <summary>Starts the restored server and waits until recovery reached its target (or paused, or shut down).</summary>
    public static async Task<RecoveryResult> StartAndWaitAsync(string target, int port, string socketDir, string action, TimeSpan timeout, CancellationToken ct, string? postgresBin = null)
    {
        var bin = PgBinaries.Find(null, postgresBin);
        var log = Path.Combine(socketDir, "server.log"); // the socket folder belongs to the server's user, so it may write its log there
        var r = await PgProcess.RunAsync(bin["pg_ctl"], ["-D", target, "-l", log, "-W", "start"], null, ct, asServerUser: true).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            throw new PgToolException($"the restored server did not start: {PgProcess.Tail(r.StandardError + r.StandardOutput)}");
        }
        var conn = PgConnection.Parse($"postgresql://postgres@/postgres?host={Uri.EscapeDataString(socketDir)}&port={port}");
        var started = System.Diagnostics.Stopwatch.StartNew();
        var sawRunning = false;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var logText = File.Exists(log) ? await File.ReadAllTextAsync(log, ct).ConfigureAwait(false) : "";
            var running = File.Exists(Path.Combine(target, "postmaster.pid"));
            sawRunning |= running;
            if (!running && (sawRunning || started.Elapsed > TimeSpan.FromSeconds(10)))
            {
                if (action == "shutdown" && logText.Contains("shut down", StringComparison.Ordinal))
                {
                    return new RecoveryResult(false, null, "shutdown", null);
                }
                var why = logText.Split('\n').Where(l => l.Contains("FATAL", StringComparison.Ordinal) || l.Contains("PANIC", StringComparison.Ordinal) || l.Contains("cairn", StringComparison.Ordinal)).TakeLast(5);
                throw new PgToolException($"recovery failed and the server stopped: {string.Join(" | ", why)} (full log: {log})");
            }
            try
            {
                await using var c = new NpgsqlConnection(conn.NpgsqlConnectionString());
                await c.OpenAsync(ct).ConfigureAwait(false);
                await using var cmd = new NpgsqlCommand("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END, pg_last_xact_replay_timestamp()", c);
                await using var rd = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
                await rd.ReadAsync(ct).ConfigureAwait(false);
                var inRecovery = rd.GetBoolean(0);
                var paused = rd.IsDBNull(2) ? null : rd.GetString(2);
                if (!inRecovery || paused == "paused")
                {
                    return new RecoveryResult(inRecovery, rd.IsDBNull(1) ? null : rd.GetString(1), paused, rd.IsDBNull(3) ? null : rd.GetFieldValue<DateTimeOffset>(3));
                }
            }
            catch (NpgsqlException)
            {
                // still starting or replaying
            }
            if (started.Elapsed > timeout)
            {
                throw new PgToolException($"recovery did not finish within {timeout.TotalMinutes:0} minutes; see {log}");
            }
            await Task.Delay(300, ct).ConfigureAwait(false);
        }
    }
}
