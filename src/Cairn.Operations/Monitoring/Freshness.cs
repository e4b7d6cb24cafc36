using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Monitoring;

/// <summary>Monitoring-plugin states; the numbers are the exit codes Nagios/Icinga/Sensu expect.</summary>
public enum HealthState
{
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

public sealed record Thresholds(TimeSpan BackupWarn, TimeSpan BackupCritical, TimeSpan WalCritical, TimeSpan DrillCritical, TimeSpan? DrillWarn, TimeSpan VerifyCritical)
{
    public static readonly Thresholds Default = new(TimeSpan.FromHours(24), TimeSpan.FromHours(26), TimeSpan.FromMinutes(15), TimeSpan.FromDays(35), null, TimeSpan.FromHours(26));

    /// <summary>Reads a database's <c>monitoring:</c> section (at config load); errors name the file, line and key.</summary>
    internal static Thresholds Parse(YamlMappingNode? node, string file, string database)
    {
        var t = Default;
        if (node is null)
        {
            return t;
        }
        foreach (var (k, v) in node.Children)
        {
            var key = (k as YamlScalarNode)?.Value ?? "";
            var text = (v as YamlScalarNode)?.Value ?? "";
            if (!CairnConfig.TryParseDuration(text, out var d))
            {
                throw new ConfigException($"{file}:{v.Start.Line}: databases.{database}.monitoring.{key} must be a duration like 24h, not '{text}'");
            }
            t = key switch
            {
                "backup_warn_after" => t with { BackupWarn = d },
                "backup_critical_after" => t with { BackupCritical = d },
                "wal_critical_after" => t with { WalCritical = d },
                "drill_critical_after" => t with { DrillCritical = d },
                "drill_warn_after" => t with { DrillWarn = d },
                "verify_critical_after" => t with { VerifyCritical = d },
                _ => throw new ConfigException($"{file}:{k.Start.Line}: unknown key 'databases.{database}.monitoring.{key}' (known: backup_warn_after, backup_critical_after, wal_critical_after, drill_warn_after, drill_critical_after, verify_critical_after)"),
            };
        }
        if (t.BackupWarn > t.BackupCritical)
        {
            throw new ConfigException($"{file}: databases.{database}.monitoring: backup_warn_after ({t.BackupWarn}) must not be later than backup_critical_after ({t.BackupCritical})");
        }
        return t;
    }
}

/// <summary>One aspect of one database's health.</summary>
public sealed record HealthFinding(string Database, string Aspect, HealthState State, string Message, double? AgeSeconds, DateTimeOffset? Last);

/// <summary>
/// Freshness from the evidence log (readable without the repository passphrase): the last successful
/// backup, the last drill and the last live verification of each database, judged against thresholds
/// in the right order — CRITICAL is decided first, then WARNING, so a warning is not masked by the
/// order of the tests (the runbook's query tested 25 h before 24 h).
/// </summary>
public static class Freshness
{
    public static List<HealthFinding> Evaluate(IReadOnlyList<LogEntry> entries, IEnumerable<string> databases, Func<string, Thresholds> thresholds, DateTimeOffset now, bool expectDrills = true)
    {
        var findings = new List<HealthFinding>();
        foreach (var db in databases)
        {
            var t = thresholds(db);
            var mine = entries.Where(e => e.Record?["database"]?.GetValue<string>() == db).ToList();
            LogEntry? Last(string kind, Func<JsonObject, bool>? filter = null, bool passOnly = true) => mine.LastOrDefault(e =>
                e.Kind == kind && (!passOnly || e.Record?["result"]?.GetValue<string>() == "pass") && (filter is null || filter(e.Record!)));

            var backup = Last("backup");
            var lastBackupAny = Last("backup", passOnly: false);
            findings.Add(Judge(db, "backup", backup, now, t.BackupWarn, t.BackupCritical, "successful backup",
                lastBackupAny is not null && lastBackupAny != backup ? $"; the latest attempt at {Stamp(lastBackupAny.Time)} {lastBackupAny.Record?["result"]?.GetValue<string>()}" : ""));
            // A failed backup is an alert at once, not when freshness runs out; only databases with a failure on record
            // get the finding, so it resolves (OK) after the next success and stays silent before any failure.
            if (mine.LastOrDefault(e => e.Kind == "backup" && e.Record?["result"]?.GetValue<string>() is "fail" or "error") is { } failed)
            {
                var recovered = backup is not null && backup.Seq > failed.Seq;
                findings.Add(new HealthFinding(db, "backup_failed", recovered ? HealthState.Ok : HealthState.Critical,
                    recovered ? $"backups succeed again (last failure {Stamp(failed.Time)})" : $"the latest backup attempt ({Stamp(failed.Time)}) failed: {failed.Record?["details"]?["error"]?.GetValue<string>() ?? "see 'cairn evidence show " + failed.Seq + "'"}",
                    null, failed.Time));
            }

            // A backup that read pages with bad checksums completed but holds damage: WARNING until a physical backup reads clean.
            if (mine.Any(e => e.Kind == "backup" && e.Record?["details"]?["bad_pages"] is not null))
            {
                var lastPhysical = Last("backup", r => r["details"]?["type"]?.GetValue<string>() == "physical");
                var bad = lastPhysical?.Record?["details"]?["bad_pages"];
                findings.Add(new HealthFinding(db, "page_checksums", bad is null ? HealthState.Ok : HealthState.Warning,
                    bad is null ? "the latest physical backup read every page with a valid checksum"
                        : $"the latest physical backup ({Stamp(lastPhysical!.Time)}) read {bad} page(s) with bad checksums: {lastPhysical.Record?["details"]?["bad_page_list"]?.GetValue<string>()}; run 'cairn assess {db}'",
                    null, lastPhysical?.Time));
            }

            var drill = Last("drill", passOnly: false);
            if (drill is null)
            {
                findings.Add(new HealthFinding(db, "drill", expectDrills ? HealthState.Warning : HealthState.Ok, expectDrills ? "no restore drill has been run yet; run 'cairn drill " + db + "'" : "no drills expected", null, null));
            }
            else
            {
                var age = now - drill.Time!.Value;
                var result = drill.Record?["result"]?.GetValue<string>();
                var state = result != "pass" ? HealthState.Critical
                    : age > t.DrillCritical ? HealthState.Critical
                    : t.DrillWarn is { } dw && age > dw ? HealthState.Warning
                    : HealthState.Ok;
                findings.Add(new HealthFinding(db, "drill", state,
                    result != "pass" ? $"the last drill ({Stamp(drill.Time)}) {result}: {FailedChecks(drill.Record!)}" : $"last drill passed {Ago(age)} ago (critical after {Ago(t.DrillCritical)})",
                    age.TotalSeconds, drill.Time));
            }

            var verify = Last("verify", r => r["details"]?["scope"]?.GetValue<string>() == "live", passOnly: false);
            if (verify is not null)
            {
                var age = now - verify.Time!.Value;
                var result = verify.Record?["result"]?.GetValue<string>();
                var state = result != "pass" ? HealthState.Critical : age > t.VerifyCritical ? HealthState.Critical : HealthState.Ok;
                findings.Add(new HealthFinding(db, "verify_live", state,
                    result != "pass" ? $"the last live verification ({Stamp(verify.Time)}) {result}: {FailedChecks(verify.Record!)}" : $"last live verification passed {Ago(age)} ago",
                    age.TotalSeconds, verify.Time));
            }
        }
        return findings;
    }

    private static HealthFinding Judge(string db, string aspect, LogEntry? last, DateTimeOffset now, TimeSpan warn, TimeSpan critical, string what, string suffix)
    {
        if (last?.Time is not { } time)
        {
            return new HealthFinding(db, aspect, HealthState.Critical, $"no {what} on record{suffix}", null, null);
        }
        var age = now - time;
        // CRITICAL first, then WARNING: the thresholds are tested from the most severe down.
        var state = age > critical ? HealthState.Critical : age > warn ? HealthState.Warning : HealthState.Ok;
        var limit = state == HealthState.Critical ? $"critical after {Ago(critical)}" : state == HealthState.Warning ? $"warning after {Ago(warn)}, critical after {Ago(critical)}" : $"warning after {Ago(warn)}";
        return new HealthFinding(db, aspect, state, $"last {what} {Ago(age)} ago ({limit}){suffix}", age.TotalSeconds, time);
    }

    private static string FailedChecks(JsonObject record)
    {
        var failed = record["checks"] is JsonArray a
            ? a.OfType<JsonObject>().Where(c => c["result"]?.GetValue<string>() is "fail" or "error").Select(c => c["name"]?.GetValue<string>()).ToList()
            : [];
        return failed.Count > 0 ? "failed " + string.Join(", ", failed) : record["details"]?["error"]?.GetValue<string>() ?? "see 'cairn evidence show " + record["seq"] + "'";
    }

    public static string Ago(TimeSpan t) => t.TotalDays >= 2 ? $"{t.TotalDays:0.#}d" : t.TotalHours >= 1 ? $"{t.TotalHours:0.#}h" : t.TotalMinutes >= 1 ? $"{t.TotalMinutes:0}m" : $"{Math.Max(0, t.TotalSeconds):0}s";

    private static string Stamp(DateTimeOffset? t) => t?.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture) ?? "?";
}
