using System.Globalization;
using Cairn.Operations.Demo;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// What other local users and child processes can see: scratch servers reachable only by Cairn's own
/// OS user and the server's user, no secret in any child's environment, no password file left behind.
/// </summary>
// These tests set this process's environment (canary secrets) to prove children never inherit it: nothing else may
// run meanwhile, or another test's children would inherit the canaries.
[Collection(ProcessEnvironmentCollection.Name)]
public class ProcessIsolationTests(PostgresFixture pg)
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static async Task<ProcessResult> PsqlAsAsync(string osUser, ScratchServer server)
        => await PgProcess.RunAsync("runuser", ["-u", osUser, "--", server.Binaries["psql"], "-h", server.SocketDirectory, "-p", server.Port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-d", "postgres", "-Atc", "SELECT 'in'"], null, default);

    [Fact]
    public async Task Scratch_server_folders_are_private_and_another_local_user_cannot_connect()
    {
        Assert.True(PgProcess.IsRoot, "this test needs root to try another OS user");
        await using var server = await ScratchServer.StartAsync();
        Assert.Equal(Private, File.GetUnixFileMode(server.Root));
        Assert.Equal(Private, File.GetUnixFileMode(server.SocketDirectory));
        Assert.Equal(Private, File.GetUnixFileMode(server.DataDirectory));
        Assert.Equal("0700", await server.ScalarAsync<string>("SHOW unix_socket_permissions"));

        var nobody = await PsqlAsAsync("nobody", server);
        Assert.True(nobody.ExitCode != 0, "nobody connected: " + nobody.StandardOutput);
        Assert.DoesNotContain("in", nobody.StandardOutput, StringComparison.Ordinal);

        // The server's own user still gets in (pg_ctl, psql as postgres), and so does Cairn.
        var postgres = await PsqlAsAsync("postgres", server);
        Assert.True(postgres.ExitCode == 0, postgres.StandardError);
        Assert.Equal(1, await server.ScalarAsync<int>("SELECT 1"));
    }

    [Fact]
    public async Task Server_processes_and_command_checks_get_no_secret_in_their_environment()
    {
        var db = await pg.CreateDatabaseAsync("env", DemoSchema.Sql(50));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var envFile = dir.File("check.env");
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                checks:
                  - command: {"{"} name: dump_env, run: "cat /proc/$$/environ > {envFile}; psql \"$CAIRN_RESTORED_URL\" -Atc 'SELECT 1'" {"}"}
            """);
        const string Passphrase = "canary-passphrase-7f3e";
        const string PgPassword = "canary-pgpassword-91ab";
        var env = new Dictionary<string, string>
        {
            ["CAIRN_REPOSITORY"] = dir.File("repo"),
            ["CAIRN_CONFIG"] = dir.File("cairn.yaml"),
            ["PGPASSWORD"] = PgPassword,
            ["CAIRN_NEW_PASSPHRASE"] = Passphrase,
        };
        var (code, _, err) = await CairnProcess.RunAsync(["backup", "app"], env);
        Assert.True(code == 0, err);
        (code, var output, err) = await CairnProcess.RunAsync(["drill", "app", "--keep", "--json"], env, timeout: TimeSpan.FromMinutes(4));
        Assert.True(code == 0, output + err);
        var kept = System.Text.RegularExpressions.Regex.Match(err, @"pg_ctl -D (\S+) stop").Groups[1].Value;
        Assert.True(Directory.Exists(kept), err);
        try
        {
            var postmaster = int.Parse((await File.ReadAllLinesAsync(Path.Combine(kept, "postmaster.pid")))[0], CultureInfo.InvariantCulture);
            var serverEnv = (await File.ReadAllTextAsync($"/proc/{postmaster}/environ")).Split('\0');
            var checkEnv = (await File.ReadAllTextAsync(envFile)).Split('\0');
            foreach (var (what, vars) in new[] { ("postmaster", serverEnv), ("command check", checkEnv) })
            {
                Assert.True(vars.Length > 1, $"{what}: no environment read");
                Assert.DoesNotContain(vars, v => v.Contains(TestData.Passphrase, StringComparison.Ordinal) || v.Contains(Passphrase, StringComparison.Ordinal) || v.Contains(PgPassword, StringComparison.Ordinal));
                Assert.DoesNotContain(vars, v => v.StartsWith("CAIRN_PASSPHRASE=", StringComparison.Ordinal) || v.StartsWith("PGPASSWORD=", StringComparison.Ordinal));
            }
            Assert.Contains(checkEnv, v => v.StartsWith("CAIRN_RESTORED_URL=", StringComparison.Ordinal));
            Assert.Contains(checkEnv, v => v.StartsWith("PATH=", StringComparison.Ordinal));
            Assert.DoesNotContain(Passphrase, output + err, StringComparison.Ordinal);
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(pg.Server.Binaries["pg_ctl"], ["-D", kept, "-m", "immediate", "-w", "stop"], null, default);
            Directory.Delete(Path.GetDirectoryName(kept)!, recursive: true);
        }
    }

    [Fact]
    public async Task Live_verification_leaves_no_password_file_behind()
    {
        await pg.Server.ExecuteAsync("DO $$ BEGIN CREATE ROLE pgpass_user LOGIN PASSWORD 'live-secret-42'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        using var dir = new TempDir();
        var tmp = dir.File("tmp");
        Directory.CreateDirectory(tmp);
        await File.WriteAllTextAsync(dir.File("pw"), "live-secret-42\n");
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              live:
                connection: "postgresql://pgpass_user@127.0.0.1:{pg.Server.Port}/postgres"
                password_file: {dir.File("pw")}
                checks:
                  - sql: {"{"} name: one, query: "SELECT 1", expect: "= 1" {"}"}
                  - command: {"{"} name: reaches_live, run: "psql -Atc 'SELECT 1'" {"}"}
            """);
        var env = new Dictionary<string, string> { ["CAIRN_CONFIG"] = dir.File("cairn.yaml"), ["CAIRN_EVIDENCE"] = dir.File("evidence"), ["TMPDIR"] = tmp };
        for (var i = 0; i < 2; i++)
        {
            var (code, output, err) = await CairnProcess.RunAsync(["verify", "live", "--live"], env);
            Assert.True(code == 0, output + err);
        }
        var left = Directory.EnumerateFileSystemEntries(tmp, "*", SearchOption.AllDirectories).ToList();
        Assert.True(left.Count == 0, "left in TMPDIR: " + string.Join(", ", left));
    }

    [Fact]
    public async Task Servers_started_from_a_physical_backup_are_private_and_hold_no_secret()
    {
        Assert.True(PgProcess.IsRoot, "this test needs root to try another OS user");
        await using var c = await ArchivingCluster.StartAsync();
        await c.Server.ExecuteAsync("CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, json + err);
        await c.ArchiveAllAsync();
        // In process, the secret would reach children only through this process's own environment.
        const string Canary = "canary-new-passphrase-3c1d";
        Environment.SetEnvironmentVariable("CAIRN_NEW_PASSPHRASE", Canary);
        try
        {
            var target = c.Dir.File("restored");
            var port = ScratchServer.FreePort();
            (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
            Assert.True(code == 0, json + err);
            try
            {
                await AssertPrivateAsync(System.Text.Json.Nodes.JsonNode.Parse(json)!["socket"]!.GetValue<string>(), port, target, Canary);
            }
            finally
            {
                await c.StopRestoredAsync(target);
            }

            (code, var output, err) = await c.Cli.RunAsync("drill", "app", "--physical", "--keep");
            Assert.True(code == 0, output + err);
            var kept = System.Text.RegularExpressions.Regex.Match(err, @"host=([^&]+)&port=(\d+).*pg_ctl -D (\S+) stop, then remove (\S+)");
            Assert.True(kept.Success, err);
            try
            {
                // The URL escapes its host (the socket folder), as libpq URIs require.
                await AssertPrivateAsync(Uri.UnescapeDataString(kept.Groups[1].Value), int.Parse(kept.Groups[2].Value, CultureInfo.InvariantCulture), kept.Groups[3].Value, Canary);
            }
            finally
            {
                await c.StopRestoredAsync(kept.Groups[3].Value);
                Directory.Delete(kept.Groups[4].Value, recursive: true);
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable("CAIRN_NEW_PASSPHRASE", null);
        }
    }

    private static async Task AssertPrivateAsync(string socket, int port, string dataDirectory, string canary)
    {
        Assert.Equal(Private, File.GetUnixFileMode(socket));
        Assert.Equal(Private, File.GetUnixFileMode(dataDirectory));
        Assert.Equal("0700", await ArchivingCluster.ScalarAsync<string>(socket, port, "SHOW unix_socket_permissions"));
        var psql = Path.Combine(PgBinaries.Find().Folder, "psql");
        var nobody = await PgProcess.RunAsync("runuser", ["-u", "nobody", "--", psql, "-h", socket, "-p", port.ToString(CultureInfo.InvariantCulture), "-U", "postgres", "-d", "postgres", "-Atc", "SELECT 'in'"], null, default);
        Assert.True(nobody.ExitCode != 0, "nobody connected: " + nobody.StandardOutput);
        var postmaster = int.Parse((await File.ReadAllLinesAsync(Path.Combine(dataDirectory, "postmaster.pid")))[0], CultureInfo.InvariantCulture);
        var environ = await File.ReadAllTextAsync($"/proc/{postmaster}/environ");
        Assert.Contains("PATH=", environ, StringComparison.Ordinal);
        Assert.DoesNotContain(canary, environ, StringComparison.Ordinal);
        Assert.DoesNotContain("CAIRN_", environ, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Alert_commands_get_the_allow_list_not_the_secrets_of_the_process()
    {
        using var dir = new TempDir();
        var sinks = Cairn.Operations.Configuration.CairnConfig.Parse(
            $"alerts:\n  - {{ type: command, run: \"cat /proc/$$/environ > {dir.File("alert.env")}\" }}\n", "c.yaml").Alerts;
        var now = DateTimeOffset.Parse("2026-12-01T00:00:00Z", CultureInfo.InvariantCulture);
        var alerter = new Cairn.Operations.Monitoring.Alerter(dir.File("state.json"), new Microsoft.Extensions.Time.Testing.FakeTimeProvider(now), TimeSpan.FromHours(4)) { RetryDelay = TimeSpan.Zero };
        Environment.SetEnvironmentVariable("CAIRN_PASSPHRASE", "canary-alert-passphrase");
        Environment.SetEnvironmentVariable("PGPASSWORD", "canary-alert-pgpassword");
        try
        {
            var deliveries = await alerter.ProcessAsync([new("app", "backup", Cairn.Operations.Monitoring.HealthState.Critical, "backup is late", 3600, now)], sinks, default);
            Assert.True(Assert.Single(deliveries).Delivered);
        }
        finally
        {
            Environment.SetEnvironmentVariable("CAIRN_PASSPHRASE", null);
            Environment.SetEnvironmentVariable("PGPASSWORD", null);
        }
        var environ = await File.ReadAllTextAsync(dir.File("alert.env"));
        Assert.Contains("PATH=", environ, StringComparison.Ordinal);
        Assert.DoesNotContain("canary-alert", environ, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pgpassword_is_taken_from_the_environment_used_for_the_backup_and_never_passed_on()
    {
        await pg.Server.ExecuteAsync("DO $$ BEGIN CREATE ROLE pgpw_user LOGIN PASSWORD 'env-secret-77'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        var db = await pg.CreateDatabaseAsync("pgpw", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
        await pg.Server.ExecuteAsync($"ALTER DATABASE \"{db}\" OWNER TO pgpw_user; ALTER TABLE t OWNER TO pgpw_user", db);
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["PGPASSWORD"] = "env-secret-77", ["TMPDIR"] = dir.Path };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        var (code, output, err) = await CairnProcess.RunAsync(["backup", $"postgresql://pgpw_user@127.0.0.1:{pg.Server.Port}/{db}"], env);
        Assert.True(code == 0, output + err);
        Assert.Empty(Directory.EnumerateDirectories(dir.Path, "cairn-*"));
    }
}
