using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;

namespace Cairn.Operations.Monitoring;

/// <summary>
/// How far each copy (<c>copies:</c>) lags behind the primary, from the evidence log: the lag is the age of the oldest
/// backup recorded after the copy's last passing run (none: the copy holds every backup on record). CRITICAL when it is
/// above the copy's <c>max_age</c>; a failed last run is a WARNING while the lag is still within it.
/// </summary>
public static class CopyHealth
{
    public static IEnumerable<HealthFinding> Evaluate(IReadOnlyList<LogEntry> entries, IReadOnlyList<CopyConfig> copies, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(copies);
        foreach (var copy in copies)
        {
            var runs = entries.Where(e => e.Kind == "copy" && e.Record?["details"]?["target"]?.GetValue<string>() is { } t && SameTarget(t, copy.Repository)).ToList();
            var lastPass = runs.LastOrDefault(e => e.Record?["result"]?.GetValue<string>() == "pass")?.Time;
            var last = runs.LastOrDefault();
            // A copy of some databases lags only behind their backups.
            var pending = entries.FirstOrDefault(e => e.Kind == "backup" && e.Record?["result"]?.GetValue<string>() == "pass" && e.Time is { } t && (lastPass is null || t > lastPass)
                && (copy.Databases.Count == 0 || (e.Record?["database"]?.GetValue<string>() is { } db && copy.Databases.Contains(db))))?.Time;
            var failedLast = last is not null && last.Record?["result"]?.GetValue<string>() != "pass";
            var why = failedLast ? $"; the last run at {last!.Time:u} did not pass: {last.Record?["details"]?["error"]?.GetValue<string>() ?? last.Record?["details"]?["findings"]?.GetValue<string>() ?? "see 'cairn evidence show " + last.Seq + "'"}" : "";
            if (pending is null)
            {
                var state = failedLast ? HealthState.Warning : HealthState.Ok;
                var text = lastPass is { } lp ? $"copy to {copy.Repository} holds every backup on record (last passing copy {Freshness.Ago(now - lp)} ago){why}" : $"copy to {copy.Repository}: no backup on record yet{why}";
                yield return new HealthFinding("-", "copy", state, text, lastPass is { } l ? (now - l).TotalSeconds : null, lastPass);
                continue;
            }
            var lag = now - pending.Value;
            var critical = lag > copy.MaxAge;
            yield return new HealthFinding("-", "copy", critical ? HealthState.Critical : failedLast ? HealthState.Warning : HealthState.Ok,
                $"copy to {copy.Repository} lags {Freshness.Ago(lag)} behind the primary (a backup of {pending.Value:u} is not in it yet; critical after {Freshness.Ago(copy.MaxAge)}){(lastPass is null ? "; never copied" : "")}{why}",
                lag.TotalSeconds, lastPass);
        }
    }

    /// <summary>A record's target is the location as displayed (a full path or s3://bucket/prefix), the config's as written: compared parsed.</summary>
    private static bool SameTarget(string recorded, string configured)
    {
        try
        {
            return Repository.Storage.RepositoryLocation.Parse(recorded) == Repository.Storage.RepositoryLocation.Parse(configured);
        }
        catch (Repository.RepositoryException)
        {
            return false;
        }
    }
}
