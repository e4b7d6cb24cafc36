using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.PostgreSql.Files;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A real server archiving asynchronously under pgbench, then a PITR replaying through wal-fetch's prefetch.</summary>
public sealed class WalAsyncServerTests
{
    [Fact]
    public async Task Async_archiving_under_pgbench_loses_nothing_and_a_PITR_with_prefetch_gives_equal_balances()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var spool = c.Dir.File("spool");
        using (var dir = SafeDirectory.Open(spool, create: true))
        {
            dir.SetOwner(Accounts.ServerOwner() ?? throw new InvalidOperationException("no postgres user"));
        }
        await c.WriteConfigAsync(true, $"    wal: {{ async: true, spool: {spool}, push_ahead: 4, fetch_ahead: 4 }}\n");
        await c.ArchiveWithConfigAsync();

        var init = await PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-i", "-q", "-s", "2"], c.PgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);
        await c.Server.ExecuteAsync("CHECKPOINT");
        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, json + err + PgProcess.Tail(await File.ReadAllTextAsync(c.Server.LogFile)));

        var statusDir = Path.Combine(c.Server.DataDirectory, "pg_wal", "archive_status");
        var load = PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-c", "2", "-T", "10", "-n"], c.PgEnv, default);
        var maxReady = 0;
        while (!load.IsCompleted)
        {
            maxReady = Math.Max(maxReady, Directory.EnumerateFiles(statusDir, "*.ready").Count());
            await Task.Delay(100);
        }
        var bench = await load;
        Assert.True(bench.ExitCode == 0, bench.StandardError);
        await c.ArchiveAllAsync();
        Assert.Equal(0L, await c.Server.ScalarAsync<long>("SELECT failed_count FROM pg_stat_archiver"));
        Assert.True(await c.Server.ScalarAsync<long>("SELECT archived_count FROM pg_stat_archiver") >= 3);
        // Every segment PostgreSQL let go of is in the repository.
        foreach (var done in Directory.EnumerateFiles(statusDir, "*.done").Select(f => Path.GetFileNameWithoutExtension(f)).Where(n => n.Length == 24))
        {
            Assert.True(File.Exists(c.Dir.File($"repo/wal/app@{done}")), $"{done} was acknowledged but is not in the repository");
        }
        var source = await c.Server.ScalarAsync<string>("SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT sum(bbalance) FROM pgbench_branches) || '/' || (SELECT count(*) FROM pgbench_history)");

        var target = c.Dir.File("restored");
        var port = ScratchServer.FreePort();
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(source, await ArchivingCluster.ScalarAsync<string>(socket, port, "SELECT (SELECT sum(abalance) FROM pgbench_accounts) || '/' || (SELECT sum(bbalance) FROM pgbench_branches) || '/' || (SELECT count(*) FROM pgbench_history)"));
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }
        // The restored server's restore_command used the prefetch spool.
        Assert.True(Directory.Exists(Path.Combine(spool, "app", "fetch")), "wal-fetch never opened its prefetch spool");
        Assert.True(maxReady <= 64, $"{maxReady} segments waited for the archiver");
    }
}
