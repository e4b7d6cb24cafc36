using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cairn.Tests.Support;

namespace Cairn.Tests.Incidents;

/// <summary>
/// An incident's recover step with --at on a server that archives its WAL: a point-in-time restore of the physical backup on
/// a throwaway server, the erasure ledger applied there, the database copied into DB_incident_ID; the forensic backup is
/// taken physical too (data_directory is set); without a physical backup before TIME the step says why it went logical.
/// </summary>
public sealed partial class IncidentPitrTests
{
    private const string Yaml = """
            erasure:
              subject: { table: public.profiles, key: id }
            checks:
              - tables_present: [public.profiles, public.orders]

        """;

    private static string Stamp(DateTime t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";

    [Fact]
    public async Task Corruption_at_a_time_the_archived_WAL_covers_recovers_by_physical_pitr_into_the_incident_database_with_the_erasure_ledger_applied()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: Yaml);
        var (cli, server) = (cluster.Cli, cluster.Server);
        await server.ExecuteAsync("""
            CREATE TABLE profiles (id int PRIMARY KEY, email text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL REFERENCES profiles(id), amount int);
            INSERT INTO profiles SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 5) g;
            INSERT INTO orders SELECT g, 1 + g % 5, g FROM generate_series(1, 20) g;
            """);
        var beforeBackups = Stamp(await server.ScalarAsync<DateTime>("SELECT clock_timestamp()"));
        await Task.Delay(1200);
        var (code, json, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var physical = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();
        // After the backup and before TIME: only the WAL holds these rows.
        await server.ExecuteAsync("INSERT INTO profiles VALUES (7, 'wal@example.com'); INSERT INTO orders VALUES (100, 3, 100), (101, 7, 101)");
        var at = Stamp(await server.ScalarAsync<DateTime>("SELECT clock_timestamp()"));
        await Task.Delay(1200);
        (code, _, err) = await cli.RunAsync("erase", "app", "3", "--reference", "DSR-16");
        Assert.True(code == 0, err);
        await server.ExecuteAsync("INSERT INTO profiles VALUES (6, 'after-time@example.com')");
        await cluster.ArchiveAllAsync();

        (code, var output, err) = await cli.RunAsync("incident", "corruption", "app", "--execute", "--yes", "--at", at);

        Assert.True(code == 0, output + err);
        var id = IdOf(output);
        var report = await ReportAsync(cli, id);
        var recover = Step(report, "recover");
        var data = recover["data"]!;
        Assert.Equal("physical", data["source"]!.GetValue<string>());
        Assert.Equal(physical, data["snapshot"]!.GetValue<string>());
        Assert.Equal("1", data["erasures_reapplied"]!.GetValue<string>());
        Assert.Contains("physical PITR", recover["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
        var restored = data["database"]!.GetValue<string>();
        Assert.Equal("postgres_incident_" + id["inc-".Length..].Replace('-', '_'), restored);
        // The database as of TIME, erased: 7 and its order came from the WAL, 3 and its orders are gone, 6 came after TIME.
        Assert.Equal("1,2,4,5,7", await server.ScalarAsync<string>("SELECT string_agg(id::text, ',' ORDER BY id) FROM profiles", restored));
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT count(*) FROM orders WHERE profile_id = 3", restored));
        Assert.Equal(17L, await server.ScalarAsync<long>("SELECT count(*) FROM orders", restored));
        Assert.Equal("done", Step(report, "verify")["status"]!.GetValue<string>());

        // The physical path puts its restore on the record as the logical path does: kind restore, type database, from a PITR.
        var restoreSeq = int.Parse(data["restore_seq"]!.GetValue<string>(), CultureInfo.InvariantCulture);
        var (lc, list, le) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.True(lc == 0, le);
        var restoreRecord = JsonNode.Parse(list)!.AsArray().Single(r => r!["seq"]!.GetValue<int>() == restoreSeq)!;
        Assert.Equal("pass", restoreRecord["result"]!.GetValue<string>());
        Assert.Equal(physical, restoreRecord["snapshot"]!.GetValue<string>());
        var details = restoreRecord["details"]!;
        Assert.Equal("database", details["type"]!.GetValue<string>());
        Assert.Equal("pitr", details["source"]!.GetValue<string>());
        Assert.EndsWith("/" + restored, details["target"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(details["rows"]!.GetValue<long>() >= 5 + 17, details.ToJsonString()); // profiles and orders as of TIME, erased
        Assert.Equal(0, details["mismatches"]!.GetValue<long>());
        Assert.Equal(1, details["erasures_reapplied"]!.GetValue<long>());
        Assert.False(string.IsNullOrEmpty(details["stop_proof"]!.GetValue<string>()));

        // The forensic backups: a logical and a physical one (data_directory is set), both tagged and pinned with the incident.
        var preserve = Step(report, "preserve")["data"]!;
        var forensicPhysical = preserve["physical_backup"]!.GetValue<string>();
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        var row = JsonNode.Parse(snaps)!.AsArray().Single(s => s!["id"]!.GetValue<string>() == forensicPhysical)!;
        Assert.Equal("physical", row["kind"]!.GetValue<string>());
        Assert.Equal("incident-" + id, row["meta"]!["tags"]!.GetValue<string>());
        using (var repo = await Cairn.Repository.Repository.OpenAsync(new Cairn.Repository.Storage.FileSystemStorage(cluster.Dir.File("repo")), "archiver passphrase 5be1", TimeProvider.System, default))
        {
            var pins = await repo.ListPinsAsync(default);
            Assert.Equal(id, pins[forensicPhysical].Incident);
            Assert.Equal(id, pins[preserve["logical_backup"]!.GetValue<string>()].Incident);
        }

        // Before the physical backup nothing physical covers TIME: the step goes logical and says why (here: no drilled logical backup).
        (code, output, err) = await cli.RunAsync("incident", "catastrophic", "app", "--execute", "--yes", "--at", beforeBackups);
        Assert.True(code == 14, output + err);
        var second = Step(await ReportAsync(cli, IdOf(output)), "recover");
        Assert.Equal("failed", second["status"]!.GetValue<string>());
        Assert.Contains("logical, because no physical backup of app finished before", second["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static string IdOf(string output) => IncidentId().Match(output) is { Success: true } m ? m.Value : throw new Xunit.Sdk.XunitException("no incident ID in: " + output);

    private static async Task<JsonObject> ReportAsync(CliRunner cli, string id)
    {
        var (code, json, err) = await cli.RunAsync("incident", "report", id, "--json");
        Assert.True(code == 0, err);
        return JsonNode.Parse(json)!.AsObject();
    }

    private static JsonObject Step(JsonObject report, string name) => report["steps"]!.AsArray().Single(s => s!["name"]!.GetValue<string>() == name)!.AsObject();

    [GeneratedRegex("inc-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")]
    private static partial Regex IncidentId();
}
