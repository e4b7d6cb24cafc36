using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary><c>drill: { on: URL }</c>: a drill restores into a new database on a server the user chose, and drops it afterwards.</summary>
public class DrillOnServerTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private async Task<(CliRunner Cli, TempDir Dir)> SetUpAsync(ScratchServer drillServer, string checks)
    {
        var db = await pg.CreateDatabaseAsync("drillon", DemoSchema.Sql(50));
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                drill: {"{"} on: "{drillServer.Url()}" {"}"}
                checks:
            {checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        return (cli, dir);
    }

    private static Task<long> DrillDatabasesAsync(ScratchServer s) => s.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname LIKE 'cairn_drill_%'");

    [Fact]
    public async Task Drill_on_a_chosen_server_restores_there_records_where_and_drops_its_database()
    {
        await using var other = await ScratchServer.StartAsync();
        await other.ExecuteAsync("CREATE DATABASE keep_me");
        var (cli, dir) = await SetUpAsync(other, """
                  - row_counts: { equal_to: fingerprint }
                  - foreign_keys: {}
                  - command: { name: sees_the_copy, run: "psql \"$CAIRN_RESTORED_URL\" -Atc 'SELECT current_database()' | grep -q '^cairn_drill_'" }
            """);
        using var _d = dir;

        var (code, json, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, json + err);
        var restore = JsonNode.Parse(json)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "restore")!;
        Assert.Contains($":{other.Port}/cairn_drill_", restore["expected"]!.GetValue<string>(), StringComparison.Ordinal);
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "drill", "--json");
        var on = JsonNode.Parse(list)!.AsArray().Single()!["details"]!["on"]!.GetValue<string>();
        Assert.Contains($":{other.Port}/cairn_drill_", on, StringComparison.Ordinal);
        // Its database is gone; the server's own databases are untouched.
        Assert.Equal(0, await DrillDatabasesAsync(other));
        Assert.Equal(1, await other.ScalarAsync<long>("SELECT count(*) FROM pg_database WHERE datname = 'keep_me'"));
    }

    [Fact]
    public async Task Failed_drill_on_a_chosen_server_still_drops_its_database()
    {
        await using var other = await ScratchServer.StartAsync();
        var (cli, dir) = await SetUpAsync(other, "      - tables_present: [public.no_such_table]");
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        Assert.Contains("public.no_such_table", json, StringComparison.Ordinal);
        Assert.Equal(0, await DrillDatabasesAsync(other));
    }
}
