using System.Collections;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Logical;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;
using Npgsql;

namespace Cairn.Tests.PostgreSql;

/// <summary>The one quoting function and the one-statement rule every catalog-built statement goes through, against a real server.</summary>
public class SqlQuotingTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    public static TheoryData<string> Nasty => new()
    {
        "plain", "it's", "back\\slash", "\\'; SELECT pg_sleep(10); --", "x\nCOPY (SELECT 1) TO PROGRAM 'id'; --", "quo\"ted", "$$dollar$$", "E'x'",
        "tab\tand\rreturn", "unicode é ☃ 𝄞", "\\\\'", "'\\'", ";", "--", "/* c */", "\"", "''",
    };

    [Theory]
    [MemberData(nameof(Nasty))]
    public async Task Literal_and_identifier_round_trip_under_either_string_setting(string value)
    {
        await using var c = await pg.Server.OpenAsync();
        foreach (var conforming in new[] { "on", "off" })
        {
            await Catalog.ExecuteOneAsync(c, $"SET standard_conforming_strings = {conforming}", default);
            await Catalog.ExecuteOneAsync(c, "SET escape_string_warning = off", default);
            await using (var cmd = new NpgsqlCommand($"SELECT {Catalog.Literal(value)}", c))
            {
                Assert.Equal(value, (string)(await cmd.ExecuteScalarAsync())!);
            }
            await using (var cmd = new NpgsqlCommand($"SELECT 1 AS {Catalog.Quote(value)}", c))
            await using (var r = await cmd.ExecuteReaderAsync())
            {
                Assert.Equal(value, r.GetName(0));
            }
        }
    }

    [Fact]
    public async Task Random_strings_of_quotes_backslashes_newlines_and_semicolons_round_trip()
    {
        const string Alphabet = "'\"\\;\n\r\t-/*$Eab é";
        var rng = new Random(1234);
        await using var c = await pg.Server.OpenAsync();
        await Catalog.ExecuteOneAsync(c, "SET standard_conforming_strings = off", default);
        await Catalog.ExecuteOneAsync(c, "SET escape_string_warning = off", default);
        for (var i = 0; i < 300; i++)
        {
            var value = new string([.. Enumerable.Range(0, rng.Next(1, 24)).Select(_ => Alphabet[rng.Next(Alphabet.Length)])]);
            await using var cmd = new NpgsqlBatch(c) { BatchCommands = { new NpgsqlBatchCommand($"SELECT {Catalog.Literal(value)}, 1 AS {Catalog.Quote(value)}") } };
            await using var r = await cmd.ExecuteReaderAsync();
            Assert.True(await r.ReadAsync());
            Assert.Equal(value, r.GetString(0));
            Assert.Equal(value, r.GetName(1));
        }
    }

    [Fact]
    public async Task A_second_statement_in_one_command_is_refused_by_the_server()
    {
        await using var c = await pg.Server.OpenAsync();
        var e = await Assert.ThrowsAsync<PostgresException>(() => Catalog.ExecuteOneAsync(c, "SELECT 1; SELECT 2", default));
        Assert.Equal("42601", e.SqlState);
    }

    [Fact]
    public void A_name_with_a_nul_character_is_refused_not_truncated()
    {
        Assert.Throws<PgToolException>(() => Catalog.Quote("a\0b"));
        Assert.Throws<PgToolException>(() => Catalog.Literal("a\0b"));
    }

    [Fact]
    public void Display_escapes_control_and_direction_characters()
    {
        Assert.Equal("app", Catalog.Display("app"));
        Assert.Equal("\"x\\nDROP\"", Catalog.Display("x\nDROP"));
        Assert.Equal("\"a\\u001Bb\\u202Ec\"", Catalog.Display("a\u001bb\u202ec"));
    }
}

/// <summary>roles.sql from older Cairn versions: read as data in exactly the form they wrote, anything else refused.</summary>
public class LegacyRolesTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    /// <summary>The roles.sql text Cairn wrote before roles.json (Catalog.RolesSqlAsync at 6791578), for the given roles.</summary>
    internal static string OldRolesSql(IEnumerable<(string Name, string Attributes)> roles, IEnumerable<(string Role, string Member)> grants)
    {
        static string Lit(string v) => "'" + v.Replace("'", "''", StringComparison.Ordinal) + "'";
        static string Id(string v) => "\"" + v.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        var sb = new StringBuilder("-- Roles referenced by the database, created if missing (Cairn)\n");
        foreach (var (name, attrs) in roles)
        {
            sb.Append($"DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {Lit(name)}) THEN CREATE ROLE {Id(name)} {attrs}; END IF; END $cairn$;\n");
        }
        foreach (var (role, member) in grants)
        {
            sb.Append($"GRANT {Id(role)} TO {Id(member)};\n");
        }
        return sb.ToString();
    }

    private const string Ordinary = "NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1";

    [Fact]
    public void Old_roles_sql_is_read_as_data_names_with_newlines_and_quotes_included()
    {
        var evil = "x\nCOPY (SELECT 1) TO PROGRAM 'touch /tmp/p'; --";
        var text = OldRolesSql([(evil, "NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1"), ("o'ne\"two", "SUPERUSER NOINHERIT CREATEROLE CREATEDB LOGIN REPLICATION BYPASSRLS CONNECTION LIMIT 5 PASSWORD 'SCRAM-SHA-256$4096:x'")],
            [(evil, "o'ne\"two")]);
        var set = LegacyRolesSql.Parse(text);
        Assert.Equal(2, set.Roles.Count);
        Assert.Equal(evil, set.Roles[0].Name);
        Assert.False(set.Roles[0].Login);
        var two = set.Roles[1];
        Assert.Equal("o'ne\"two", two.Name);
        Assert.True(two.Superuser && !two.Inherit && two.CreateRole && two.CreateDb && two.Login && two.Replication && two.BypassRls);
        Assert.Equal(5, two.ConnectionLimit);
        Assert.Equal("SCRAM-SHA-256$4096:x", two.Password);
        Assert.Equal(evil, Assert.Single(two.MemberOf).Role);
        Assert.Empty(LegacyRolesSql.Parse("-- Roles referenced by the database, created if missing (Cairn)\n").Roles);
    }

    [Theory]
    [InlineData("COPY (SELECT 1) TO PROGRAM 'id';\n")]
    [InlineData("DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a') THEN CREATE ROLE \"a\" NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1; END IF; END $cairn$; SELECT 1;\n")]
    [InlineData("DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a') THEN CREATE ROLE \"b\" NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1; END IF; END $cairn$;\n")]
    [InlineData("DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'a) THEN CREATE ROLE \"a\" NOSUPERUSER")]
    [InlineData("GRANT \"a\" TO \"b\"; DROP TABLE x;\n")]
    [InlineData("GRANT \"a\" TO \"nobody\";\n")]
    public void Anything_but_what_Cairn_wrote_refuses_the_whole_file(string text)
    {
        var e = Assert.Throws<PgToolException>(() => LegacyRolesSql.Parse(text));
        Assert.Contains("--no-owner", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_backup_with_an_old_roles_sql_still_restores_its_roles_and_a_forged_one_is_refused()
    {
        var role = pg.NewName("legacy");
        var member = pg.NewName("legacy_member");
        await pg.Server.ExecuteAsync($"CREATE ROLE {role}; CREATE ROLE {member} LOGIN IN ROLE {role}");
        var db = await pg.CreateDatabaseAsync("legacy", $"CREATE TABLE t (id int); ALTER TABLE t OWNER TO {role}; GRANT SELECT ON t TO {member}");
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        var old = OldRolesSql([(member, Ordinary), (role, Ordinary.Replace(" LOGIN ", " NOLOGIN ", StringComparison.Ordinal))], [(role, member)]);
        await ReplaceRolesItemAsync(dir, old);

        await using var target = await ScratchServer.StartAsync();
        var (code, json, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored", "--on", target.Url(), "--json");
        Assert.True(code == 0, json + err);
        Assert.Equal(2, JsonNode.Parse(json)!["roles_created"]!.AsArray().Count);
        Assert.Equal(role, await target.ScalarAsync<string>("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE relname = 't'", "restored"));
        Assert.True(await target.ScalarAsync<bool>($"SELECT pg_has_role('{member}', '{role}', 'MEMBER')"));

        var marker = $"/tmp/pw{Guid.NewGuid():N}"[..15];
        await ReplaceRolesItemAsync(dir, old + $"COPY (SELECT 1) TO PROGRAM 'touch {marker}';\n");
        (code, _, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", "restored2", "--on", target.Url());
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("roles.sql", err, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
        Assert.Equal(0L, await target.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname = 'restored2'"));
    }

    /// <summary>Rewrites the newest snapshot as an older Cairn would have written it: roles.sql instead of roles.json.</summary>
    private static async Task ReplaceRolesItemAsync(TempDir dir, string rolesSql)
    {
        using var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default);
        var snap = (await repo.ListSnapshotsAsync(default)).Last();
        await using var w = repo.BeginWrite();
        foreach (var item in snap.Manifest.Items.Where(i => i.Name is not LogicalBackupOperation.RolesItem and not LogicalBackupOperation.LegacyRolesItem))
        {
            w.AddExistingItem(item);
        }
        await w.AddStreamAsync(LogicalBackupOperation.LegacyRolesItem, new MemoryStream(Encoding.UTF8.GetBytes(rolesSql)), null, "file", null, default);
        await w.CommitAsync(snap.Manifest.Name, snap.Manifest.Kind, snap.Manifest.Meta, default);
    }
}

public class ChildEnvironmentTests
{
    [Fact]
    public void Children_get_the_allow_list_and_never_a_secret()
    {
        var env = new Hashtable
        {
            ["PATH"] = "/usr/bin", ["HOME"] = "/root", ["LANG"] = "C.UTF-8", ["LC_TIME"] = "C", ["TZ"] = "UTC",
            ["PGHOST"] = "db", ["PGPASSFILE"] = "/root/.pgpass", ["PGPASSWORD"] = "secret", ["CAIRN_PASSPHRASE"] = "secret",
            ["CAIRN_NEW_PASSPHRASE"] = "secret", ["CAIRN_PASSPHRASE_FILE"] = "/k", ["AWS_SECRET_ACCESS_KEY"] = "secret", ["CAIRN_DEBUG"] = "1",
        };
        var client = ChildEnvironment.From(env, server: false);
        var server = ChildEnvironment.From(env, server: true);
        Assert.Equal(["HOME", "LANG", "LC_TIME", "PATH", "PGHOST", "PGPASSFILE", "TZ"], client.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(["HOME", "LANG", "LC_TIME", "PATH", "TZ"], server.Keys.Order(StringComparer.Ordinal));
        Assert.DoesNotContain("secret", client.Values.Concat(server.Values));
    }
}

public class StagingNameTests
{
    [Fact]
    public void Staging_names_differ_for_every_schema_and_table_pair_and_fit_postgresql()
    {
        var pairs = new[] { ("a", "t"), ("b", "t"), ("a.b", "c"), ("a", "b.c"), ("public", "orders"), ("public_x", "y"), ("public", "x_y"), (new string('s', 40), new string('t', 40)), (new string('s', 40), new string('t', 41)) };
        var names = pairs.Select(p => TableRestorer.StagingName(p.Item1, p.Item2)).ToList();
        Assert.Equal(names.Count, names.Distinct(StringComparer.Ordinal).Count());
        Assert.All(names, n => Assert.True(Encoding.UTF8.GetByteCount(n) <= 63, n));
        Assert.Equal("public.orders", TableRestorer.StagingName("public", "orders"));
    }

    [Fact]
    public void A_staging_schema_that_is_a_restored_tables_own_or_a_system_schema_is_a_problem()
    {
        Assert.NotNull(TableRestorer.StagingSchemaProblem("public", [("public", "orders")]));
        Assert.NotNull(TableRestorer.StagingSchemaProblem("b", [("a", "t"), ("b", "t")]));
        Assert.NotNull(TableRestorer.StagingSchemaProblem("pg_catalog", [("public", "orders")]));
        Assert.NotNull(TableRestorer.StagingSchemaProblem("information_schema", [("public", "orders")]));
        Assert.NotNull(TableRestorer.StagingSchemaProblem("", [("public", "orders")]));
        Assert.Null(TableRestorer.StagingSchemaProblem("cairn_restore", [("public", "orders")]));
    }
}
