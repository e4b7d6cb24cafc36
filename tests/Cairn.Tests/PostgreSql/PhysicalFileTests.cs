using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>File-level physical backups (data_directory configured): incremental skipping, tablespaces, pg_verifybackup, --delta.</summary>
public class PhysicalFileTests
{
    [Fact]
    public async Task Second_backup_skips_unchanged_files_restores_with_tablespace_passes_pg_verifybackup_and_delta_reuses_files()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var server = c.Server;
        var cli = c.Cli;
        var ts = c.Dir.File("tblspc");
        Directory.CreateDirectory(ts);
        PgProcess.GiveToServerUser(ts);
        await server.ExecuteAsync($"CREATE TABLESPACE extra LOCATION '{ts}'");
        await server.ExecuteAsync("""
            CREATE TABLE big (id int PRIMARY KEY, pad text);
            INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 60000) g;
            CREATE TABLE elsewhere (id int, note text) TABLESPACE extra;
            INSERT INTO elsewhere SELECT g, 'in the tablespace' FROM generate_series(1, 1000) g;
            CREATE UNLOGGED TABLE scratch AS SELECT g FROM generate_series(1, 5000) g;
            CHECKPOINT;
            """);
        // Files last written before the first backup started (by more than the mtime margin) are reusable next time.
        await Task.Delay(2500);
        var (code, json, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var first = JsonNode.Parse(json)!;
        Assert.Equal("files", first["method"]!.GetValue<string>());
        Assert.Equal(0, first["reused_files"]!.GetValue<long>());

        await server.ExecuteAsync("INSERT INTO big VALUES (0, 'after the first backup'); CHECKPOINT;");
        (code, json, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var second = JsonNode.Parse(json)!;
        Assert.Equal(first["snapshot_id"]!.GetValue<string>(), second["incremental_from"]!.GetValue<string>());
        var size = second["size_bytes"]!.GetValue<long>() + second["reused_bytes"]!.GetValue<long>();
        Assert.True(second["reused_bytes"]!.GetValue<long>() > size / 2, $"expected most bytes carried over: {second}");
        Assert.True(second["read_bytes"]!.GetValue<long>() < size / 2, second.ToJsonString());
        Assert.True(second["added_bytes"]!.GetValue<long>() < first["added_bytes"]!.GetValue<long>() / 4, second.ToJsonString());
        Assert.True(second["reused_page_bytes"]!.GetValue<long>() > 1024 * 1024, $"big changed in one page: its other blocks are carried over: {second}");
        await server.ExecuteAsync("INSERT INTO big VALUES (-1, 'after the second backup')");
        await c.ArchiveAllAsync();

        // Restore without starting: the copy passes PostgreSQL's own pg_verifybackup against the manifest Cairn wrote.
        var target = c.Dir.File("restored");
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        Assert.False(File.Exists(Path.Combine(target, "tablespace_map")));
        Assert.StartsWith(target + "-tablespaces/", new FileInfo(Directory.EnumerateFileSystemEntries(Path.Combine(target, "pg_tblspc")).Single()).LinkTarget, StringComparison.Ordinal);
        var verify = await PgProcess.RunAsServerUserAsync(server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        // A damaged file is caught by pg_verifybackup (the check can fail).
        var victim = Directory.EnumerateFiles(Path.Combine(target, "base"), "*", SearchOption.AllDirectories).First(f => new FileInfo(f).Length > 8192);
        var bytes = await File.ReadAllBytesAsync(victim);
        bytes[100] ^= 0xFF;
        await File.WriteAllBytesAsync(victim, bytes);
        verify = await PgProcess.RunAsServerUserAsync(server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.NotEqual(0, verify.ExitCode);

        // --delta into the same folder: the damaged file is rewritten, the rest is kept; the server recovers to the latest point.
        File.WriteAllText(Path.Combine(target, "not-in-backup"), "stale");
        var port = ScratchServer.FreePort();
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target, "--delta", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var delta = JsonNode.Parse(json)!;
        var socket = delta["socket"]!.GetValue<string>();
        try
        {
            Assert.True(delta["files_reused"]!.GetValue<int>() > delta["files"]!.GetValue<int>() / 2, delta.ToJsonString());
            Assert.True(delta["files_reused"]!.GetValue<int>() < delta["files"]!.GetValue<int>(), delta.ToJsonString());
            Assert.True(delta["removed"]!.GetValue<int>() >= 1, delta.ToJsonString());
            Assert.False(File.Exists(Path.Combine(target, "not-in-backup")));
            Assert.Equal(60002L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM big"));
            Assert.Equal(1000L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM elsewhere"));
            Assert.Equal(0L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM scratch")); // unlogged: empty after recovery, as PostgreSQL defines
            Assert.Equal(await server.ScalarAsync<string>("SELECT md5(string_agg(id || ':' || pad, ',' ORDER BY id)) FROM big"), await ArchivingCluster.ScalarAsync<string>(socket, port, "SELECT md5(string_agg(id || ':' || pad, ',' ORDER BY id)) FROM big"));
            var location = await ArchivingCluster.ScalarAsync<string>(socket, port, "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'extra'");
            Assert.DoesNotContain(ts, location, StringComparison.Ordinal); // never the original tablespace folder
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }

        // --tablespace-map puts the tablespace where it is told.
        var oid = Path.GetFileName(Directory.EnumerateFileSystemEntries(Path.Combine(target, "pg_tblspc")).Single());
        var mapped = c.Dir.File("mapped-ts");
        var target2 = c.Dir.File("restored2");
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target2, "--tablespace-map", $"{oid}={mapped}", "--target", "immediate");
        Assert.True(code == 0, json + err);
        Assert.Equal(mapped, new FileInfo(Path.Combine(target2, "pg_tblspc", oid)).LinkTarget);
        Assert.NotEmpty(Directory.EnumerateFiles(mapped, "*", SearchOption.AllDirectories));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(ts), e => !Path.GetFileName(e).StartsWith("PG_", StringComparison.Ordinal));
        (code, _, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target2, "--tablespace-map", "x=y");
        Assert.Equal(ExitCodes.Usage, code);

        // verify --read-data reads the archived WAL too: a flipped byte and a short (partial) segment are findings.
        (code, json, _) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, json);
        var walObject = Directory.EnumerateFiles(c.Dir.File("repo/wal"), "app@*").Where(f => Path.GetFileName(f).Length == 28).Order(StringComparer.Ordinal).First();
        var sealedWal = await File.ReadAllBytesAsync(walObject);
        sealedWal[sealedWal.Length / 2] ^= 0x01;
        await File.WriteAllBytesAsync(walObject, sealedWal);
        var shortSegment = c.Dir.File("0000000100000000000000F0");
        await File.WriteAllBytesAsync(shortSegment, new byte[1024 * 1024]);
        Assert.Equal(0, (await cli.RunAsync("wal-push", shortSegment, "--database", "app")).Code);
        (code, json, _) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.Equal(ExitCodes.Damaged, code);
        var findings = JsonNode.Parse(json)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["kind"]!.GetValue<string>() == "tampered" && f["object"]!.GetValue<string>() == "wal/" + Path.GetFileName(walObject));
        Assert.Contains(findings, f => f!["kind"]!.GetValue<string>() == "truncated" && f["object"]!.GetValue<string>() == "wal/app@0000000100000000000000F0");
    }

    [Fact]
    public async Task Page_level_incremental_under_pgbench_load_restores_consistent_and_verifies()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var init = await PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-i", "-q", "-s", "4"], c.PgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);
        await c.Server.ExecuteAsync("CHECKPOINT");
        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);

        // pgbench changes scattered pages of pgbench_accounts while the incremental backup reads it.
        var load = PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-c", "2", "-T", "8", "-n"], c.PgEnv, default);
        await Eventually.UntilAsync(async () => await c.Server.ScalarAsync<long>("SELECT count(*) FROM pgbench_history") > 0, TimeSpan.FromSeconds(30), "pgbench writing");
        (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var incr = JsonNode.Parse(json)!;
        Assert.True(incr["reused_page_bytes"]!.GetValue<long>() > 0, incr.ToJsonString());
        var bench = await load;
        Assert.True(bench.ExitCode == 0, bench.StandardError);
        await c.ArchiveAllAsync();

        var target = c.Dir.File("restored");
        var port = ScratchServer.FreePort();
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        var verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--delta", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            var accounts = await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT sum(abalance) FROM pgbench_accounts");
            Assert.Equal(accounts, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT sum(bbalance) FROM pgbench_branches"));
            Assert.Equal(accounts, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT sum(tbalance) FROM pgbench_tellers"));
            Assert.True(await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM pgbench_history") > 0);
            Assert.Equal(400000L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM pgbench_accounts"));
            // Every page is readable and every index agrees with its table.
            await ArchivingCluster.ScalarAsync<long>(socket, port, "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND c.relkind = 'i') x");
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }
    }
}
