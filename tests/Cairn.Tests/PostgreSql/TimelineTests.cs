using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A promotion in the middle: PITR onto the new timeline follows the archived history file.</summary>
public class TimelineTests
{
    private static async Task<T> ScalarAsync<T>(string socket, int port, string sql)
    {
        await using var c = new Npgsql.NpgsqlConnection($"Host={socket};Port={port};Username=postgres;Database=postgres;Pooling=false");
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task WaitArchivedAsync(string socket, int port, string segment)
    {
        await Eventually.UntilAsync(async () => string.CompareOrdinal(await ScalarAsync<string>(socket, port, "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), segment) >= 0,
            TimeSpan.FromMinutes(2), $"WAL segment {segment} being archived");
    }

    [Fact]
    public async Task Pitr_after_a_promotion_recovers_along_the_new_timeline()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("repo"));
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "timeline passphrase 5e1\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        var cli = new CliRunner(env);
        Assert.Equal(0, (await cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Code);
        await ArchiverSetup.AllowAsync(cli, passFile);
        var self = $"\"{Environment.ProcessPath}\" \"{CairnProcess.Dll}\"";
        env["CAIRN_BIN"] = self;
        var archive = $"CAIRN_PASSPHRASE_FILE={passFile} {self} --repo {dir.File("repo")} wal-push %p --database app";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive.Replace("'", "''", StringComparison.Ordinal)}'" });
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{server.Url()}\"\n");
        env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        await server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'timeline 1')");
        Assert.Equal(0, (await cli.RunAsync("backup", "app", "--physical")).Code);
        await server.ExecuteAsync("INSERT INTO t VALUES (2, 'timeline 1, after the backup')");
        var seg = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        await server.ExecuteAsync("SELECT pg_switch_wal()");
        await WaitArchivedAsync(server.SocketDirectory, server.Port, seg);
        await server.StopAsync();

        // Promote a PITR copy: it starts timeline 2 and archives into the same place.
        var promoted = dir.File("promoted");
        var port = ScratchServer.FreePort();
        var (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", promoted, "--keep-archiving", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(2L, await ScalarAsync<long>(socket, port, "SELECT count(*) FROM t"));
            var tli = await ScalarAsync<int>(socket, port, "SELECT timeline_id FROM pg_control_checkpoint()");
            Assert.Equal(2, tli);
            await ScalarAsync<int>(socket, port, "WITH i AS (INSERT INTO t VALUES (3, 'timeline 2') RETURNING 1) SELECT 1");
            var seg2 = await ScalarAsync<string>(socket, port, "SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
            await ScalarAsync<object>(socket, port, "SELECT pg_switch_wal()::text");
            await WaitArchivedAsync(socket, port, seg2);
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", promoted, "-m", "immediate", "-w", "stop"], null, default);
        }
        Assert.True(File.Exists(dir.File("repo/wal/app@00000002.history")), "the promoted server archived its history file");

        // Recovery from the timeline-1 backup to the latest point follows the history onto timeline 2.
        var again = dir.File("again");
        var port2 = ScratchServer.FreePort();
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", again, "--target-timeline", "latest", "--start", "--port", port2.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket2 = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(1L, await ScalarAsync<long>(socket2, port2, "SELECT count(*) FROM t WHERE id = 3"));
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", again, "-m", "immediate", "-w", "stop"], null, default);
        }
    }
}
