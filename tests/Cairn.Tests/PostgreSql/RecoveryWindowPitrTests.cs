using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>The whole recovery window on a real server: keep_within keeps the base before it, a PITR to its first moment works, and pins survive keep_last: 1.</summary>
public class RecoveryWindowPitrTests
{
    [Fact]
    public async Task Keep_within_keeps_the_backup_before_the_window_so_a_pitr_to_its_first_moment_works_and_pins_survive_keep_last_one()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var s = c.Server;
        await s.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "app", "--physical")).Code);
        await Task.Delay(1500);
        await s.ExecuteAsync("INSERT INTO t VALUES (2)");
        await Task.Delay(1200);
        var windowTarget = (await s.ScalarAsync<DateTime>("SELECT clock_timestamp()")).ToUniversalTime();
        await Task.Delay(1200);
        await s.ExecuteAsync("INSERT INTO t VALUES (3)");
        await Task.Delay(1200);
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "app", "--physical")).Code);
        await s.ExecuteAsync("INSERT INTO t VALUES (4)");
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "app", "--physical")).Code);
        await s.ExecuteAsync("INSERT INTO t VALUES (5)");
        await c.ArchiveAllAsync();

        var (code, json, err) = await c.Cli.RunAsync("snapshots", "app", "--json");
        Assert.True(code == 0, err);
        var backups = JsonNode.Parse(json)!.AsArray().Select(b => (Id: b!["id"]!.GetValue<string>(), Time: DateTimeOffset.Parse(b["time"]!.GetValue<string>(), CultureInfo.InvariantCulture))).ToList();
        Assert.Equal(3, backups.Count);
        // The window counts back from the newest backup; whole seconds put its start within a second after windowTarget.
        var within = (int)Math.Floor((backups[2].Time - windowTarget).TotalSeconds);
        var windowStart = backups[2].Time - TimeSpan.FromSeconds(within);
        Assert.True(windowStart < backups[1].Time && windowStart > backups[0].Time, $"{windowStart:O} must fall between the first two backups");
        await c.WriteConfigAsync(withDataDirectory: true, $"    retention: {{ keep_within: {within}s }}\n");

        (code, json, err) = await c.Cli.RunAsync("prune", "--json");
        Assert.True(code == 0, json + err);
        var decisions = JsonNode.Parse(json)!["snapshots"]!.AsArray();
        var first = decisions.Single(d => d!["id"]!.GetValue<string>() == backups[0].Id)!;
        Assert.True(first["keep"]!.GetValue<bool>(), first.ToJsonString());
        Assert.Contains("base of the", first["reasons"]![0]!.GetValue<string>(), StringComparison.Ordinal);

        // PITR to the window's first moment: rows 1 and 2 exist, row 3 (committed after it) does not.
        var target = c.Dir.File("restored-window-start");
        var port = 20000 + Random.Shared.Next(20000);
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json",
            "--target-time", windowStart.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            Assert.Equal(2L, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM t"));
            Assert.Equal(2, await ArchivingCluster.ScalarAsync<int>(socket, port, "SELECT max(id) FROM t"));
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }

        // keep_last: 1 with the middle backup pinned: it and the newest stay, the first goes.
        await c.WriteConfigAsync(withDataDirectory: true, "    retention: { keep_last: 1 }\n");
        (code, _, err) = await c.Cli.RunAsync("pin", backups[1].Id[..12], "--reason", "forensic hold");
        Assert.True(code == 0, err);
        (code, json, err) = await c.Cli.RunAsync("prune");
        Assert.True(code == 0, json + err);
        (code, json, err) = await c.Cli.RunAsync("snapshots", "app", "--json");
        var left = JsonNode.Parse(json)!.AsArray();
        Assert.Equal([backups[1].Id, backups[2].Id], left.Select(b => b!["id"]!.GetValue<string>()));
        Assert.Equal("forensic hold", left[0]!["pin"]!["reason"]!.GetValue<string>());
        (code, var text, _) = await c.Cli.RunAsync("snapshots", "app");
        Assert.Contains("PINNED: forensic hold", text, StringComparison.Ordinal);
        Assert.Contains("guaranteed recovery window of app: any point from", text, StringComparison.Ordinal);
    }
}
