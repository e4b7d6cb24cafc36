using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>Physical backups under write load, interrupted, and pruned with the no-gap rule.</summary>
public class PhysicalLoadTests
{
    [Fact]
    public async Task Backup_under_pgbench_load_restores_consistent_a_killed_backup_leaves_nothing_and_prune_keeps_the_window()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: "    retention: { keep_last: 1 }\n");
        var (dir, env, cli, server, pgEnv) = (cluster.Dir, cluster.Env, cluster.Cli, cluster.Server, cluster.PgEnv);
        var init = await PgProcess.RunAsync(server.Binaries["pgbench"], ["-i", "-q", "-s", "5"], pgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);

        // 1. A backup while pgbench writes: the restored copy is transactionally consistent.
        var load = PgProcess.RunAsync(server.Binaries["pgbench"], ["-c", "2", "-T", "10", "-n"], pgEnv, default);
        await Eventually.UntilAsync(async () => await server.ScalarAsync<long>("SELECT count(*) FROM pgbench_history") > 0, TimeSpan.FromSeconds(30), "pgbench writing");
        var (code, json, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var first = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();
        var bench = await load;
        Assert.True(bench.ExitCode == 0, bench.StandardError);
        await server.ExecuteAsync("SELECT pg_switch_wal()");

        var target = dir.File("under-load");
        var port = ScratchServer.FreePort();
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--snapshot", first[..8], "--target", "immediate", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            await using var c = new Npgsql.NpgsqlConnection($"Host={socket};Port={port};Username=postgres;Database=postgres;Pooling=false");
            await c.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand("SELECT (SELECT sum(abalance) FROM pgbench_accounts), (SELECT sum(bbalance) FROM pgbench_branches), (SELECT sum(tbalance) FROM pgbench_tellers), (SELECT count(*) FROM pgbench_history)", c);
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            Assert.True(r.GetInt64(3) > 0, "the backup should have been taken while pgbench was writing");
            Assert.Equal(r.GetInt64(0), r.GetInt64(1));
            Assert.Equal(r.GetInt64(0), r.GetInt64(2));
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", target, "-m", "immediate", "-w", "stop"], null, default);
        }

        // 2. A backup killed midway: nothing becomes visible; the next backup works.
        // About 100 MB that does not compress: several 32 MB packs, so a kill after the first is provably mid-way (a kill
        // after the second once came too late on a loaded machine: the backup had committed before the kill landed).
        await server.ExecuteAsync("SELECT setseed(0.25); CREATE TABLE filler AS SELECT g, md5(g::text) AS h, decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex') AS noise FROM generate_series(1, 1500000) g");
        var packs = Path.Combine(dir.File("repo"), "data");
        string[] Packs() => [.. Directory.EnumerateFiles(packs, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith(".tmp", StringComparison.Ordinal))];
        var packsBefore = Packs().Length;
        using (var p = Process.Start(CairnProcess.StartInfo(["backup", "app", "--physical"], env))!)
        {
            var stderr = p.StandardError.ReadToEndAsync();
            // Killed when it is provably mid-way: it has stored a new full pack of the data directory, not yet committed.
            // Polled every 5 ms, not with Eventually's back-off to 200 ms: the ~3 packs after the first take well under a
            // second on a fast machine, and a 200 ms pause once let the backup commit before the kill.
            var waited = Stopwatch.StartNew();
            while (!p.HasExited && Packs().Length < packsBefore + 1)
            {
                Assert.True(waited.Elapsed < TimeSpan.FromMinutes(3), "the backup did not store a new pack within 3 minutes");
                await Task.Delay(5);
            }
            Assert.False(p.HasExited, $"the backup ended (exit {(p.HasExited ? p.ExitCode : 0)}) before it could be killed mid-way: {(p.HasExited ? await stderr : "")}");
            Assert.Contains(Directory.EnumerateFiles(Path.Combine(dir.File("repo"), "locks")), f => !Path.GetFileName(f).StartsWith('.')); // its lock: still running
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            Assert.Equal(137, p.ExitCode); // 128 + SIGKILL: it did not finish on its own
        }
        Assert.True(Packs().Length >= packsBefore + 1, "the killed backup's packs are still there (prune frees them), yet it is not a backup");
        var (_, snaps, _) = await cli.RunAsync("snapshots", "app", "--json");
        Assert.Single(JsonNode.Parse(snaps)!.AsArray());
        Assert.Equal(0, (await cli.RunAsync("unlock")).Code);
        (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        await server.ExecuteAsync("INSERT INTO filler VALUES (0, 'after the second backup')");
        await cluster.ArchiveAllAsync();

        // 3. Prune with keep_last: 1 forgets the first backup and the WAL before the second, never inside the window.
        (code, json, err) = await cli.RunAsync("prune", "--dry-run", "--json");
        Assert.True(code == 0, err);
        var planned = JsonNode.Parse(json)!;
        Assert.Single(planned["snapshots"]!.AsArray(), s => !s!["keep"]!.GetValue<bool>());
        var walPlanned = planned["wal_deleted"]!.AsArray().Count;
        Assert.True(walPlanned > 0);
        (code, json, err) = await cli.RunAsync("prune", "--json");
        Assert.True(code == 0, err);
        Assert.Equal(walPlanned, JsonNode.Parse(json)!["wal_deleted"]!.AsArray().Count);
        (code, json, _) = await cli.RunAsync("verify", "--json");
        Assert.True(code == 0, json);
        var latest = dir.File("after-prune");
        port = ScratchServer.FreePort();
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", latest, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            await using var c = new Npgsql.NpgsqlConnection($"Host={socket};Port={port};Username=postgres;Database=postgres;Pooling=false");
            await c.OpenAsync();
            await using var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM filler WHERE h = 'after the second backup'", c);
            Assert.Equal(1L, (long)(await cmd.ExecuteScalarAsync())!);
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", latest, "-m", "immediate", "-w", "stop"], null, default);
        }

        // WAL freshness is watched: the newest archived segment is young, and the lag is a metric.
        (_, json, _) = await cli.RunAsync("check", "app", "--json", "--prometheus-textfile", dir.File("cairn.prom"));
        Assert.Contains(JsonNode.Parse(json)!["findings"]!.AsArray(), f => f!["check"]!.GetValue<string>() == "wal" && f["state"]!.GetValue<string>() == "OK");
        Assert.Contains("cairn_wal_archive_lag_seconds{database=\"app\"}", await File.ReadAllTextAsync(dir.File("cairn.prom")), StringComparison.Ordinal);
    }
}
