using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Scheduling;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Monitoring;

public class FreshnessTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static List<LogEntry> Log(FakeTimeProvider clock, TempDir dir, params (string Kind, string Result, TimeSpan Ago)[] records)
    {
        var log = new EvidenceLog(dir.File("ev"), null, clock);
        log.Init("test/fresh");
        foreach (var (kind, result, ago) in records.OrderByDescending(r => r.Ago))
        {
            log.Append(new JsonObject
            {
                ["kind"] = kind,
                ["result"] = result,
                ["database"] = "app",
                ["time"] = (clock.GetUtcNow() - ago).ToString("yyyy-MM-dd'T'HH:mm:ss.fff'Z'", System.Globalization.CultureInfo.InvariantCulture),
                ["details"] = new JsonObject { ["scope"] = "live" },
            }, "t");
        }
        return log.ReadEntries(out _);
    }

    [Theory]
    [InlineData(1, HealthState.Ok)]
    [InlineData(23.9, HealthState.Ok)]
    [InlineData(24.5, HealthState.Warning)]
    [InlineData(25.5, HealthState.Warning)]
    [InlineData(26.5, HealthState.Critical)]
    [InlineData(100, HealthState.Critical)]
    public void Backup_age_is_judged_critical_first_then_warning(double hours, HealthState expected)
    {
        using var dir = new TempDir();
        var clock = new FakeTimeProvider(T0);
        var entries = Log(clock, dir, ("backup", "pass", TimeSpan.FromHours(hours)));
        var f = Freshness.Evaluate(entries, ["app"], _ => Thresholds.Default, clock.GetUtcNow()).Single(x => x.Aspect == "backup");
        Assert.Equal(expected, f.State);
    }

    [Fact]
    public void A_failed_backup_does_not_count_and_a_failed_drill_is_critical()
    {
        using var dir = new TempDir();
        var clock = new FakeTimeProvider(T0);
        var entries = Log(clock, dir, ("backup", "pass", TimeSpan.FromHours(30)), ("backup", "error", TimeSpan.FromHours(1)), ("drill", "fail", TimeSpan.FromHours(2)));
        var findings = Freshness.Evaluate(entries, ["app"], _ => Thresholds.Default, clock.GetUtcNow());
        var backup = findings.Single(x => x.Aspect == "backup");
        Assert.Equal(HealthState.Critical, backup.State);
        Assert.Contains("latest attempt", backup.Message, StringComparison.Ordinal);
        Assert.Equal(HealthState.Critical, findings.Single(x => x.Aspect == "drill").State);
    }

    [Fact]
    public void Drill_older_than_its_threshold_is_critical_and_thresholds_come_from_config()
    {
        using var dir = new TempDir();
        var clock = new FakeTimeProvider(T0);
        var entries = Log(clock, dir, ("backup", "pass", TimeSpan.FromHours(1)), ("drill", "pass", TimeSpan.FromDays(36)));
        var cfg = CairnConfig.Parse("databases:\n  app:\n    connection: x\n    monitoring: { backup_warn_after: 30m, backup_critical_after: 2h, drill_critical_after: 40d }\n", "c.yaml");
        var t = cfg.Databases["app"].Monitoring;
        var findings = Freshness.Evaluate(entries, ["app"], _ => t, clock.GetUtcNow());
        Assert.Equal(HealthState.Warning, findings.Single(x => x.Aspect == "backup").State);
        Assert.Equal(HealthState.Ok, findings.Single(x => x.Aspect == "drill").State);
        Assert.Equal(HealthState.Critical, Freshness.Evaluate(entries, ["app"], _ => Thresholds.Default, clock.GetUtcNow()).Single(x => x.Aspect == "drill").State);
    }

    [Fact]
    public void Warning_threshold_after_critical_is_a_config_error()
    {
        Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: x\n    monitoring: { backup_warn_after: 30h, backup_critical_after: 26h }\n", "c.yaml"));
    }
}

public class ScheduleTests
{
    private static ScheduledJob Job(string cron) => CairnConfig.Parse($"databases:\n  app:\n    connection: x\n    schedule: {{ backup: \"{cron}\" }}\n", "c.yaml").Schedules.Single();

    private static DateTimeOffset T(string s) => DateTimeOffset.Parse(s, System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public void Daily_at_midnight_utc()
    {
        Assert.Equal(T("2026-12-02T00:00:00Z"), Job("0 0 * * *").Next(T("2026-12-01T12:00:00Z")));
    }

    [Fact]
    public void First_sunday_of_the_month_as_the_runbook()
    {
        var j = Job("0 3 * * 0#1");
        Assert.Equal(T("2026-12-06T03:00:00Z"), j.Next(T("2026-12-01T00:00:00Z")));
        Assert.Equal(T("2027-01-03T03:00:00Z"), j.Next(T("2026-12-06T03:00:00Z")));
    }

    [Fact]
    public void Missed_slots_run_once_the_latest_slot()
    {
        var j = Job("0 0 * * *");
        Assert.Equal(T("2026-12-01T00:00:00Z"), j.LastSlotBetween(T("2026-11-27T00:00:00Z"), T("2026-12-01T09:00:00Z")));
        Assert.Null(j.LastSlotBetween(T("2026-12-01T00:00:00Z"), T("2026-12-01T09:00:00Z")));
    }

    [Fact]
    public void Bad_cron_names_file_line_and_job()
    {
        var e = Assert.Throws<ConfigException>(() => Job("61 * * * *"));
        Assert.Contains("c.yaml:4", e.Message, StringComparison.Ordinal);
        Assert.Contains("schedule.backup", e.Message, StringComparison.Ordinal);
    }
}

/// <summary>A real HTTP receiver on loopback that records what it is sent.</summary>
public sealed class Receiver : IDisposable
{
    private readonly HttpListener _listener;
    private readonly CancellationTokenSource _cts = new();

    public Receiver()
    {
        // HttpListener cannot bind port 0: take a free port and, if another process takes it first, another one.
        for (var attempt = 1; ; attempt++)
        {
            var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            Port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            _listener = new HttpListener();
            _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
            try
            {
                _listener.Start();
                break;
            }
            catch (HttpListenerException) when (attempt < 5)
            {
                _listener.Close();
            }
        }
        _ = Task.Run(LoopAsync);
    }

    public int Port { get; }

    /// <summary>How many deliveries arrived so far (read under the lock the receiving loop takes).</summary>
    public int Count
    {
        get
        {
            lock (Received)
            {
                return Received.Count;
            }
        }
    }

    public string Url => $"http://127.0.0.1:{Port}/hook";

    public int FailNext { get; set; }

    public List<JsonObject> Received { get; } = [];

    private async Task LoopAsync()
    {
        while (!_cts.IsCancellationRequested)
        {
            HttpListenerContext c;
            try
            {
                c = await _listener.GetContextAsync();
            }
            catch (Exception)
            {
                return;
            }
            using var reader = new StreamReader(c.Request.InputStream, Encoding.UTF8);
            var body = await reader.ReadToEndAsync();
            if (FailNext > 0)
            {
                FailNext--;
                c.Response.StatusCode = 503;
            }
            else
            {
                lock (Received)
                {
                    Received.Add(JsonNode.Parse(body)!.AsObject());
                }
                c.Response.StatusCode = 202;
            }
            c.Response.Close();
        }
    }

    public void Dispose()
    {
        _cts.Cancel();
        _listener.Close();
    }
}

public class AlertTests
{
    private static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static HealthFinding F(HealthState s) => new("app", "backup", s, $"backup is {s}", 3600, T0);

    [Fact]
    public async Task Each_sink_gets_its_payload_shape()
    {
        using var r = new Receiver();
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("url"), r.Url);
        await File.WriteAllTextAsync(dir.File("key"), "R0UTINGKEY");
        var yaml = "alerts:\n"
            + $"  - {{ type: webhook, format: siren, url_file: {dir.File("url")} }}\n"
            + $"  - {{ type: webhook, url_file: {dir.File("url")}, name: plain }}\n"
            + $"  - {{ type: slack, url_file: {dir.File("url")} }}\n"
            + $"  - {{ type: pagerduty, routing_key_file: {dir.File("key")}, endpoint: \"{r.Url}\" }}\n"
            + $"  - {{ type: command, run: \"cat > {dir.File("cmd.json")}\" }}\n";
        var sinks = CairnConfig.Parse(yaml, "c.yaml").Alerts;
        Assert.Equal(5, sinks.Count);
        var alerter = new Alerter(dir.File("state.json"), new FakeTimeProvider(T0), TimeSpan.FromHours(4)) { RetryDelay = TimeSpan.Zero };
        var deliveries = await alerter.ProcessAsync([F(HealthState.Critical)], sinks, default);
        Assert.All(deliveries, d => Assert.True(d.Delivered, d.Error));
        await Eventually.UntilAsync(() => r.Count >= 4, TimeSpan.FromSeconds(10), "four webhook deliveries arriving");
        Assert.Equal(4, r.Received.Count);
        var siren = r.Received.Single(x => x.ContainsKey("incident_type"));
        Assert.Equal("backup_failure", siren["incident_type"]!.GetValue<string>());
        Assert.Equal(1, siren["severity"]!.GetValue<int>());
        Assert.Equal("backup_monitor", siren["source"]!.GetValue<string>());
        Assert.Equal("Critical", siren["policy_name"]!.GetValue<string>());
        Assert.Equal("system", siren["created_by"]!.GetValue<string>());
        Assert.NotNull(siren["context"]!["check"]);
        Assert.NotNull(siren["variables"]!["last_check"]);
        Assert.Contains(r.Received, x => x["text"]?.GetValue<string>().Contains("CRITICAL", StringComparison.Ordinal) == true);
        var pd = r.Received.Single(x => x.ContainsKey("routing_key"));
        Assert.Equal("trigger", pd["event_action"]!.GetValue<string>());
        Assert.Equal("critical", pd["payload"]!["severity"]!.GetValue<string>());
        Assert.StartsWith("cairn/", pd["dedup_key"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains(r.Received, x => x["state"]?.GetValue<string>() == "CRITICAL" && x["source"]?.GetValue<string>() == "cairn");
        Assert.Equal("CRITICAL", JsonNode.Parse(await File.ReadAllTextAsync(dir.File("cmd.json")))!["state"]!.GetValue<string>());
    }

    [Fact]
    public async Task One_alert_per_state_change_a_reminder_later_and_a_resolve()
    {
        using var r = new Receiver();
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("key"), "K");
        var sinks = new List<AlertSink> { new("pagerduty", "pd", null, null, dir.File("key"), null, r.Url) };
        var clock = new FakeTimeProvider(T0);
        var alerter = new Alerter(dir.File("state.json"), clock, TimeSpan.FromHours(4)) { RetryDelay = TimeSpan.Zero };
        Assert.Empty(await alerter.ProcessAsync([F(HealthState.Ok)], sinks, default));
        Assert.Single(await alerter.ProcessAsync([F(HealthState.Critical)], sinks, default));
        Assert.Empty(await alerter.ProcessAsync([F(HealthState.Critical)], sinks, default));
        clock.Advance(TimeSpan.FromHours(5));
        var reminder = Assert.Single(await alerter.ProcessAsync([F(HealthState.Critical)], sinks, default));
        Assert.True(reminder.Alert.Reminder);
        Assert.Single(await alerter.ProcessAsync([F(HealthState.Ok)], sinks, default));
        await Eventually.UntilAsync(() => r.Count >= 3, TimeSpan.FromSeconds(10), "three PagerDuty events arriving");
        Assert.Equal(["trigger", "trigger", "resolve"], r.Received.Select(x => x["event_action"]!.GetValue<string>()));
        Assert.Single(r.Received.Select(x => x["dedup_key"]!.GetValue<string>()).Distinct());
    }

    [Fact]
    public async Task A_receiver_that_is_down_is_retried_with_backoff_and_again_next_run()
    {
        using var r = new Receiver { FailNext = 5 };
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("url"), r.Url);
        var sinks = new List<AlertSink> { new("slack", "slack", null, dir.File("url"), null, null, null) };
        var alerter = new Alerter(dir.File("state.json"), TimeProvider.System, TimeSpan.FromHours(4)) { RetryDelay = TimeSpan.FromMilliseconds(10) };
        var first = Assert.Single(await alerter.ProcessAsync([F(HealthState.Warning)], sinks, default));
        Assert.False(first.Delivered);
        Assert.Equal(3, first.Attempts);
        // The next run tells the receiver again: 2 more failures, then the third attempt lands.
        var second = Assert.Single(await alerter.ProcessAsync([F(HealthState.Warning)], sinks, default));
        Assert.True(second.Delivered, second.Error);
        Assert.Equal(3, second.Attempts);
        Assert.Empty(await alerter.ProcessAsync([F(HealthState.Warning)], sinks, default));
        Assert.Single(r.Received);

        await File.WriteAllTextAsync(dir.File("dead-url"), "http://127.0.0.1:1/nothing");
        var dead = new List<AlertSink> { new("slack", "dead", null, dir.File("dead-url"), null, null, null) };
        var d = Assert.Single(await alerter.ProcessAsync([F(HealthState.Critical)], dead, default));
        Assert.False(d.Delivered);
        Assert.NotNull(d.Error);
    }
}
