using System.Globalization;
using System.Net.Sockets;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>Damaged WAL in the archive stops recovery loudly: wal-fetch exits 126, PostgreSQL aborts, nothing is promoted.</summary>
public class DamagedWalTests
{
    [Fact]
    public async Task A_flipped_byte_in_an_archived_segment_before_the_target_fails_the_restore_naming_the_segment_and_leaves_no_server_running()
    {
        await using var cluster = await ArchivingCluster.StartAsync();
        var (cli, server) = (cluster.Cli, cluster.Server);
        await server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
        var (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        // Transaction A lands in segment S, which is archived whole; the target is after it (and after B in a later segment).
        await server.ExecuteAsync("INSERT INTO t VALUES (2)");
        var segment = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        await cluster.ArchiveAllAsync();
        await server.ExecuteAsync("INSERT INTO t VALUES (3)");
        var target = (await server.ScalarAsync<DateTime>("SELECT clock_timestamp()")).ToUniversalTime();
        await Task.Delay(200);
        await server.ExecuteAsync("INSERT INTO t VALUES (4)");
        await cluster.ArchiveAllAsync();

        var stored = cluster.Dir.File($"repo/wal/app@{segment}");
        Assert.True(File.Exists(stored), stored);
        var bytes = await File.ReadAllBytesAsync(stored);
        bytes[bytes.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(stored, bytes);

        // wal-fetch itself: 126, so PostgreSQL aborts instead of taking the damage for the end of the archive.
        var fetched = cluster.Dir.File("fetched");
        (code, _, err) = await cli.RunAsync("wal-fetch", segment, fetched, "--database", "app");
        Assert.True(code == 126, err);
        Assert.False(File.Exists(fetched));

        var to = cluster.Dir.File("restored");
        var port = ScratchServer.FreePort();
        (code, _, err) = await cli.RunAsync("restore", "app", "--physical", "--to", to, "--start", "--port", port.ToString(CultureInfo.InvariantCulture),
            "--target-time", target.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");
        try
        {
            Assert.True(code == ExitCodes.Database, $"exit {code}: {err}");
            Assert.Contains(segment, err, StringComparison.Ordinal);
            Assert.Contains("recovery failed and the server stopped", err, StringComparison.Ordinal);
            // No promoted (or any) server is left: no postmaster.pid, pg_ctl says not running, nothing listens on the port.
            Assert.False(File.Exists(Path.Combine(to, "postmaster.pid")));
            var status = await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", to, "status"], null, default);
            Assert.True(status.ExitCode == 3, status.StandardOutput + status.StandardError);
            Assert.False(File.Exists(Path.Combine(to + ".sock", $".s.PGSQL.{port}")));
            using var tcp = new TcpClient();
            await Assert.ThrowsAnyAsync<SocketException>(() => tcp.ConnectAsync("127.0.0.1", port));
        }
        finally
        {
            await cluster.StopRestoredAsync(to);
        }
    }
}
