using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

/// <summary>An erasure made after a backup survives a physical PITR restore started with --start, a restore without it (the note), and drills.</summary>
/// <remarks>In PhysicalTests' collection: both run physical drills, and PhysicalTests counts cairn-pdrill-* folders.</remarks>
[Collection("physical drills")]
public class ErasurePhysicalTests
{
    private const string Yaml = """
            erasure:
              subject: { table: public.profiles, key: id }
            checks:
              - erasures_applied: {}
              - row_counts: { equal_to: fingerprint, optional: true }

        """;

    [Fact]
    public async Task A_physical_backup_from_before_an_erasure_restored_with_start_or_drilled_never_shows_the_subject()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: Yaml);
        var cli = cluster.Cli;
        await cluster.Server.ExecuteAsync("""
            CREATE TABLE profiles (id int PRIMARY KEY, email text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL REFERENCES profiles(id), amount int);
            INSERT INTO profiles SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 5) g;
            INSERT INTO orders SELECT g, 1 + g % 5, g FROM generate_series(1, 20) g;
            """);
        var (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        await cluster.Server.ExecuteAsync("INSERT INTO orders VALUES (100, 3, 100)");
        // A point in time after the backup and before the erasure: the WAL up to it still holds the subject.
        var beforeErasure = (await cluster.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()")).ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
        await Task.Delay(1200);
        (code, _, err) = await cli.RunAsync("erase", "app", "3", "--reference", "DSR-7");
        Assert.True(code == 0, err);
        await cluster.Server.ExecuteAsync("INSERT INTO profiles VALUES (6, 'late@example.com')");
        await cluster.ArchiveAllAsync();

        // With --start: recovered to the point before the erasure, promoted, then the ledger is applied.
        var target = cluster.Dir.File("restored");
        var port = 20000 + Random.Shared.Next(20000);
        (code, var json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--target-time", beforeErasure, "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(1, JsonNode.Parse(json)!["erasures_reapplied"]!.GetValue<int>());
            Assert.Equal(0L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM profiles WHERE id = 3"));
            Assert.Equal(0L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM orders WHERE profile_id = 3"));
            Assert.Equal(4L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM profiles"));
            Assert.Equal(16L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM orders"));
        }
        finally
        {
            await cluster.StopRestoredAsync(target);
        }

        // Without --start: the note in the folder, and the command that applies the ledger once the server is up.
        var paused = cluster.Dir.File("restored-later");
        (code, json, err) = await cli.RunAsync("restore", "app", "--physical", "--to", paused, "--json");
        Assert.True(code == 0, json + err);
        Assert.Equal(1, JsonNode.Parse(json)!["erasures_pending"]!.GetValue<int>());
        Assert.Contains("cairn erase app --replay --to", JsonNode.Parse(json)!["replay_command"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("--replay", await File.ReadAllTextAsync(Path.Combine(paused, "CAIRN-ERASURES-PENDING.txt")), StringComparison.Ordinal);

        // A physical drill: the checks run on the erased state and erasures_applied passes.
        (code, json, err) = await cli.RunAsync("drill", "app", "--physical", "--target-time", beforeErasure, "--json");
        Assert.True(code == 0, json + err);
        var checks = JsonNode.Parse(json)!["checks"]!.AsArray();
        Assert.Contains(checks, c => c!["name"]!.GetValue<string>() == "erasure ledger" && c["actual"]!.GetValue<string>().StartsWith("1 found data", StringComparison.Ordinal));
        Assert.Contains(checks, c => c!["name"]!.GetValue<string>() == "erasures_applied" && c["result"]!.GetValue<string>() == "pass");
    }
}

public class ErasureDrillTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task A_logical_drill_of_a_backup_from_before_an_erasure_runs_its_checks_on_the_erased_state_and_erasures_applied_passes()
    {
        using var setup = await AppSetup.CreateAsync(pg, "erase_drill", DemoSchema.Sql(40), """
                erasure:
                  subject: { table: public.profiles, key: id }
                checks:
                  - erasures_applied: {}
                  - row_counts: { tables: [public.profiles, public.orders], equal_to: fingerprint, optional: true }
            """);
        var (cli, dir, db) = setup;
        var id = await pg.Server.ScalarAsync<string>("SELECT id::text FROM profiles ORDER BY id LIMIT 1", db);
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        (code, _, err) = await cli.RunAsync("erase", "app", id);
        Assert.True(code == 0, err);
        (code, var json, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, json + err);
        var checks = JsonNode.Parse(json)!["checks"]!.AsArray();
        Assert.Contains(checks, c => c!["name"]!.GetValue<string>() == "erasure ledger" && c["actual"]!.GetValue<string>().StartsWith("1 found data", StringComparison.Ordinal));
        Assert.Contains(checks, c => c!["name"]!.GetValue<string>() == "erasures_applied" && c["result"]!.GetValue<string>() == "pass");

        // verify --live proves the live database too; without a repository the check errors, it never passes.
        (code, json, err) = await cli.RunAsync("verify", "app", "--live", "--json");
        Assert.True(code == 0, json + err);
        cli.Env.Remove("CAIRN_REPOSITORY");
        cli.Env["CAIRN_EVIDENCE"] = dir.File("evidence-2");
        (code, json, _) = await cli.RunAsync("verify", "app", "--live", "--json");
        Assert.NotEqual(0, code);
        Assert.Contains("ledger not read", json, StringComparison.Ordinal);
    }
}
