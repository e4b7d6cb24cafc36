using Cairn.Operations.Configuration;
using Cronos;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Scheduling;

/// <summary>A scheduled job of one database: cron in UTC (5 fields, with Cronos' "#" nth-weekday form, e.g. "0 3 * * 0#1").</summary>
public sealed record ScheduledJob(string Database, string Job, string Expression, CronExpression Cron)
{
    public static readonly string[] Jobs = ["backup", "backup_physical", "drill", "drill_physical", "verify", "verify_live", "prune", "check", "cleanup", "report"];

    /// <summary>The job a <c>copies:</c> entry with a schedule runs (not a database's job: <see cref="CopyTarget"/> names the copy).</summary>
    public const string CopyJob = "copy";

    /// <summary>Jobs the runbook schedules whose command this build does not have: refused at load with the reason, never ignored.</summary>
    public static readonly IReadOnlyDictionary<string, string> Refused = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["copy"] = "a copy is of the whole repository, not of one database: schedule it under copies: (copies: [ { repository: s3://other/cairn, schedule: \"30 1 * * *\" } ])",
    };

    /// <summary>A copy job's target (<c>copies[].repository</c>); null for a database's job.</summary>
    public string? CopyTarget { get; init; }

    /// <summary>The share of packs a scheduled <c>verify</c> reads (<c>read_data_subset</c>, default 5%): a stable rotating subset spreads the cost over days.</summary>
    public double ReadDataSubset { get; init; } = 0.05;

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
    public string EvidenceKind => Job switch
    {
        "verify_live" => "verify",
        "backup_physical" => "backup",
        "drill_physical" => "drill",
        _ => Job,
    };

    /// <summary>Whether an evidence record is a run of this job (a physical backup is not a run of the logical backup job, and so on).</summary>
    public bool IsRun(System.Text.Json.Nodes.JsonObject? record)
    {
        var type = record?["details"]?["type"]?.GetValue<string>();
        var scope = record?["details"]?["scope"]?.GetValue<string>();
        return Job switch
        {
            "backup" or "drill" => type != "physical",
            "backup_physical" or "drill_physical" => type == "physical",
            "verify" => scope != "live",
            "verify_live" => scope == "live",
            "copy" => record?["details"]?["target"]?.GetValue<string>() == CopyTarget,
            _ => true,
        };
    }

    /// <summary>The job's key in the scheduler's state: one state per database and job.</summary>
    public string Key => CopyTarget is { } t ? $"copy/{t}" : $"{Database}/{Job}";

    /// <summary>Reads a database's <c>schedule:</c> section (at config load); errors name the file, line and job.</summary>
    internal static List<ScheduledJob> Parse(YamlMappingNode schedule, string file, string database)
    {
        var result = new List<ScheduledJob>();
        foreach (var (k, v) in schedule.Children)
        {
            var job = (k as YamlScalarNode)?.Value ?? "";
            if (Refused.TryGetValue(job, out var why))
            {
                throw new ConfigException($"{file}:{k.Start.Line}: databases.{database}.schedule.{job} cannot be scheduled: {why}");
            }
            if (!Jobs.Contains(job))
            {
                throw new ConfigException($"{file}:{k.Start.Line}: unknown job 'databases.{database}.schedule.{job}' (known: {string.Join(", ", Jobs)})");
            }
            double subset = 0.05;
            string expr;
            if (v is YamlMappingNode options)
            {
                // Only verify takes options: { cron: "…", read_data_subset: "10%" }.
                if (job != "verify")
                {
                    throw new ConfigException($"{file}:{v.Start.Line}: databases.{database}.schedule.{job} takes a cron expression, not a mapping (only verify takes {{ cron, read_data_subset }})");
                }
                foreach (var (ok, _) in options.Children)
                {
                    if ((ok as YamlScalarNode)?.Value is not ("cron" or "read_data_subset"))
                    {
                        throw new ConfigException($"{file}:{ok.Start.Line}: unknown key 'databases.{database}.schedule.verify.{(ok as YamlScalarNode)?.Value}' (known: cron, read_data_subset)");
                    }
                }
                expr = options.Children.TryGetValue(new YamlScalarNode("cron"), out var c) ? (c as YamlScalarNode)?.Value ?? "" : "";
                if (options.Children.TryGetValue(new YamlScalarNode("read_data_subset"), out var sn))
                {
                    var text = ((sn as YamlScalarNode)?.Value ?? "").Trim().TrimEnd('%');
                    if (!double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var pct) || pct <= 0 || pct > 100)
                    {
                        throw new ConfigException($"{file}:{sn.Start.Line}: databases.{database}.schedule.verify.read_data_subset must be a percentage between 0 and 100, like 10%");
                    }
                    subset = pct / 100;
                }
            }
            else
            {
                expr = (v as YamlScalarNode)?.Value ?? "";
            }
            result.Add(new ScheduledJob(database, job, expr, ParseCron(expr, $"{file}:{v.Start.Line}: databases.{database}.schedule.{job}")) { ReadDataSubset = subset });
        }
        return result;
    }

    /// <summary>A cron expression (five fields; six put seconds first, for tests and fast loops); the error starts with <paramref name="where"/>.</summary>
    internal static CronExpression ParseCron(string expr, string where)
    {
        try
        {
            var format = expr.Split(' ', StringSplitOptions.RemoveEmptyEntries).Length == 6 ? CronFormat.IncludeSeconds : CronFormat.Standard;
            return CronExpression.Parse(expr, format);
        }
        catch (Exception e) when (e is CronFormatException or MissingSeedException or ArgumentException)
        {
            throw new ConfigException($"{where}: '{expr}' is not a cron expression ({e.Message}); e.g. \"0 0 * * *\" daily at 00:00 UTC, \"0 3 * * 0#1\" first Sunday 03:00");
        }
    }
}
