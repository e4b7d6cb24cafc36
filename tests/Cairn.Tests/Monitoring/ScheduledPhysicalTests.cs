using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Cairn.Tests.Support;

namespace Cairn.Tests.Monitoring;

/// <summary>The daemon schedules physical backups and drills (a drill on a database with only physical backups drills those), and a failed backup alerts at once.</summary>
public class ScheduledPhysicalTests
{
    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    [Fact]
    public async Task Daemon_runs_scheduled_physical_backups_and_drills_and_alerts_at_once_when_a_backup_fails()
    {
        await using var c = await ArchivingCluster.StartAsync();
        using var receiver = new Receiver();
        await File.WriteAllTextAsync(c.Dir.File("url"), receiver.Url);
        var schedule = "    schedule: { backup_physical: \"*/5 * * * * *\", drill: \"*/20 * * * * *\" }\n";
        var alerts = $"alerts:\n  - {{ type: webhook, url_file: {c.Dir.File("url")} }}\ndaemon:\n  listen: 127.0.0.1:{FreePort()}\n  tick: 1s\n";
        await File.WriteAllTextAsync(c.Dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{c.Server.Url()}\"\n    data_directory: {c.Server.DataDirectory}\n{schedule}{alerts}");
        await c.Server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");

        using var daemon = Process.Start(CairnProcess.StartInfo(["daemon"], c.Env))!;
        var log = new System.Text.StringBuilder();
        daemon.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        daemon.BeginErrorReadLine();
        _ = daemon.StandardOutput.ReadToEndAsync();
        try
        {
            JsonArray records = [];
            var deadline = Stopwatch.StartNew();
            var n = 2;
            while (deadline.Elapsed < TimeSpan.FromSeconds(150))
            {
                // Keep WAL moving so the recovery window a random-target drill picks from is not empty.
                await c.Server.ExecuteAsync($"INSERT INTO t VALUES ({n++})");
                await c.Server.ExecuteAsync("SELECT pg_switch_wal()");
                await Task.Delay(2000);
                var (_, list, _) = await c.Cli.RunAsync("evidence", "list", "--json");
                records = JsonNode.Parse(list)!.AsArray();
                // A drill slot that comes before the first physical backup has finished drills nothing physical: wait for a physical one.
                if (records.Any(r => r!["kind"]!.GetValue<string>() == "drill" && r["details"]?["type"]?.GetValue<string>() == "physical"))
                {
                    break;
                }
            }
            string Dump()
            {
                lock (log)
                {
                    return log + "\n" + records.ToJsonString();
                }
            }
            Assert.True(records.Any(r => r!["kind"]!.GetValue<string>() == "backup" && r["result"]!.GetValue<string>() == "pass" && r["details"]?["type"]?.GetValue<string>() == "physical"), Dump());
            var drill = records.LastOrDefault(r => r!["kind"]!.GetValue<string>() == "drill" && r["details"]?["type"]?.GetValue<string>() == "physical");
            Assert.True(drill is not null, Dump());
            Assert.Equal("physical", drill!["details"]!["type"]!.GetValue<string>());
            Assert.True(drill["result"]!.GetValue<string>() == "pass", Dump());

            // The server goes away: the next scheduled backup fails and the alert comes at once, not after 26 hours of freshness.
            // Backups only from now on: a physical drill cancelled by the SIGTERM below leaves its scratch folder behind (known, not fixed here).
            await File.WriteAllTextAsync(c.Dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"postgresql://nobody@127.0.0.1:1/app\"\n    schedule: {{ backup_physical: \"*/5 * * * * *\" }}\n{alerts}");
            using (var k = Process.Start("kill", ["-HUP", daemon.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            deadline.Restart();
            var alerted = false;
            while (!alerted && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(1000);
                lock (receiver.Received)
                {
                    alerted = receiver.Received.Any(a => a["check"]?.GetValue<string>() == "backup_failed" && a["state"]?.GetValue<string>() == "CRITICAL");
                }
            }
            Assert.True(alerted, Dump() + string.Join("\n", receiver.Received.Select(a => a.ToJsonString())));
            await Task.Delay(6000); // another failed run: still one alert for the one state change
            lock (receiver.Received)
            {
                Assert.Single(receiver.Received, a => a["check"]?.GetValue<string>() == "backup_failed" && a["state"]?.GetValue<string>() == "CRITICAL");
            }
        }
        finally
        {
            using (var k = Process.Start("kill", ["-TERM", daemon.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await daemon.WaitForExitAsync(cts.Token);
        }
    }
}
