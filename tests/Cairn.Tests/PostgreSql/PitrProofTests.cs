using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Checks;
using Cairn.Operations.Drills;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>The physical drill's stop-point proof needs both facts, and fails with the reason when one is missing.</summary>
public class PitrProofTests
{
    private static readonly DateTimeOffset Target = new(2026, 12, 4, 21, 50, 0, TimeSpan.Zero);

    // The line PostgreSQL 15 writes when a time target stops recovery (xlogrecovery.c, recoveryStopsBefore).
    private const string StopLine = "2026-12-04 21:55:02.001 UTC [4242] LOG:  recovery stopping before commit of transaction 745, time 2026-12-04 21:50:01.250000+00\n";

    [Fact]
    public void Both_facts_on_the_right_side_of_the_target_prove_the_stop_point()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target, Target.AddSeconds(-1), "LOG:  starting point-in-time recovery\n" + StopLine, TimeSpan.FromSeconds(3));
        Assert.True(r.Status == CheckStatus.Pass, r.Detail);
        Assert.Contains("transaction 745", r.Actual, StringComparison.Ordinal);
    }

    [Fact]
    public void A_stop_before_an_aborted_transaction_is_read_too()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target, Target.AddSeconds(-1), StopLine.Replace("commit", "abort", StringComparison.Ordinal), default);
        Assert.True(r.Status == CheckStatus.Pass, r.Detail);
    }

    [Fact]
    public void A_log_without_the_stop_line_fails_the_proof_as_an_early_end_of_recovery()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target, Target.AddSeconds(-1), "LOG:  redo done at 0/3000148\nLOG:  archive recovery complete\n", default);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("no 'recovery stopping before' line", r.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void No_replayed_transaction_passes_with_the_stop_line_when_nothing_committed_between_backup_and_target()
    {
        // Seen in CI: the random target fell between the last commit inside the backup and the first one after it.
        var r = PhysicalDrillOperation.StopPointProof(Target, null, StopLine, default);
        Assert.True(r.Status == CheckStatus.Pass, r.Detail);
        Assert.Contains("no transaction replayed", r.Actual, StringComparison.Ordinal);
    }

    [Fact]
    public void No_replayed_transaction_and_no_stop_line_fails_the_proof()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target, null, "LOG:  redo done at 0/3000148\nLOG:  archive recovery complete\n", default);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("no 'recovery stopping before' line", r.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_last_replayed_transaction_after_the_target_fails_the_proof()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target, Target.AddMilliseconds(1), StopLine, default);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("too far", r.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void A_first_unapplied_transaction_before_the_target_fails_the_proof()
    {
        var r = PhysicalDrillOperation.StopPointProof(Target.AddSeconds(5), Target.AddSeconds(-1), StopLine, default);
        Assert.Equal(CheckStatus.Fail, r.Status);
        Assert.Contains("too early", r.Detail, StringComparison.Ordinal);
    }

    private static JsonObject Check(JsonNode drill, string name) => drill["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    [Fact]
    public async Task A_drill_past_the_archived_wal_fails_the_proof_a_random_target_passes_it_and_a_skipped_check_fails_the_drill_unless_allowed()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: "    checks:\n      - tables_present: [public.t]\n      - row_counts: { equal_to: fingerprint }\n");
        var cli = cluster.Cli;
        await cluster.Server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
        var (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        for (var i = 2; i <= 5; i++)
        {
            await cluster.Server.ExecuteAsync($"INSERT INTO t VALUES ({i})");
            await Task.Delay(150);
        }
        await cluster.ArchiveAllAsync();

        // A target an hour after everything archived: recovery runs out of WAL before it. That proves nothing.
        var late = (await cluster.Server.ScalarAsync<DateTime>("SELECT clock_timestamp() + interval '1 hour'")).ToUniversalTime();
        (code, var json, err) = await cli.RunAsync("drill", "app", "--physical", "--target-time", late.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00", "--json", "--allow-skipped");
        Assert.True(code == ExitCodes.ChecksFailed, json + err);
        var drill = JsonNode.Parse(json)!;
        Assert.False(drill["ok"]!.GetValue<bool>());
        var proof = Check(drill, "pitr_target");
        Assert.Equal("fail", proof["result"]!.GetValue<string>());
        Assert.Contains("recovery ended before configured recovery target was reached", proof["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // A random point between two real commits: proven. row_counts = fingerprint cannot run on a physical backup:
        // it is SKIPPED with the reason and fails the drill, because it is not optional.
        (code, json, err) = await cli.RunAsync("drill", "app", "--random-target", "--json");
        Assert.True(code == ExitCodes.ChecksFailed, json + err);
        drill = JsonNode.Parse(json)!;
        Assert.Equal("pass", Check(drill, "pitr_target")["result"]!.GetValue<string>());
        Assert.Equal("pass", Check(drill, "tables_present")["result"]!.GetValue<string>());
        var rows = Check(drill, "row_counts");
        Assert.Equal("skip", rows["result"]!.GetValue<string>());
        Assert.Contains("physical backups carry none", rows["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(2, drill["checks_passed"]!.GetValue<int>());
        Assert.Equal(1, drill["checks_skipped"]!.GetValue<int>());
        Assert.False(drill["ok"]!.GetValue<bool>());
        Assert.Contains("skipped (could not run): row_counts", err, StringComparison.Ordinal);

        // The same drill with --allow-skipped passes, and says the check was skipped.
        (code, var text, err) = await cli.RunAsync("drill", "app", "--random-target", "--allow-skipped");
        Assert.True(code == 0, text + err);
        Assert.Contains("PASS: 2 passed, 1 skipped of 3 checks", text, StringComparison.Ordinal);
        Assert.Contains("SKIPPED", text, StringComparison.Ordinal);

        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "drill", "--json");
        var records = JsonNode.Parse(list)!.AsArray();
        Assert.Equal(["fail", "fail", "pass"], records.Select(r => r!["result"]!.GetValue<string>()));
        var last = records[^1]!;
        Assert.Equal(1, last["details"]!["checks_skipped"]!.GetValue<long>());
        Assert.Equal("yes", last["details"]!["allow_skipped"]!.GetValue<string>());
        Assert.Equal("no", records[1]!["details"]!["allow_skipped"]!.GetValue<string>());
    }
}
