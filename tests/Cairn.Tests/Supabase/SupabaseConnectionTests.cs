using System.Globalization;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary>The ways to reach a Supabase project: through PgBouncer (session mode works, transaction mode is refused), over TLS, over IPv6.</summary>
public class SupabaseConnectionTests(SupabaseFixture supa) : IClassFixture<SupabaseFixture>
{
    private async Task<CliRunner> CliWithAsync(TempDir dir, string connection, string extra = "")
    {
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{connection}"
                password_file: {supa.PasswordFile}
            {extra}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return cli;
    }

    /// <summary>A database the customer owns, with two tables and no managed schema (what is tested here is the connection).</summary>
    private async Task<string> CustomerDatabaseAsync(string prefix)
    {
        var db = $"{prefix}_{Guid.NewGuid():N}"[..(prefix.Length + 9)];
        await supa.Server.ExecuteAsync($"CREATE DATABASE \"{db}\" OWNER {SupabaseFixture.Customer}");
        await supa.Server.ExecuteAsync($"SET ROLE {SupabaseFixture.Customer}; CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 5000) g; CREATE TABLE notes AS SELECT g AS id FROM generate_series(1, 300) g", db);
        return db;
    }

    [Fact]
    public async Task Backup_through_a_session_mode_PgBouncer_works_and_restores_every_row()
    {
        var db = await CustomerDatabaseAsync("sess");
        await using var bouncer = await PgBouncer.StartAsync(supa.Server, "session", new Dictionary<string, string> { [SupabaseFixture.Customer] = supa.Password });
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, supa.CustomerUrl(db, bouncer.Port));
        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        Assert.True(code == 0, output + err);
        Assert.Contains("connection: through PgBouncer, pool_mode=session (its admin console says so)", output, StringComparison.Ordinal);
        (code, output, err) = await cli.RunAsync("backup", "app", "--jobs", "3");
        Assert.True(code == 0, output + err);
        Assert.Contains("5,300 rows", output, StringComparison.Ordinal);
        var target = db + "_r";
        (code, output, err) = await cli.RunAsync("restore", "app", "--to-database", target);
        Assert.True(code == 0, output + err);
        Assert.Equal(5000L, await supa.Server.ScalarAsync<long>("SELECT count(*) FROM items", target));
    }

    [Fact]
    public async Task Backup_through_a_transaction_mode_PgBouncer_is_refused_with_the_URL_to_use_instead()
    {
        var db = await CustomerDatabaseAsync("txn");
        await using var bouncer = await PgBouncer.StartAsync(supa.Server, "transaction", new Dictionary<string, string> { [SupabaseFixture.Customer] = supa.Password });
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, supa.CustomerUrl(db, bouncer.Port));
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("transaction-mode pooler", err, StringComparison.Ordinal);
        Assert.Contains("PgBouncer's admin console reports pool_mode=transaction for database " + db, err, StringComparison.Ordinal);
        Assert.Contains("session", err, StringComparison.Ordinal);
        Assert.Contains("port 5432", err, StringComparison.Ordinal);
        Assert.DoesNotContain(supa.Password, output + err, StringComparison.Ordinal);
        (code, var list, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal("[]", list.Trim());
    }

    [Fact]
    public async Task A_transaction_mode_PgBouncer_whose_console_refuses_the_user_is_still_refused_by_the_server_processes_and_says_why()
    {
        var db = await CustomerDatabaseAsync("txc");
        await using var bouncer = await PgBouncer.StartAsync(supa.Server, "transaction", new Dictionary<string, string> { [SupabaseFixture.Customer] = supa.Password }, consoleAccess: false);
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, supa.CustomerUrl(db, bouncer.Port));
        foreach (var args in new[] { new[] { "backup", "app", "--dry-run" }, ["backup", "app"] })
        {
            var (code, output, err) = await cli.RunAsync(args);
            Assert.True(code == ExitCodes.Database, string.Join(' ', args) + ": " + output + err);
            Assert.Contains("transaction-mode pooler", err, StringComparison.Ordinal);
            Assert.Contains("PgBouncer's admin console was not reachable", err, StringComparison.Ordinal);
            Assert.Contains("told by the server processes", err, StringComparison.Ordinal);
            Assert.DoesNotContain(supa.Password, output + err, StringComparison.Ordinal);
        }
        var (_, list, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal("[]", list.Trim());
    }

    [Theory]
    [InlineData("session")]
    [InlineData("transaction")]
    public async Task A_Supavisor_like_pooler_that_takes_user_dot_project_to_the_server_as_user_is_asked_for_no_console(string mode)
    {
        // Supavisor (Supabase's pooler) has no admin console: a console question left a failed login in its log at every
        // backup. Stand-in: PgBouncer taking customer_admin.<ref> to the server as customer_admin, as Supavisor does; its
        // log shows every login attempt, the console's included.
        var db = await CustomerDatabaseAsync("supv");
        var tenantUser = SupabaseFixture.Customer + ".abcdefghijklmnopqrst";
        await using var pooler = await PgBouncer.StartAsync(supa.Server, mode, new Dictionary<string, string> { [tenantUser] = supa.Password, [SupabaseFixture.Customer] = supa.Password }, consoleAccess: false, serverUser: SupabaseFixture.Customer);
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, $"postgresql://{tenantUser}@127.0.0.1:{pooler.Port.ToString(CultureInfo.InvariantCulture)}/{db}?sslmode=disable");
        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        var log = await File.ReadAllTextAsync(pooler.LogFile);
        Assert.Contains($"{db}/{tenantUser}@", log, StringComparison.Ordinal); // the log does show logins
        Assert.DoesNotContain("pgbouncer/", log, StringComparison.Ordinal); // and none to the console
        if (mode == "session")
        {
            Assert.True(code == 0, output + err);
            Assert.Contains($"the pooler takes user {tenantUser} to the server as {SupabaseFixture.Customer} (Supavisor's <user>.<project-ref>), which has no PgBouncer admin console, so none was asked", output, StringComparison.Ordinal);
            (code, output, err) = await cli.RunAsync("backup", "app");
            Assert.True(code == 0, output + err);
            Assert.Contains("5,300 rows", output, StringComparison.Ordinal);
        }
        else
        {
            Assert.True(code == ExitCodes.Database, output + err);
            Assert.Contains("transaction-mode pooler", err, StringComparison.Ordinal);
            Assert.Contains("which has no PgBouncer admin console, so none was asked, so the mode was told by the server processes", err, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("pgbouncer/", await File.ReadAllTextAsync(pooler.LogFile), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_direct_connection_asks_no_console_and_the_dry_run_says_so()
    {
        var db = await CustomerDatabaseAsync("dir");
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, supa.CustomerUrl(db, supa.Server.Port));
        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        Assert.True(code == 0, output + err);
        Assert.Contains("connection: direct or session-mode: no transaction-mode pooler seen (server process IDs; the server answers at the address and port dialled, so no console was asked)", output, StringComparison.Ordinal);
        Assert.DoesNotContain("database \"pgbouncer\" does not exist", await File.ReadAllTextAsync(supa.Server.LogFile), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_IPv6_only_host_this_machine_cannot_reach_gets_a_message_naming_the_IPv4_route()
    {
        using var dir = new TempDir();
        // 2001:db8::/32 is the documentation prefix: never routed, so the network refuses it as an IPv4-only network does.
        var cli = await CliWithAsync(dir, "postgresql://postgres@[2001:db8::1]:5432/postgres?connect_timeout=3");
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("only IPv6 addresses", err, StringComparison.Ordinal);
        Assert.Contains("session pooler", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_IPv6_server_is_backed_up_over_IPv6()
    {
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["listen_addresses"] = "'::1'" });
        await server.ExecuteAsync($"CREATE ROLE v6 LOGIN PASSWORD '{supa.Password}'");
        await server.ExecuteAsync("CREATE DATABASE v6 OWNER v6");
        await server.ExecuteAsync("SET ROLE v6; CREATE TABLE t AS SELECT g FROM generate_series(1, 42) g", "v6");
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, $"postgresql://v6@[::1]:{server.Port}/v6");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        Assert.Contains("42 rows", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Tls_with_sslmode_require_and_verify_full_against_a_CA_file_works_and_a_foreign_CA_is_refused()
    {
        using var certs = new TempDir("tls");
        await OpenSslAsync(certs.Path, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Cairn test CA", "-keyout", "ca.key", "-out", "ca.crt");
        await OpenSslAsync(certs.Path, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Other CA", "-keyout", "other.key", "-out", "other.crt");
        await OpenSslAsync(certs.Path, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr");
        await File.WriteAllTextAsync(certs.File("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n");
        await OpenSslAsync(certs.Path, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt");
        File.SetUnixFileMode(certs.File("server.key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        PgProcess.GiveToServerUser(certs.Path);
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string>
        {
            ["listen_addresses"] = "'127.0.0.1'",
            ["ssl"] = "on",
            ["ssl_cert_file"] = $"'{certs.File("server.crt")}'",
            ["ssl_key_file"] = $"'{certs.File("server.key")}'",
        });
        await server.ExecuteAsync($"CREATE ROLE tls LOGIN PASSWORD '{supa.Password}'");
        await server.ExecuteAsync("CREATE DATABASE tls OWNER tls");
        await server.ExecuteAsync("SET ROLE tls; CREATE TABLE t AS SELECT g FROM generate_series(1, 7) g", "tls");
        var port = server.Port.ToString(CultureInfo.InvariantCulture);

        foreach (var query in new[] { "sslmode=require", $"sslmode=verify-full&sslrootcert={certs.File("ca.crt")}" })
        {
            using var dir = new TempDir();
            var cli = await CliWithAsync(dir, $"postgresql://tls@localhost:{port}/tls?{query}");
            var (code, output, err) = await cli.RunAsync("backup", "app");
            Assert.True(code == 0, query + ": " + output + err);
            Assert.Contains("7 rows", output, StringComparison.Ordinal);
        }
        using (var dir = new TempDir())
        {
            var cli = await CliWithAsync(dir, $"postgresql://tls@localhost:{port}/tls?sslmode=verify-full&sslrootcert={certs.File("other.crt")}");
            var (code, _, err) = await cli.RunAsync("backup", "app");
            Assert.Equal(ExitCodes.Database, code);
            Assert.Contains("TLS handshake failed", err, StringComparison.Ordinal);
            Assert.Contains("sslrootcert", err, StringComparison.Ordinal);
        }
    }

    private static async Task OpenSslAsync(string cwd, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("openssl") { WorkingDirectory = cwd, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = System.Diagnostics.Process.Start(psi)!;
        var err = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, "openssl " + string.Join(' ', args) + ": " + err);
    }
}
