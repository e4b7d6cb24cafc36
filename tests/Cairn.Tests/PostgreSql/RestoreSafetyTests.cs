using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// Restores that a hostile source database cannot turn against the restoring server: role names are
/// data, powerful role attributes are withheld unless asked for, table restores never touch live tables.
/// </summary>
public class RestoreSafetyTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static string Q(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    private static async Task<CliRunner> RepoAsync(TempDir dir, string? yaml = null)
    {
        var cli = await CliRunner.WithRepositoryAsync(dir);
        if (yaml is not null)
        {
            await File.WriteAllTextAsync(dir.File("cairn.yaml"), yaml);
            cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        }
        return cli;
    }

    [Fact]
    public async Task Role_name_with_a_newline_and_sql_runs_no_sql_on_restore_or_drill_and_is_recreated_exactly()
    {
        // Role names hold at most 63 bytes: a short marker path keeps the whole attack in the name.
        var marker = $"/tmp/pw{Guid.NewGuid():N}"[..15];
        var role = $"x\nCOPY (SELECT 1) TO PROGRAM 'touch {marker}'; --";
        Assert.True(System.Text.Encoding.UTF8.GetByteCount(role) <= 63);
        await pg.Server.ExecuteAsync($"CREATE ROLE {Q(role)}");
        var db = await pg.CreateDatabaseAsync("inject", $"CREATE TABLE owned (id int); INSERT INTO owned VALUES (1); ALTER TABLE owned OWNER TO {Q(role)}");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir, $"databases:\n  app:\n    connection: \"{pg.Server.Url(db)}\"\n");
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);

        await using var target = await ScratchServer.StartAsync();
        (code, var output, err) = await cli.RunAsync("restore", "app", "--to-database", "restored", "--on", target.Url(), "--json");
        Assert.False(File.Exists(marker), "the role name's SQL ran on the restoring server");
        Assert.True(code == 0, output + err);
        Assert.Equal(role, await target.ScalarAsync<string>("SELECT r.rolname::text FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.relname = 'owned'", "restored"));
        Assert.Contains(JsonNode.Parse(output)!["roles_created"]!.AsArray(), r => r!["name"]!.GetValue<string>() == role);

        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.False(File.Exists(marker), "the role name's SQL ran in the drill");
        Assert.True(code == 0, output + err);
        Assert.Contains(JsonNode.Parse(output)!["roles_created"]!.AsArray(), r => r!["name"]!.GetValue<string>() == role);
    }

    [Fact]
    public async Task Superuser_role_owning_objects_is_recreated_without_its_powers_unless_asked_and_the_restore_says_so()
    {
        var boss = pg.NewName("boss");
        await pg.Server.ExecuteAsync($"CREATE ROLE {boss} SUPERUSER BYPASSRLS REPLICATION CREATEROLE CREATEDB LOGIN CONNECTION LIMIT 7");
        var db = await pg.CreateDatabaseAsync("powers", $"CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO {boss}");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);

        await using var target = await ScratchServer.StartAsync();
        var (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored", "--on", target.Url());
        Assert.True(code == 0, output + err);
        Assert.Equal("f f f f f t 7", await target.ScalarAsync<string>($"SELECT concat_ws(' ', rolsuper, rolbypassrls, rolreplication, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit) FROM pg_roles WHERE rolname = '{boss}'"));
        Assert.Contains($"created role {boss}", output, StringComparison.Ordinal);
        Assert.Contains("withheld: SUPERUSER", output, StringComparison.Ordinal);
        Assert.Contains("--with-role-attributes", output, StringComparison.Ordinal);
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.Contains(boss, JsonNode.Parse(list)!.AsArray().Last()!["details"]!["roles_created"]!.GetValue<string>(), StringComparison.Ordinal);

        await target.ExecuteAsync($"DROP DATABASE restored; DROP ROLE {boss}");
        (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored", "--on", target.Url(), "--with-role-attributes", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal("t t t t t t 7", await target.ScalarAsync<string>($"SELECT concat_ws(' ', rolsuper, rolbypassrls, rolreplication, rolcreaterole, rolcreatedb, rolcanlogin, rolconnlimit) FROM pg_roles WHERE rolname = '{boss}'"));
        var created = JsonNode.Parse(output)!["roles_created"]!.AsArray().Single(r => r!["name"]!.GetValue<string>() == boss)!;
        Assert.Contains("SUPERUSER", created["attributes"]!.AsArray().Select(a => a!.GetValue<string>()));
    }

    [Fact]
    public async Task Existing_role_is_left_untouched_and_memberships_in_roles_the_restore_did_not_create_are_withheld()
    {
        var app = pg.NewName("app");
        var admin = pg.NewName("admin");
        await pg.Server.ExecuteAsync($"CREATE ROLE {admin} CREATEROLE; CREATE ROLE {app} LOGIN IN ROLE {admin}, pg_read_server_files");
        var db = await pg.CreateDatabaseAsync("members", $"CREATE TABLE owned (id int); ALTER TABLE owned OWNER TO {app}");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);

        await using var target = await ScratchServer.StartAsync();
        await target.ExecuteAsync($"CREATE ROLE {admin} SUPERUSER NOLOGIN");
        var (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored", "--on", target.Url());
        Assert.True(code == 0, output + err);
        Assert.Equal(0L, await target.ScalarAsync<long>($"SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = '{app}'"));
        Assert.Equal("t f", await target.ScalarAsync<string>($"SELECT concat_ws(' ', rolsuper, rolcreaterole) FROM pg_roles WHERE rolname = '{admin}'"));
        var line = output.Split('\n').Single(l => l.StartsWith($"created role {app}:", StringComparison.Ordinal));
        Assert.Contains("withheld: ", line, StringComparison.Ordinal);
        Assert.Contains($"membership in {admin}", line, StringComparison.Ordinal);
        Assert.Contains("membership in pg_read_server_files", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Role_settings_comments_and_memberships_are_restored_as_the_source_had_them()
    {
        var group = pg.NewName("grp");
        var app = pg.NewName("app");
        await pg.Server.ExecuteAsync($"""
            CREATE ROLE {group} NOLOGIN; CREATE ROLE {app} LOGIN NOINHERIT CONNECTION LIMIT 3 VALID UNTIL '2031-01-02 03:04:05+00';
            GRANT {group} TO {app} WITH ADMIN OPTION;
            ALTER ROLE {app} SET search_path = "$user", public, "we ird";
            ALTER ROLE {app} SET statement_timeout = '5s';
            ALTER ROLE {app} SET session_preload_libraries = 'auto_explain';
            COMMENT ON ROLE {app} IS 'it''s the app \ role';
            """);
        var db = await pg.CreateDatabaseAsync("settings", $"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {app}; GRANT SELECT ON t TO {group}");
        await pg.Server.ExecuteAsync($"ALTER ROLE {app} IN DATABASE \"{db}\" SET work_mem = '8MB'");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);

        await using var target = await ScratchServer.StartAsync();
        var (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored", "--on", target.Url(), "--json");
        Assert.True(code == 0, output + err);
        const string Role = "SELECT concat_ws(' ', rolcanlogin, rolinherit, rolconnlimit, rolvaliduntil AT TIME ZONE 'UTC', shobj_description(oid, 'pg_authid')) FROM pg_roles WHERE rolname = '{0}'";
        Assert.Equal(await pg.Server.ScalarAsync<string>(string.Format(System.Globalization.CultureInfo.InvariantCulture, Role, app)), await target.ScalarAsync<string>(string.Format(System.Globalization.CultureInfo.InvariantCulture, Role, app)));
        Assert.Equal(["search_path=\"$user\", public, \"we ird\"", "statement_timeout=5s"],
            await target.ScalarAsync<string[]>($"SELECT setconfig FROM pg_db_role_setting WHERE setrole = '{app}'::regrole AND setdatabase = 0"));
        Assert.Equal(["work_mem=8MB"], await target.ScalarAsync<string[]>($"SELECT setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE setrole = '{app}'::regrole AND d.datname = 'restored'"));
        Assert.True(await target.ScalarAsync<bool>($"SELECT admin_option FROM pg_auth_members WHERE roleid = '{group}'::regrole AND member = '{app}'::regrole"));
        var created = JsonNode.Parse(output)!["roles_created"]!.AsArray().Single(r => r!["name"]!.GetValue<string>() == app)!;
        Assert.Contains("setting session_preload_libraries", created["withheld"]!.AsArray().Select(w => w!.GetValue<string>()));
    }

    [Fact]
    public async Task Restore_into_an_existing_empty_database_without_clean_is_refused_and_keeps_it()
    {
        var db = await pg.CreateDatabaseAsync("src", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        var existing = await pg.CreateDatabaseAsync("empty", "CREATE FUNCTION keep_me() RETURNS int LANGUAGE sql AS 'SELECT 42'");
        var oid = await pg.Server.ScalarAsync<uint>($"SELECT oid FROM pg_database WHERE datname = '{existing}'");

        var (code, _, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", existing);
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("--clean", err, StringComparison.Ordinal);
        Assert.Equal(oid, await pg.Server.ScalarAsync<uint>($"SELECT oid FROM pg_database WHERE datname = '{existing}'"));
        Assert.Equal(42, await pg.Server.ScalarAsync<int>("SELECT keep_me()", existing));

        (code, _, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", existing, "--clean");
        Assert.True(code == 0, err);
        Assert.Equal(1L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM t", existing));
    }

    [Fact]
    public async Task Table_restore_into_the_tables_own_schema_or_a_system_schema_is_refused_and_the_live_table_stays()
    {
        var db = await pg.CreateDatabaseAsync("ownschema", "CREATE TABLE orders (id int PRIMARY KEY, v text); INSERT INTO orders SELECT g, 'v' FROM generate_series(1, 100) g");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        await pg.Server.ExecuteAsync("DELETE FROM orders WHERE id > 90", db);

        foreach (var schema in new[] { "public", "pg_catalog", "information_schema", "pg_toast" })
        {
            var (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--into-schema", schema, "--merge", "missing");
            // Refused before the repository is opened or the database touched: bad input, exit 2, naming why.
            Assert.True(code == ExitCodes.Usage, $"{schema}: exit {code}: {output}{err}");
            Assert.Contains(schema == "public" ? "--into-schema public holds the live table public.orders" : $"--into-schema {schema} is a system schema", err, StringComparison.Ordinal);
        }
        Assert.Equal(90L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM public.orders", db));
        Assert.Equal(1L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.orders'::regclass AND contype = 'p'", db));
    }

    [Fact]
    public async Task Table_restore_never_drops_a_table_it_did_not_create()
    {
        var db = await pg.CreateDatabaseAsync("notmine", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 10)");
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        var staging = Cairn.PostgreSql.Logical.TableRestorer.StagingName("public", "orders");
        await pg.Server.ExecuteAsync($"CREATE SCHEMA stage; CREATE TABLE stage.{Q(staging)} (precious text); INSERT INTO stage.{Q(staging)} VALUES ('keep')", db);

        var (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--into-schema", "stage");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("not created by Cairn", err, StringComparison.Ordinal);
        Assert.Equal("keep", await pg.Server.ScalarAsync<string>($"SELECT precious FROM stage.{Q(staging)}", db));

        // A staging copy Cairn made itself is replaced by the next restore.
        await pg.Server.ExecuteAsync($"DROP TABLE stage.{Q(staging)}", db);
        Assert.Equal(0, (await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--into-schema", "stage")).Code);
        (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--into-schema", "stage");
        Assert.True(code == 0, output + err);
        Assert.Equal(10L, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM stage.{Q(staging)}", db));
    }

    [Fact]
    public async Task Tables_with_the_same_name_in_two_schemas_stage_apart_and_merge_back_into_their_own_table()
    {
        var db = await pg.CreateDatabaseAsync("twoschemas", """
            CREATE SCHEMA a; CREATE SCHEMA b;
            CREATE TABLE a.t (id int PRIMARY KEY, origin text); CREATE TABLE b.t (id int PRIMARY KEY, origin text);
            INSERT INTO a.t SELECT g, 'a' FROM generate_series(1, 20) g;
            INSERT INTO b.t SELECT g, 'b' FROM generate_series(101, 130) g;
            """);
        using var dir = new TempDir();
        var cli = await RepoAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        await pg.Server.ExecuteAsync("DELETE FROM a.t WHERE id > 15; DELETE FROM b.t WHERE id > 120", db);

        var (code, json, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "a.t", "--table", "b.t", "--into-schema", "cairn_restore", "--merge", "missing", "--json");
        Assert.True(code == 0, json + err);
        var diffs = JsonNode.Parse(json)!.AsArray();
        Assert.Equal(2, diffs.Select(d => d!["staging_table"]!.GetValue<string>()).Distinct().Count());
        Assert.Equal(5L, diffs.Single(d => d!["table"]!.GetValue<string>() == "a.t")!["merged"]!.GetValue<long>());
        Assert.Equal(10L, diffs.Single(d => d!["table"]!.GetValue<string>() == "b.t")!["merged"]!.GetValue<long>());
        Assert.Equal("20 a", await pg.Server.ScalarAsync<string>("SELECT count(*) || ' ' || string_agg(DISTINCT origin, ',') FROM a.t", db));
        Assert.Equal("30 b", await pg.Server.ScalarAsync<string>("SELECT count(*) || ' ' || string_agg(DISTINCT origin, ',') FROM b.t", db));
    }
}
