using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Cairn.Operations.Checks;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Logical;

/// <summary>A logical backup of <see cref="Database"/>: row counts (or also content hashes) as its fingerprint, <see cref="Jobs"/> pg_dump workers.</summary>
public sealed record LogicalBackupRequest(DatabaseTarget Database, bool ContentFingerprint = false, bool WithRolePasswords = false, int Jobs = 2)
{
    /// <summary>Tags for the manifest (<c>--tag</c>); retention's keep_tag keeps tagged backups.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];
}

/// <summary>What a backup of a database would hold: one decision per schema, which roles, which of them the platform manages.</summary>
public sealed record LogicalBackupPlan(string Database, string Source, string? Preset, IReadOnlyList<SchemaDecision> Schemas, RoleSelection Roles, IReadOnlyList<string> ManagedRoles, bool WithRolePasswords)
{
    /// <summary>Where the Storage files come from (<c>storage_buckets.endpoint</c>), or null when the database has no storage_buckets.</summary>
    public string? StorageEndpoint { get; init; }

    /// <summary>What the pooler probe found (null when the plan did not probe: a backup probes again as it starts).</summary>
    public PoolerFinding? Pooler { get; init; }

    /// <summary>Each configured bucket as listed now (objects, bytes, refused keys, or why it cannot be listed).</summary>
    public IReadOnlyList<StorageFiles.StorageBucketPlan> StorageBuckets { get; init; } = [];

    public IReadOnlyList<string> Skipped => [.. Schemas.Where(s => s.Choice == SchemaChoice.Skipped).Select(s => s.Schema)];

    public IReadOnlyList<string> DataOnly => [.. Schemas.Where(s => s.Choice == SchemaChoice.DataOnly).Select(s => s.Schema)];
}

/// <param name="Storage">The Storage files the backup holds (<c>storage_buckets</c>), or null when none are configured.</param>
public sealed record LogicalBackupResult(string Database, Snapshot Snapshot, Fingerprint Fingerprint, WriteStats Stats, TimeSpan Duration, int Files, StorageFiles.StorageBackupSummary? Storage = null);

/// <summary>Progress of a logical backup: bytes stored so far and tables fingerprinted.</summary>
public sealed record BackupProgress(long Bytes, int TablesDone, int TablesTotal, string Current);

/// <summary>
/// A logical backup into the repository: pg_dump's directory output, one item per file (so an
/// unchanged table deduplicates whole, and one table can be restored alone), plus the roles the
/// database needs and the fingerprint. Nothing becomes visible unless every step succeeded. SQL checks
/// that expect "= fingerprint" are evaluated during the dump, in the backup's own snapshot.
/// </summary>
public sealed class LogicalBackupOperation(OperationContext context)
{
    public const string Kind = BackupKinds.Logical;
    public const string FingerprintItem = "fingerprint.json";
    /// <summary>The roles as data (see <see cref="RoleSet"/>); restores build every statement themselves.</summary>
    public const string RolesItem = "roles.json";

    /// <summary>Roles as SQL text, written by Cairn before roles.json; read (never run) by <see cref="LegacyRolesSql"/>.</summary>
    public const string LegacyRolesItem = "roles.sql";
    public const string DumpPrefix = "dump/";

    public async Task<LogicalBackupResult> RunAsync(LogicalBackupRequest request, IProgress<BackupProgress>? progress, CancellationToken cancellationToken)
    {
        Pins.BackupTags.Validate(request.Tags); // a bad tag is refused before the dump, not after it
        var db = request.Database;
        var queries = CheckRunner.FingerprintQueries(db.Checks);
        var started = context.Time.GetUtcNow();
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"backup {db.Name}", cancellationToken).ConfigureAwait(false);
        var plan = await PlanAsync(db, request.WithRolePasswords, probePooler: false, listStorage: false, cancellationToken).ConfigureAwait(false);
        var options = new DumpOptions(request.ContentFingerprint, request.WithRolePasswords, Math.Max(1, request.Jobs), context.Toolchain.WorkDirectory, queries)
        {
            ExcludeSchemas = plan.Skipped,
            Roles = new RoleScope(plan.Roles.All, plan.Roles.Extra, plan.ManagedRoles),
        };
        Snapshot? previous = null;
        if (db.Config?.StorageBuckets is { } storage)
        {
            // A bucket that cannot be listed fails the backup before the dump, not after it.
            await StorageFiles.StorageFilesBackup.ProbeAsync(context, storage, cancellationToken).ConfigureAwait(false);
            previous = await SnapshotSelector.NewestMatchingAsync(repo, new SnapshotFilter(db.Name, Kind).Matches, cancellationToken).ConfigureAwait(false);
        }
        var result = await WriteAsync(repo, db.Name, db.Connection, options, plan, progress, context.Toolchain.PostgresBin, request.Tags, context.Config.CompressionOf(db.Name),
            db.Config?.StorageBuckets is { } sb ? (writer, ct) => StorageFiles.StorageFilesBackup.WriteAsync(context, writer, sb, previous, progress is null ? null : new Progress<string>(t => progress.Report(new BackupProgress(writer.Stats.BytesRead, 0, 0, t))), ct) : null,
            cancellationToken).ConfigureAwait(false);
        // Deduplication reused older packs: their Object Lock must last as long as this backup may be kept.
        await Retention.BackupLocks.ExtendAsync(context, repo, result.Snapshot, started, cancellationToken).ConfigureAwait(false);
        var fp = result.Fingerprint;
        var seq = context.Evidence.Record(new LogicalBackupEvent(db.Connection.Redacted, result.Stats.BytesRead, result.Stats.BytesAdded, fp.Tables.Count, fp.TotalRows, fp.BackupTime, fp.ServerVersion, fp.Mode)
        {
            Repository = repo.Storage.Location,
            Database = db.Name,
            Snapshot = result.Snapshot.Id,
            DurationMs = (long)result.Duration.TotalMilliseconds,
            Storage = result.Storage,
        });
        if (await Checks.ResultMirror.WriteAsync(context, db.Connection, [Checks.ResultMirror.EventRow("backup", db.Name, true, context.Time.GetUtcNow(), context.Time.GetUtcNow(), result.Duration, seq, $"logical, {fp.Tables.Count} tables, {fp.TotalRows} rows")], cancellationToken).ConfigureAwait(false) is { } warning)
        {
            context.Warn(warning);
        }
        // Off the host: the log with this backup's record goes into the repository (a failure is a warning).
        await Recording.EvidencePublishing.AfterAsync(context, repo, cancellationToken).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// What a backup of <paramref name="db"/> would hold, read from the live database (its schemas) and the configuration
    /// (preset, include_schemas, exclude_schemas, roles); <c>cairn backup --dry-run</c> shows it. With <paramref name="probePooler"/>,
    /// a transaction-mode pooler is refused here as the backup would refuse it.
    /// </summary>
    /// <param name="listStorage">List each storage bucket (the dry run shows what the backup would copy); a backup lists them itself.</param>
    public async Task<LogicalBackupPlan> PlanAsync(DatabaseTarget db, bool withRolePasswords, bool probePooler, bool listStorage, CancellationToken cancellationToken)
    {
        var pooler = probePooler ? await PoolerProbe.RefuseTransactionPoolerAsync(db.Connection, context.Toolchain.PostgresBin, cancellationToken).ConfigureAwait(false) : null;
        List<string> schemas;
        await using (var c = await db.Connection.OpenAsync(cancellationToken).ConfigureAwait(false))
        {
            schemas = await Catalog.SchemasAsync(c, cancellationToken).ConfigureAwait(false);
        }
        var cfg = db.Config;
        var preset = cfg?.Preset;
        var decisions = SchemaPlanner.Plan(schemas, preset, cfg?.IncludeSchemas ?? [], cfg?.ExcludeSchemas ?? []);
        var plan = new LogicalBackupPlan(db.Name, db.Connection.Redacted, preset?.Name, decisions, cfg?.Roles ?? RoleSelection.Referenced, preset?.ManagedRoles ?? [], withRolePasswords) { Pooler = pooler };
        return cfg?.StorageBuckets is { } storage && listStorage
            ? plan with { StorageEndpoint = storage.EndpointText, StorageBuckets = await StorageFiles.StorageFilesBackup.PlanAsync(context, storage, cancellationToken).ConfigureAwait(false) }
            : plan;
    }

    /// <summary>The dump into the repository (the caller holds a shared lock).</summary>
    private static async Task<LogicalBackupResult> WriteAsync(Repository.Repository repo, string name, PgConnection connection, DumpOptions options, LogicalBackupPlan plan,
        IProgress<BackupProgress>? progress, string? postgresBin, IReadOnlyList<string> tags, Repository.Compression.CompressionSetting compression,
        Func<ItemWriter, CancellationToken, Task<StorageFiles.StorageBackupSummary>>? storage, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        await using var dump = await LogicalDump.BeginAsync(connection, options, postgresBin, cancellationToken).ConfigureAwait(false);
        await using var writer = repo.BeginWrite(new RepositoryOptions { Compression = compression });
        var files = 0;
        var tablesDone = 0;
        long bytes = 0;
        var sync = new object();
        void Report(string current)
        {
            lock (sync)
            {
                progress?.Report(new BackupProgress(bytes + writer.Stats.BytesRead, tablesDone, Math.Max(tablesDone, files), current));
            }
        }
        await dump.RunAsync(async (file, path) =>
        {
            await using (var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan))
            {
                await writer.AddStreamAsync(DumpPrefix + file, fs, null, "file", null, cancellationToken).ConfigureAwait(false);
            }
            File.Delete(path); // free the temp space as soon as the file is stored
            files++;
            Report(file);
        }, new Progress<string>(t =>
        {
            Interlocked.Increment(ref tablesDone);
            Report(t);
        }), cancellationToken).ConfigureAwait(false);

        var fp = dump.Fingerprint;
        // The files after the dump: a file whose row the dump's snapshot holds was uploaded before it, so it is listed now.
        var storageSummary = storage is null ? null : await storage(writer, cancellationToken).ConfigureAwait(false);
        await writer.AddStreamAsync(RolesItem, new MemoryStream(dump.Roles.ToJson()), null, "file", null, cancellationToken).ConfigureAwait(false);
        await writer.AddStreamAsync(FingerprintItem, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(fp, FingerprintJson.Default.Fingerprint)), null, "file", null, cancellationToken).ConfigureAwait(false);
        var meta = new Dictionary<string, string>
        {
            ["database"] = fp.Database,
            ["source"] = connection.Redacted,
            ["server_version"] = fp.ServerVersion,
            ["backup_time"] = fp.BackupTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
            ["format"] = "pg_dump-directory",
            ["tables"] = fp.Tables.Count.ToString(CultureInfo.InvariantCulture),
            ["rows"] = fp.TotalRows.ToString(CultureInfo.InvariantCulture),
            ["fingerprint"] = fp.Mode,
        };
        if (plan.Preset is { } preset)
        {
            meta["preset"] = preset;
        }
        if (plan.Skipped.Count > 0)
        {
            meta["schemas_skipped"] = string.Join(',', plan.Skipped);
        }
        if (plan.DataOnly.Count > 0)
        {
            meta["schemas_data_only"] = string.Join(',', plan.DataOnly);
        }
        if (storageSummary is not null)
        {
            StorageFiles.StorageFilesBackup.AddMeta(meta, storageSummary);
        }
        Pins.BackupTags.AddTo(meta, tags);
        var snapshot = await writer.CommitAsync(name, Kind, meta, cancellationToken).ConfigureAwait(false);
        return new LogicalBackupResult(name, snapshot, fp, writer.Stats, sw.Elapsed, files, storageSummary);
    }
}
