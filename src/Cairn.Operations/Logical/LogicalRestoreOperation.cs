using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Logical;

/// <param name="Roles">The roles the restore created (with what it withheld) and those it found and left alone.</param>
/// <param name="Skipped">Objects the target could not hold (an extension it lacks and what depends on it; event triggers
/// without a superuser), left out and listed; tables among them are not <see cref="Mismatches"/>.</param>
public sealed record RestoreResult(string Database, Fingerprint Fingerprint, IReadOnlyList<CountMismatch> Mismatches, IReadOnlyList<string> Warnings, TimeSpan Duration, RoleReport Roles,
    IReadOnlyList<SkippedObject> Skipped)
{
    public bool Ok => Mismatches.Count == 0;
}

/// <summary>
/// A whole logical backup of <see cref="Database"/> restored into the new database <see cref="ToDatabase"/> on
/// <see cref="Server"/> (default: the source's server). <see cref="WithRoleAttributes"/> grants created roles SUPERUSER,
/// CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and memberships in roles the restore did not create, as the source had
/// them (by default they are withheld and reported).
/// </summary>
public sealed record DatabaseRestoreRequest(DatabaseTarget Database, string? SnapshotId, string ToDatabase, PgConnection? Server = null, bool Clean = false, int Jobs = 2, bool NoOwner = false,
    bool WithRoleAttributes = false)
{
    /// <summary><c>--create-missing-roles</c>: the platform's roles the target lacks are created empty and NOLOGIN, so what names them is restored.</summary>
    public bool CreateMissingRoles { get; init; }
}

/// <param name="Erasures">The erasure ledger re-applied to the restored database before the restore reported success.</param>
public sealed record DatabaseRestoreResult(Snapshot Snapshot, string ToDatabase, string Target, RestoreResult Restore, Lifecycle.Erasure.ReplayResult Erasures);

/// <summary><c>restore DATABASE --to-database NEW</c>: restore a logical backup and check every table against its fingerprint.</summary>
public sealed class LogicalRestoreOperation(OperationContext context)
{
    public async Task<DatabaseRestoreResult> RunAsync(DatabaseRestoreRequest request, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var server = request.Server ?? db.Connection;
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"restore {db.Name}", cancellationToken).ConfigureAwait(false);
        await DeletedBackups.WarnAsync(context, repo, db.Name, cancellationToken).ConfigureAwait(false);
        var snap = await LogicalSnapshots.SelectAsync(repo, db.Name, request.SnapshotId, cancellationToken).ConfigureAwait(false);
        var result = await RestoreDatabaseAsync(repo, snap, server, request.ToDatabase, request.Clean, Math.Max(1, request.Jobs), request.NoOwner, request.WithRoleAttributes,
            request.CreateMissingRoles, progress, context.Toolchain, cancellationToken).ConfigureAwait(false);
        var target = server.WithDatabase(request.ToDatabase).Redacted;
        // Every erasure since the backup is applied again before the restore says it succeeded (docs/repository-format.md).
        var erasures = await Lifecycle.Erasure.ErasureReplay.ApplyAsync(repo, db.Name, server.WithDatabase(request.ToDatabase), cancellationToken).ConfigureAwait(false);
        var seq = context.Evidence.Record(new DatabaseRestoreEvent(target, result.Fingerprint.Tables.Count, result.Fingerprint.TotalRows, result.Mismatches.Count, RoleSummary.Of(result.Roles.Created))
        {
            Skipped = result.Skipped,
            ErasuresInLedger = erasures.Entries,
            ErasuresReapplied = erasures.Reapplied,
            Repository = repo.Storage.Location,
            Result = EvidenceEvent.Outcome(result.Ok),
            Database = db.Name,
            Snapshot = snap.Id,
            DurationMs = (long)result.Duration.TotalMilliseconds,
        });
        if (await Checks.ResultMirror.WriteAsync(context, db.Connection, [Checks.ResultMirror.EventRow("restore", db.Name, result.Ok, null, context.Time.GetUtcNow(), result.Duration, seq, $"to {target}")], cancellationToken).ConfigureAwait(false) is { } warning)
        {
            context.Warn(warning);
        }
        return new DatabaseRestoreResult(snap, request.ToDatabase, target, result, erasures);
    }

    /// <summary>Full restore into a new database on <paramref name="server"/>, then checks every table against the fingerprint.</summary>
    /// <param name="createMissingRoles">Create the platform's roles the target lacks, empty and NOLOGIN (otherwise what names them is left out and listed).</param>
    /// <param name="withRoleAttributes">Grant SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and memberships in
    /// roles the restore did not create, as the source had them (by default they are withheld and reported).</param>
    internal static async Task<RestoreResult> RestoreDatabaseAsync(Repository.Repository repo, Snapshot s, PgConnection server, string database, bool clean, int jobs, bool noOwner,
        bool withRoleAttributes, bool createMissingRoles, IProgress<string>? progress, PgToolchain toolchain, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var fp = await LogicalSnapshots.ReadFingerprintAsync(repo, s, ct).ConfigureAwait(false);
        var roles = noOwner ? null : await LogicalSnapshots.ReadRolesAsync(repo, s, ct).ConfigureAwait(false);
        var work = toolchain.NewWorkFolder("cairn-restore");
        try
        {
            progress?.Report("preparing database and roles");
            var report = await LogicalRestorer.PrepareDatabaseAsync(server, database, fp, roles, withRoleAttributes, clean, createMissingRoles, ct).ConfigureAwait(false);
            var warnings = new List<string>(report.Warnings);
            progress?.Report("reading the backup");
            await LogicalSnapshots.MaterializeAsync(repo, s, Path.Combine(work, "dump"), null, ct).ConfigureAwait(false);
            progress?.Report("pg_restore");
            var target = server.WithDatabase(database);
            var outcome = await LogicalRestorer.PgRestoreAsync(target, Path.Combine(work, "dump"), jobs, noOwner, work, toolchain.PostgresBin, ct).ConfigureAwait(false);
            warnings.AddRange(outcome.Warnings);
            progress?.Report("checking rows against the fingerprint");
            var mismatches = await LogicalRestorer.CheckRestoredAsync(target, fp, outcome.Skipped, ct).ConfigureAwait(false);
            return new RestoreResult(database, fp, mismatches, warnings, sw.Elapsed, report, outcome.Skipped);
        }
        finally
        {
            LogicalSnapshots.TryDelete(work);
        }
    }
}

/// <summary>
/// Tables of a logical backup of <see cref="Database"/> restored into <see cref="StagingSchema"/> beside the live data
/// (on <see cref="Server"/>, default the source), compared by primary key; with <see cref="MergeMissing"/> the rows that
/// exist only in the backup are inserted, in one transaction.
/// </summary>
public sealed record TableRestoreRequest(DatabaseTarget Database, string? SnapshotId, IReadOnlyList<string> Tables, string StagingSchema, bool MergeMissing, PgConnection? Server = null);

/// <param name="Erasures">With a merge: the erasure ledger re-applied in the merge's transaction (erased rows are never merged back).</param>
public sealed record TableRestoreResult(Snapshot Snapshot, IReadOnlyList<TableDiff> Diffs, bool Merged, Lifecycle.Erasure.ReplayResult? Erasures);

/// <summary><c>restore DATABASE --table T --into-schema S</c>: only the table of contents and the named tables' files are read from the repository.</summary>
public sealed class TableRestoreOperation(OperationContext context)
{
    public async Task<TableRestoreResult> RunAsync(TableRestoreRequest request, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var tables = request.Tables.Select(Catalog.ParseQualified).ToList();
        if (TableRestorer.StagingSchemaProblem(request.StagingSchema, tables) is { } problem)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, problem);
        }
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"restore {db.Name}", cancellationToken).ConfigureAwait(false);
        await DeletedBackups.WarnAsync(context, repo, db.Name, cancellationToken).ConfigureAwait(false);
        var snap = await LogicalSnapshots.SelectAsync(repo, db.Name, request.SnapshotId, cancellationToken).ConfigureAwait(false);
        var target = request.Server ?? db.Connection;
        var work = context.Toolchain.NewWorkFolder("cairn-tables");
        List<TableDiff> diffs;
        Lifecycle.Erasure.ReplayResult? erasures = null;
        try
        {
            var dir = Path.Combine(work, "dump");
            await LogicalSnapshots.MaterializeAsync(repo, snap, dir, f => f == "toc.dat", cancellationToken).ConfigureAwait(false);
            var files = await TableRestorer.DataFilesAsync(dir, context.Toolchain.PostgresBin, cancellationToken).ConfigureAwait(false);
            var needed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (schema, name) in tables)
            {
                if (!files.TryGetValue($"{schema}.{name}", out var f))
                {
                    throw new PgToolException($"table {schema}.{name} is not in backup {snap.ShortId} (it has {files.Count} tables with data)");
                }
                needed.Add(f);
            }
            await LogicalSnapshots.MaterializeAsync(repo, snap, dir, needed.Contains, cancellationToken).ConfigureAwait(false);
            diffs = await TableRestorer.RestoreAsync(target, dir, tables, request.StagingSchema, work, context.Toolchain.PostgresBin, cancellationToken).ConfigureAwait(false);
            if (request.MergeMissing)
            {
                var entries = await Lifecycle.Erasure.ErasureLedgerEntries.ReadAsync(repo, db.Name, cancellationToken).ConfigureAwait(false);
                diffs = await TableRestorer.MergeMissingAsync(target, tables, request.StagingSchema,
                    async (c, tx) => erasures = await Lifecycle.Erasure.ErasureReplay.ApplyAsync(c, tx, entries, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            LogicalSnapshots.TryDelete(work);
        }
        context.Evidence.Record(new TableRestoreEvent(request.Tables, request.StagingSchema, request.MergeMissing ? "missing" : "none", diffs.Sum(d => d.Merged))
        {
            ErasuresInLedger = erasures?.Entries,
            ErasuresReapplied = erasures?.Reapplied,
            Repository = repo.Storage.Location,
            Database = db.Name,
            Snapshot = snap.Id,
        });
        return new TableRestoreResult(snap, diffs, request.MergeMissing, erasures);
    }
}

/// <summary>Reading logical backups back: which one, its fingerprint and roles, its dump files.</summary>
public static class LogicalSnapshots
{
    /// <summary>The logical backup of <paramref name="database"/> the user meant: latest, or an ID prefix.</summary>
    public static async Task<Snapshot> SelectAsync(Repository.Repository repo, string database, string? snapshotId, CancellationToken ct)
        => await SnapshotSelector.ChooseAsync(repo, all => SnapshotSelector.Select(all, snapshotId, new SnapshotFilter(database, LogicalBackupOperation.Kind)), ct).ConfigureAwait(false);

    public static async Task<Fingerprint> ReadFingerprintAsync(Repository.Repository repo, Snapshot s, CancellationToken ct)
    {
        var item = s.Manifest.Items.FirstOrDefault(i => i.Name == LogicalBackupOperation.FingerprintItem)
            ?? throw new DataDamagedException($"snapshot {s.ShortId} has no fingerprint");
        var ms = new MemoryStream();
        await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
        var what = $"the fingerprint of snapshot {s.ShortId}";
        var fp = StoredJson.Decode(ms.ToArray(), FingerprintJson.Default.Fingerprint, what).Normalised();
        return fp.Problem() is { } problem ? throw new DataDamagedException($"{what} is unusable: {problem}; run 'cairn verify'") : fp;
    }

    /// <summary>Writes the dump items (all, or those named) into a folder pg_restore can read.</summary>
    public static async Task MaterializeAsync(Repository.Repository repo, Snapshot s, string folder, Func<string, bool>? which, CancellationToken ct)
    {
        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var items = s.Manifest.Items.Where(i => i.Name.StartsWith(LogicalBackupOperation.DumpPrefix, StringComparison.Ordinal))
            .Where(i => which is null || which(i.Name[LogicalBackupOperation.DumpPrefix.Length..])).ToList();
        await Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = ct }, async (item, token) =>
        {
            var path = Path.Combine(folder, Path.GetFileName(item.Name));
            await using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
            await repo.ReadItemAsync(item, fs, null, token).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The snapshot's roles: roles.json, or the roles.sql an older Cairn wrote (parsed as data, never run;
    /// a file not in the form Cairn wrote refuses the restore), or none.
    /// </summary>
    public static async Task<RoleSet> ReadRolesAsync(Repository.Repository repo, Snapshot s, CancellationToken ct)
    {
        if (s.Manifest.Items.FirstOrDefault(i => i.Name == LogicalBackupOperation.RolesItem) is { } item)
        {
            var ms = new MemoryStream();
            await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
            return RoleSet.FromJson(ms.ToArray());
        }
        var legacy = await ReadTextItemAsync(repo, s, LogicalBackupOperation.LegacyRolesItem, ct).ConfigureAwait(false);
        return legacy.Length == 0 ? RoleSet.Empty : LegacyRolesSql.Parse(legacy);
    }

    public static async Task<string> ReadTextItemAsync(Repository.Repository repo, Snapshot s, string name, CancellationToken ct)
    {
        var item = s.Manifest.Items.FirstOrDefault(i => i.Name == name);
        if (item is null)
        {
            return "";
        }
        var ms = new MemoryStream();
        await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    internal static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }
}
