using System.Globalization;
using Cairn.Operations.Configuration;

namespace Cairn.Operations.Retention;

/// <summary>A backup the planner judged, with the reasons it stays (empty when it goes).</summary>
public sealed record RetentionDecision(string Id, DateTimeOffset Time, bool Keep, IReadOnlyList<string> Reasons);

/// <summary>
/// keep_last / keep_daily / keep_weekly / keep_monthly / keep_within, as restic and pgBackRest users
/// expect: a backup stays when any rule keeps it. Days, ISO weeks and months are UTC. keep_within
/// counts back from the newest backup (not from now), so a schedule that stopped never expires the
/// last good backups; and the newest backup always stays. keep_within also keeps the newest backup taken
/// at or before the window's start (as Barman's RECOVERY WINDOW and pgBackRest's time retention do):
/// without it, recovery to the window's first minutes would have no base to start from.
/// </summary>
public static class RetentionPlanner
{
    public static List<RetentionDecision> Plan(IEnumerable<(string Id, DateTimeOffset Time)> backups, RetentionPolicy policy)
    {
        var list = backups.OrderByDescending(b => b.Time).ThenByDescending(b => b.Id, StringComparer.Ordinal).ToList();
        var reasons = list.ToDictionary(b => b.Id, _ => new List<string>(), StringComparer.Ordinal);
        if (list.Count == 0)
        {
            return [];
        }
        if (policy.IsEmpty)
        {
            return [.. list.Select(b => new RetentionDecision(b.Id, b.Time, true, ["no retention policy: keep everything"]))];
        }
        for (var i = 0; i < Math.Min(policy.KeepLast ?? 0, list.Count); i++)
        {
            reasons[list[i].Id].Add($"last {policy.KeepLast}");
        }
        void Bucket(int? n, string label, Func<DateTimeOffset, string> key)
        {
            if (n is not { } count || count == 0)
            {
                return;
            }
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var b in list)
            {
                var k = key(b.Time.ToUniversalTime());
                if (seen.Count >= count && !seen.Contains(k))
                {
                    break;
                }
                if (seen.Add(k))
                {
                    reasons[b.Id].Add($"{label} {k}");
                }
            }
        }
        Bucket(policy.KeepDaily, "daily", t => t.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
        Bucket(policy.KeepWeekly, "weekly", t => $"{ISOWeek.GetYear(t.UtcDateTime)}-W{ISOWeek.GetWeekOfYear(t.UtcDateTime):00}");
        Bucket(policy.KeepMonthly, "monthly", t => t.ToString("yyyy-MM", CultureInfo.InvariantCulture));
        if (policy.KeepWithin is { } within)
        {
            var newest = list[0].Time;
            var start = newest - within;
            foreach (var b in list.Where(b => b.Time >= start))
            {
                reasons[b.Id].Add($"within {FormatSpan(within)} of the newest");
            }
            // An index, not FirstOrDefault: the default of a value tuple is a match for "is { }" (with a null Id) when every backup lies inside the window.
            var beforeIndex = list.FindIndex(b => b.Time < start);
            if (beforeIndex >= 0)
            {
                reasons[list[beforeIndex].Id].Add($"base of the {FormatSpan(within)} window (the newest backup before its start)");
            }
        }
        if (reasons[list[0].Id].Count == 0)
        {
            reasons[list[0].Id].Add("newest backup");
        }
        return [.. list.Select(b => new RetentionDecision(b.Id, b.Time, reasons[b.Id].Count > 0, reasons[b.Id]))];
    }

    internal static string FormatSpan(TimeSpan t) => t.TotalDays >= 1 ? $"{t.TotalDays:0.#}d" : $"{t.TotalHours:0.#}h";
}
