using System.Globalization;
using System.Security.Cryptography;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Recording;

namespace Cairn.Operations.Reports;

/// <summary>
/// The daemon's <c>report</c> job: the previous month's report of one database, written into <c>reports.dir</c>
/// (format <c>reports.format</c>), and <c>check</c>'s warning when that report is not on record.
/// </summary>
public static class ReportSchedule
{
    /// <summary>The previous whole month before <paramref name="now"/> (UTC).</summary>
    public static (DateTimeOffset From, DateTimeOffset Until) LastMonth(DateTimeOffset now)
    {
        var thisMonth = new DateTimeOffset(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);
        return (thisMonth.AddMonths(-1), thisMonth);
    }

    /// <summary>The request the job runs: last month, this database, the configured folder and format.</summary>
    public static ReportRequest JobRequest(CairnConfig config, string database, DateTimeOffset now)
    {
        var dir = config.Reports.Directory ?? throw new ConfigException($"{config.File}: the report job of {database} needs reports.dir (the folder monthly reports are written into)");
        var (from, until) = LastMonth(now);
        var format = ReportOperation.ParseFormat(config.Reports.Format);
        return new ReportRequest(from, until, database, format, Path.Combine(dir, FileName(database, from, format)));
    }

    public static string FileName(string database, DateTimeOffset month, ReportFormat format)
        => $"cairn-report-{database}-{month.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture)}.{ReportOperation.Name(format)}";

    /// <summary>
    /// A warning for each database with a report job whose last month's report is not on record (a verified <c>report</c>
    /// record of that database and month) once this month's first slot is an hour past.
    /// </summary>
    public static IEnumerable<HealthFinding> MissingReports(IReadOnlyList<LogEntry> verified, CairnConfig config, IEnumerable<string> databases, DateTimeOffset now)
    {
        var (from, until) = LastMonth(now);
        foreach (var job in config.Schedules.Where(j => j.Job == "report" && databases.Contains(j.Database)))
        {
            if (job.Next(until.AddTicks(-1)) is not { } slot || now < slot + TimeSpan.FromHours(1))
            {
                continue;
            }
            var month = from.UtcDateTime.ToString("yyyy-MM", CultureInfo.InvariantCulture);
            var found = verified.Any(e => e.Kind == "report" && e.Record?["database"]?.GetValue<string>() == job.Database
                && ReportEvidence.DetailText(e, "from") is { } f && EvidenceTime.Parse(f) == from);
            yield return found
                ? new HealthFinding(job.Database, "report", HealthState.Ok, $"the report of {month} is on record", null, null)
                : new HealthFinding(job.Database, "report", HealthState.Warning,
                    $"no report of {month} is on record (the report job's slot was {slot:yyyy-MM-dd HH:mm}Z); is the daemon running? Or run 'cairn report --month {month} --database {job.Database} --out FILE'", null, null);
        }
    }
}

/// <summary>The configuration a long-running process loaded, on the record (<c>config-change</c>) with its SHA-256.</summary>
public sealed class ConfigRecordOperation(OperationContext context)
{
    /// <summary>Records the file's SHA-256; null when there is no file (nothing to record).</summary>
    public string? Record(string action)
    {
        if (context.Config.File is not { } file || !File.Exists(file))
        {
            return null;
        }
        var sha = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));
        context.Evidence.Record(new ConfigLoadedEvent(action, file, sha) { Repository = context.RepositoryText ?? "" });
        return sha;
    }
}
