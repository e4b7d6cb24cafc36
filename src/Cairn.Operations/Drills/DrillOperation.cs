using System.Diagnostics;
using Cairn.Operations.Checks;
using Cairn.Operations.Logical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Drills;

/// <summary>A drill of the logical backup <see cref="SnapshotId"/> (default: the latest) of <see cref="Database"/>; <see cref="Keep"/> leaves the scratch server running.</summary>
/// <see cref="AllowSkipped"/> (<c>--allow-skipped</c>): a check that could not run does not fail the drill.
public sealed record DrillRequest(DatabaseTarget Database, string? SnapshotId = null, bool Keep = false, bool AllowSkipped = false);

/// <param name="RolesCreated">The roles the restore created on the scratch server, with what it withheld.</param>
public sealed record DrillResult(Snapshot Snapshot, Fingerprint? Fingerprint, IReadOnlyList<CheckResult> Checks, TimeSpan? Rto, TimeSpan? DataAge, TimeSpan Total, string? KeptUrl, string? KeptDataDirectory,
    IReadOnlyList<CreatedRole>? RolesCreated = null)
{
    /// <summary>Skipped checks are accepted (<c>--allow-skipped</c>).</summary>
    public bool AllowSkipped { get; init; }

    public CheckTally Tally => CheckTally.Of(Checks, AllowSkipped);

    public bool Passed => Tally.Ok;

    /// <summary>Where a drill with <c>drill: { on: URL }</c> restored (redacted), or null for a scratch server.</summary>
    public string? On { get; init; }

    /// <summary>Problems that did not fail the drill (the mirror table could not be written).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// A restore drill: restore a backup into a scratch server Cairn starts, run every check against the
/// restored copy, measure RTO (start until the restored server answers queries) and data age (how old
/// the newest restored data is), and tear everything down — also on failure and on Ctrl-C.
/// </summary>
public sealed class DrillOperation(OperationContext context)
{
    /// <summary>The checks a drill runs when none are configured: the restored rows equal the fingerprint, foreign keys intact.</summary>
    public static IReadOnlyList<CheckSpec> DefaultChecks { get; } = [new RowCountsCheck(null, true, null, null, null), new ForeignKeysCheck()];

    /// <summary>The restored copy's URL for command checks (no password: it reaches them through PGPASSFILE).</summary>
    private static string RestoredUrl(PgConnection target) => target.UrlWithoutPassword();

    /// <summary>
    /// Drops the drill's database on the user's server, even when the drill was cancelled (no token: a Ctrl-C must
    /// not leave it behind), with sessions still connected to it ended (FORCE).
    /// </summary>
    private static async Task DropAsync(PgConnection server, string database)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await LogicalRestorer.DropDatabaseAsync(server, database, cts.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// The checks to run: when the restore left objects out and no <c>restore_complete</c> check is configured, one that
    /// allows nothing is added, so a left-out object fails the drill until the configuration names its cause.
    /// </summary>
    internal static IReadOnlyList<CheckSpec> WithRestoreComplete(IReadOnlyList<CheckSpec> checks, IReadOnlyList<SkippedObject> skipped)
        => skipped.Count > 0 && !checks.Any(c => c is RestoreCompleteCheck) ? [.. checks, new RestoreCompleteCheck([])] : checks;

    /// <summary>A backup that holds Storage files is drilled with <c>storage_files</c> even when the configuration does not name it.</summary>
    internal static IReadOnlyList<CheckSpec> WithStorageFiles(IReadOnlyList<CheckSpec> checks, StorageFiles.StoragePart? part)
        => part is not null && !checks.Any(c => c is StorageFilesCheck) ? [.. checks, new StorageFilesCheck(null)] : checks;

    /// <summary>What the check compares with: the part's files by bucket and key (none when the backup holds no part).</summary>
    internal static StorageFilesView ViewOf(StorageFiles.StoragePart? part)
        => part is null
            ? StorageFilesView.None
            : new StorageFilesView(part.File.Buckets.Select(b => b.Name).ToHashSet(StringComparer.Ordinal), part.Objects.ToDictionary(o => (o.Bucket, o.Key), o => o.Size),
                part.File.Buckets.SelectMany(b => b.Vanished.Select(k => (b.Name, k))).ToHashSet());

    public async Task<DrillResult> RunAsync(DrillRequest request, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var db = request.Database;
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        DrillResult result;
        await using (var l = await repo.LockAsync(exclusive: false, $"drill {db.Name}", cancellationToken).ConfigureAwait(false))
        {
            result = await DrillAsync(repo, db.Name, request.SnapshotId, db.Checks, request.Keep, db.Config?.Drill, progress, cancellationToken).ConfigureAwait(false);
        }
        result = result with { AllowSkipped = request.AllowSkipped };
        var seq = context.Evidence.Record(new LogicalDrillEvent((long?)result.Rto?.TotalMilliseconds, (long?)result.DataAge?.TotalSeconds, result.Fingerprint?.BackupTime,
            result.Tally, request.AllowSkipped, RoleSummary.Of(result.RolesCreated ?? []))
        {
            Repository = repo.Storage.Location,
            Result = EvidenceEvent.Outcome(result.Passed),
            Database = db.Name,
            Snapshot = result.Snapshot.Id,
            DurationMs = (long)result.Total.TotalMilliseconds,
            Checks = result.Checks,
            On = result.On,
        });
        var warning = await ResultMirror.WriteAsync(context, db.Connection, ResultMirror.CheckRows("drill", db.Name, result.Checks, context.Time.GetUtcNow(), result.Total, seq), cancellationToken).ConfigureAwait(false);
        await Recording.EvidencePublishing.AfterAsync(context, repo, cancellationToken).ConfigureAwait(false);
        return warning is null ? result : result with { Warnings = [warning] };
    }

    private async Task<DrillResult> DrillAsync(Repository.Repository repo, string name, string? snapshotId, IReadOnlyList<CheckSpec> checks, bool keep, Configuration.DrillTargetConfig? on,
        IProgress<string>? progress, CancellationToken ct)
    {
        var time = context.Time;
        var total = Stopwatch.StartNew();
        var filter = new SnapshotFilter(name, LogicalBackupOperation.Kind);
        var all = await repo.ListSnapshotsAsync(ct).ConfigureAwait(false);
        var snap = SnapshotSelector.Select(all, snapshotId, filter);
        var logical = all.Where(filter.Matches).ToList();
        var fp = await LogicalSnapshots.ReadFingerprintAsync(repo, snap, ct).ConfigureAwait(false);
        Fingerprint? previous = null;
        var earlier = logical.Where(s => s.Manifest.Time < snap.Manifest.Time).LastOrDefault();
        if (earlier is not null)
        {
            previous = await LogicalSnapshots.ReadFingerprintAsync(repo, earlier, ct).ConfigureAwait(false);
        }
        var results = new List<CheckResult>();
        ScratchServer? server = null;
        // On the user's server: a database of our own, dropped afterwards (also on failure and Ctrl-C), never one that existed.
        PgConnection? chosen = null;
        string? created = null;
        try
        {
            PgConnection serverConn;
            string database;
            if (on is not null)
            {
                chosen = PgConnection.Parse(on.On, on.PasswordFile);
                serverConn = chosen;
                database = $"cairn_drill_{Guid.NewGuid():N}"[..28];
                created = database;
            }
            else
            {
                progress?.Report("starting a scratch server");
                server = await ScratchServer.StartAsync(context.Toolchain.Binaries(fp.ServerVersionNum / 10000), cancellationToken: ct).ConfigureAwait(false);
                serverConn = PgConnection.Parse(server.Url()).WithoutPassword();
                database = fp.Database;
            }
            var where = on is null ? "a scratch server" : serverConn.WithDatabase(database).Redacted;
            var restoreClock = Stopwatch.StartNew();
            RestoreResult restore;
            try
            {
                progress?.Report($"restoring into {where}");
                restore = await LogicalRestoreOperation.RestoreDatabaseAsync(repo, snap, serverConn, database, clean: false, jobs: 2, noOwner: false, withRoleAttributes: false, createMissingRoles: false, progress, context.Toolchain, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is PgToolException or Repository.RepositoryException or IOException or Npgsql.NpgsqlException)
            {
                results.Add(new CheckResult("restore", "restore", $"the backup restores into {where}", "failed", CheckStatus.Fail, restoreClock.Elapsed, e.Message));
                return new DrillResult(snap, fp, results, null, time.GetUtcNow() - fp.BackupTime, total.Elapsed, null, null) { On = on is null ? null : where };
            }
            var target = serverConn.WithDatabase(database);
            await using (var probe = await Cairn.PostgreSql.Sessions.CheckSession.OpenAsync(target, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
            {
                await probe.QueryAsync("SELECT 1", null, ct).ConfigureAwait(false);
            }
            var rto = total.Elapsed;
            var skippedNote = restore.Skipped.Count == 0 ? "" : $" ({restore.Skipped.Count} object(s) the server could not hold left out: restore_complete judges them)";
            results.Add(new CheckResult("restore", "restore", $"{fp.Tables.Count} tables, {fp.TotalRows} rows restored into {where}", (restore.Ok ? "restored" : $"{restore.Mismatches.Count} table(s) differ") + skippedNote,
                restore.Ok ? CheckStatus.Pass : CheckStatus.Fail, restoreClock.Elapsed, restore.Ok ? null : string.Join("; ", restore.Mismatches.Select(m => $"{m.Table}: {m.What} expected {m.Expected}, found {m.Actual?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no table"}"))));
            // The checks run on the erased state: the ledger is applied again first, and the fingerprint expects its deletes.
            progress?.Report("re-applying the erasure ledger");
            var erasures = await Lifecycle.Erasure.ErasureReplay.ApplyAsync(repo, name, target, ct).ConfigureAwait(false);
            if (erasures.Entries > 0)
            {
                results.Add(new CheckResult("erasure ledger", "erasure_replay", $"{erasures.Entries} erasure(s) applied again", $"{erasures.Reapplied} found data ({erasures.Rows} rows)", CheckStatus.Pass, default));
            }
            var checkFingerprint = Lifecycle.Erasure.ErasureReplay.AdjustFingerprint(fp, erasures);
            progress?.Report("running checks");
            // Commands see the restored copy as their default server (PGHOST...), never the live one.
            using var commandEnvironment = target.ProgramEnvironment();
            var storage = await StorageFiles.StoragePart.ReadAsync(repo, snap, ct).ConfigureAwait(false);
            var checkTarget = new CheckTarget(target, fp.BackupTime, checkFingerprint, previous, IsScratchCopy: true, server?.Url(fp.Database) ?? RestoredUrl(target), commandEnvironment.Variables, erasures.Ledger, restore.Skipped,
                ViewOf(storage));
            results.AddRange(await CheckRunner.RunAsync(WithStorageFiles(WithRestoreComplete(checks.Count > 0 ? checks : DefaultChecks, restore.Skipped), storage), checkTarget, TimeSpan.FromMinutes(10), ct).ConfigureAwait(false));
            var dataAge = time.GetUtcNow() - fp.BackupTime;
            string? keptUrl = null;
            string? keptDir = null;
            if (keep && server is not null)
            {
                keptUrl = server.Url(fp.Database);
                keptDir = server.DataDirectory;
                server = null; // the caller asked to keep it
            }
            else if (keep)
            {
                keptUrl = RestoredUrl(target);
                created = null; // kept on the chosen server: the user drops it
            }
            return new DrillResult(snap, fp, results, rto, dataAge, total.Elapsed, keptUrl, keptDir, restore.Roles.Created) { On = on is null ? null : where };
        }
        finally
        {
            if (server is not null)
            {
                await server.DisposeAsync().ConfigureAwait(false);
            }
            if (chosen is not null && created is not null)
            {
                await DropAsync(chosen, created).ConfigureAwait(false);
            }
        }
    }
}
