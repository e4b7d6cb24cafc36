using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// The whole cycle with the repository in S3 (s3rver), through the CLI as a user runs it: init, logical backup and
/// restore, archive_command = wal-push into the bucket, physical backup, point-in-time restore whose restore_command
/// is wal-fetch from the bucket, drills, verify --read-data, snapshots, check, prune. The S3 settings are in
/// cairn.yaml's s3: block with a credentials file; the server's commands get only file names.
/// </summary>
public sealed class S3CycleTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    /// <summary>A repository prefix in the bucket with cairn.yaml, a credentials file and a passphrase file the postgres user can read.</summary>
    internal sealed class S3Setup : IDisposable
    {
        public S3Setup(S3rverFixture s3, string name, string extraTopYaml = "", Uri? endpoint = null)
        {
            S3Location = s3.NewLocation(name);
            Location = "s3://" + S3rverFixture.Bucket + "/" + S3Location.Prefix;
            Credentials = Dir.File("s3.credentials");
            File.WriteAllText(Credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
            File.SetUnixFileMode(Credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            PassFile = Dir.File("pass");
            File.WriteAllText(PassFile, "s3 cycle passphrase 51c0\n");
            S3Yaml = $"s3:\n  endpoint: \"{endpoint ?? s3.Endpoint}\"\n  credentials_file: {Credentials}\n{extraTopYaml}";
            Env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = Location, ["CAIRN_PASSPHRASE_FILE"] = PassFile, ["CAIRN_CONFIG"] = Dir.File("cairn.yaml") };
            File.WriteAllText(Dir.File("cairn.yaml"), S3Yaml + $"evidence:\n  path: {Dir.File("evidence")}\n");
            Cli = new CliRunner(Env);
        }

        public TempDir Dir { get; } = new();

        public string Location { get; }

        /// <summary>The bucket and prefix, for opening the repository through the library.</summary>
        public Cairn.Repository.Storage.S3Location S3Location { get; }

        public string Credentials { get; }

        public string PassFile { get; }

        public string S3Yaml { get; }

        public Dictionary<string, string> Env { get; }

        public CliRunner Cli { get; }

        public void WriteConfig(string databasesYaml) => File.WriteAllText(Dir.File("cairn.yaml"), S3Yaml + $"evidence:\n  path: {Dir.File("evidence")}\n" + databasesYaml);

        /// <summary>What the server's user (archive_command, restore_command) reads: the passphrase, the config and the credentials (0640, group postgres).</summary>
        public void ShareWithServer()
        {
            foreach (var f in (string[])[PassFile, Dir.File("cairn.yaml"), Credentials])
            {
                ArchiverAccess.ShareForReading(f, "postgres");
            }
        }

        public static string Self()
        {
            var self = $"\"{Environment.ProcessPath ?? "dotnet"}\" \"{CairnProcess.Dll}\"";
            return (Environment.ProcessPath ?? "").EndsWith("dotnet", StringComparison.Ordinal) ? self : $"dotnet \"{CairnProcess.Dll}\"";
        }

        public void Dispose() => Dir.Dispose();
    }

    private static async Task<long> CountAsync(string socket, int port, string sql, string database)
    {
        await using var c = new Npgsql.NpgsqlConnection($"Host={socket};Port={port};Username=postgres;Database={database};Pooling=false");
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(), CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task Logical_physical_PITR_and_drill_cycle_passes_with_the_repository_in_S3()
    {
        using var setup = new S3Setup(s3, "cycle");
        var cli = setup.Cli;
        var (code, output, err) = await cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        Assert.Contains(setup.Location, output + err, StringComparison.Ordinal);

        var self = S3Setup.Self();
        setup.Env["CAIRN_BIN"] = self;
        // The archive_command Cairn would write (WalCommands.ArchiveCommand): file names only, no credential.
        var archive = $"CAIRN_PASSPHRASE_FILE={setup.PassFile} CAIRN_CONFIG={setup.Dir.File("cairn.yaml")} {self} --repo {setup.Location} wal-push %p --database app";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive.Replace("'", "''", StringComparison.Ordinal)}'", ["wal_level"] = "replica" });
        await server.ExecuteAsync("CREATE DATABASE app");
        setup.WriteConfig($"databases:\n  app:\n    connection: \"{server.Url("app")}\"\n    data_directory: {server.DataDirectory}\n    retention: {{ keep_last: 1 }}\n    checks:\n      - tables_present: [public.t]\n      - row_counts: {{ equal_to: fingerprint, optional: true }}\n");
        setup.ShareWithServer();

        // Logical: backup, restore into a new database, drill.
        await server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 500) g", "app");
        (code, output, err) = await cli.RunAsync("backup", "app", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal("logical", JsonNode.Parse(output)!["kind"]!.GetValue<string>());
        (code, output, err) = await cli.RunAsync("restore", "app", "--to-database", "app_copy");
        Assert.True(code == 0, output + err);
        Assert.Equal(500, await server.ScalarAsync<long>("SELECT count(*) FROM t", "app_copy"));
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, output + err);
        Assert.True(JsonNode.Parse(output)!["ok"]!.GetValue<bool>(), output);

        // Physical: backup (waits for its WAL in the bucket), then two transactions around a restore point.
        (code, output, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal("physical", JsonNode.Parse(output)!["kind"]!.GetValue<string>());
        await server.ExecuteAsync("INSERT INTO t VALUES (1001, 'transaction A')", "app");
        await server.ExecuteAsync("SELECT pg_create_restore_point('before_b')");
        await server.ExecuteAsync("INSERT INTO t VALUES (1002, 'transaction B')", "app");
        var last = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        await server.ExecuteAsync("SELECT pg_switch_wal()");
        for (var i = 0; i < 150 && string.CompareOrdinal(await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) < 0; i++)
        {
            await Task.Delay(200);
        }
        Assert.True(string.CompareOrdinal(await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) >= 0,
            "archive_command did not push into the bucket: " + await server.ScalarAsync<string>("SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver"));
        // Nothing of the WAL is on local disk: it is in the bucket.
        Assert.False(Directory.Exists(setup.Dir.File("repo")));

        // Point-in-time restore to the restore point, restore_command = wal-fetch from the bucket.
        var target = setup.Dir.File("restored");
        var port = 20000 + Random.Shared.Next(20000);
        (code, output, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target, "--target-name", "before_b", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, output + err);
        var socket = JsonNode.Parse(output)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(1, await CountAsync(socket, port, "SELECT count(*) FROM t WHERE id = 1001", "app"));
            Assert.Equal(0, await CountAsync(socket, port, "SELECT count(*) FROM t WHERE id = 1002", "app"));
            var recoveryConf = await File.ReadAllTextAsync(Path.Combine(target, "postgresql.auto.conf"));
            Assert.Contains("wal-fetch", recoveryConf, StringComparison.Ordinal);
            Assert.Contains(setup.Location, recoveryConf, StringComparison.Ordinal);
            Assert.DoesNotContain(S3rverFixture.AccessKey, recoveryConf, StringComparison.Ordinal);
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", target, "-m", "immediate", "-w", "stop"], null, default);
        }

        // A physical drill to the latest point, from the bucket.
        (code, output, err) = await cli.RunAsync("drill", "app", "--random-target", "--json");
        Assert.True(code == 0, output + err);
        Assert.True(JsonNode.Parse(output)!["ok"]!.GetValue<bool>(), output);
        Assert.Contains(JsonNode.Parse(output)!["checks"]!.AsArray(), c => c!["name"]!.GetValue<string>() == "pitr_target" && c["result"]!.GetValue<string>() == "pass");

        // verify reads every byte back from the bucket (ranged reads of packs); snapshots and check read it too.
        (code, output, err) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("snapshots", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(2, JsonNode.Parse(output)!.AsArray().Count);
        (code, output, err) = await cli.RunAsync("check", "app", "--json");
        Assert.True(code is 0 or 1, $"check: {code} {output} {err}");

        // A second logical backup; prune keeps the newest of each kind (keep_last: 1) and what it needs, and the
        // repository still verifies.
        (code, output, err) = await cli.RunAsync("backup", "app", "--json");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("prune", "--json");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal(2, JsonNode.Parse(output)!.AsArray().Count);
        (code, output, err) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);

        // A segment archived again with different content is refused (the fallback for a server that ignores conditional writes).
        var fake = setup.Dir.File(last);
        await File.WriteAllBytesAsync(fake, new byte[16 * 1024 * 1024]);
        (code, _, err) = await cli.RunAsync("wal-push", fake, "--database", "app");
        Assert.True(code == ExitCodes.AlreadyExists, err);
    }

    [Fact]
    public void Restore_command_for_S3_names_files_and_never_a_key()
    {
        using var setup = new S3Setup(s3, "cmd");
        var config = Cairn.Operations.Configuration.CairnConfig.Load(setup.Dir.File("cairn.yaml"));
        var env = new Dictionary<string, string> { ["CAIRN_PASSPHRASE_FILE"] = setup.PassFile, ["AWS_REGION"] = "eu-west-1" };
        var context = new Cairn.Operations.OperationContext(config, TimeProvider.System, new NoSecrets(), new NoStorage(), env.GetValueOrDefault);
        var command = WalCommands.RestoreCommand(context, setup.Location, "app");
        Assert.Contains($"CAIRN_CONFIG={WalCommands.Sh(setup.Dir.File("cairn.yaml"))}", command, StringComparison.Ordinal);
        Assert.Contains("AWS_REGION=" + WalCommands.Sh("eu-west-1"), command, StringComparison.Ordinal);

        // Credentials only in Cairn's environment cannot reach the server's command: refused, naming the fix.
        var bare = Cairn.Operations.Configuration.CairnConfig.Parse($"s3:\n  endpoint: \"{s3.Endpoint}\"\n", setup.Dir.File("other.yaml"));
        env["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE";
        env["AWS_SECRET_ACCESS_KEY"] = "secret-that-must-not-leak";
        var refused = Assert.Throws<Cairn.Repository.RepositoryException>(() => WalCommands.RestoreCommand(new Cairn.Operations.OperationContext(bare, TimeProvider.System, new NoSecrets(), new NoStorage(), env.GetValueOrDefault), setup.Location, "app"));
        Assert.Contains("s3.credentials_file", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("secret-that-must-not-leak", refused.Message, StringComparison.Ordinal);
        // A local repository's command is unchanged.
        Assert.DoesNotContain("CAIRN_CONFIG", WalCommands.RestoreCommand(context, "/srv/repo", "app"), StringComparison.Ordinal);
    }

    private sealed class NoSecrets : Cairn.Operations.ISecretSource
    {
        public string Passphrase(bool confirm = false) => throw new InvalidOperationException();

        public string NewPassphrase() => throw new InvalidOperationException();
    }

    private sealed class NoStorage : Cairn.Repository.Storage.IStorageFactory
    {
        public Cairn.Repository.Storage.IStorage Create(Cairn.Repository.Storage.RepositoryLocation location) => throw new InvalidOperationException();
    }
}
