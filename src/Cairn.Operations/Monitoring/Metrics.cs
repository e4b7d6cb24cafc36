using System.Globalization;
using System.Text;
using Cairn.Evidence.Log;
using Cairn.Repository;

namespace Cairn.Operations.Monitoring;

/// <summary>Prometheus text exposition (base units, _seconds, _bytes, _total) built from the evidence log and health findings.</summary>
public static class Metrics
{
    public static string Render(IReadOnlyList<LogEntry> entries, IReadOnlyList<HealthFinding> findings, IEnumerable<string> databases, DateTimeOffset now, long? repositoryBytes, int? staleLocks, IReadOnlyDictionary<string, double>? walLagSeconds = null)
    {
        var sb = new StringBuilder();
        var families = new Dictionary<string, (string Type, string Help, List<string> Lines)>(StringComparer.Ordinal);
        void Add(string name, string type, string help, string labels, double value)
        {
            if (!families.TryGetValue(name, out var f))
            {
                families[name] = f = (type, help, []);
            }
            f.Lines.Add($"{name}{(labels.Length > 0 ? "{" + labels + "}" : "")} {value.ToString("0.###", CultureInfo.InvariantCulture)}");
        }
        static string L(string db) => $"database=\"{db.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal)}\"";
        static double Num(LogEntry e, string key) => e.Record?["details"]?[key] is { } v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number ? v.GetValue<double>() : double.NaN;

        foreach (var db in databases)
        {
            var mine = entries.Where(e => e.Record?["database"]?.GetValue<string>() == db).ToList();
            var backups = mine.Where(e => e.Kind == "backup").ToList();
            var lastOk = backups.LastOrDefault(e => e.Record?["result"]?.GetValue<string>() == "pass");
            foreach (var result in new[] { "pass", "fail", "error" })
            {
                Add("cairn_backups_total", "counter", "Backups recorded in the evidence log, by result", $"{L(db)},result=\"{result}\"", backups.Count(e => e.Record?["result"]?.GetValue<string>() == result));
            }
            if (lastOk?.Time is { } bt)
            {
                Add("cairn_backup_last_success_timestamp_seconds", "gauge", "Time of the last successful backup", L(db), bt.ToUnixTimeMilliseconds() / 1000.0);
                Add("cairn_backup_age_seconds", "gauge", "Seconds since the last successful backup", L(db), (now - bt).TotalSeconds);
                Add("cairn_backup_last_size_bytes", "gauge", "Size of the last successful backup before deduplication", L(db), Num(lastOk, "size_bytes"));
                Add("cairn_backup_last_added_bytes", "gauge", "Bytes the last successful backup added to the repository", L(db), Num(lastOk, "added_bytes"));
                if (lastOk.Record?["duration_ms"] is { } dm)
                {
                    Add("cairn_backup_last_duration_seconds", "gauge", "Duration of the last successful backup", L(db), dm.GetValue<double>() / 1000.0);
                }
            }
            var drill = mine.LastOrDefault(e => e.Kind == "drill");
            if (drill?.Time is { } dt)
            {
                Add("cairn_drill_last_timestamp_seconds", "gauge", "Time of the last restore drill", L(db), dt.ToUnixTimeMilliseconds() / 1000.0);
                Add("cairn_drill_age_seconds", "gauge", "Seconds since the last restore drill", L(db), (now - dt).TotalSeconds);
                Add("cairn_drill_last_success", "gauge", "1 when the last drill passed every check", L(db), drill.Record?["result"]?.GetValue<string>() == "pass" ? 1 : 0);
                Add("cairn_drill_rto_seconds", "gauge", "Recovery time of the last drill: start until the restored server answered queries", L(db), Num(drill, "rto_ms") / 1000.0);
                Add("cairn_drill_data_age_seconds", "gauge", "Age of the newest restored data in the last drill (recovery point)", L(db), Num(drill, "data_age_s"));
            }
            var verify = mine.LastOrDefault(e => e.Kind == "verify" && e.Record?["details"]?["scope"]?.GetValue<string>() == "live");
            if (verify?.Time is { } vt)
            {
                Add("cairn_verify_age_seconds", "gauge", "Seconds since the last live verification", L(db), (now - vt).TotalSeconds);
            }
            var checks = mine.Where(e => e.Kind is "drill" or "verify").SelectMany(e => e.Record?["checks"]?.AsArray() ?? []).ToList();
            Add("cairn_checks_total", "counter", "Check results recorded by drills and live verifications", $"{L(db)},result=\"pass\"", checks.Count(c => c?["result"]?.GetValue<string>() is "pass"));
            Add("cairn_checks_total", "counter", "Check results recorded by drills and live verifications", $"{L(db)},result=\"skip\"", checks.Count(c => c?["result"]?.GetValue<string>() is "skip"));
            Add("cairn_checks_total", "counter", "Check results recorded by drills and live verifications", $"{L(db)},result=\"fail\"", checks.Count(c => c?["result"]?.GetValue<string>() is "fail" or "error"));
        }
        foreach (var (db, lag) in walLagSeconds ?? new Dictionary<string, double>())
        {
            Add("cairn_wal_archive_lag_seconds", "gauge", "Seconds since the newest WAL segment reached the repository", L(db), lag);
        }
        foreach (var f in findings)
        {
            Add("cairn_health_state", "gauge", "Health per database and check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN", $"{L(f.Database)},check=\"{f.Aspect}\"", (int)f.State);
        }
        if (repositoryBytes is { } rb)
        {
            Add("cairn_repository_size_bytes", "gauge", "Bytes the repository occupies in storage", "", rb);
        }
        if (staleLocks is { } sl)
        {
            Add("cairn_repository_stale_locks", "gauge", "Stale repository locks (left by dead processes)", "", sl);
        }
        Add("cairn_evidence_records_total", "counter", "Records in the evidence log that a signed checkpoint covers (the only ones these metrics count)", "", entries.Count);
        if (findings.FirstOrDefault(f => f.Aspect == EvidenceHealth.Aspect) is { } ev)
        {
            Add("cairn_evidence_verified", "gauge", "1 when the evidence log verifies against its signed checkpoint", "", ev.State == HealthState.Ok ? 1 : 0);
        }
        foreach (var (name, (type, help, lines)) in families)
        {
            sb.Append(CultureInfo.InvariantCulture, $"# HELP {name} {help}\n# TYPE {name} {type}\n");
            foreach (var l in lines.Where(l => !l.EndsWith(" NaN", StringComparison.Ordinal)))
            {
                sb.Append(l).Append('\n');
            }
        }
        return sb.ToString();
    }

    /// <summary>Writes a node_exporter textfile atomically: temp file in the same folder, then rename.</summary>
    public static void WriteTextfile(string path, string content)
    {
        var full = Path.GetFullPath(path);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        FreshFile.WriteAllText(temp, content);
        File.Move(temp, full, overwrite: true);
    }
}
