using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Monitoring;

/// <summary>A real 'cairn daemon' process: SIGTERM while idle and during a job, one run of missed slots, /healthz on a stalled loop.</summary>
public class DaemonLifecycleTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private sealed class Daemon : IAsyncDisposable
    {
        private readonly StringBuilder _log = new();

        public Daemon(Dictionary<string, string> env, params string[] extra)
        {
            var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            l.Start();
            Port = ((IPEndPoint)l.LocalEndpoint).Port;
            l.Stop();
            Process = Process.Start(CairnProcess.StartInfo(["daemon", "--listen", $"127.0.0.1:{Port}", "--tick-seconds", "1", .. extra], env))!;
            Process.ErrorDataReceived += (_, e) => { lock (_log) { _log.AppendLine(e.Data); } };
            Process.BeginErrorReadLine();
            _ = Process.StandardOutput.ReadToEndAsync();
        }

        public Process Process { get; }

        public int Port { get; }

        public string Log { get { lock (_log) { return _log.ToString(); } } }

        public async Task WaitForLogAsync(string text, TimeSpan within)
        {
            var sw = Stopwatch.StartNew();
            while (!Log.Contains(text, StringComparison.Ordinal))
            {
                Assert.True(sw.Elapsed < within && !Process.HasExited, $"no '{text}' in the daemon's log within {within}:\n{Log}");
                await Task.Delay(50);
            }
        }

        public async Task<int> TermAsync(TimeSpan within)
        {
            using (var k = Process.Start("kill", ["-TERM", Process.Id.ToString(CultureInfo.InvariantCulture)])) { await k!.WaitForExitAsync(); }
            using var cts = new CancellationTokenSource(within);
            await Process.WaitForExitAsync(cts.Token);
            return Process.ExitCode;
        }

        public async ValueTask DisposeAsync()
        {
            if (!Process.HasExited)
            {
                Process.Kill(entireProcessTree: true);
                await Process.WaitForExitAsync();
            }
            Process.Dispose();
        }
    }

    private async Task<(TempDir Dir, Dictionary<string, string> Env, string Db)> SetUpAsync(string schedule, string extraDatabaseYaml = "", string? sql = null)
    {
        var db = await pg.CreateDatabaseAsync("daemonlc", sql ?? DemoSchema.Sql(30));
        var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_CONFIG"] = dir.File("cairn.yaml") };
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"repository: {dir.File("repo")}\ndatabases:\n  app:\n    connection: \"{pg.Server.Url(db)}\"\n    schedule: {{ {schedule} }}\n{extraDatabaseYaml}");
        return (dir, env, db);
    }

    private static async Task<List<JsonNode>> RecordsAsync(Dictionary<string, string> env, string kind)
    {
        var (code, list, err) = await CairnProcess.RunAsync(["evidence", "list", "--kind", kind, "--json"], env);
        Assert.True(code == 0, err);
        return [.. JsonNode.Parse(list)!.AsArray().Select(r => r!)];
    }

    [Fact]
    public async Task Sigterm_while_idle_stops_the_daemon_with_exit_0()
    {
        var (dir, env, _) = await SetUpAsync("backup: \"0 12 1 1 *\"");
        using var _d = dir;
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        await using var daemon = new Daemon(env);
        await daemon.WaitForLogAsync("daemon started", TimeSpan.FromSeconds(60));
        var sw = Stopwatch.StartNew();
        Assert.Equal(0, await daemon.TermAsync(TimeSpan.FromSeconds(20)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"took {sw.Elapsed} to stop");
        Assert.Contains("daemon stopped", daemon.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sigterm_during_a_backup_job_exits_0_commits_nothing_half_and_releases_the_lock()
    {
        var (dir, env, _) = await SetUpAsync("backup: \"*/2 * * * * *\"", sql: DemoSchema.Sql(30) + "; CREATE TABLE bulk AS SELECT i, md5(i::text) || repeat('x', 300) AS pad FROM generate_series(1, 400000) i");
        using var _d = dir;
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        await using var daemon = new Daemon(env);
        await daemon.WaitForLogAsync("job started", TimeSpan.FromSeconds(60));
        var locks = dir.File("repo/locks");
        var sw = Stopwatch.StartNew();
        while (!Directory.Exists(locks) || !Directory.EnumerateFiles(locks).Any())
        {
            Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), "the backup job never took its lock:\n" + daemon.Log);
            await Task.Delay(10);
        }
        Assert.Equal(0, await daemon.TermAsync(TimeSpan.FromSeconds(60)));
        var log = daemon.Log;
        Assert.Contains("daemon stopped", log, StringComparison.Ordinal);
        Assert.True(log.IndexOf("job finished", StringComparison.Ordinal) is var f && f >= 0 && f < log.IndexOf("daemon stopped", StringComparison.Ordinal), log);
        Assert.Empty(Directory.EnumerateFiles(locks));
        // The interrupted backup left no snapshot; what is there verifies.
        var (code, json, err) = await CairnProcess.RunAsync(["snapshots", "--json"], env);
        Assert.True(code == 0, err);
        Assert.Empty(JsonNode.Parse(json)!.AsArray());
        var verify = await CairnProcess.RunAsync(["verify"], env);
        Assert.True(verify.Code == 0, verify.Out + verify.Err);
    }

    [Fact]
    public async Task Ten_missed_daily_slots_run_once_at_start_up()
    {
        var (dir, env, _) = await SetUpAsync("backup: \"0 12 * * *\"");
        using var _d = dir;
        // The last backup ran ten days ago: the repository and its evidence are made by the CLI on a clock set back.
        var clock = new FakeTimeProvider(TimeProvider.System.GetUtcNow().AddDays(-10));
        async Task<int> RunAt(params string[] args)
        {
            var o = new StringWriter();
            var ctx = new CliContext(new CliConsole(o, o, false, false), clock, k => env.GetValueOrDefault(k) ?? (k == "CAIRN_PASSPHRASE" ? TestData.Passphrase : null));
            var code = await CairnCli.RunAsync(args, ctx);
            Assert.True(code == 0, o.ToString());
            return code;
        }
        await RunAt("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        await RunAt("backup", "app");
        Assert.Single(await RecordsAsync(env, "backup"));

        await using var daemon = new Daemon(env);
        await daemon.WaitForLogAsync("missed run will run once now", TimeSpan.FromSeconds(60));
        await daemon.WaitForLogAsync("job finished", TimeSpan.FromSeconds(120));
        await Task.Delay(4000); // several more ticks: nothing else is due until tomorrow noon
        Assert.Equal(0, await daemon.TermAsync(TimeSpan.FromSeconds(30)));
        var log = daemon.Log;
        Assert.Equal(1, log.Split('\n').Count(l => l.Contains("missed run will run once now", StringComparison.Ordinal)));
        Assert.Equal(1, log.Split('\n').Count(l => l.Contains("job started", StringComparison.Ordinal)));
        var backups = await RecordsAsync(env, "backup");
        Assert.Equal(2, backups.Count);
        Assert.Equal("pass", backups[1]["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Healthz_answers_503_while_a_job_stalls_the_loop_and_200_again_after()
    {
        var (dir, env, _) = await SetUpAsync("verify_live: \"*/2 * * * * *\"", "    checks:\n      - command: { name: slow, run: \"sleep 6\", timeout: 1m }\n");
        using var _d = dir;
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        await using var daemon = new Daemon(env, "--healthz-stale-after", "2s");
        await daemon.WaitForLogAsync("daemon started", TimeSpan.FromSeconds(60));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var url = new Uri($"http://127.0.0.1:{daemon.Port}/healthz");
        async Task<(HttpStatusCode, string)> Get()
        {
            using var r = await http.GetAsync(url);
            return (r.StatusCode, await r.Content.ReadAsStringAsync());
        }
        var first = await Get();
        Assert.True(first.Item1 == HttpStatusCode.OK || daemon.Log.Contains("job started", StringComparison.Ordinal), $"{first}");
        await daemon.WaitForLogAsync("job started", TimeSpan.FromSeconds(60));
        await Task.Delay(3500);
        var stalled = await Get();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, stalled.Item1);
        Assert.Contains("scheduler loop stalled", stalled.Item2, StringComparison.Ordinal);
        await daemon.WaitForLogAsync("job finished", TimeSpan.FromSeconds(60));
        await Task.Delay(1500);
        // Right after a job the loop ticks again (the next job may start at once; poll for an OK between jobs).
        var sw = Stopwatch.StartNew();
        (HttpStatusCode, string) after;
        do
        {
            after = await Get();
        }
        while (after.Item1 != HttpStatusCode.OK && sw.Elapsed < TimeSpan.FromSeconds(20) && await Task.Delay(100).ContinueWith(_ => true));
        Assert.Equal(HttpStatusCode.OK, after.Item1);
        Assert.Equal(0, await daemon.TermAsync(TimeSpan.FromSeconds(60)));
    }
}
