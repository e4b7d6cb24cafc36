using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Checks;
using Cairn.Operations.Configuration;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A check that cannot run is SKIPPED, never a pass; a check that errs says why (timeout, lost connection, query error).</summary>
public class SkippedCheckTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private async Task<(CliRunner Cli, TempDir Dir)> LiveAsync(string checks)
    {
        var db = await pg.CreateDatabaseAsync("skip", DemoSchema.Sql(50));
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{pg.Server.Url(db)}\"\n    checks:\n{checks}");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return (cli, dir);
    }

    private static JsonObject Check(JsonNode run, string name) => run["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    [Fact]
    public async Task Live_verification_fails_on_fingerprint_checks_it_cannot_run_unless_they_are_optional_or_skips_are_allowed()
    {
        const string Checks = """
                  - tables_present: [public.profiles]
                  - row_counts: { equal_to: fingerprint }
                  - sql: { name: profile_rows, query: "SELECT count(*) FROM profiles", expect: "= fingerprint" }

            """;
        var (cli, dir) = await LiveAsync(Checks);
        using var _d = dir;

        var (code, text, err) = await cli.RunAsync("verify", "app", "--live");
        Assert.True(code == ExitCodes.ChecksFailed, text + err);
        Assert.Contains("FAIL: 1 passed, 2 skipped (2 not optional) of 3 checks", text, StringComparison.Ordinal);
        Assert.Contains("skipped (could not run): row_counts, profile_rows", err, StringComparison.Ordinal);

        (code, var json, err) = await cli.RunAsync("verify", "app", "--live", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var run = JsonNode.Parse(json)!;
        Assert.False(run["ok"]!.GetValue<bool>());
        Assert.Equal(1, run["checks_passed"]!.GetValue<int>());
        Assert.Equal(2, run["checks_skipped"]!.GetValue<int>());
        foreach (var name in new[] { "row_counts", "profile_rows" })
        {
            Assert.Equal("skip", Check(run, name)["result"]!.GetValue<string>());
            Assert.Contains("needs a backup's fingerprint: run it in a drill", Check(run, name)["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        (code, text, err) = await cli.RunAsync("verify", "app", "--live", "--allow-skipped");
        Assert.True(code == 0, text + err);
        Assert.Contains("PASS: 1 passed, 2 skipped of 3 checks", text, StringComparison.Ordinal);

        var config = await File.ReadAllTextAsync(dir.File("cairn.yaml"));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), config.Replace("equal_to: fingerprint }", "equal_to: fingerprint, optional: true }", StringComparison.Ordinal)
            .Replace("expect: \"= fingerprint\" }", "expect: \"= fingerprint\", optional: yes }", StringComparison.Ordinal));
        (code, json, err) = await cli.RunAsync("verify", "app", "--live", "--json");
        Assert.True(code == 0, json + err);
        Assert.True(Check(JsonNode.Parse(json)!, "row_counts")["optional"]!.GetValue<bool>());

        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "verify", "--json");
        var records = JsonNode.Parse(list)!.AsArray();
        Assert.Equal(["fail", "fail", "pass", "pass"], records.Select(r => r!["result"]!.GetValue<string>()));
        foreach (var r in records)
        {
            Assert.Equal(1, r!["details"]!["checks_passed"]!.GetValue<long>());
            Assert.Equal(2, r["details"]!["checks_skipped"]!.GetValue<long>());
            Assert.Equal("skip", r["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "profile_rows")!["result"]!.GetValue<string>());
        }
    }

    [Fact]
    public async Task A_check_that_errs_names_its_real_cause_a_timeout_a_lost_connection_or_a_query_error()
    {
        const string Checks = """
                  - command: { name: slow_smoke, run: "sleep 20", timeout: 1s }
                  - command: { name: failing_smoke, run: "echo gateway down >&2; exit 3" }
                  - sql: { name: killed, query: "SELECT pg_terminate_backend(pg_backend_pid())::int", expect: "= 1" }
                  - sql: { name: typo, query: "SELEC 1", expect: "= 1" }
                  - sql: { name: after_reconnect, query: "SELECT count(*) FROM profiles", expect: ">= 1" }

            """;
        var (cli, dir) = await LiveAsync(Checks);
        using var _d = dir;
        var (code, json, err) = await cli.RunAsync("verify", "app", "--live", "--json");
        Assert.True(code == ExitCodes.ChecksFailed, json + err);
        var run = JsonNode.Parse(json)!;
        Assert.Equal("timed out after 1s", Check(run, "slow_smoke")["actual"]!.GetValue<string>());
        Assert.Equal("exit 3", Check(run, "failing_smoke")["actual"]!.GetValue<string>());
        Assert.Contains("gateway down", Check(run, "failing_smoke")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("connection lost", Check(run, "killed")["actual"]!.GetValue<string>());
        Assert.Equal("error", Check(run, "killed")["result"]!.GetValue<string>());
        Assert.Equal("query error", Check(run, "typo")["actual"]!.GetValue<string>());
        Assert.Equal("pass", Check(run, "after_reconnect")["result"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("57014", "statement timed out")]
    [InlineData("55P03", "lock timed out")]
    [InlineData("57P01", "connection lost")]
    [InlineData("08006", "connection lost")]
    [InlineData("42601", "query error")]
    public void A_check_query_error_is_named_by_its_sqlstate(string sqlState, string cause) => Assert.Equal(cause, CheckRunner.Cause(sqlState));

    [Fact]
    public void Optional_is_read_for_every_check_kind_and_a_wrong_value_is_refused_with_its_line()
    {
        var c = CairnConfig.Parse("""
            databases:
              app:
                connection: "postgresql://u@h/db"
                checks:
                  - tables_present: { tables: [public.a], optional: true }
                  - row_counts: { equal_to: fingerprint, optional: true }
                  - rls_enabled: { schema: public, optional: true }
                  - foreign_keys: { optional: true }
                  - audit_continuity: { table: public.audit_log, optional: true }
                  - sql: { name: s, query: "SELECT 1", expect: "= 1", optional: true }
                  - amcheck: { optional: true }
                  - command: { name: c, run: "true", optional: true }
                  - tables_present: [public.b]
                  - sql: { name: t, query: "SELECT 1", expect: "= 1", optional: false }
            """, "c.yaml");
        var checks = c.Databases["app"].Checks;
        Assert.Equal(10, checks.Count);
        Assert.All(checks.Take(8), x => Assert.True(x.Optional, x.Kind));
        Assert.False(checks[8].Optional);
        Assert.False(checks[9].Optional);
        Assert.Equal(["public.a"], ((TablesPresentCheck)checks[0]).Tables);
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: x\n    checks:\n      - foreign_keys: { optional: maybe }\n", "c.yaml"));
        Assert.Contains("c.yaml:5", e.Message, StringComparison.Ordinal);
        Assert.Contains("optional must be true or false", e.Message, StringComparison.Ordinal);
    }
}
