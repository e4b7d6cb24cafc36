using Cairn.Operations.Configuration;
using Cronos;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Scheduling;

/// <summary>A scheduled job of one database: cron in UTC (5 fields, with Cronos' "#" nth-weekday form, e.g. "0 3 * * 0#1").</summary>
public sealed record ScheduledJob(string Database, string Job, string Expression, CronExpression Cron)
{
    public static readonly string[] Jobs = ["backup", "drill", "verify_live", "prune", "check", "report"];

    public DateTimeOffset? Next(DateTimeOffset after) => Cron.GetNextOccurrence(after.UtcDateTime, TimeZoneInfo.Utc) is { } n ? new DateTimeOffset(n, TimeSpan.Zero) : null;

    /// <summary>The latest slot in (<paramref name="since"/>, <paramref name="now"/>], or null: a missed run is run once, not once per missed slot.</summary>
    public DateTimeOffset? LastSlotBetween(DateTimeOffset since, DateTimeOffset now)
    {
        DateTime? last = null;
        foreach (var o in Cron.GetOccurrences(since.UtcDateTime, now.UtcDateTime, TimeZoneInfo.Utc, fromInclusive: false, toInclusive: true))
        {
            last = o;
        }
        return last is { } l ? new DateTimeOffset(l, TimeSpan.Zero) : null;
    }

    /// <summary>The evidence kind a run of this job records (for finding its last run).</summary>
    public string EvidenceKind => Job == "verify_live" ? "verify" : Job;

    /// <summary>The job's key in the scheduler's state: one state per database and job.</summary>
    public string Key => $"{Database}/{Job}";

    /// <summary>Reads a database's <c>schedule:</c> section (at config load); errors name the file, line and job.</summary>
    internal static List<ScheduledJob> Parse(YamlMappingNode schedule, string file, string database)
    {
        var result = new List<ScheduledJob>();
        foreach (var (k, v) in schedule.Children)
        {
            var job = (k as YamlScalarNode)?.Value ?? "";
            var expr = (v as YamlScalarNode)?.Value ?? "";
            if (!Jobs.Contains(job))
            {
                throw new ConfigException($"{file}:{k.Start.Line}: unknown job 'databases.{database}.schedule.{job}' (known: {string.Join(", ", Jobs)})");
            }
            try
            {
                // Six fields put seconds first (for tests and fast loops); five are standard cron.
                var format = expr.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard;
                result.Add(new ScheduledJob(database, job, expr, CronExpression.Parse(expr, format)));
            }
            catch (Exception e) when (e is CronFormatException or MissingSeedException or ArgumentException)
            {
                throw new ConfigException($"{file}:{v.Start.Line}: databases.{database}.schedule.{job}: '{expr}' is not a cron expression ({e.Message}); e.g. \"0 0 * * *\" daily at 00:00 UTC, \"0 3 * * 0#1\" first Sunday 03:00");
            }
        }
        return result;
    }
}
