using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>Physical backups with WAL archived through cairn wal-push, restored to points in time with cairn wal-fetch.</summary>
[Collection("physical drills")]
public class PhysicalTests
{
    private static async Task<long> CountAsync(string socketDir, int port, string sql)
    {
        await using var c = new Npgsql.NpgsqlConnection($"Host={socketDir};Port={port};Username=postgres;Database=postgres;Pooling=false");
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    private static async Task StopAsync(PgBinaries bin, string dir)
        => await PgProcess.RunAsServerUserAsync(bin["pg_ctl"], ["-D", dir, "-m", "immediate", "-w", "stop"], null, default);

    [Fact]
    public async Task Point_in_time_recovery_by_time_name_xid_lsn_and_latest()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("repo"));
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "a long random archiver passphrase 7f3c9e\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        var cli = new CliRunner(env);
        Assert.Equal(0, (await cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Code);
        await ArchiverSetup.AllowAsync(cli, passFile);

        var self = $"\"{Environment.ProcessPath ?? "dotnet"}\" \"{CairnProcess.Dll}\"";
        if (!(Environment.ProcessPath ?? "").EndsWith("dotnet", StringComparison.Ordinal))
        {
            self = $"dotnet \"{CairnProcess.Dll}\"";
        }
        env["CAIRN_BIN"] = self;
        var archive = $"CAIRN_PASSPHRASE_FILE={passFile} {self} --repo {dir.File("repo")} wal-push %p --database app";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive.Replace("'", "''", StringComparison.Ordinal)}'", ["wal_level"] = "replica" });
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{server.Url()}\"\n    data_directory: {server.DataDirectory}\n");
        env["CAIRN_CONFIG"] = dir.File("cairn.yaml");

        await server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t VALUES (1, 'before the backup')");
        var (code, json, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        Assert.Equal("physical", JsonNode.Parse(json)!["kind"]!.GetValue<string>());

        // Transaction A, then a restore point, then transaction B.
        var xidA = await server.ScalarAsync<long>("WITH i AS (INSERT INTO t VALUES (2, 'transaction A') RETURNING 1) SELECT txid_current()");
        var lsnA = await server.ScalarAsync<string>("SELECT pg_current_wal_insert_lsn()::text"); // insert, not write: the scratch server commits asynchronously
        var timeA = await server.ScalarAsync<DateTime>("SELECT clock_timestamp()");
        await Task.Delay(1200);
        await server.ExecuteAsync("SELECT pg_create_restore_point('before_b')");
        await server.ExecuteAsync("INSERT INTO t VALUES (3, 'transaction B')");
        var last = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_lsn())");
        await server.ExecuteAsync("SELECT pg_switch_wal()");
        await Eventually.UntilAsync(async () => string.CompareOrdinal(await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) >= 0,
            TimeSpan.FromMinutes(2), $"WAL segment {last} being archived");

        var bin = server.Binaries;
        var cases = new (string Label, string[] Args, long Rows)[]
        {
            ("time", ["--target-time", timeA.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00"], 2),
            ("name", ["--target-name", "before_b"], 2),
            ("xid", ["--target-xid", xidA.ToString(CultureInfo.InvariantCulture)], 2),
            ("lsn", ["--target-lsn", lsnA], 2),
            ("latest", [], 3),
        };
        foreach (var (label, args, rows) in cases)
        {
            var target = dir.File("restored-" + label);
            var port = ScratchServer.FreePort();
            (code, json, err) = await cli.RunAsync(["restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json", .. args]);
            Assert.True(code == 0, $"{label}: {json} {err}");
            var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
            try
            {
                var found = await CountAsync(socket, port, "SELECT count(*) FROM t");
                var log = File.Exists(Path.Combine(socket, "server.log")) ? File.ReadAllText(Path.Combine(socket, "server.log")) : "(no log)";
                Assert.True(rows == found, $"{label}: expected {rows} rows, found {found}\n{string.Join('\n', log.Split('\n').TakeLast(25))}");
                Assert.Equal(1, await CountAsync(socket, port, "SELECT count(*) FROM t WHERE id = 2"));
            }
            finally
            {
                await StopAsync(bin, target);
            }
        }

        // Physical drills: to a given time (the checks see the data as it was), and to a random point in the window.
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{server.Url()}\"\n    data_directory: {server.DataDirectory}\n    checks:\n      - tables_present: [public.t]\n      - row_counts: {{ equal_to: fingerprint, optional: true }}\n"); // skipped in a physical drill (no fingerprint): optional, so not a failure
        // The drills run as child processes with this test's own TMPDIR: their leftovers could only be there.
        var drillEnv = new Dictionary<string, string>(cli.Env) { ["TMPDIR"] = dir.Tmp };
        (code, json, err) = await CairnProcess.RunAsync(["drill", "app", "--physical", "--target-time", timeA.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00", "--json"], drillEnv, timeout: TimeSpan.FromMinutes(5));
        Assert.True(code == 0, json + err);
        var drill = JsonNode.Parse(json)!;
        Assert.Contains(drill["checks"]!.AsArray(), c => c!["name"]!.GetValue<string>() == "pitr_target" && c["result"]!.GetValue<string>() == "pass");
        (code, json, err) = await CairnProcess.RunAsync(["drill", "app", "--random-target", "--json"], drillEnv, timeout: TimeSpan.FromMinutes(5));
        Assert.True(code == 0, json + err);
        Assert.Contains(JsonNode.Parse(json)!["checks"]!.AsArray(), c => c!["name"]!.GetValue<string>() == "pitr_target" && c["result"]!.GetValue<string>() == "pass");
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir.Tmp));

        // A wrong passphrase in restore_command: PostgreSQL aborts recovery and the error names Cairn's reason, no hang.
        var wrong = dir.File("wrong-pass");
        await File.WriteAllTextAsync(wrong, "not the passphrase\n");
        File.SetUnixFileMode(wrong, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        env["CAIRN_RESTORE_PASSPHRASE_FILE"] = wrong;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        (code, _, err) = await cli.RunAsync("restore", "app", "--physical", "--to", dir.File("restored-wrongpass"), "--start", "--port", ScratchServer.FreePort().ToString(CultureInfo.InvariantCulture));
        env.Remove("CAIRN_RESTORE_PASSPHRASE_FILE");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("wrong passphrase", err, StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2));
        await StopAsync(bin, dir.File("restored-wrongpass"));

        // A non-empty target is refused; wal-fetch refuses names that are not WAL file names.
        (code, _, err) = await cli.RunAsync("restore", "app", "--physical", "--to", dir.File("restored-latest"));
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("--force", err, StringComparison.Ordinal);
        Assert.Equal(126, (await cli.RunAsync("wal-fetch", "../../etc/passwd", dir.File("x"), "--database", "app")).Code);
        Assert.Equal(1, (await cli.RunAsync("wal-fetch", "0000000100000000000000FF", dir.File("x"), "--database", "app")).Code);
        // Pushing the same segment twice succeeds; different content under the same name is refused.
        var seg = Directory.EnumerateFiles(Path.Combine(server.DataDirectory, "pg_wal")).First(f => Path.GetFileName(f).Length == 24 && File.Exists(Path.Combine(server.DataDirectory, "pg_wal", "archive_status", Path.GetFileName(f) + ".done")));
        Assert.Equal(0, (await cli.RunAsync("wal-push", seg, "--database", "app")).Code);
        var fake = dir.File(Path.GetFileName(seg));
        await File.WriteAllBytesAsync(fake, new byte[16 * 1024 * 1024]);
        Assert.Equal(ExitCodes.AlreadyExists, (await cli.RunAsync("wal-push", fake, "--database", "app")).Code);

        // A segment missing in the middle of the window: verify finds it, and a restore past it fails naming it.
        var walObjects = Directory.EnumerateFiles(dir.File("repo/wal")).Select(Path.GetFileName).OfType<string>().Where(n => n.StartsWith("app@", StringComparison.Ordinal) && n.Length == 28).Order(StringComparer.Ordinal).ToList();
        Assert.True(walObjects.Count >= 3, string.Join(", ", walObjects));
        var victim = walObjects[^2];
        File.Delete(dir.File("repo/wal/" + victim));
        (code, json, _) = await cli.RunAsync("verify", "--json");
        Assert.Equal(ExitCodes.Damaged, code);
        Assert.Contains(victim[4..], json, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("restore", "app", "--physical", "--to", dir.File("restored-gap"));
        Assert.Equal(ExitCodes.Damaged, code);
        Assert.Contains(victim[4..], err, StringComparison.Ordinal);
    }
}
