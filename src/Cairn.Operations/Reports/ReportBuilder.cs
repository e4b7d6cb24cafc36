using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;

namespace Cairn.Operations.Reports;

/// <summary>
/// Computes the report's figures from evidence records and the inputs alone (no clock, no config, no repository),
/// so <c>cairn report verify</c> can compute them again from the same records and compare.
/// </summary>
public static class ReportBuilder
{
    public const int FormatVersion = 1;

    /// <summary>
    /// The report over <paramref name="log"/> (verified records with seq below <see cref="ReportInputs.TreeSize"/>; older
    /// records count for the state at the period's start). <see cref="ComplianceReport.Proof"/> is left for the caller.
    /// </summary>
    public static ComplianceReport Build(IReadOnlyList<LogEntry> log, ReportInputs inputs, string origin, DateTimeOffset generatedAt, IReadOnlyList<ControlRow> controls)
    {
        var all = log.Where(e => e.Seq < inputs.TreeSize && e.Record is not null && e.Time is not null && e.Time < inputs.AsOf).OrderBy(e => e.Seq).ToList();
        var period = all.Where(e => e.Time >= inputs.From).ToList();
        bool Mine(LogEntry e) => inputs.Database is null || Text(e, "database") == inputs.Database || Text(e, "database") is null;
        period = [.. period.Where(Mine)];

        var names = inputs.Databases.Select(d => d.Name)
            .Concat(period.Where(e => e.Kind is "backup" or "drill" or "restore" || (e.Kind == "verify" && Detail(e, "scope") == "live")).Select(e => Text(e, "database")).OfType<string>())
            .Where(n => inputs.Database is null || n == inputs.Database)
            .Distinct().Order(StringComparer.Ordinal).ToList();
        var databases = names.Select(n => Database(n, inputs.Databases.FirstOrDefault(d => d.Name == n) ?? new DatabaseInputs(n, [], (long)TimeSpan.FromHours(24).TotalSeconds, null, null), all, period, inputs)).ToList();

        var verifications = Verifications(period);
        var alerts = Alerts(period);
        var keyChanges = period.Where(e => e.Kind == "key-change").Select(e => new ChangeRow(e.Seq, e.Time!.Value, Detail(e, "action") ?? "", Detail(e, "key") ?? "", Text(e, "result") ?? "")).ToList();
        var configChanges = period.Where(e => e.Kind == "config-change").Select(e => new ChangeRow(e.Seq, e.Time!.Value, Detail(e, "action") ?? "", $"{Detail(e, "file")} sha256 {Detail(e, "sha256")}", Text(e, "result") ?? "")).ToList();
        var cleanups = period.Where(e => e.Kind == "cleanup").GroupBy(e => (Text(e, "database") ?? "", Detail(e, "rule") ?? ""))
            .Select(g => new CleanupRow(g.Key.Item1, g.Key.Item2, g.Count(), g.Sum(e => Number(e, "rows") ?? 0), Seqs(g))).OrderBy(r => r.Database, StringComparer.Ordinal).ThenBy(r => r.Rule, StringComparer.Ordinal).ToList();
        var erasureRecords = period.Where(e => e.Kind == "erasure").ToList();
        var reapplied = period.Where(e => e.Kind == "restore").Sum(e => Number(e, "erasures_reapplied") ?? 0);
        var erasures = new ErasureSummary(erasureRecords.Count, erasureRecords.Sum(e => Number(e, "rows") ?? 0), reapplied,
            Seqs(erasureRecords.Concat(period.Where(e => e.Kind == "restore" && Number(e, "erasures_reapplied") is > 0))));
        // Only states and counts of incidents and pins: their free text may name people or data.
        var incidents = period.Where(e => e.Kind is not null && e.Kind.StartsWith("incident", StringComparison.Ordinal)).Select(e => Event(e, "state", "severity", "action")).ToList();
        var pins = period.Where(e => e.Kind is "pin" or "unpin").Select(e => Event(e, "action", "snapshot", "until")).ToList();

        var report = new ComplianceReport(FormatVersion, Title(inputs), generatedAt, origin, inputs, new ReportStatus("ok", []), databases, verifications, alerts, keyChanges, configChanges,
            cleanups, erasures, incidents, pins, controls, new ReportProof("", inputs.TreeSize, "", "", period.Count > 0 ? period[0].Seq : null, period.Count > 0 ? period[^1].Seq : null, null, []));
        return report with { Status = Status(report) };
    }

    public static string Title(ReportInputs inputs)
    {
        var monthEnd = inputs.From.AddMonths(1);
        var span = inputs.From.Day == 1 && inputs.From.TimeOfDay == TimeSpan.Zero && inputs.Until == monthEnd
            ? inputs.From.ToString("MMMM yyyy", CultureInfo.InvariantCulture)
            : $"{Stamp(inputs.From)} to {Stamp(inputs.Until)}";
        return $"Backup and recovery compliance report, {span}{(inputs.Database is { } d ? $" ({d})" : "")}";
    }

    private static DatabaseReport Database(string name, DatabaseInputs di, List<LogEntry> all, List<LogEntry> period, ReportInputs inputs)
    {
        var mine = period.Where(e => Text(e, "database") == name).ToList();
        var backups = mine.Where(e => e.Kind == "backup").ToList();
        var ok = backups.Where(Passed).ToList();
        var failed = backups.Where(e => !Passed(e)).ToList();
        var before = all.LastOrDefault(e => e.Kind == "backup" && Text(e, "database") == name && Passed(e) && e.Time < inputs.From);

        long? expected = null;
        if (di.BackupSchedules.Count > 0)
        {
            expected = 0;
            foreach (var expr in di.BackupSchedules)
            {
                var cron = Cronos.CronExpression.Parse(expr, expr.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? Cronos.CronFormat.IncludeSeconds : Cronos.CronFormat.Standard);
                expected += cron.GetOccurrences(inputs.From.UtcDateTime, inputs.AsOf.UtcDateTime, TimeZoneInfo.Utc, fromInclusive: true, toInclusive: false).LongCount();
            }
        }

        // Gaps: from the last success before the period (or its start) through each success to the period's end.
        var points = new List<(DateTimeOffset Time, long? Seq)> { before is null ? (inputs.From, null) : (before.Time!.Value, before.Seq) };
        points.AddRange(ok.Select(e => (e.Time!.Value, (long?)e.Seq)));
        points.Add((inputs.AsOf, null));
        var gapIndex = 0;
        var gap = TimeSpan.Zero;
        for (var i = 1; i < points.Count; i++)
        {
            var g = points[i].Time - points[i - 1].Time;
            if (g > gap)
            {
                gap = g;
                gapIndex = i;
            }
        }
        var gapSeqs = gapIndex == 0 ? [] : new[] { points[gapIndex - 1].Seq, points[gapIndex].Seq }.OfType<long>().ToList();

        var calendar = new List<DayCell>();
        var daysWithout = new List<string>();
        for (var day = inputs.From.UtcDateTime.Date; day < inputs.AsOf.UtcDateTime; day = day.AddDays(1))
        {
            var d = day;
            var taken = ok.Count(e => e.Time!.Value.UtcDateTime.Date == d);
            var bad = failed.Count(e => e.Time!.Value.UtcDateTime.Date == d);
            var date = d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);
            calendar.Add(new DayCell(date, taken, bad));
            if (taken == 0)
            {
                daysWithout.Add(date);
            }
        }

        // Freshness: the time within the period when the newest successful backup was older than the threshold.
        var warn = TimeSpan.FromSeconds(di.BackupWarnSeconds);
        var over = TimeSpan.Zero;
        var cursor = inputs.From;
        DateTimeOffset? last = before?.Time;
        foreach (var next in ok.Select(e => e.Time!.Value).Append(inputs.AsOf))
        {
            var staleFrom = last is { } l ? Max(cursor, l + warn) : cursor;
            if (next > staleFrom)
            {
                over += next - staleFrom;
            }
            cursor = next;
            last = next;
        }
        var length = inputs.AsOf - inputs.From;
        var sla = length <= TimeSpan.Zero ? 100.0 : Math.Round(100.0 * (1 - over / length), 2);
        var freshness = new FreshnessFigures(sla, di.BackupWarnSeconds, (long)over.TotalSeconds, Seqs(before is null ? ok : ok.Prepend(before)));

        return new DatabaseReport(name,
            new BackupFigures(expected, ok.Count, failed.Count, (long)gap.TotalSeconds, points[Math.Max(0, gapIndex - 1)].Time, points[gapIndex].Time, daysWithout, calendar, Seqs(ok), Seqs(failed), gapSeqs),
            freshness, Wal(name, all, mine, inputs), Drills(mine, di), Checks(mine), Restores(mine));
    }

    private static WalFigures Wal(string name, List<LogEntry> all, List<LogEntry> mine, ReportInputs inputs)
    {
        // Repository verifications name the databases whose archived WAL they checked.
        bool Covers(LogEntry e) => e.Kind == "verify" && Detail(e, "scope") != "live" && (Detail(e, "wal_databases") ?? "").Split(',').Contains(name);
        var checks = all.Where(e => e.Time >= inputs.From && Covers(e)).ToList();
        var withFindings = checks.Where(e => (Number(e, "wal_findings") ?? 0) > 0).ToList();
        var newestBackup = all.LastOrDefault(e => e.Kind == "backup" && Text(e, "database") == name && Passed(e));
        var physical = all.Where(e => e.Kind == "backup" && Text(e, "database") == name && Passed(e) && Detail(e, "type") == "physical").ToList();
        var lastCheck = all.LastOrDefault(Covers);
        if (lastCheck is not null && (Number(lastCheck, "wal_findings") ?? 0) == 0 && physical.LastOrDefault(p => p.Seq < lastCheck.Seq) is { } base_)
        {
            // Continuity was last verified clean: any point from the newest physical backup before that check up to it.
            return new WalFigures(checks.Count, withFindings.Count, Seqs(checks), "pitr", base_.Time, lastCheck.Time,
                $"point-in-time recovery from the physical backup of {Stamp(base_.Time!.Value)} to the WAL verified at {Stamp(lastCheck.Time!.Value)}", [base_.Seq, lastCheck.Seq]);
        }
        if (newestBackup is not null)
        {
            var why = lastCheck is not null && (Number(lastCheck, "wal_findings") ?? 0) > 0 ? $"; the last WAL verification (record {lastCheck.Seq}) found gaps, so no point in time after a backup is guaranteed" : physical.Count > 0 ? "; no verification of the archived WAL after a physical backup" : "";
            return new WalFigures(checks.Count, withFindings.Count, Seqs(checks), "backup", newestBackup.Time, newestBackup.Time,
                $"restore to the newest backup, {Stamp(newestBackup.Time!.Value)}{why}", [newestBackup.Seq, .. lastCheck is null ? Array.Empty<long>() : [lastCheck.Seq]]);
        }
        return new WalFigures(checks.Count, withFindings.Count, Seqs(checks), "none", null, null, "no successful backup on record: nothing can be restored", []);
    }

    private static DrillFigures Drills(List<LogEntry> mine, DatabaseInputs di)
    {
        var drills = mine.Where(e => e.Kind == "drill").ToList();
        var rows = drills.Select(e => new DrillRow(e.Seq, e.Time!.Value, Detail(e, "type") ?? "logical", Text(e, "result") ?? "", Number(e, "rto_ms"), Number(e, "data_age_s"),
            Number(e, "checks_passed") ?? 0, Number(e, "checks_failed") ?? 0)).ToList();
        var rto = rows.Where(r => r.RtoMs is not null).ToList();
        var age = rows.Where(r => r.DataAgeSeconds is not null).ToList();
        return new DrillFigures(rows.Count, rows.Count(r => r.Result == "pass"), rows.Count(r => r.Result != "pass"), rows,
            new DurationStats(Median(rto.Select(r => r.RtoMs!.Value)), rto.Count > 0 ? rto.Max(r => r.RtoMs!.Value) : null, [.. rto.Select(r => r.Seq)]),
            new DurationStats(Median(age.Select(r => r.DataAgeSeconds!.Value)), age.Count > 0 ? age.Max(r => r.DataAgeSeconds!.Value) : null, [.. age.Select(r => r.Seq)]),
            di.RtoTargetSeconds, di.RpoTargetSeconds,
            di.RtoTargetSeconds is { } rt ? rto.Count(r => r.RtoMs <= rt * 1000) : 0,
            di.RpoTargetSeconds is { } rp ? age.Count(r => r.DataAgeSeconds <= rp) : 0,
            Trend([.. rto.Select(r => r.RtoMs!.Value)]), Trend([.. age.Select(r => r.DataAgeSeconds!.Value)]));
    }

    private static List<CheckKindRow> Checks(List<LogEntry> mine)
    {
        var rows = new List<(string Source, string Kind, string Result, long Seq)>();
        foreach (var e in mine.Where(e => e.Kind == "drill" || (e.Kind == "verify" && Detail(e, "scope") == "live")))
        {
            var source = e.Kind == "drill" ? "drill" : "verify --live";
            if (e.Record!["checks"] is JsonArray checks)
            {
                rows.AddRange(checks.OfType<JsonObject>().Select(c => (source, Str(c["kind"]) ?? "?", Str(c["result"]) ?? "?", e.Seq)));
            }
        }
        return [.. rows.GroupBy(r => (r.Source, r.Kind)).OrderBy(g => g.Key.Source, StringComparer.Ordinal).ThenBy(g => g.Key.Kind, StringComparer.Ordinal)
            .Select(g => new CheckKindRow(g.Key.Source, g.Key.Kind, g.LongCount(r => r.Result == "pass"), g.LongCount(r => r.Result == "fail"), g.LongCount(r => r.Result == "error"),
                g.LongCount(r => r.Result == "skip"), [.. g.Select(r => r.Seq).Distinct()]))];
    }

    private static RestoreFigures Restores(List<LogEntry> mine)
    {
        var restores = mine.Where(e => e.Kind == "restore").ToList();
        return new RestoreFigures(restores.Count, restores.Count(e => !Passed(e)), restores.Sum(e => Number(e, "erasures_reapplied") ?? 0), Seqs(restores));
    }

    private static RepositoryVerifications Verifications(List<LogEntry> period)
    {
        var rows = period.Where(e => e.Kind == "verify" && Detail(e, "scope") != "live").Select(e =>
        {
            var scope = Detail(e, "scope") ?? "";
            var share = scope == "read-data" ? 100.0
                : scope.StartsWith("read-data ", StringComparison.Ordinal) && double.TryParse(scope["read-data ".Length..].TrimEnd('%'), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) ? p
                : 0.0;
            return new VerifyRow(e.Seq, e.Time!.Value, scope, Text(e, "result") ?? "", share, Number(e, "damage_findings") ?? 0, Number(e, "wal_findings") ?? 0);
        }).ToList();
        var unread = rows.Where(r => r.Result == "pass").Aggregate(1.0, (acc, r) => acc * (1 - r.ReadPercent / 100));
        return new RepositoryVerifications(rows.Count, rows.Count(r => r.Result == "pass"), rows.Count(r => r.Result != "pass"), Math.Round(100 * (1 - unread), 2), rows);
    }

    private static List<AlertEpisode> Alerts(List<LogEntry> period)
    {
        var episodes = new List<AlertEpisode>();
        var open = new Dictionary<(string, string), (AlertEpisode Episode, List<long> Seqs)>();
        foreach (var e in period.Where(e => e.Kind == "alert" && Detail(e, "reminder") != "yes"))
        {
            var key = (Text(e, "database") ?? "-", Detail(e, "check") ?? "?");
            var state = (Detail(e, "state") ?? "").ToLowerInvariant();
            if (state == "ok")
            {
                if (open.Remove(key, out var o))
                {
                    o.Seqs.Add(e.Seq);
                    episodes.Add(o.Episode with { Resolved = e.Time, SecondsToResolve = (long)(e.Time!.Value - o.Episode.Raised).TotalSeconds, Seqs = o.Seqs });
                }
                continue;
            }
            if (open.TryGetValue(key, out var existing))
            {
                // Escalation (warning to critical) is the same episode; each receiver's record is cited.
                existing.Seqs.Add(e.Seq);
                open[key] = (existing.Episode with { State = Worse(existing.Episode.State, state) }, existing.Seqs);
                continue;
            }
            open[key] = (new AlertEpisode(key.Item1, key.Item2, state, e.Time!.Value, null, null, []), [e.Seq]);
        }
        episodes.AddRange(open.Values.Select(o => o.Episode with { Seqs = o.Seqs }));
        return [.. episodes.OrderBy(a => a.Raised).ThenBy(a => a.Database, StringComparer.Ordinal).ThenBy(a => a.Check, StringComparer.Ordinal)];
    }

    private static ReportStatus Status(ComplianceReport r)
    {
        var critical = new List<string>();
        var warning = new List<string>();
        foreach (var d in r.Databases)
        {
            if (d.Backups.Taken == 0)
            {
                critical.Add($"{d.Name}: no successful backup in the period");
            }
            else if (d.Backups.DaysWithout.Count > 0)
            {
                warning.Add($"{d.Name}: {d.Backups.DaysWithout.Count} day(s) without a successful backup");
            }
            if (d.Backups.Failed > 0)
            {
                warning.Add($"{d.Name}: {d.Backups.Failed} failed backup(s)");
            }
            if (d.Drills.Run == 0)
            {
                warning.Add($"{d.Name}: no restore drill in the period");
            }
            else if (d.Drills.Failed > 0)
            {
                warning.Add($"{d.Name}: {d.Drills.Failed} of {d.Drills.Run} drill(s) failed");
            }
            if (d.Drills.Rows.LastOrDefault() is { Result: not "pass" } lastDrill)
            {
                critical.Add($"{d.Name}: the last drill (record {lastDrill.Seq}) failed");
            }
            if (d.Wal.WithFindings > 0)
            {
                warning.Add($"{d.Name}: {d.Wal.WithFindings} WAL verification(s) found gaps");
            }
        }
        if (r.Verifications.Failed > 0)
        {
            critical.Add($"{r.Verifications.Failed} repository verification(s) found damage");
        }
        if (r.Databases.Count == 0)
        {
            warning.Add("no database in this report: none is configured and none is on record in the period");
        }
        var unresolved = r.Alerts.Count(a => a.Resolved is null);
        if (unresolved > 0)
        {
            warning.Add($"{unresolved} alert(s) not resolved by the period's end");
        }
        return critical.Count > 0 ? new ReportStatus("critical", [.. critical, .. warning])
            : warning.Count > 0 ? new ReportStatus("warning", warning)
            : new ReportStatus("ok", ["every database was backed up every day, drilled, and verified"]);
    }

    private static EventRow Event(LogEntry e, params string[] fields)
        => new(e.Seq, e.Time!.Value, Text(e, "database") ?? "", e.Kind ?? "", Text(e, "result") ?? "",
            string.Join(", ", fields.Select(f => (f, v: Detail(e, f) ?? Number(e, f)?.ToString(CultureInfo.InvariantCulture))).Where(x => !string.IsNullOrEmpty(x.v)).Select(x => $"{x.f}={x.v}")));

    private static string Worse(string a, string b) => Rank(b) > Rank(a) ? b : a;

    private static int Rank(string s) => s switch { "critical" => 3, "unknown" => 2, "warning" => 1, _ => 0 };

    /// <summary>improving, worsening or steady: the median of the later half against the earlier half (±10%); too few with under four.</summary>
    private static string Trend(List<long> values)
    {
        if (values.Count < 4)
        {
            return "too few drills";
        }
        var first = Median(values.Take(values.Count / 2))!.Value;
        var second = Median(values.Skip(values.Count - values.Count / 2))!.Value;
        return second > first * 1.1 ? "worsening" : second < first * 0.9 ? "improving" : "steady";
    }

    private static long? Median(IEnumerable<long> values)
    {
        var v = values.Order().ToList();
        return v.Count == 0 ? null : v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2;
    }

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static bool Passed(LogEntry e) => Text(e, "result") == "pass";

    private static List<long> Seqs(IEnumerable<LogEntry> entries) => [.. entries.Select(e => e.Seq).Order()];

    internal static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture);

    private static string? Text(LogEntry e, string field) => Str(e.Record?[field]);

    private static string? Detail(LogEntry e, string field) => Str(e.Record?["details"]?[field]);

    private static long? Number(LogEntry e, string field) => e.Record?["details"]?[field] is JsonValue v && v.GetValueKind() == JsonValueKind.Number && v.TryGetValue<long>(out var n) ? n : null;

    private static string? Str(JsonNode? n) => n is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}
