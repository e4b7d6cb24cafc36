using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Cairn.Operations.Assessment;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Manifests;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary><c>cairn assess</c> on a real server with data checksums (initdb --data-checksums), damaged with the server stopped.</summary>
public class AssessTests
{
    private const int PageSize = 8192;

    /// <summary>Swaps the first two line pointers of a B-tree leaf page and writes a correct checksum: the page reads fine, its keys are out of order.</summary>
    private static void SwapFirstTwoItems(string file, uint block)
    {
        var bytes = File.ReadAllBytes(file);
        var page = bytes.AsSpan((int)block * PageSize, PageSize);
        Span<byte> first = stackalloc byte[4];
        page.Slice(24, 4).CopyTo(first);
        page.Slice(28, 4).CopyTo(page.Slice(24, 4));
        first.CopyTo(page.Slice(28, 4));
        BinaryPrimitives.WriteUInt16LittleEndian(page[8..], PageChecksum.Compute(page, block));
        File.WriteAllBytes(file, bytes);
    }

    /// <summary>Changes one byte of a page and leaves its checksum alone, as a failing disk would.</summary>
    private static void FlipByte(string file, long offset)
    {
        using var f = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x5A));
    }

    private static JsonObject PlanOf(JsonNode report, string relation) => report["plans"]!.AsArray().Select(p => p!.AsObject()).Single(p => p["relation"]!.GetValue<string>() == relation);

    [Fact]
    public async Task Assess_finds_a_corrupted_index_and_a_bad_checksum_page_and_proposes_the_newest_drilled_backup_taken_before_the_damage()
    {
        await using var server = await ScratchServer.StartAsync(dataChecksums: true);
        Assert.Equal("on", await server.ScalarAsync<string>("SHOW data_checksums"));
        await server.ExecuteAsync("CREATE DATABASE shop");
        await server.ExecuteAsync("""
            CREATE EXTENSION amcheck;
            CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
            INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 200) g;
            CREATE TABLE ledger (id int NOT NULL, pad text NOT NULL);
            INSERT INTO ledger SELECT g, repeat('z', 300) FROM generate_series(1, 2000) g;
            """, "shop");
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  shop:\n    connection: \"{server.Url("shop")}\"\n");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");

        var (code, json, err) = await cli.RunAsync("backup", "shop", "--json");
        Assert.True(code == 0, err);
        var drilled = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();
        (code, json, err) = await cli.RunAsync("drill", "shop", "--snapshot", drilled);
        Assert.True(code == 0, json + err);
        // A newer backup that never passed a drill: an incident is no time to find out it does not restore.
        (code, json, err) = await cli.RunAsync("backup", "shop", "--json");
        Assert.True(code == 0, err);
        var undrilled = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();
        Assert.NotEqual(drilled, undrilled);

        var index = Path.Combine(server.DataDirectory, await server.ScalarAsync<string>("SELECT pg_relation_filepath('items_pkey')", "shop"));
        var heap = Path.Combine(server.DataDirectory, await server.ScalarAsync<string>("SELECT pg_relation_filepath('ledger')", "shop"));
        await server.ExecuteAsync("CHECKPOINT");
        await server.StopAsync();
        SwapFirstTwoItems(index, 1); // block 0 is the metapage; 200 keys fit in the one leaf page that is the root
        FlipByte(heap, (2 * PageSize) + 4000);
        await server.RestartAsync();

        (code, json, err) = await cli.RunAsync("assess", "shop", "--json");

        Assert.True(code == 5, $"exit {code}\n{json}\n{err}");
        var report = JsonNode.Parse(json)!;
        Assert.True(report["damaged"]!.GetValue<bool>());
        Assert.True(report["data_checksums"]!.GetValue<bool>());
        Assert.True(report["checksum_failures"]!.GetValue<long>() >= 1, json);
        Assert.NotNull(report["checksum_last_failure"]!.GetValue<string>());
        Assert.Contains(report["tables"]!.AsArray(), t => t!["table"]!.GetValue<string>() == "public.ledger" && t["total_bytes"]!.GetValue<long>() > 500_000);
        Assert.Empty(report["incomplete"]!.AsArray());
        var findings = report["amcheck_findings"]!.AsArray();
        Assert.Contains(findings, f => f!["relation"]!.GetValue<string>() == "public.items_pkey" && f["kind"]!.GetValue<string>() == "index");
        Assert.Contains(findings, f => f!["relation"]!.GetValue<string>() == "public.ledger" && f["message"]!.GetValue<string>().Contains("invalid page in block 2", StringComparison.Ordinal));

        var ix = PlanOf(report, "public.items_pkey");
        Assert.True(ix["index_only"]!.GetValue<bool>());
        var ixOptions = ix["options"]!.AsArray();
        Assert.Equal("reindex", ixOptions[0]!["method"]!.GetValue<string>());
        Assert.Equal("table_restore", ixOptions[1]!["method"]!.GetValue<string>());
        Assert.Equal(drilled, ixOptions[1]!["snapshot"]!.GetValue<string>());

        var ledger = PlanOf(report, "public.ledger");
        var first = ledger["options"]!.AsArray()[0]!;
        Assert.Equal("table_restore", first["method"]!.GetValue<string>());
        Assert.Equal(drilled, first["snapshot"]!.GetValue<string>());
        Assert.True(first["drill_seq"]!.GetValue<long>() > 0);
        Assert.Contains($"--snapshot {drilled[..8]}", first["commands"]![0]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain(undrilled, json, StringComparison.Ordinal);
        var pitr = ledger["options"]!.AsArray().Single(o => o!["method"]!.GetValue<string>() == "pitr")!;
        Assert.False(pitr["available"]!.GetValue<bool>()); // no physical backup exists, so none passed a drill

        // The statement the plan gives for the index repairs it: amcheck no longer finds it.
        await server.ExecuteAsync(ixOptions[0]!["commands"]![0]!.GetValue<string>(), "shop");
        (code, json, _) = await cli.RunAsync("assess", "shop", "--json");
        Assert.Equal(5, code); // the table's page is still bad
        report = JsonNode.Parse(json)!;
        Assert.DoesNotContain(report["amcheck_findings"]!.AsArray(), f => f!["relation"]!.GetValue<string>() == "public.items_pkey");
        // The damage's age is kept: the second assessment says the table was first seen no later than the first one did.
        Assert.Contains(report["plans"]!.AsArray(), p => p!["relation"]!.GetValue<string>() == "public.ledger");

        (code, json, _) = await cli.RunAsync("evidence", "list", "--json");
        var assessRecords = JsonNode.Parse(json)!.AsArray().Where(r => r!["kind"]!.GetValue<string>() == "assess").ToList();
        Assert.Equal(2, assessRecords.Count);
        Assert.All(assessRecords, r => Assert.Equal("fail", r!["result"]!.GetValue<string>()));
        Assert.Contains("public.ledger", assessRecords[0]!["details"]!["damaged"]!.ToJsonString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Assess_of_a_clean_database_without_amcheck_says_what_it_could_not_check_and_does_not_pass()
    {
        await using var server = await ScratchServer.StartAsync(dataChecksums: true);
        await server.ExecuteAsync("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 100) g");
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{server.Url()}\"\n");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");

        var (code, output, err) = await cli.RunAsync("assess", "app");

        Assert.True(code == 12, $"exit {code}\n{output}\n{err}");
        Assert.Contains("NOT CHECKED: amcheck: the extension is not installed", output, StringComparison.Ordinal);
        Assert.Contains("CREATE EXTENSION amcheck", output, StringComparison.Ordinal);
        Assert.Contains("no damaged relation found", output, StringComparison.Ordinal);

        await server.ExecuteAsync("CREATE EXTENSION amcheck");
        (code, output, err) = await cli.RunAsync("assess", "app");
        Assert.True(code == 0, $"exit {code}\n{output}\n{err}");
        Assert.Contains("tables checked, 0 finding(s)", output, StringComparison.Ordinal);
        Assert.DoesNotContain("NOT CHECKED", output, StringComparison.Ordinal);
        Assert.Contains("amcheck: 0 B-tree indexes, ", output, StringComparison.Ordinal);
    }

    private static Snapshot Snap(string id, string kind, DateTimeOffset time) => new(id.PadRight(64, '0'), new Manifest { Name = "app", Kind = kind, Time = time });

    [Fact]
    public void Plan_uses_the_newest_drilled_backups_before_the_first_sighting_and_an_earlier_sighting_moves_it_back()
    {
        var t0 = DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);
        var snaps = new List<Snapshot>
        {
            Snap("aa", BackupKinds.Physical, t0),
            Snap("bb", BackupKinds.Logical, t0.AddDays(1)),
            Snap("cc", BackupKinds.Physical, t0.AddDays(2)),
            Snap("dd", BackupKinds.Logical, t0.AddDays(3)),
            Snap("ee", BackupKinds.Physical, t0.AddDays(4)), // drilled, but the WAL after it has a gap
            Snap("ff", BackupKinds.Logical, t0.AddDays(5)), // never drilled
        };
        var drills = snaps.Where(s => !s.Id.StartsWith("ff", StringComparison.Ordinal)).Select((s, i) => (s.Id, Seq: (long)(10 + i))).ToDictionary(x => x.Id, x => x.Seq);
        var history = new BackupHistory(snaps, drills, new HashSet<string> { snaps[0].Id, snaps[2].Id });
        var table = new DamagedRelation("public", "orders", false, "public", "orders", ["amcheck"], ["table public.orders block 3: invalid page in block 3"]);
        var none = new Dictionary<string, DateTimeOffset>();

        var plan = AssessPlanner.Plan("app", "shop", [table], history, none, none, null, t0.AddDays(6)).Single();
        Assert.Equal(("table_restore", snaps[3].Id, 13L), (plan.Options[0].Method, plan.Options[0].SnapshotId, plan.Options[0].DrillSeq));
        Assert.Equal(("pitr", snaps[2].Id), (plan.Options[1].Method, plan.Options[1].SnapshotId));
        Assert.Contains("--target-time '2026-12-07 00:00:00+00'", plan.Options[1].Commands[0], StringComparison.Ordinal);

        // An earlier assess record saw it on day 2.5: only backups before that qualify.
        plan = AssessPlanner.Plan("app", "shop", [table], history, new Dictionary<string, DateTimeOffset> { ["public.orders"] = t0.AddDays(2.5) }, none, null, t0.AddDays(6)).Single();
        Assert.Equal("an earlier assess record", plan.FirstSeen.Source);
        Assert.Equal(snaps[1].Id, plan.Options[0].SnapshotId);
        Assert.Equal(snaps[2].Id, plan.Options[1].SnapshotId);

        // PostgreSQL's last checksum failure on day 1.5 (a checksum finding): the logical backup of day 1 and the physical one of day 0.
        plan = AssessPlanner.Plan("app", "shop", [table], history, none, none, t0.AddDays(1.5), t0.AddDays(6)).Single();
        Assert.Equal(snaps[1].Id, plan.Options[0].SnapshotId);
        Assert.Equal(snaps[0].Id, plan.Options[1].SnapshotId);

        // Seen before any backup: nothing is available, and the plan says so rather than proposing a backup that holds the damage.
        plan = AssessPlanner.Plan("app", "shop", [table], history, none, new Dictionary<string, DateTimeOffset> { ["public.orders"] = t0.AddHours(-1) }, null, t0.AddDays(6)).Single();
        Assert.All(plan.Options, o => Assert.False(o.Available));
        Assert.Equal("a physical backup that read a bad page of it", plan.FirstSeen.Source);

        // Only the undrilled one is newer than the drilled one: the plan names it and how to drill it.
        plan = AssessPlanner.Plan("app", "shop", [table], history with { DrillPasses = new Dictionary<string, long>() }, none, none, null, t0.AddDays(6)).Single();
        Assert.False(plan.Options[0].Available);
        Assert.Contains($"cairn drill app --snapshot {snaps[5].ShortId}", plan.Options[0].Why, StringComparison.Ordinal);
    }
}
