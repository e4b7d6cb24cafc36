using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using System.Text.Json;
using System.Text;
using Cairn.Operations.Configuration;
using Cairn.Repository;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Monitoring;

/// <summary>One configured alert receiver. Secrets (URLs, routing keys) come from files.</summary>
public sealed record AlertSink(string Type, string Name, string? Format, string? UrlFile, string? RoutingKeyFile, string? Run, string? Endpoint)
{
    /// <summary>Reads the <c>alerts:</c> list (at config load); errors name the file and line.</summary>
    internal static List<AlertSink> Parse(YamlSequenceNode? node, string file)
    {
        var result = new List<AlertSink>();
        foreach (var item in node?.Children ?? [])
        {
            if (item is not YamlMappingNode m)
            {
                throw new ConfigException($"{file}:{item.Start.Line}: each alert is a mapping like {{ type: slack, url_file: /etc/cairn/slack.url }}");
            }
            string? S(string k) => m.Children.TryGetValue(new YamlScalarNode(k), out var v) ? (v as YamlScalarNode)?.Value : null;
            var type = S("type") ?? throw new ConfigException($"{file}:{item.Start.Line}: alerts: 'type' is required (webhook, slack, pagerduty, command)");
            foreach (var k in m.Children.Keys.Select(k => (k as YamlScalarNode)?.Value))
            {
                if (k is not ("type" or "format" or "url_file" or "routing_key_file" or "run" or "endpoint" or "name"))
                {
                    throw new ConfigException($"{file}:{item.Start.Line}: alerts: unknown key '{k}' (known: type, name, format, url_file, routing_key_file, run, endpoint)");
                }
            }
            var sink = new AlertSink(type, S("name") ?? type, S("format"), S("url_file"), S("routing_key_file"), S("run"), S("endpoint"));
            var missing = type switch
            {
                "webhook" or "slack" when sink.UrlFile is null => "url_file",
                "pagerduty" when sink.RoutingKeyFile is null => "routing_key_file",
                "command" when sink.Run is null => "run",
                "webhook" or "slack" or "pagerduty" or "command" => null,
                _ => throw new ConfigException($"{file}:{item.Start.Line}: alerts: unknown type '{type}' (webhook, slack, pagerduty, command)"),
            };
            if (missing is not null)
            {
                throw new ConfigException($"{file}:{item.Start.Line}: alerts: a {type} alert needs '{missing}'");
            }
            if (sink.Format is not (null or "json" or "siren"))
            {
                throw new ConfigException($"{file}:{item.Start.Line}: alerts: format must be json or siren");
            }
            result.Add(sink);
        }
        return result;
    }
}

/// <summary>A state change (or a reminder) to tell the receivers about.</summary>
public sealed record Alert(string Database, string Aspect, HealthState State, HealthState Previous, string Message, DateTimeOffset Time, bool Reminder, bool Test = false)
{
    public string DedupKey => Incident is { } i ? $"cairn/{Environment.MachineName}/{Database}/incident/{i.Id}" : $"cairn/{Environment.MachineName}/{Database}/{Aspect}";

    /// <summary>Set for an incident's alerts: Siren's incident fields come from the runbook, not from a health check.</summary>
    public IncidentAlert? Incident { get; init; }
}

/// <summary>An incident's alert fields: the runbook's incident_type (database_corruption, catastrophic_failure, data_breach), severity 1–3, policy_name, and the moment (start, step_failed, end).</summary>
public sealed record IncidentAlert(string Id, string IncidentType, int Severity, string PolicyName, string Moment, string? Step);

public sealed record Delivery(AlertSink Sink, Alert Alert, bool Delivered, int Attempts, string? Error);

/// <summary>
/// Decides which alerts to send (one per state change, reminders after an interval) and sends them,
/// with retries and backoff, remembering per receiver what it was last told so a receiver that was
/// down is told on the next run. State lives in a small JSON file between runs.
/// </summary>
public sealed class Alerter(string stateFile, TimeProvider time, TimeSpan reminderInterval, HttpMessageHandler? handler = null)
{
    private static readonly HttpClient SharedClient = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly HttpClient _http = handler is null ? SharedClient : new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(10) };

    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    public int Attempts { get; init; } = 3;

    public async Task<List<Delivery>> ProcessAsync(IReadOnlyList<HealthFinding> findings, IReadOnlyList<AlertSink> sinks, CancellationToken ct)
    {
        var state = Load();
        var deliveries = new List<Delivery>();
        var now = time.GetUtcNow();
        foreach (var f in findings)
        {
            foreach (var sink in sinks)
            {
                var key = $"{f.Database}|{f.Aspect}|{sink.Name}";
                var known = state[key] as JsonObject;
                var previous = Enum.TryParse<HealthState>(known?["state"]?.GetValue<string>(), out var p) ? p : HealthState.Ok;
                var lastSent = known?["sent"]?.GetValue<string>() is { } s ? DateTimeOffset.Parse(s, CultureInfo.InvariantCulture) : (DateTimeOffset?)null;
                var changed = previous != f.State;
                var reminder = !changed && f.State != HealthState.Ok && lastSent is { } ls && now - ls >= reminderInterval;
                if (!changed && !reminder)
                {
                    continue;
                }
                if (changed && known is null && f.State == HealthState.Ok)
                {
                    continue; // first sight and healthy: nothing to resolve
                }
                var alert = new Alert(f.Database, f.Aspect, f.State, previous, f.Message, now, reminder);
                var d = await SendAsync(sink, alert, ct).ConfigureAwait(false);
                deliveries.Add(d);
                if (d.Delivered)
                {
                    state[key] = new JsonObject { ["state"] = f.State.ToString(), ["sent"] = now.ToString("O", CultureInfo.InvariantCulture) };
                }
            }
        }
        Save(state);
        return deliveries;
    }

    public async Task<Delivery> SendAsync(AlertSink sink, Alert alert, CancellationToken ct)
    {
        string? error = null;
        for (var attempt = 1; attempt <= Attempts; attempt++)
        {
            try
            {
                await SendOnceAsync(sink, alert, ct).ConfigureAwait(false);
                return new Delivery(sink, alert, true, attempt, null);
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or IOException or InvalidOperationException && !ct.IsCancellationRequested)
            {
                error = e is TaskCanceledException ? "timed out" : e.Message;
                if (attempt < Attempts)
                {
                    await Task.Delay(RetryDelay * Math.Pow(2, attempt - 1), time, ct).ConfigureAwait(false);
                }
            }
        }
        return new Delivery(sink, alert, false, Attempts, error);
    }

    private async Task SendOnceAsync(AlertSink sink, Alert alert, CancellationToken ct)
    {
        switch (sink.Type)
        {
            case "webhook":
                await PostAsync(ReadSecret(sink.UrlFile!), sink.Format == "siren" ? SirenPayload(alert) : JsonPayload(alert), ct).ConfigureAwait(false);
                break;
            case "slack":
                await PostAsync(ReadSecret(sink.UrlFile!), SlackPayload(alert), ct).ConfigureAwait(false);
                break;
            case "pagerduty":
                await PostAsync(sink.Endpoint ?? "https://events.pagerduty.com/v2/enqueue", PagerDutyPayload(alert, ReadSecret(sink.RoutingKeyFile!)), ct).ConfigureAwait(false);
                break;
            case "command":
                var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
                psi.ArgumentList.Add("-c");
                psi.ArgumentList.Add(sink.Run!);
                // Allow-listed, like every child: an alert command never sees a passphrase or PGPASSWORD.
                Cairn.PostgreSql.Programs.ChildEnvironment.Apply(psi, server: false);
                using (var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {sink.Run}"))
                {
                    await p.StandardInput.WriteAsync(JsonPayload(alert).ToJsonString()).ConfigureAwait(false);
                    p.StandardInput.Close();
                    var err = p.StandardError.ReadToEndAsync(ct);
                    _ = p.StandardOutput.ReadToEndAsync(ct);
                    using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    cts.CancelAfter(TimeSpan.FromSeconds(30));
                    await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
                    if (p.ExitCode != 0)
                    {
                        throw new InvalidOperationException($"alert command exited {p.ExitCode}: {(await err.ConfigureAwait(false)).Trim()}");
                    }
                }
                break;
            default:
                throw new InvalidOperationException($"unknown alert type {sink.Type}");
        }
    }

    private async Task PostAsync(string url, JsonObject body, CancellationToken ct)
    {
        using var content = new StringContent(body.ToJsonString(), Encoding.UTF8);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var r = await _http.PostAsync(new Uri(url), content, ct).ConfigureAwait(false);
        if (!r.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"the receiver answered {(int)r.StatusCode} {r.ReasonPhrase}");
        }
    }

    private static string ReadSecret(string file)
    {
        try
        {
            return File.ReadAllText(file).Trim();
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"cannot read {file}: {e.Message}");
        }
    }

    public static JsonObject JsonPayload(Alert a)
    {
        var o = BasePayload(a);
        if (a.Incident is { } i)
        {
            o["incident"] = IncidentObject(i);
        }
        return o;
    }

    private static JsonObject IncidentObject(IncidentAlert i) => new()
    {
        ["id"] = i.Id,
        ["incident_type"] = i.IncidentType,
        ["severity"] = i.Severity,
        ["policy_name"] = i.PolicyName,
        ["moment"] = i.Moment,
        ["step"] = i.Step,
    };

    private static JsonObject BasePayload(Alert a) => new()
    {
        ["source"] = "cairn",
        ["host"] = Environment.MachineName,
        ["database"] = a.Database,
        ["check"] = a.Aspect,
        ["state"] = a.State.ToString().ToUpperInvariant(),
        ["previous_state"] = a.Previous.ToString().ToUpperInvariant(),
        ["reminder"] = a.Reminder,
        ["test"] = a.Test,
        ["message"] = a.Message,
        ["time"] = a.Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        ["dedup_key"] = a.DedupKey,
    };

    /// <summary>The runbook's Siren incident: incident_type, severity, source, policy_name, context, variables, created_by.</summary>
    public static JsonObject SirenPayload(Alert a) => a.Incident is { } i ? IncidentSirenPayload(a, i) : HealthSirenPayload(a);

    /// <summary>An incident in Siren's shape: the runbook's incident_type, severity and policy_name; resolved at the end.</summary>
    private static JsonObject IncidentSirenPayload(Alert a, IncidentAlert i) => new()
    {
        ["incident_type"] = i.IncidentType,
        ["severity"] = i.Severity,
        ["source"] = "cairn_incident",
        ["policy_name"] = i.PolicyName,
        ["status"] = i.Moment == "end" ? "resolved" : "open",
        ["context"] = new JsonObject { ["incident"] = i.Id, ["database"] = a.Database, ["moment"] = i.Moment, ["step"] = i.Step, ["message"] = a.Message, ["dedup_key"] = a.DedupKey },
        ["variables"] = new JsonObject { ["time"] = a.Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), ["host"] = Environment.MachineName },
        ["created_by"] = "system",
    };

    private static JsonObject HealthSirenPayload(Alert a) => new()
    {
        ["incident_type"] = a.Aspect switch { "backup" or "backup_failed" => "backup_failure", "drill" => "restore_drill_failure", "verify_live" => "verification_failure", _ => a.Aspect + "_failure" },
        ["severity"] = a.State switch { HealthState.Critical => 1, HealthState.Warning => 2, HealthState.Unknown => 2, _ => 3 },
        ["source"] = "backup_monitor",
        ["policy_name"] = a.State switch { HealthState.Critical => "Critical", HealthState.Ok => "Resolved", _ => "Warning" },
        ["status"] = a.State == HealthState.Ok ? "resolved" : "open",
        ["context"] = new JsonObject { ["check"] = a.Aspect == "backup" ? "daily_backup_missing" : a.Aspect, ["database"] = a.Database, ["state"] = a.State.ToString().ToUpperInvariant(), ["message"] = a.Message, ["dedup_key"] = a.DedupKey },
        ["variables"] = new JsonObject { ["last_check"] = a.Time.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), ["host"] = Environment.MachineName },
        ["created_by"] = "system",
    };

    public static JsonObject SlackPayload(Alert a)
    {
        var icon = a.State switch { HealthState.Ok => ":large_green_circle:", HealthState.Warning => ":large_yellow_circle:", HealthState.Critical => ":red_circle:", _ => ":white_circle:" };
        var text = $"{icon} *{a.State.ToString().ToUpperInvariant()}* {a.Database} {a.Aspect}{(a.Reminder ? " (reminder)" : "")}{(a.Test ? " (test)" : "")}: {a.Message}";
        return new JsonObject { ["text"] = text };
    }

    /// <summary>PagerDuty Events API v2: trigger while unhealthy, resolve when OK, one stable dedup_key per database and check.</summary>
    public static JsonObject PagerDutyPayload(Alert a, string routingKey) => new()
    {
        ["routing_key"] = routingKey,
        ["event_action"] = a.State == HealthState.Ok ? "resolve" : "trigger",
        ["dedup_key"] = a.DedupKey,
        ["payload"] = new JsonObject
        {
            ["summary"] = $"{a.Database} {a.Aspect}: {a.Message}",
            ["source"] = Environment.MachineName,
            ["severity"] = a.State switch { HealthState.Critical => "critical", HealthState.Warning => "warning", HealthState.Unknown => "error", _ => "info" },
            ["component"] = a.Database,
            ["group"] = a.Aspect,
            ["class"] = "backup",
            ["custom_details"] = new JsonObject { ["state"] = a.State.ToString().ToUpperInvariant(), ["previous_state"] = a.Previous.ToString().ToUpperInvariant(), ["reminder"] = a.Reminder },
        },
    };

    private JsonObject Load()
    {
        try
        {
            return File.Exists(stateFile) ? JsonNode.Parse(File.ReadAllText(stateFile)) as JsonObject ?? [] : [];
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private void Save(JsonObject state)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(stateFile))!, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = stateFile + ".tmp";
        FreshFile.WriteAllText(temp, state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        File.Move(temp, stateFile, overwrite: true);
    }
}
