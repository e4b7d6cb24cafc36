using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Sessions;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Assessment;

/// <summary><c>assess DATABASE</c>: <see cref="Jobs"/> amcheck sessions at once; <see cref="HeapAllIndexed"/> also checks that every heap tuple is in each index (slower).</summary>
public sealed record AssessRequest(DatabaseTarget Database, int Jobs = 2, bool HeapAllIndexed = false);

/// <summary>The newest archived WAL segment and the physical backups from which recovery reaches it without a gap.</summary>
public sealed record WalReach(string? NewestSegment, DateTimeOffset? NewestArchived, IReadOnlyList<Snapshot> CoveringBackups);

/// <summary>Everything assess found. <see cref="Incomplete"/> names each probe that could not run: then "no damage" is not a clean bill.</summary>
public sealed record AssessResult(
    string Database,
    DatabaseFacts Facts,
    IReadOnlyList<RelationSize> Tables,
    int IndexesChecked,
    int HeapsChecked,
    IReadOnlyList<AmcheckFinding> AmcheckFindings,
    IReadOnlyList<InvalidIndex> InvalidIndexes,
    IReadOnlyList<MissingFile> MissingFiles,
    ArchiverStatus? Archiver,
    IReadOnlyList<ReplicationSlotFacts> Slots,
    WalReach? Wal,
    IReadOnlyList<RelationPlan> Plans,
    IReadOnlyList<string> Incomplete,
    IReadOnlyList<string> Warnings,
    TimeSpan Elapsed,
    long EvidenceSeq)
{
    /// <summary>Checksum failures PostgreSQL counted that no relation-level finding accounts for.</summary>
    public bool UnlocatedChecksumFailures => Facts.ChecksumFailures is > 0 && !Plans.Any(p => p.Relation.ChecksumFailure);

    public bool Damaged => Plans.Count > 0 || UnlocatedChecksumFailures;
}

/// <summary>
/// The runbook's "assess damage": sizes, the server's checksum failure count, amcheck of every B-tree index and heap in
/// parallel, invalid indexes, missing relation files, the archiver, replication slots holding WAL, the archive's newest WAL
/// and the backups that reach it; then a ranked repair plan per damaged relation (<see cref="AssessPlanner"/>). Read-only on
/// the database: it installs nothing (amcheck must be there), and says which probe it could not run. On the record as <c>assess</c>.
/// </summary>
public sealed class AssessOperation(OperationContext context)
{
    public const string Kind = "assess";

    public async Task<AssessResult> RunAsync(AssessRequest request, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var ct = cancellationToken;
        var sw = Stopwatch.StartNew();
        var db = request.Database;
        var incomplete = new List<string>();
        var warnings = new List<string>();
        await using var session = await CheckSession.OpenAsync(db.Connection, TimeSpan.FromMinutes(2), ct).ConfigureAwait(false);
        progress?.Report("sizes and statistics");
        var facts = await DamageSurvey.DatabaseAsync(session, ct).ConfigureAwait(false);
        if (!facts.DataChecksums)
        {
            warnings.Add($"data checksums are off on this cluster: PostgreSQL cannot count bad pages (pg_stat_database.checksum_failures); only amcheck finds damage (enable them with pg_checksums --enable on a stopped server)");
        }
        var tables = await DamageSurvey.TableSizesAsync(session, ct).ConfigureAwait(false);
        var invalid = await DamageSurvey.InvalidIndexesAsync(session, ct).ConfigureAwait(false);
        var missing = await Probe(() => DamageSurvey.MissingFilesAsync(session, ct), "missing relation files", "needs superuser or EXECUTE on pg_stat_file (GRANT pg_read_server_files TO the role Cairn connects as)", incomplete) ?? [];
        var archiver = await Probe(() => ServerStatus.ArchiverAsync(session, ct), "pg_stat_archiver", "needs a role that may read pg_stat_archiver", incomplete);
        if (archiver is { Failing: true } a)
        {
            warnings.Add($"WAL archiving is failing: {a.FailedCount} failure(s), last {a.LastFailedWal} at {a.LastFailedTime:yyyy-MM-dd HH:mm:ss}Z; point-in-time recovery past it is not possible until it works again");
        }
        var slots = await Probe(() => DamageSurvey.ReplicationSlotsAsync(session, facts.ServerVersionNum, ct), "replication slots", "needs a role that may read pg_replication_slots", incomplete) ?? [];
        foreach (var s in slots.Where(s => !s.Active && s.RetainedBytes is > 1L << 30))
        {
            warnings.Add($"the inactive replication slot {s.Name} holds {s.RetainedBytes / (1 << 20)} MiB of WAL; drop it (SELECT pg_drop_replication_slot('{s.Name}')) if nothing will consume it, before the disk fills");
        }

        var findings = new List<AmcheckFinding>();
        int indexes = 0, heaps = 0;
        if (!await Amcheck.InstalledAsync(session, ct).ConfigureAwait(false))
        {
            incomplete.Add($"amcheck: the extension is not installed in {facts.Name}; run CREATE EXTENSION amcheck there (assess is read-only and installs nothing), then assess again");
        }
        else
        {
            var targets = await Amcheck.TargetsAsync(session, ct).ConfigureAwait(false);
            indexes = targets.Count(t => t.IsIndex);
            heaps = targets.Count - indexes;
            var done = 0;
            findings = await Amcheck.CheckAllAsync(db.Connection, targets, request.HeapAllIndexed, request.Jobs, TimeSpan.FromHours(1),
                new Progress<AmcheckTarget>(t => progress?.Report($"amcheck {Interlocked.Increment(ref done)}/{targets.Count}: {t.Display}")), ct).ConfigureAwait(false);
        }
        // A check that crashed a backend may have left the first session closed; CheckSession reconnects on its own.
        var facts2 = await DamageSurvey.DatabaseAsync(session, ct).ConfigureAwait(false);
        facts = facts with { ChecksumFailures = facts2.ChecksumFailures, ChecksumLastFailure = facts2.ChecksumLastFailure }; // amcheck's own reads count too

        var damaged = Damaged(findings, invalid, missing);
        var (history, wal, previouslySeen, badPages) = await HistoryAsync(db.Name, session, incomplete, ct).ConfigureAwait(false);
        var plans = AssessPlanner.Plan(db.Name, db.Connection.Database, damaged, history, previouslySeen, badPages, facts.ChecksumLastFailure, context.Time.GetUtcNow());
        var result = new AssessResult(db.Name, facts, tables, indexes, heaps, findings, invalid, missing, archiver, slots, wal, plans, incomplete, warnings, sw.Elapsed, 0);
        var seq = context.Evidence.Record(new AssessEvent(result)
        {
            Repository = context.RepositoryText ?? "",
            Result = result.Damaged ? "fail" : incomplete.Count > 0 ? "error" : "pass",
            Database = db.Name,
            DurationMs = sw.ElapsedMilliseconds,
        });
        return result with { EvidenceSeq = seq, Elapsed = sw.Elapsed };
    }

    private static async Task<T?> Probe<T>(Func<Task<T>> probe, string what, string fix, List<string> incomplete) where T : class
    {
        try
        {
            return await probe().ConfigureAwait(false);
        }
        catch (CheckQueryException e)
        {
            incomplete.Add($"{what}: not checked ({e.Message}); {fix}");
            return null;
        }
    }

    /// <summary>One entry per damaged relation; an index is "index only" when the table it belongs to verified clean.</summary>
    internal static List<DamagedRelation> Damaged(IReadOnlyList<AmcheckFinding> findings, IReadOnlyList<InvalidIndex> invalid, IReadOnlyList<MissingFile> missing)
    {
        var byName = new Dictionary<string, (string Schema, string Name, bool IsIndex, string TS, string T, List<string> Sources, List<string> Details)>(StringComparer.Ordinal);
        void Add(string schema, string name, bool isIndex, string ts, string t, string source, string detail)
        {
            var key = schema + "." + name;
            if (!byName.TryGetValue(key, out var e))
            {
                byName[key] = e = (schema, name, isIndex, ts, t, [], []);
            }
            if (!e.Sources.Contains(source))
            {
                e.Sources.Add(source);
            }
            e.Details.Add(detail);
        }
        foreach (var f in findings)
        {
            Add(f.Target.Schema, f.Target.Name, f.Target.IsIndex, f.Target.TableSchema, f.Target.Table, "amcheck", f.Line);
        }
        foreach (var i in invalid)
        {
            Add(i.Schema, i.Name, true, i.TableSchema, i.Table, "invalid_index", $"index {i.Display} is marked invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX): queries do not use it");
        }
        foreach (var m in missing)
        {
            Add(m.Schema, m.Name, m.IsIndex, m.TableSchema, m.Table, "missing_file", $"{(m.IsIndex ? "index" : "relation")} {m.Display}: its file {m.Path} does not exist");
        }
        var damagedTables = byName.Values.Where(v => !v.IsIndex).Select(v => v.TS + "." + v.T).ToHashSet(StringComparer.Ordinal);
        return [.. byName.Values.OrderBy(v => v.IsIndex).ThenBy(v => v.Schema, StringComparer.Ordinal).ThenBy(v => v.Name, StringComparer.Ordinal)
            .Select(v => new DamagedRelation(v.Schema, v.Name, v.IsIndex, v.TS, v.T, v.Sources, v.Details) { IndexOnly = v.IsIndex && !damagedTables.Contains(v.TS + "." + v.T) })];
    }

    /// <summary>The repository's side: the database's backups, which passed a drill, which reach the newest WAL; earlier sightings of damage.</summary>
    private async Task<(BackupHistory, WalReach?, Dictionary<string, DateTimeOffset>, Dictionary<string, DateTimeOffset>)> HistoryAsync(string name, CheckSession session, List<string> incomplete, CancellationToken ct)
    {
        var previouslySeen = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        var badPages = new Dictionary<string, DateTimeOffset>(StringComparer.Ordinal);
        if (context.RepositoryText is null)
        {
            incomplete.Add("repair plan: no repository is configured, so no backup can be proposed; give --repo (or CAIRN_REPOSITORY / repository: in cairn.yaml)");
            return (new BackupHistory([], new Dictionary<string, long>(), new HashSet<string>()), null, previouslySeen, badPages);
        }
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        var mine = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(new SnapshotFilter(name).Matches).ToList();

        // Only records a verified checkpoint covers: a forged "drill pass" line must not steer a recovery.
        var reading = context.Evidence.ReadVerified();
        foreach (var f in reading.Findings.Where(f => f.State != Monitoring.HealthState.Ok))
        {
            incomplete.Add($"evidence: {f.Message}");
        }
        var drillPasses = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var e in reading.Entries)
        {
            if (e.Record is not { } r || Text(r, "database") != name)
            {
                continue;
            }
            if (e.Kind == "drill" && Text(r, "result") == "pass" && Text(r, "snapshot") is { } snap)
            {
                drillPasses[snap] = e.Seq;
            }
            if (e.Kind == Kind && e.Time is { } at && r["details"]?["damaged"] is JsonArray list)
            {
                foreach (var rel in list.Select(x => x?["relation"]?.GetValue<string>()).OfType<string>())
                {
                    var first = r["details"]?["damaged"]?.AsArray().FirstOrDefault(x => x?["relation"]?.GetValue<string>() == rel)?["first_seen"]?.GetValue<string>();
                    var t = first is not null && DateTimeOffset.TryParse(first, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : at;
                    if (!previouslySeen.TryGetValue(rel, out var old) || t < old)
                    {
                        previouslySeen[rel] = t;
                    }
                }
            }
        }

        var physical = mine.Where(s => s.Manifest.Kind == BackupKinds.Physical).ToList();
        if (physical.Any(s => s.Manifest.Meta.ContainsKey(PhysicalFiles.BadPagesMetaKey)))
        {
            var paths = await DamageSurvey.RelationPathsAsync(session, ct).ConfigureAwait(false);
            foreach (var s in physical.OrderBy(s => s.Manifest.Time))
            {
                foreach (var page in (s.Manifest.Meta.GetValueOrDefault(PhysicalFiles.BadPagesMetaKey) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    // "base/5/16384.1:7": the relation's path is the part before the segment suffix and the block.
                    var file = page[..Math.Max(0, page.LastIndexOf(':'))];
                    var dot = file.LastIndexOf('.');
                    var rel = dot > file.LastIndexOf('/') ? file[..dot] : file;
                    if (paths.TryGetValue(rel, out var p))
                    {
                        badPages.TryAdd(p.Schema + "." + p.Name, s.Manifest.Time);
                    }
                }
            }
        }

        var archive = new WalArchive(repo, name);
        var archived = await archive.ListAsync(ct).ConfigureAwait(false);
        var newest = WalArchive.NewestSegment(archived);
        var continuous = new HashSet<string>(StringComparer.Ordinal);
        if (newest is not null && physical.Count > 0)
        {
            var histories = await archive.HistoriesAsync(archived, ct).ConfigureAwait(false);
            var names = archived.Select(w => w.Name).ToList();
            foreach (var s in physical)
            {
                if (WalContinuity.Missing(names, PhysicalBackupMeta.Of(s).StartWal, histories).Count == 0)
                {
                    continuous.Add(s.Id);
                }
            }
        }
        var wal = new WalReach(newest?.Name, newest?.LastModified, [.. physical.Where(s => continuous.Contains(s.Id)).OrderByDescending(s => s.Manifest.Time)]);
        return (new BackupHistory(mine, drillPasses, continuous), wal, previouslySeen, badPages);
    }

    private static string? Text(JsonObject r, string key) => r[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;
}
