using System.Diagnostics;
using System.Globalization;
using Cairn.Operations.Drills;
using Cairn.Operations.Lifecycle.Erasure;
using Cairn.Operations.Logical;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Lifecycle;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Lifecycle.Recovery;

/// <summary>Where <c>recover --table T --at TIME</c> rebuilds the table from (<c>--from</c>).</summary>
public enum RecoverSource
{
    /// <summary>Physical when a physical backup and gap-free WAL archived past TIME cover it, else logical.</summary>
    Auto,

    /// <summary>A scratch point-in-time restore of the newest physical backup before TIME and the archived WAL.</summary>
    Physical,

    /// <summary>The newest logical backup before TIME plus the audit trail's row images up to TIME.</summary>
    Logical,
}

/// <param name="Table">The live table to bring back, <c>schema.table</c> (a bare name means public).</param>
/// <param name="At">The moment the table is rebuilt as of.</param>
/// <param name="StagingSchema">Where the copy as of <paramref name="At"/> is staged beside the live table.</param>
/// <param name="Merge">Insert the rows the copy has and the live table lacks (one transaction, the ledger applied before the commit).</param>
/// <param name="DryRun">Build and compare the copy, then drop it: nothing in the database changes and nothing is recorded.</param>
/// <param name="From">Which backups the copy is built from.</param>
public sealed record RecoverTableRequest(DatabaseTarget Database, string Table, DateTimeOffset At, string StagingSchema = RecoverTableRequest.DefaultSchema, bool Merge = false, bool DryRun = false,
    string? SnapshotId = null, RecoverSource From = RecoverSource.Auto)
{
    public const string DefaultSchema = "cairn_recover";
}

/// <summary>How the audit trail was replayed onto the logical backup's copy of the table.</summary>
/// <param name="BackupTime">The logical backup's snapshot time (the start of the transaction whose snapshot pg_dump read).</param>
/// <param name="From">The first audit time read: <see cref="BackupTime"/> less <see cref="RecoverTableOperation.ReplayOverlap"/>.</param>
/// <param name="Events">Every event read, in the order applied, for the table and the tables an erasure needs to reach it.</param>
/// <param name="UnknownColumns">Image keys that are not columns of the backup's table (left out).</param>
public sealed record AuditReplay(DateTimeOffset BackupTime, DateTimeOffset From, IReadOnlyList<ReplayOutcome> Events, IReadOnlyList<string> UnknownColumns)
{
    public int Applied => Events.Count(e => e.Applied);

    public IReadOnlyList<ReplayOutcome> NotApplied => [.. Events.Where(e => !e.Applied)];
}

/// <param name="Source">Where the copy came from: <c>physical</c> or <c>logical</c>.</param>
/// <param name="Choice">Why that source: the option given, or what --from auto found.</param>
/// <param name="Diff">The copy as of <see cref="At"/> against the live table (by primary key); <c>Merged</c> is what came back.</param>
/// <param name="Erasures">The erasure ledger applied to the copy before anything was read from it (and again inside a merge).</param>
/// <param name="StopProof">Physical only: where recovery stopped (the copy is the table as of <see cref="At"/> only when this passed).</param>
/// <param name="Replay">Logical only: the audit events replayed onto the backup's copy, and those that could not be.</param>
public sealed record RecoverTableResult(string Database, string Table, DateTimeOffset At, string Source, string Choice, Snapshot Snapshot, TableDiff Diff, bool Merged, bool DryRun, ReplayResult Erasures,
    ReplayResult? MergeErasures, Checks.CheckResult? StopProof, AuditReplay? Replay, TimeSpan Duration);

/// <summary>
/// <c>cairn recover DATABASE --table T --at TIME</c>: the table as it was at TIME, staged beside the live table with the diff
/// of table restore, and with <see cref="RecoverTableRequest.Merge"/> the rows that are missing now inserted in one
/// transaction that applies the erasure ledger again before it commits (rows inserted after TIME and rows that exist in
/// both are never touched). Two sources: a scratch point-in-time restore of the physical backup and archived WAL (proved
/// to have stopped at TIME), or the newest logical backup before TIME with the audit trail's row images replayed onto the
/// table up to TIME. Either copy has the erasure ledger applied before a row of it is read. One <c>recover</c> evidence
/// record per run.
/// </summary>
public sealed class RecoverTableOperation(OperationContext context)
{
    /// <summary>
    /// How far before the logical backup's snapshot time the audit trail is replayed. An audit row's time is when its
    /// transaction started (or wrote it), not when it committed: a transaction that started before the backup and committed
    /// after it is not in the backup, yet its events are older than the backup. Replaying is idempotent (a row is set to its
    /// newest image, a delete deletes by key), so events the backup already holds are harmless; the overlap covers
    /// transactions that ran up to this long across the backup's start.
    /// </summary>
    public static readonly TimeSpan ReplayOverlap = TimeSpan.FromMinutes(10);

    public async Task<RecoverTableResult> RunAsync(RecoverTableRequest request, CancellationToken cancellationToken)
    {
        var ct = cancellationToken;
        var db = request.Database;
        var name = db.Name;
        var table = Catalog.ParseQualified(request.Table);
        IReadOnlyList<(string Schema, string Name)> tables = [table];
        if (TableRestorer.StagingSchemaProblem(request.StagingSchema, tables) is { } problem)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, problem);
        }
        var now = context.Time.GetUtcNow();
        if (request.At >= now)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--at {Stamp(request.At)} is not in the past (now {Stamp(now)}); give the moment before the rows were lost");
        }
        var sw = Stopwatch.StartNew();
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        await using var repoLock = await repo.LockAsync(exclusive: false, $"recover {name} --table {request.Table} --at", ct).ConfigureAwait(false);
        var ledger = await ErasureLedgerEntries.ReadAsync(repo, name, ct).ConfigureAwait(false);
        var (source, choice) = await ChooseSourceAsync(repo, request, ct).ConfigureAwait(false);
        var built = source == RecoverSource.Physical
            ? await FromPhysicalAsync(repo, request, tables, ct).ConfigureAwait(false)
            : await FromLogicalAsync(repo, request, table, ledger, ct).ConfigureAwait(false);
        var diff = built.Diff;
        var sourceName = source == RecoverSource.Physical ? "physical" : "logical";
        if (request.DryRun)
        {
            await TableRestorer.DropStagingAsync(db.Connection, tables, request.StagingSchema, ct).ConfigureAwait(false);
            return new RecoverTableResult(name, Catalog.Qualified(table.Schema, table.Name), request.At, sourceName, choice, built.Snapshot, diff, false, true, built.Erasures, null, built.StopProof, built.Replay, sw.Elapsed);
        }
        ReplayResult? mergeErasures = null;
        if (request.Merge)
        {
            // The diff stays the one from before the merge (what differed); Merged says how many rows came back.
            var merged = (await TableRestorer.MergeMissingAsync(db.Connection, tables, request.StagingSchema,
                async (c, tx) => mergeErasures = await ErasureReplay.ApplyAsync(c, tx, ledger, ct).ConfigureAwait(false), ct).ConfigureAwait(false)).Single();
            diff = diff with { Merged = merged.Merged };
        }
        var result = new RecoverTableResult(name, Catalog.Qualified(table.Schema, table.Name), request.At, sourceName, choice, built.Snapshot, diff, request.Merge, false, built.Erasures, mergeErasures,
            built.StopProof, built.Replay, sw.Elapsed);
        var since = built.Replay?.BackupTime ?? PhysicalBackupMeta.Of(built.Snapshot).StopTime;
        context.Evidence.Record(new RecoverEvent(source == RecoverSource.Physical ? "pitr" : "logical-audit", since, request.At, diff.Merged, diff.RowsInBackup - diff.OnlyInBackup, built.Erasures.Rows,
            built.Replay?.NotApplied.Count ?? 0, 0, [result.Table])
        {
            Repository = repo.Storage.Location,
            Database = name,
            Snapshot = built.Snapshot.Id,
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
            EventsApplied = built.Replay?.Applied,
            Choice = choice,
        });
        return result;
    }

    private sealed record Built(Snapshot Snapshot, TableDiff Diff, ReplayResult Erasures, Checks.CheckResult? StopProof, AuditReplay? Replay);

    /// <summary>
    /// --from auto: physical when the newest physical backup before TIME exists, the WAL archived since its start has no gap,
    /// and a segment was archived after TIME (so the WAL reaches it); otherwise logical, saying which of these failed.
    /// </summary>
    private async Task<(RecoverSource Source, string Choice)> ChooseSourceAsync(Repository.Repository repo, RecoverTableRequest request, CancellationToken ct)
    {
        var name = request.Database.Name;
        if (request.From == RecoverSource.Physical)
        {
            return (RecoverSource.Physical, "--from physical");
        }
        if (request.From == RecoverSource.Logical)
        {
            return (RecoverSource.Logical, "--from logical");
        }
        var coverage = await ScratchPitr.CoverageAsync(repo, name, request.At, ct).ConfigureAwait(false);
        if (coverage.Backup is not null)
        {
            return (RecoverSource.Physical, "auto: " + coverage.Why);
        }
        var why = coverage.Why;
        if (request.Database.Config?.Audit is null)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"the table cannot be rebuilt as of {Stamp(request.At)}: {why}, and without an audit section for {name} in cairn.yaml " +
                "the logical backup cannot be brought forward from the audit trail (describe it under databases." + name + ".audit, or take physical backups with WAL archiving)");
        }
        return (RecoverSource.Logical, $"auto: logical backup and the audit trail, because {why}");
    }

    private async Task<Built> FromPhysicalAsync(Repository.Repository repo, RecoverTableRequest request, IReadOnlyList<(string Schema, string Name)> tables, CancellationToken ct)
    {
        var db = request.Database;
        var name = db.Name;
        return await ScratchPitr.RunAsync(context, repo, name, request.SnapshotId, request.At, db.Connection.Database, async (snap, copy, proof) =>
        {
            // Erased subjects never come back: the copy is erased before a row of it is read.
            var erasures = await ErasureReplay.ApplyAsync(repo, name, copy, ct).ConfigureAwait(false);
            var diff = (await TableRestorer.StageFromAsync(copy, db.Connection, tables, request.StagingSchema, ct).ConfigureAwait(false)).Single();
            return new Built(snap, diff, erasures, proof, null);
        }, "or rebuild from a logical backup and the audit trail with --from logical", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The table restored alone from the newest logical backup before TIME into a throwaway database on the live server
    /// (definitions without constraints), the audit trail's events with backup time − <see cref="ReplayOverlap"/> &lt;= time
    /// &lt;= TIME replayed onto it in the order they were written, then the erasure ledger applied — the rows of the table
    /// that reach an erased subject through foreign keys (the tables on those paths are restored and replayed too, so rows
    /// written after the backup are found), the named deletes, anonymisations and the subject's own row — and only then the
    /// table staged beside the live one and compared.
    /// </summary>
    private async Task<Built> FromLogicalAsync(Repository.Repository repo, RecoverTableRequest request, (string Schema, string Name) table, List<ErasureEntry> ledger, CancellationToken ct)
    {
        var db = request.Database;
        var name = db.Name;
        var audit = db.Config?.Audit ?? throw new RepositoryException(ErrorKind.InvalidInput,
            $"--from logical rebuilds the table from a logical backup and the audit trail, and {name} has no audit section: describe the audit trail under databases.{name}.audit in cairn.yaml " +
            "(table, time_column, entity_column, id_column, event_column, old_image, new_image)");
        var spec = new AuditSpec(audit.Table.Schema, audit.Table.Name, audit.TimeColumn, audit.EntityColumn, audit.IdColumn, audit.EventColumn, audit.OldImage, audit.NewImage);
        var snap = request.SnapshotId is { } id
            ? await LogicalSnapshots.SelectAsync(repo, name, id, ct).ConfigureAwait(false)
            : await SnapshotSelector.NewestMatchingAsync(repo, s => s.Manifest.Name == name && s.Manifest.Kind == BackupKinds.Logical && BackupTimeOf(s) < request.At, ct).ConfigureAwait(false)
              ?? throw new RepositoryException(ErrorKind.NotFound, $"no logical backup of {name} was taken before {Stamp(request.At)}, so the table cannot be rebuilt from one; 'cairn snapshots {name}' lists the backups");
        var backupTime = (await LogicalSnapshots.ReadFingerprintAsync(repo, snap, ct).ConfigureAwait(false)).BackupTime;
        if (backupTime >= request.At)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"logical backup {snap.ShortId} was taken at {Stamp(backupTime)}, after {Stamp(request.At)}; choose an older one or leave the snapshot out");
        }
        var from = backupTime - ReplayOverlap;
        LiveTable live;
        var helpers = new List<LiveTable>();
        var paths = new List<(ErasureEntry Entry, List<ForeignKey> Path)>();
        var events = new Dictionary<uint, List<ReplayEvent>>();
        await using (var c = await db.Connection.OpenAsync(ct).ConfigureAwait(false))
        {
            try
            {
                live = await LiveTables.FindAsync(c, table.Schema, table.Name, ct).ConfigureAwait(false);
            }
            catch (PgToolException)
            {
                throw new RepositoryException(ErrorKind.NotFound, $"table {Catalog.Display(table.Schema)}.{Catalog.Display(table.Name)} does not exist in {name} now, and --from logical matches audit events to rows by the live table's primary key; " +
                    "use --from physical, or 'cairn restore " + name + " --table' to bring the table back from a logical backup first");
            }
            var auditTable = await RecoverSql.ValidateAsync(c, spec, ct).ConfigureAwait(false);
            // An application's erasure function is treated as deleting what references the subject through foreign keys, too.
            foreach (var e in ledger)
            {
                LiveTable subject;
                try
                {
                    subject = await LiveTables.FindAsync(c, e.Spec.SubjectSchema, e.Spec.SubjectTable, ct).ConfigureAwait(false);
                }
                catch (PgToolException)
                {
                    continue; // the subject's table is gone: no foreign key can lead from it
                }
                foreach (var path in await AuditReplaySql.PathsToAsync(c, subject, live, ct).ConfigureAwait(false))
                {
                    paths.Add((e, path));
                    // The tables the path joins through must hold their rows as of TIME too (the subject's own only when it is joined).
                    var through = path.Select(f => f.Parent).Skip(AuditReplaySql.DirectFirstHop(path, e.Spec.KeyColumn) ? 1 : 0);
                    helpers.AddRange(through.Where(t => t.Oid != live.Oid && helpers.All(h => h.Oid != t.Oid)));
                }
            }
            foreach (var t in helpers.Append(live))
            {
                events[t.Oid] = await AuditReplaySql.EventsAsync(c, spec, auditTable, t, from, request.At, ct).ConfigureAwait(false);
            }
        }
        var work = context.Toolchain.NewWorkFolder("cairn-recover");
        var outcomes = new List<ReplayOutcome>();
        var unknown = new SortedSet<string>(StringComparer.Ordinal);
        ReplayResult? erasures = null;
        try
        {
            var dir = Path.Combine(work, "dump");
            await LogicalSnapshots.MaterializeAsync(repo, snap, dir, f => f == "toc.dat", ct).ConfigureAwait(false);
            var files = await TableRestorer.DataFilesAsync(dir, context.Toolchain.PostgresBin, ct).ConfigureAwait(false);
            var needed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var t in helpers.Append(live))
            {
                if (!files.TryGetValue($"{t.Schema}.{t.Name}", out var f))
                {
                    throw new PgToolException($"table {t.Display} is not in logical backup {snap.ShortId}" + (t.Oid == live.Oid ? "" : $" (the erasure ledger reaches {live.Display} through it)"));
                }
                needed.Add(f);
            }
            await LogicalSnapshots.MaterializeAsync(repo, snap, dir, needed.Contains, ct).ConfigureAwait(false);
            var diffs = await TableRestorer.RestoreAsync(db.Connection, dir, [table], [.. helpers.Select(h => (h.Schema, h.Name))], request.StagingSchema, work, context.Toolchain.PostgresBin, async stage =>
            {
                await using var s = await stage.OpenAsync(ct).ConfigureAwait(false);
                await using var tx = await s.BeginTransactionAsync(ct).ConfigureAwait(false);
                foreach (var t in helpers.Append(live))
                {
                    outcomes.AddRange(await AuditReplaySql.ApplyAsync(s, tx, t, t.Key, events[t.Oid], spec.NewImage is not null, t.Oid == live.Oid ? unknown : new SortedSet<string>(StringComparer.Ordinal), ct).ConfigureAwait(false));
                }
                // Erased subjects never come back, not even through an image replayed above: the copy is erased before a row of it is read.
                var reapplied = 0;
                long rows = 0;
                foreach (var e in ledger)
                {
                    long n = 0;
                    foreach (var (_, path) in paths.Where(p => ReferenceEquals(p.Entry, e)))
                    {
                        n += await AuditReplaySql.DeleteReachingAsync(s, tx, path, e.Spec.KeyColumn, e.Subject, ct).ConfigureAwait(false);
                    }
                    n += (await ErasureReplay.ApplyAsync(s, tx, [e], ct).ConfigureAwait(false)).Rows;
                    reapplied += n > 0 ? 1 : 0;
                    rows += n;
                }
                erasures = new ReplayResult(ledger.Count, reapplied, rows, null, ledger);
                await tx.CommitAsync(ct).ConfigureAwait(false);
            }, ct).ConfigureAwait(false);
            return new Built(snap, diffs.Single(), erasures ?? new ReplayResult(ledger.Count, 0, 0), null, new AuditReplay(backupTime, from, outcomes, [.. unknown]));
        }
        finally
        {
            LogicalSnapshots.TryDelete(work);
        }
    }

    /// <summary>When a logical backup's snapshot was taken, from its manifest (the commit time, later, when an old manifest lacks it).</summary>
    private static DateTimeOffset BackupTimeOf(Snapshot s)
        => s.Manifest.Meta.TryGetValue("backup_time", out var t) && DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var v) ? v : s.Manifest.Time;

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
}
