using System.Globalization;
using System.Text;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Files;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Physical;

/// <summary>Where recovery should stop; exactly one kind is set (or none for the end of the archive).</summary>
public sealed record RecoveryTarget(string? Time = null, string? Lsn = null, string? Xid = null, string? Name = null, string? Immediate = null, string Action = "promote", string? Timeline = null)
{
    /// <summary>The recovery settings as postgresql.conf lines; every value quoted (<see cref="ConfValue.Quote"/>), so none can end its line early.</summary>
    public IEnumerable<string> Settings()
    {
        if (Time is not null)
        {
            yield return $"recovery_target_time = {ConfValue.Quote(Time)}";
        }
        if (Lsn is not null)
        {
            yield return $"recovery_target_lsn = {ConfValue.Quote(Lsn)}";
        }
        if (Xid is not null)
        {
            yield return $"recovery_target_xid = {ConfValue.Quote(Xid)}";
        }
        if (Name is not null)
        {
            yield return $"recovery_target_name = {ConfValue.Quote(Name)}";
        }
        if (Immediate is not null)
        {
            yield return "recovery_target = 'immediate'";
        }
        if (Time is not null || Lsn is not null || Xid is not null || Name is not null || Immediate is not null)
        {
            yield return $"recovery_target_action = {ConfValue.Quote(Action)}";
        }
        yield return $"recovery_target_timeline = {ConfValue.Quote(Timeline ?? "latest")}";
    }
}

public sealed record RecoveryResult(bool InRecovery, string? ReplayLsn, string? PausedState, DateTimeOffset? LastReplayedTransaction);

/// <summary>Writes a physical backup into a data directory with recovery settings, and optionally starts it.</summary>
public static class PhysicalRestorer
{
    /// <summary>Extracts the base backup tar into <paramref name="target"/> (which must be empty unless <paramref name="force"/>); see <see cref="BaseBackupTar"/>.</summary>
    public static Task ExtractAsync(Stream tar, string target, bool force, CancellationToken ct) => BaseBackupTar.ExtractAsync(tar, target, force, ct);

    /// <summary>
    /// recovery.signal and the recovery settings, with restore_command calling cairn wal-fetch. Written through a
    /// handle on the data directory without following links (a restored or planted link named postgresql.auto.conf
    /// is refused, not appended through), and only what this writes is handed to the server's user.
    /// </summary>
    public static async Task ConfigureRecoveryAsync(string target, string restoreCommand, RecoveryTarget recovery, int? port, string? socketDir, bool keepArchiving, CancellationToken ct)
    {
        var sb = new StringBuilder("\n# Written by cairn restore --physical\n");
        sb.Append(CultureInfo.InvariantCulture, $"restore_command = {ConfValue.Quote(restoreCommand)}\n");
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
            sb.Append(CultureInfo.InvariantCulture, $"unix_socket_directories = {ConfValue.Quote(socketDir)}\nlisten_addresses = ''\nunix_socket_permissions = 0700\n");
            sb.Append(CultureInfo.InvariantCulture, $"hba_file = {ConfValue.Quote(Path.Combine(Path.GetFullPath(target), "cairn_hba.conf"))}\n");
            sb.Append(CultureInfo.InvariantCulture, $"ident_file = {ConfValue.Quote(Path.Combine(Path.GetFullPath(target), "cairn_ident.conf"))}\n");
        }
        // A restored copy must not archive into the original's place, unless it is to become the new primary.
        if (!keepArchiving)
        {
            sb.Append("archive_mode = off\n");
        }
        var owner = Accounts.ServerOwner();
        using var root = SafeDirectory.Open(target);
        const UnixFileMode privateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        async Task WriteNewAsync(string name, string text)
        {
            // Whatever is there is removed first (a planted link itself, never its target), then created anew.
            root.Remove(name);
            using var handle = root.CreateFile(name, privateFile);
            await using var fs = new FileStream(handle, FileAccess.Write, bufferSize: 0);
            await fs.WriteAsync(Encoding.UTF8.GetBytes(text), ct).ConfigureAwait(false);
            if (owner is { } o)
            {
                SafeDirectory.SetOwner(handle, o);
            }
        }
        await WriteNewAsync("recovery.signal", "").ConfigureAwait(false);
        if (socketDir is not null)
        {
            await WriteNewAsync("cairn_hba.conf", Servers.ServerAccess.Hba).ConfigureAwait(false);
            await WriteNewAsync("cairn_ident.conf", Servers.ServerAccess.Ident("postgres")).ConfigureAwait(false);
            if (Directory.Exists(socketDir))
            {
                using var socket = SafeDirectory.Open(socketDir);
                socket.SetMode(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }
        using (var conf = root.OpenOrCreateForAppend("postgresql.auto.conf", privateFile, out var created))
        {
            await using var fs = new FileStream(conf, FileAccess.Write, bufferSize: 0);
            await fs.WriteAsync(Encoding.UTF8.GetBytes(sb.ToString()), ct).ConfigureAwait(false);
            if (created && owner is { } o)
            {
                SafeDirectory.SetOwner(conf, o);
            }
        }
        foreach (var f in new[] { "postmaster.pid", "postmaster.opts" })
        {
            root.Remove(f);
        }
        using (var wal = root.CreateDirectory("pg_wal", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, out var walCreated))
        {
            if (walCreated && owner is { } o)
            {
                wal.SetOwner(o);
            }
        }
        root.SetMode(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (owner is { } rootOwner)
        {
            root.SetOwner(rootOwner);
        }
    }

    /// <summary>Starts the restored server and waits until recovery reached its target (or paused, or shut down).</summary>
    public static async Task<RecoveryResult> StartAndWaitAsync(string target, int port, string socketDir, string action, TimeSpan timeout, string? postgresBin, CancellationToken ct)
    {
        var bin = PgBinaries.Find(null, postgresBin);
        var log = Path.Combine(socketDir, "server.log"); // the socket folder belongs to the server's user, so it may write its log there
        var r = await PgProcess.RunAsServerUserAsync(bin["pg_ctl"], ["-D", target, "-l", log, "-W", "start"], null, ct).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            throw new PgToolException($"the restored server did not start: {PgProcess.Tail(r.StandardError + r.StandardOutput)}");
        }
        var conn = PgConnection.Parse(SocketUrl.For(socketDir, port));
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
