using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Retention;
using Cairn.PostgreSql.Physical;

namespace Cairn.Operations.Monitoring;

/// <summary>
/// Is the configured recovery window (keep_within) kept? Read without the passphrase: the physical backups the verified
/// evidence log records whose manifests are still in the repository (their start LSN and timeline give the first WAL
/// segment; the record's time is when the backup became restorable), and the names of the archived WAL segments.
/// CRITICAL when the oldest point from which everything up to the newest archived WAL can be recovered is younger than
/// the window, once the first backup on record is older than the window (a young repository cannot cover more).
/// </summary>
public static class WindowHealth
{
    public static HealthFinding? Evaluate(string database, TimeSpan within, IEnumerable<LogEntry> verified, IReadOnlySet<string> presentSnapshots,
        IReadOnlyCollection<string> archived, DateTimeOffset now)
    {
        var bases = new List<RestoreBase>();
        DateTimeOffset? first = null;
        foreach (var e in verified)
        {
            var r = e.Record;
            if (e.Kind != "backup" || r?["database"]?.GetValue<string>() != database || r["result"]?.GetValue<string>() != "pass"
                || r["details"] is not JsonObject d || d["type"]?.GetValue<string>() != "physical" || e.Time is not { } time)
            {
                continue;
            }
            first ??= time;
            if (r["snapshot"]?.GetValue<string>() is { } id && presentSnapshots.Contains(id)
                && d["start_lsn"]?.GetValue<string>() is { } lsn && d["timeline"] is JsonValue tl && long.TryParse(tl.ToJsonString(), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var timeline))
            {
                bases.Add(new RestoreBase(id, WalNames.SegmentOf((uint)timeline, WalNames.ParseLsn(lsn)), time));
            }
        }
        if (first is null)
        {
            return null;
        }
        var windowStart = now - within;
        var guaranteed = WindowCoverage.GuaranteedBase(bases, archived, null);
        var span = Freshness.Ago(within);
        if (first > windowStart)
        {
            return new HealthFinding(database, "recovery_window", HealthState.Ok,
                $"the first physical backup on record is younger than the {span} window; guaranteed from {Stamp(guaranteed?.RestorableFrom)}", null, guaranteed?.RestorableFrom);
        }
        if (guaranteed is null)
        {
            return new HealthFinding(database, "recovery_window", HealthState.Critical,
                $"no kept physical backup's WAL runs without a gap to the newest archived segment: no point of the {span} window is guaranteed; run 'cairn snapshots {database}' and 'cairn verify'", null, null);
        }
        var age = now - guaranteed.RestorableFrom;
        return guaranteed.RestorableFrom > windowStart
            ? new HealthFinding(database, "recovery_window", HealthState.Critical,
                $"the oldest restorable point ({Stamp(guaranteed.RestorableFrom)}, {Freshness.Ago(age)} ago) is younger than the {span} recovery window: points before it are lost (a backup was removed or WAL is missing); run 'cairn snapshots {database}'", age.TotalSeconds, guaranteed.RestorableFrom)
            : new HealthFinding(database, "recovery_window", HealthState.Ok,
                $"any point of the last {Freshness.Ago(age)} can be recovered (keep_within {span})", age.TotalSeconds, guaranteed.RestorableFrom);
    }

    private static string Stamp(DateTimeOffset? t) => t is { } v ? v.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", System.Globalization.CultureInfo.InvariantCulture) : "nowhere yet";
}
