using Cairn.Operations.Configuration;
using Cairn.PostgreSql.Physical;

namespace Cairn.Operations.Retention;

/// <summary>A physical backup as recovery sees it: where its WAL starts and the first moment it can be recovered to (its stop).</summary>
public sealed record RestoreBase(string Id, string StartWal, DateTimeOffset RestorableFrom);

/// <summary>A part of the configured recovery window that no kept backup can reach, and why.</summary>
public sealed record WindowGap(string Database, DateTimeOffset WindowStart, DateTimeOffset? GuaranteedFrom, IReadOnlyList<string> Missing)
{
    public string Describe(TimeSpan within) =>
        $"the {RetentionPlanner.FormatSpan(within)} recovery window of {Database} starts {WindowStart:yyyy-MM-dd HH:mm:ss}Z but " +
        (GuaranteedFrom is { } g ? $"points before {g:yyyy-MM-dd HH:mm:ss}Z cannot be recovered" : "no point can be recovered up to the newest archived WAL") +
        (Missing.Count > 0 ? $": WAL {Missing[0]}{(Missing.Count > 1 ? $" (and {Missing.Count - 1} more segment(s))" : "")} is missing from the archive" : ": no backup that old has continuous WAL");
}

/// <summary>The retention plan of one database's physical backups after window bridging, and the gap left (null when none).</summary>
public sealed record WindowPlan(IReadOnlyList<RetentionDecision> Decisions, WindowGap? Gap);

/// <summary>
/// The guaranteed recovery window: every point from <see cref="GuaranteedBase"/>'s stop to the newest archived
/// segment can be recovered, because that backup's WAL runs without a gap to the end. The retention planner keeps
/// older backups when that bridges the window's start (a backup that started before the window but finished after
/// it cannot reach the window's first minute), and reports what is left uncovered so prune can refuse.
/// </summary>
public static class WindowCoverage
{
    /// <summary>The oldest base whose WAL is continuous up to the newest archived segment; null when none is.</summary>
    public static RestoreBase? GuaranteedBase(IEnumerable<RestoreBase> bases, IReadOnlyCollection<string> archived, IReadOnlyDictionary<uint, string>? histories)
        => bases.OrderBy(b => b.RestorableFrom).FirstOrDefault(b => WalContinuity.Missing(archived, b.StartWal, histories).Count == 0);

    /// <summary>
    /// Applies the window rule to one database's physical backups: when the kept backups do not cover the window's
    /// start (counted from the newest backup, like keep_within), forgotten backups are kept, newest first, while each
    /// moves the guaranteed start earlier. What stays uncovered after that is the gap (only once the repository is older
    /// than the window: a young repository cannot cover more than it holds).
    /// </summary>
    public static WindowPlan Bridge(string database, IReadOnlyList<RetentionDecision> decisions, IReadOnlyList<RestoreBase> bases, RetentionPolicy policy,
        IReadOnlyCollection<string> archived, IReadOnlyDictionary<uint, string>? histories)
    {
        if (policy.KeepWithin is not { } within || decisions.Count == 0)
        {
            return new WindowPlan(decisions, null);
        }
        var byId = bases.ToDictionary(b => b.Id, StringComparer.Ordinal);
        var windowStart = decisions.Max(d => d.Time) - within;
        var required = new[] { windowStart, bases.Min(b => b.RestorableFrom) }.Max();
        var result = decisions.ToList();
        var kept = result.Where(d => d.Keep).Select(d => byId[d.Id]).ToList();
        var guaranteed = GuaranteedBase(kept, archived, histories);
        foreach (var candidate in result.Where(d => !d.Keep).Select(d => byId[d.Id]).OrderByDescending(b => b.RestorableFrom).ToList())
        {
            if (guaranteed is not null && guaranteed.RestorableFrom <= required)
            {
                break;
            }
            var better = GuaranteedBase([.. kept, candidate], archived, histories);
            if (better is not null && (guaranteed is null || better.RestorableFrom < guaranteed.RestorableFrom))
            {
                kept.Add(candidate);
                guaranteed = better;
                var i = result.FindIndex(d => d.Id == candidate.Id);
                result[i] = result[i] with { Keep = true, Reasons = [$"bridges the {RetentionPlanner.FormatSpan(within)} window's start (no newer kept backup reaches it)"] };
            }
        }
        if (guaranteed is not null && guaranteed.RestorableFrom <= required)
        {
            return new WindowPlan(result, null);
        }
        // Name the first missing segment on the way from the oldest backup that would have covered the start.
        var from = bases.Where(b => b.RestorableFrom <= required).OrderByDescending(b => b.RestorableFrom).FirstOrDefault() ?? bases.MinBy(b => b.RestorableFrom)!;
        return new WindowPlan(result, new WindowGap(database, windowStart, guaranteed?.RestorableFrom, WalContinuity.Missing(archived, from.StartWal, histories)));
    }
}
