using System.Text;
using Cairn.Operations.Checks;
using Cairn.Operations.Configuration;
using Cairn.Repository.Storage;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// What whoever edits cairn.yaml writes (the config, its schedules and checks, check expectations) and the names
/// and locations Cairn reads from storage listings and the command line.
/// </summary>
internal static class OperationsTargets
{
    private static readonly Type[] ConfigErrors = [typeof(ConfigException)];

    public static IEnumerable<FuzzTarget> All()
    {
        yield return new FuzzTarget("config", "cairn.yaml -> CairnConfig.Parse (databases, retention, checks, schedules, monitoring, alerts, s3, evidence)", Config, ConfigErrors)
        {
            Dictionary = ["repository:", "databases:", "connection:", "checks:", "schedule:", "retention:", "keep_last:", "keep_within:", "monitoring:", "alerts:", "s3:", "evidence:",
                "- ", "  ", "&a", "*a", "<<: *a", "!!binary", "{", "[", "---", "...", "%YAML 1.2", "? ", "|", ">", "0 3 * * *", "between 1 and", "= fingerprint"],
        };
        yield return new FuzzTarget("cron", "a schedule's cron expression (in a cairn.yaml) -> CairnConfig.Parse, next and missed-slot computation", Cron, ConfigErrors) { Dictionary = ["*", "/", ",", "-", "#", "L", "W", "?", "0", "59", "31", "12", "7", "MON", "JAN"] };
        yield return new FuzzTarget("checks", "a database's checks: list (in a cairn.yaml) -> CairnConfig.Parse and the check parser", Checks, ConfigErrors) { Dictionary = ["tables_present:", "row_counts:", "rls_enabled:", "foreign_keys:", "audit_continuity:", "sql:", "amcheck:", "command:", "expect:", "query:", "min:", "tables:", "table:", "column:"] };
        yield return new FuzzTarget("expectation", "a check's expect: text -> Expectation.Parse and Holds", ExpectationTarget, [typeof(FormatException)]) { Dictionary = ["=", ">=", "<=", ">", "<", "==", "between", "and", "fingerprint", "-", ".", "e5"] };
        yield return new FuzzTarget("s3-key", "object keys an S3 listing returns (one per line, relative to the prefix) -> S3Storage.KeyFromObjectKey for every kind", S3Key, []) { Dictionary = ["data/", "index/", "snapshots/", "keys/", "wal/", "locks/", "config", "/"] };
        yield return new FuzzTarget("repo-location", "a repository location (--repo, CAIRN_REPOSITORY, repository: in cairn.yaml; a folder or s3://bucket/prefix) -> RepositoryLocation.Parse", RepoLocation, [typeof(Cairn.Repository.RepositoryException)]) { Dictionary = ["s3://", "/", "..", "?", "#", "@", ":"] };
    }

    private static void Config(byte[] input)
    {
        var config = CairnConfig.Parse(Encoding.UTF8.GetString(input), "cairn.yaml");
        Use(config);
    }

    /// <summary>What readers of the config do with it: schedules' next runs, thresholds, checks.</summary>
    private static void Use(CairnConfig config)
    {
        var jobs = config.Schedules;
        var t = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero);
        foreach (var j in jobs)
        {
            _ = j.Next(t);
            _ = j.LastSlotBetween(t, t.AddDays(40));
            _ = j.Key;
        }
        foreach (var (_, db) in config.Databases)
        {
            _ = db.Retention.IsEmpty;
        }
    }

    private static byte[] Wrap(string body) => Encoding.UTF8.GetBytes(body);

    private static void Cron(byte[] input)
    {
        var expr = Encoding.UTF8.GetString(input).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
        var yaml = $"databases:\n  app:\n    connection: postgresql:///app\n    schedule:\n      backup: \"{expr}\"\n";
        Config(Wrap(yaml));
    }

    private static void Checks(byte[] input)
    {
        var indented = string.Join('\n', Encoding.UTF8.GetString(input).Split('\n').Select(l => "      " + l));
        var yaml = $"databases:\n  app:\n    connection: postgresql:///app\n    checks:\n{indented}\n";
        Config(Wrap(yaml));
    }

    private static void ExpectationTarget(byte[] input)
    {
        var e = Expectation.Parse(Encoding.UTF8.GetString(input));
        _ = e.Holds(42m, 42m);
        _ = e.ToString();
    }

    private static void S3Key(byte[] input)
    {
        foreach (var line in Encoding.UTF8.GetString(input).Split('\n').Take(256))
        {
            foreach (var kind in Enum.GetValues<ObjectKind>().Where(k => k is not ObjectKind.Config))
            {
                _ = Cairn.Storage.S3.S3Storage.KeyFromObjectKey(kind, line);
            }
        }
    }

    private static void RepoLocation(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        _ = S3Location.TryParse(text, out _, out _);
        var l = RepositoryLocation.Parse(text, "/var/lib/cairn");
        _ = l.Display;
        if (l is S3Location s3)
        {
            _ = s3.KeyOf("config");
        }
    }
}
