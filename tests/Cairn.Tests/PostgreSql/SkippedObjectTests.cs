using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Configuration;
using Cairn.PostgreSql.Logical;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// A backup of a database that uses an extension the restoring server does not have (a managed service's pg_graphql,
/// pgsodium, …, played here by a tiny extension installed for the source only): the restore leaves out the extension
/// and every object depending on it, lists them, restores the rest, and <c>restore_complete</c> decides.
/// </summary>
public class SkippedObjectTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static JsonObject CheckOf(JsonObject drill, string name) => drill["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    private async Task<(CliRunner Cli, TempDir Dir, string Db)> BackUpAsync(TestExtension ext, string checks)
    {
        var db = await pg.CreateDatabaseAsync("skip", $"""
            CREATE EXTENSION {ext.Name} WITH SCHEMA public;
            CREATE TABLE public.scores (id int PRIMARY KEY, v positive_int NOT NULL);
            INSERT INTO public.scores SELECT g, g FROM generate_series(1, 5) g;
            CREATE VIEW public.answer AS SELECT {ext.Name}_answer() AS a;
            CREATE TABLE public.plain (id int PRIMARY KEY, note text);
            INSERT INTO public.plain SELECT g, 'row ' || g FROM generate_series(1, 7) g;
            CREATE FUNCTION public.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END';
            CREATE EVENT TRIGGER on_ddl ON ddl_command_start EXECUTE FUNCTION public.on_ddl();
            CREATE PUBLICATION app_changes FOR TABLE public.plain;
            """);
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await WriteConfigAsync(cli, dir, db, checks);
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        return (cli, dir, db);
    }

    private async Task WriteConfigAsync(CliRunner cli, TempDir dir, string db, string checks)
    {
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                checks:
            {checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
    }

    [Fact]
    public async Task Drill_where_an_extension_is_missing_lists_its_objects_as_skipped_and_restore_complete_decides()
    {
        using var ext = new TestExtension();
        var (cli, dir, db) = await BackUpAsync(ext, $"""
                  - row_counts: {"{"} equal_to: fingerprint {"}"}
                  - foreign_keys: {"{"}{"}"}
                  - restore_complete: {"{"} allow_skipped: [extension {ext.Name}] {"}"}
            """);
        using var _d = dir;
        ext.Remove();

        var (code, json, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, json + err);
        var drill = JsonNode.Parse(json)!.AsObject();
        Assert.Equal("pass", CheckOf(drill, "restore")["result"]!.GetValue<string>());
        var complete = CheckOf(drill, "restore_complete");
        Assert.Equal("pass", complete["result"]!.GetValue<string>());
        var detail = complete["detail"]!.GetValue<string>();
        // The extension, the table of its domain type (and its data, key and index), the view calling its function.
        Assert.Contains($"EXTENSION - {ext.Name}", detail, StringComparison.Ordinal);
        Assert.Contains("TABLE public scores", detail, StringComparison.Ordinal);
        Assert.Contains("TABLE DATA public scores", detail, StringComparison.Ordinal);
        Assert.Contains("VIEW public answer", detail, StringComparison.Ordinal);
        Assert.DoesNotContain("plain", detail, StringComparison.Ordinal);
        // The checks ran on what was restored: the plain table's 7 rows, counted; the skipped table not counted as missing.
        var rows = CheckOf(drill, "row_counts");
        Assert.Equal("pass", rows["result"]!.GetValue<string>());
        Assert.Equal("7 rows in 1 tables", rows["actual"]!.GetValue<string>());

        // Not allowed: the same drill fails, naming the cause and the fix.
        await WriteConfigAsync(cli, dir, db, "      - restore_complete: {}");
        (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        complete = CheckOf(JsonNode.Parse(json)!.AsObject(), "restore_complete");
        Assert.Equal("fail", complete["result"]!.GetValue<string>());
        Assert.Contains($"allow_skipped: [extension {ext.Name}]", complete["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // No restore_complete configured: one that allows nothing runs anyway; a left-out object never passes unnoticed.
        await WriteConfigAsync(cli, dir, db, "      - foreign_keys: {}");
        (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        Assert.Equal("fail", CheckOf(JsonNode.Parse(json)!.AsObject(), "restore_complete")["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Restore_to_a_database_lists_what_it_left_out_and_restores_event_triggers_and_publications()
    {
        using var ext = new TestExtension();
        var (cli, dir, _) = await BackUpAsync(ext, "      - foreign_keys: {}");
        using var _d = dir;
        ext.Remove();
        var copy = pg.NewName("skipcopy");

        var (code, json, err) = await cli.RunAsync("restore", "app", "--to-database", copy, "--json");
        Assert.True(code == 0, json + err);
        var skipped = JsonNode.Parse(json)!["skipped"]!.AsArray().Select(s => s!["object"]!.GetValue<string>()).ToList();
        Assert.Contains(skipped, s => s.StartsWith("TABLE public scores", StringComparison.Ordinal));
        Assert.All(JsonNode.Parse(json)!["skipped"]!.AsArray(), s => Assert.Equal($"extension {ext.Name}", s!["cause"]!.GetValue<string>()));

        // The superuser restore brought back the event trigger and the publication; the plain table has its rows.
        var found = await pg.Server.ScalarAsync<string>(
            "SELECT (SELECT count(*) FROM pg_event_trigger WHERE evtname = 'on_ddl') || ',' || (SELECT count(*) FROM pg_publication_tables WHERE pubname = 'app_changes') || ',' || (SELECT count(*) FROM public.plain) || ',' || (SELECT count(*) FROM pg_class WHERE relname = 'scores')", copy);
        Assert.Equal("1,1,7,0", found);
    }

    private const string Listing = """
        ;
        ; Selected TOC Entries:
        ;
        3372; 1262 16384 DATABASE - src postgres
        2; 3079 16409 EXTENSION - pg_graphql 
        3373; 0 0 COMMENT - EXTENSION pg_graphql 
        ;	depends on: 2
        220; 1255 16430 FUNCTION public etf() postgres
        217; 1259 16423 TABLE public plain postgres
        215; 1259 16414 TABLE public t postgres
        ;	depends on: 2
        216; 1259 16419 VIEW public vv postgres
        ;	depends on: 215
        3364; 0 16414 TABLE DATA public t postgres
        ;	depends on: 215
        3365; 0 16423 TABLE DATA public plain postgres
        ;	depends on: 217
        3218; 1259 16434 INDEX public t_v_idx postgres
        ;	depends on: 215
        3214; 3466 16431 EVENT TRIGGER - et postgres
        ;	depends on: 220
        """;

    [Fact]
    public void Plan_skips_a_missing_extension_and_everything_depending_on_it_directly_or_not()
    {
        var plan = RestorePlan.Decide(Listing, new HashSet<string> { "plpgsql" }, superuser: true);
        Assert.Equal(["EXTENSION - pg_graphql", "COMMENT - EXTENSION pg_graphql", "TABLE public t postgres", "VIEW public vv postgres", "TABLE DATA public t postgres", "INDEX public t_v_idx postgres"],
            plan.Skipped.Select(s => s.Entry));
        Assert.All(plan.Skipped, s => Assert.Equal("extension pg_graphql", s.Cause));
        Assert.Contains("depends on TABLE public t postgres", plan.Skipped.Single(s => s.Entry.StartsWith("VIEW", StringComparison.Ordinal)).Detail, StringComparison.Ordinal);
        // The list pg_restore gets has the skipped entries commented out, the rest as they were.
        Assert.Contains("\n;215; 1259 16414 TABLE public t postgres\n", plan.List, StringComparison.Ordinal);
        Assert.Contains("\n217; 1259 16423 TABLE public plain postgres\n", plan.List, StringComparison.Ordinal);
        Assert.Contains("\n3214; 3466 16431 EVENT TRIGGER - et postgres\n", plan.List, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_keeps_an_available_extension_and_skips_event_triggers_only_without_a_superuser()
    {
        var plan = RestorePlan.Decide(Listing, new HashSet<string> { "pg_graphql" }, superuser: false);
        var only = Assert.Single(plan.Skipped);
        Assert.Equal("EVENT TRIGGER - et postgres", only.Entry);
        Assert.Equal("event trigger", only.Cause);
    }

    [Theory]
    [InlineData("role *", "role anon", true)]
    [InlineData("role *", "role Mixed Case", true)]
    [InlineData("role anon*", "role anon", true)]
    [InlineData("role anon*", "role anon_reader", true)]
    [InlineData("role anon*", "role authenticated", false)]
    [InlineData("role *admin", "role supabase_admin", true)]
    [InlineData("role *admin", "role supabase_admin_x", false)]
    [InlineData("role supabase_*_admin", "role supabase_storage_admin", true)]
    [InlineData("role supabase_*_admin", "role supabase_admin", false)]
    [InlineData("role anon", "role anon", true)]
    [InlineData("role anon", "role anon2", false)]
    [InlineData("extension pg_*", "extension pg_graphql", true)]
    [InlineData("extension pg_*", "extension pgsodium", false)]
    [InlineData("event trigger", "event trigger", true)]
    // A wildcard never crosses a kind: a role pattern does not accept an extension or an event trigger, nor the reverse.
    [InlineData("role *", "extension pg_graphql", false)]
    [InlineData("role *", "event trigger", false)]
    [InlineData("extension *", "role anon", false)]
    [InlineData("extension *", "event trigger", false)]
    [InlineData("role *n", "extension anon", false)]
    public void Allow_skipped_wildcards_match_names_of_their_own_kind_only(string allowed, string cause, bool expected)
    {
        Assert.True(Cairn.Operations.Checks.RestoreCompleteCheck.IsCause(allowed));
        Assert.Equal(expected, new Cairn.Operations.Checks.RestoreCompleteCheck([allowed]).Allows(cause));
    }

    [Theory]
    [InlineData("[\"*\"]")]
    [InlineData("[\"* anon\"]")]
    [InlineData("[\"event trigger*\"]")]
    [InlineData("[\"extension pg_* x\"]")]
    [InlineData("[extension]")]
    [InlineData("[pg_graphql]")]
    [InlineData("[extension a b]")]
    public void Restore_complete_with_an_unknown_cause_is_refused_at_load(string allowed)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse($"""
            databases:
              app:
                connection: "postgresql:///app"
                checks:
                  - restore_complete: {"{"} allow_skipped: {allowed} {"}"}
            """, "cairn.yaml"));
        Assert.Contains("extension NAME", e.Message, StringComparison.Ordinal);
    }
}
