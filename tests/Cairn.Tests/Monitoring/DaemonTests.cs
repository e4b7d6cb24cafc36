using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json.Nodes;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.Monitoring;

public class DaemonTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static int FreePort()
    {
        var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var p = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return p;
    }

    private static string Config(string repo, string connection, string urlFile) => $"""
        repository: {repo}
        databases:
          app:
            connection: "{connection}"
            schedule: {"{"} backup: "*/3 * * * * *", check: "*/2 * * * * *" {"}"}
            monitoring: {"{"} backup_warn_after: 5s, backup_critical_after: 7s {"}"}
        alerts:
          - {"{"} type: webhook, url_file: {urlFile} {"}"}
        """;

    [Fact]
    public async Task Daemon_runs_backups_serves_metrics_alerts_when_backups_fail_and_stops_on_sigterm()
    {
        var db = await pg.CreateDatabaseAsync("daemon", DemoSchema.Sql(100));
        using var dir = new TempDir();
        using var receiver = new Receiver();
        await File.WriteAllTextAsync(dir.File("url"), receiver.Url);
        var env = new Dictionary<string, string> { ["CAIRN_CONFIG"] = dir.File("cairn.yaml") };
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), Config(dir.File("repo"), pg.Server.Url(db), dir.File("url")));
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        async Task<bool> AnswersAsync(int p)
        {
            try
            {
                using var _ = await http.GetAsync(new Uri($"http://127.0.0.1:{p}/healthz"));
                return true;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }

        // The port is found free a moment before the daemon binds it: if another process took it meanwhile, the
        // daemon exits naming the address, and it starts again on another port.
        var log = new System.Text.StringBuilder();
        Process daemon;
        int port;
        for (var attempt = 1; ; attempt++)
        {
            port = FreePort();
            daemon = Process.Start(CairnProcess.StartInfo(["daemon", "--listen", $"127.0.0.1:{port}", "--tick-seconds", "1"], env))!;
            lock (log)
            {
                log.Clear();
            }
            daemon.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
            daemon.BeginErrorReadLine();
            _ = daemon.StandardOutput.ReadToEndAsync();
            var candidate = daemon;
            var listening = port;
            await Eventually.UntilAsync(async () => candidate.HasExited || await AnswersAsync(listening), TimeSpan.FromSeconds(60), "the daemon listening or exiting");
            if (!daemon.HasExited)
            {
                break;
            }
            daemon.Dispose();
            lock (log)
            {
                Assert.True(attempt < 3 && log.ToString().Contains("in use", StringComparison.OrdinalIgnoreCase), $"the daemon exited at start: {log}");
            }
        }
        using var _daemon = daemon;
        try
        {
            // Backups happen on schedule and show in /metrics.
            var deadline = Stopwatch.StartNew();
            string metrics = "";
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(1000);
                try
                {
                    metrics = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics"));
                }
                catch (HttpRequestException)
                {
                    continue;
                }
                if (metrics.Contains("cairn_backups_total{database=\"app\",result=\"pass\"} 2", StringComparison.Ordinal))
                {
                    break;
                }
            }
            Assert.Contains("cairn_backups_total{database=\"app\",result=\"pass\"} 2", metrics, StringComparison.Ordinal);
            Assert.Contains("cairn_backup_age_seconds{database=\"app\"}", metrics, StringComparison.Ordinal);
            Assert.Contains("# TYPE cairn_backups_total counter", metrics, StringComparison.Ordinal);
            Assert.Equal("ok\n", await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/healthz")));

            // A bad config on SIGHUP is refused and the old one kept.
            await File.WriteAllTextAsync(dir.File("cairn.yaml"), "databases: [oops\n");
            using (var k = Process.Start("kill", ["-HUP", daemon.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            await Eventually.UntilAsync(() => { lock (log) { return log.ToString().Contains("reload refused", StringComparison.Ordinal); } }, TimeSpan.FromSeconds(30), "the daemon refusing the bad config");

            // Now make backups fail (unreachable server): the check job raises CRITICAL and alerts once.
            int seen;
            lock (receiver.Received)
            {
                seen = receiver.Received.Count;
            }
            await File.WriteAllTextAsync(dir.File("cairn.yaml"), Config(dir.File("repo"), "postgresql://nobody@127.0.0.1:1/app", dir.File("url")));
            using (var k = Process.Start("kill", ["-HUP", daemon.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            deadline.Restart();
            while (deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(1000);
                lock (receiver.Received)
                {
                    if (receiver.Received.Skip(seen).Any(a => a["check"]?.GetValue<string>() == "backup" && a["state"]?.GetValue<string>() == "CRITICAL"))
                    {
                        break;
                    }
                }
            }
            await Task.Delay(3000); // more check runs: still one alert for the one state change
            lock (receiver.Received)
            {
                var fresh = receiver.Received.Skip(seen).ToList();
                Assert.Single(fresh, a => a["check"]?.GetValue<string>() == "backup" && a["state"]?.GetValue<string>() == "CRITICAL");
                Assert.True(fresh.Any(a => a["check"]?.GetValue<string>() == "reachable" && a["state"]?.GetValue<string>() == "CRITICAL"), string.Join("\n", receiver.Received.Select(a => a.ToJsonString())));
            }
        }
        finally
        {
            using (var k = Process.Start("kill", ["-TERM", daemon.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await daemon.WaitForExitAsync(cts.Token);
        }
        Assert.Equal(0, daemon.ExitCode);
        var (_, list, _) = await CairnProcess.RunAsync(["evidence", "list", "--json"], env);
        var records = JsonNode.Parse(list)!.AsArray();
        Assert.Contains(records, r => r!["kind"]!.GetValue<string>() == "backup" && r["result"]!.GetValue<string>() == "error");
        Assert.Contains(records, r => r!["kind"]!.GetValue<string>() == "alert");
        // The configurations the daemon ran with are on the record by their SHA-256: the first at start, the last on its reload.
        static string Sha(string text) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
        var configs = records.Where(r => r!["kind"]!.GetValue<string>() == "config-change").Select(r => (r!["details"]!["action"]!.GetValue<string>(), r["details"]!["sha256"]!.GetValue<string>())).ToList();
        Assert.Equal([("load", Sha(Config(dir.File("repo"), pg.Server.Url(db), dir.File("url")))), ("reload", Sha(await File.ReadAllTextAsync(dir.File("cairn.yaml"))))], configs);
        lock (log)
        {
            Assert.Contains("daemon stopped", log.ToString(), StringComparison.Ordinal);
        }
    }
}

public class CheckCommandTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task Check_exit_codes_nagios_line_and_prometheus_textfile()
    {
        var db = await pg.CreateDatabaseAsync("check", DemoSchema.Sql(100));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
              gone:
                connection: "postgresql://nobody@127.0.0.1:1/gone"
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        // Nothing backed up yet: CRITICAL (2), one summary line first.
        var (code, output, _) = await cli.RunAsync("check", "app", "--nagios");
        Assert.Equal(2, code);
        Assert.StartsWith("CAIRN CRITICAL - ", output, StringComparison.Ordinal);
        Assert.Single(output.Trim().Split('\n'));
        Assert.Equal(0, (await cli.RunAsync("backup", "app")).Code);
        // Backed up, no drill yet: WARNING (1).
        (code, output, _) = await cli.RunAsync("check", "app", "--prometheus-textfile", dir.File("cairn.prom"));
        Assert.True(code == 1, output);
        var prom = await File.ReadAllTextAsync(dir.File("cairn.prom"));
        Assert.Contains("cairn_backup_age_seconds{database=\"app\"}", prom, StringComparison.Ordinal);
        Assert.Contains("cairn_health_state{database=\"app\",check=\"backup\"} 0", prom, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(dir.Path, ".cairn.prom.*"));
        Assert.Equal(0, (await cli.RunAsync("drill", "app")).Code);
        Assert.Equal(0, (await cli.RunAsync("check", "app")).Code);
        // An unreachable database is a CRITICAL finding, not a crash.
        (code, output, _) = await cli.RunAsync("check", "gone", "--json");
        Assert.Equal(2, code);
        var findings = JsonNode.Parse(output)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "reachable" && f["state"]!.GetValue<string>() == "CRITICAL");
        // A broken config is UNKNOWN (3).
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), "databases: [\n");
        (code, output, _) = await cli.RunAsync("check");
        Assert.Equal(3, code);
        Assert.StartsWith("CAIRN UNKNOWN - ", output, StringComparison.Ordinal);
    }
}
