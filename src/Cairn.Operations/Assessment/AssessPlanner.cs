using System.Globalization;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Programs;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Assessment;

/// <summary>A relation assess found damaged, with every way it was found.</summary>
/// <param name="IsIndex">True for an index; <see cref="TableSchema"/>.<see cref="Table"/> is then the table it indexes.</param>
/// <param name="Sources">amcheck, missing_file, invalid_index, bad_page (a physical backup read a page whose checksum failed).</param>
public sealed record DamagedRelation(string Schema, string Name, bool IsIndex, string TableSchema, string Table, IReadOnlyList<string> Sources, IReadOnlyList<string> Details)
{
    public string Display => Schema + "." + Name;

    public string TableDisplay => TableSchema + "." + Table;

    /// <summary>Only an index is wrong (the table itself verified): rebuilding it from the table loses nothing.</summary>
    public bool IndexOnly { get; init; }

    /// <summary>A page failed its checksum when read (the failure PostgreSQL counts in pg_stat_database).</summary>
    public bool ChecksumFailure => Details.Any(d => d.Contains("invalid page", StringComparison.OrdinalIgnoreCase) || d.Contains("checksum", StringComparison.OrdinalIgnoreCase));
}

/// <summary>When the damage was first seen, and by what.</summary>
public sealed record FirstSeen(DateTimeOffset Time, string Source);

/// <summary>One way to repair a relation, ranked (1 = try first). <see cref="Available"/> false: no backup qualifies, and <see cref="Why"/> says what would.</summary>
public sealed record RepairOption(int Rank, string Method, bool Available, string? SnapshotId, string? SnapshotShortId, DateTimeOffset? SnapshotTime, long? DrillSeq, IReadOnlyList<string> Commands, string Why);

public sealed record RelationPlan(DamagedRelation Relation, FirstSeen FirstSeen, IReadOnlyList<RepairOption> Options);

/// <summary>What the planner knows about the repository: the database's backups, which passed a drill (from verified evidence) and which reach the archive's end.</summary>
/// <param name="DrillPasses">Snapshot ID → the evidence sequence number of its newest passing drill.</param>
/// <param name="WalContinuous">Physical snapshots from whose start the archived WAL has no gap up to the newest segment.</param>
public sealed record BackupHistory(IReadOnlyList<Snapshot> Snapshots, IReadOnlyDictionary<string, long> DrillPasses, IReadOnlySet<string> WalContinuous);

/// <summary>
/// The ranked plan per damaged relation: rebuild an index when only the index is wrong; restore the table from the newest
/// logical backup taken before the damage was first seen that passed a drill (nothing live is replaced: it goes into a staging
/// schema); recover the cluster to the moment the damage was first seen from the newest such physical backup. A backup that
/// never passed a drill is never proposed: an incident is no time to find out a backup does not restore.
/// </summary>
public static class AssessPlanner
{
    /// <param name="previouslySeen">Relation (schema.name) → when an earlier assess record (verified) first named it.</param>
    /// <param name="badPageBackups">Relation → the time of the oldest physical backup that read a bad page of it.</param>
    public static List<RelationPlan> Plan(string database, string pgDatabase, IReadOnlyList<DamagedRelation> damaged, BackupHistory history, IReadOnlyDictionary<string, DateTimeOffset> previouslySeen,
        IReadOnlyDictionary<string, DateTimeOffset> badPageBackups, DateTimeOffset? checksumLastFailure, DateTimeOffset now)
    {
        var plans = new List<RelationPlan>();
        foreach (var d in damaged)
        {
            var seen = FirstSeenOf(d, previouslySeen, badPageBackups, checksumLastFailure, now);
            var options = new List<RepairOption>();
            if (d.IndexOnly)
            {
                options.Add(new RepairOption(0, "reindex", true, null, null, null, null,
                    [$"REINDEX INDEX CONCURRENTLY {Catalog.Qualified(d.Schema, d.Name)};"],
                    $"only the index is damaged ({d.TableDisplay} verified): rebuilding it from the table loses nothing; run the statement in psql on {database}"));
            }
            options.Add(TableRestore(database, d, seen, history));
            options.Add(Pitr(database, pgDatabase, d, seen, history));
            // Available options first, in the order above; unavailable ones after them, saying what would make them available.
            var ranked = options.Where(o => o.Available).Concat(options.Where(o => !o.Available)).Select((o, i) => o with { Rank = i + 1 }).ToList();
            plans.Add(new RelationPlan(d, seen, ranked));
        }
        return plans;
    }

    /// <summary>The earliest sighting: an earlier assess, a physical backup that read a bad page of it, PostgreSQL's last checksum failure (a checksum finding only), else now.</summary>
    public static FirstSeen FirstSeenOf(DamagedRelation d, IReadOnlyDictionary<string, DateTimeOffset> previouslySeen, IReadOnlyDictionary<string, DateTimeOffset> badPageBackups,
        DateTimeOffset? checksumLastFailure, DateTimeOffset now)
    {
        var seen = new FirstSeen(now, "this assessment");
        if (previouslySeen.TryGetValue(d.Display, out var p) && p < seen.Time)
        {
            seen = new FirstSeen(p, "an earlier assess record");
        }
        if (badPageBackups.TryGetValue(d.Display, out var b) && b < seen.Time)
        {
            seen = new FirstSeen(b, "a physical backup that read a bad page of it");
        }
        if (d.ChecksumFailure && checksumLastFailure is { } c && c < seen.Time)
        {
            seen = new FirstSeen(c, "pg_stat_database.checksum_last_failure");
        }
        return seen;
    }

    /// <summary>The newest backup of <paramref name="kind"/> committed before <paramref name="before"/> that passed a drill, and the newest one before it that did not (to say what to drill).</summary>
    public static (Snapshot? Drilled, long? Seq, Snapshot? Undrilled) Newest(BackupHistory history, string kind, DateTimeOffset before, Func<Snapshot, bool>? also = null)
    {
        var candidates = history.Snapshots.Where(s => s.Manifest.Kind == kind && s.Manifest.Time < before && (also?.Invoke(s) ?? true)).OrderByDescending(s => s.Manifest.Time).ToList();
        var drilled = candidates.FirstOrDefault(s => history.DrillPasses.ContainsKey(s.Id));
        var undrilled = candidates.FirstOrDefault(s => !history.DrillPasses.ContainsKey(s.Id) && (drilled is null || s.Manifest.Time > drilled.Manifest.Time));
        return (drilled, drilled is null ? null : history.DrillPasses[drilled.Id], undrilled);
    }

    private static RepairOption TableRestore(string database, DamagedRelation d, FirstSeen seen, BackupHistory history)
    {
        var (snap, seq, undrilled) = Newest(history, BackupKinds.Logical, seen.Time);
        if (snap is null)
        {
            return new RepairOption(0, "table_restore", false, null, null, null, null, [],
                $"no logical backup of {database} taken before {Stamp(seen.Time)} passed a drill" + Hint(database, undrilled, physical: false));
        }
        var staging = "cairn_restore_" + seen.Time.UtcDateTime.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture);
        var table = ShellQuote.Quote(d.TableDisplay);
        return new RepairOption(0, "table_restore", true, snap.Id, snap.ShortId, snap.Manifest.Time, seq,
        [
            $"cairn restore {ShellQuote.Quote(database)} --snapshot {snap.ShortId} --table {table} --into-schema {staging}",
            $"cairn restore {ShellQuote.Quote(database)} --snapshot {snap.ShortId} --table {table} --into-schema {staging} --merge missing",
        ],
            $"logical backup {snap.ShortId} ({Stamp(snap.Manifest.Time)}) is the newest taken before the damage was first seen ({Stamp(seen.Time)}, {seen.Source}) that passed a drill (evidence {seq}); "
            + $"the first command restores {d.TableDisplay} into the staging schema {staging} beside the live table (nothing live changes) and compares; the second also inserts the rows only the backup has, in one transaction"
            + (d.IndexOnly ? "; the indexes are rebuilt with the table" : ""));
    }

    private static RepairOption Pitr(string database, string pgDatabase, DamagedRelation d, FirstSeen seen, BackupHistory history)
    {
        var (snap, seq, undrilled) = Newest(history, BackupKinds.Physical, seen.Time, s => history.WalContinuous.Contains(s.Id));
        if (snap is null)
        {
            return new RepairOption(0, "pitr", false, null, null, null, null, [],
                $"no physical backup of {database} taken before {Stamp(seen.Time)} with unbroken archived WAL since passed a drill" + Hint(database, undrilled, physical: true));
        }
        var target = seen.Time.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "+00";
        var dir = $"/var/lib/postgresql/cairn-pitr-{seen.Time.UtcDateTime.ToString("yyyyMMdd-HHmmss", CultureInfo.InvariantCulture)}";
        return new RepairOption(0, "pitr", true, snap.Id, snap.ShortId, snap.Manifest.Time, seq,
        [
            $"cairn restore {ShellQuote.Quote(database)} --physical --snapshot {snap.ShortId} --to {dir} --target-time {ShellQuote.Quote(target)} --start --port 5433",
            $"pg_dump --host {dir}.sock --port 5433 --dbname {ShellQuote.Quote(pgDatabase)} --table {ShellQuote.Quote(Catalog.Qualified(d.TableSchema, d.Table))} --format custom --file {dir}.table.dump",
        ],
            $"physical backup {snap.ShortId} ({Stamp(snap.Manifest.Time)}) is the newest taken before the damage was first seen that passed a drill (evidence {seq}), and the archived WAL from it is unbroken; "
            + $"recovery stops at {target} into a new data directory (a copy; production is not touched), then {d.TableDisplay} is copied out of it (pg_dump as the postgres user; pg_restore --data-only into a staging table). "
            + "When the damage came from the storage rather than from a write, '--target latest' instead of --target-time loses nothing: WAL replay rewrites the pages from the clean backup");
    }

    private static string Hint(string database, Snapshot? undrilled, bool physical) => undrilled is null
        ? ""
        : $"; the newest candidate, {undrilled.ShortId} ({Stamp(undrilled.Manifest.Time)}), was never drilled: drill it first with 'cairn drill {database} --snapshot {undrilled.ShortId}{(physical ? " --physical" : "")}'";

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
