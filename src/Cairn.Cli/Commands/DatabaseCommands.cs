using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Logical;
using Cairn.Operations.Physical;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>Commands about databases: backup, snapshots, restore.</summary>
internal static class DatabaseCommands
{
    public static Command Backup(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "A database from cairn.yaml, or a connection string (postgresql://user@host/db)" };
        var fingerprint = new Option<string>("--fingerprint") { Description = "rows (exact row counts, default) or content (also an order-independent hash per table)", DefaultValueFactory = _ => "rows" };
        fingerprint.AcceptOnlyFromAmong("rows", "content");
        var jobs = new Option<int?>("--jobs", "-j") { Description = "Parallel workers: pg_dump jobs (default 2); with --physical, files read at once (default: the number of cores)" };
        var full = new Option<bool>("--full") { Description = "With --physical: read and hash every file and block, carrying nothing over from the previous backup" };
        var archiveTimeout = new Option<int>("--archive-timeout") { Description = "With --physical: seconds to wait for the server to archive the WAL the backup needs (default 300)", DefaultValueFactory = _ => 300 };
        var withPasswords = new Option<bool>("--with-role-passwords") { Description = "Also store role password hashes (needs superuser; off by default)" };
        var physical = new Option<bool>("--physical") { Description = "Physical backup for point-in-time recovery; reads data_directory directly when it is configured (incremental, parallel), else streams pg_basebackup. The server must archive WAL with 'cairn wal-push'" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Show what a logical backup would hold (each schema in full, data only or skipped, and why; which roles) and write nothing" };
        var tag = new Option<string[]>("--tag") { Description = "Tag the backup (repeatable), e.g. --tag pre-migration; retention's keep_tag keeps tagged backups", AllowMultipleArgumentsPerToken = false };
        var cmd = new Command("backup", "Back up a database: pg_dump in one snapshot, deduplicated and encrypted, with its roles and a fingerprint of every table; or, with --physical, the whole cluster for point-in-time recovery") { db, fingerprint, jobs, withPasswords, physical, full, archiveTimeout, tag, dryRun };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (p.GetValue(physical))
            {
                var options = new FileBackupOptions(p.GetValue(jobs) ?? Environment.ProcessorCount, TimeSpan.FromSeconds(p.GetValue(archiveTimeout)), p.GetValue(full)) { Tags = p.GetValue(tag) ?? [] };
                return PhysicalBackupAsync(inv, new PhysicalBackupRequest(target, options), ct);
            }
            if (p.GetValue(dryRun))
            {
                return BackupPlanAsync(inv, target, p.GetValue(withPasswords), ct);
            }
            return BackupAsync(inv, new LogicalBackupRequest(target, p.GetValue(fingerprint) == "content", p.GetValue(withPasswords), p.GetValue(jobs) ?? 2) { Tags = p.GetValue(tag) ?? [] }, ct);
        }, "backup");
        return cmd;
    }

    public static async Task<int> BackupPlanAsync(Invocation inv, Cairn.Operations.DatabaseTarget target, bool withRolePasswords, CancellationToken ct)
    {
        var plan = await new LogicalBackupOperation(inv.Operations).PlanAsync(target, withRolePasswords, probePooler: true, listStorage: true, ct).ConfigureAwait(false);
        static string Word(SchemaChoice c) => c switch { SchemaChoice.Full => "full", SchemaChoice.DataOnly => "data only", _ => "skipped" };
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new BackupPlanOutput("plan", plan.Database, plan.Source, plan.Preset, [.. plan.Schemas.Select(s => new SchemaPlanRow(s.Schema, Word(s.Choice).Replace(' ', '_'), s.Reason))],
                plan.Roles.ToString(), [.. plan.ManagedRoles], plan.WithRolePasswords,
                plan.StorageEndpoint is { } ep ? new StoragePlanOutput(ep, [.. plan.StorageBuckets.Select(b => new StorageBucketPlanRow(b.Bucket, b.Objects, b.Bytes, [.. b.RefusedKeys], b.Error))]) : null)
            { Pooler = plan.Pooler is { } pf ? new PoolerPlanOutput(pf.Evidence == PoolerEvidence.Console ? "pgbouncer_console" : "server_processes", pf.PoolMode, pf.ConsoleUnavailable) : null }, CliJson.Default.BackupPlanOutput));
            return ExitCodes.Ok;
        }
        var o = inv.Console.Out;
        o.WriteLine($"backup plan for {plan.Database} ({plan.Source}){(plan.Preset is { } p ? ", preset " + p : "")}");
        o.WriteLine($"connection: {plan.Pooler?.Describe() ?? "not probed"}");
        var width = Math.Max(6, plan.Schemas.Select(s => s.Schema.Length).DefaultIfEmpty(0).Max());
        o.WriteLine($"{"SCHEMA".PadRight(width)}  {"BACKUP",-9}  WHY");
        foreach (var s in plan.Schemas)
        {
            o.WriteLine($"{s.Schema.PadRight(width)}  {Word(s.Choice),-9}  {s.Reason}");
        }
        o.WriteLine($"roles: {plan.Roles}{(plan.ManagedRoles.Count > 0 ? $"; managed by {plan.Preset} (stored, never created or altered on restore): {string.Join(", ", plan.ManagedRoles)}" : "")}");
        o.WriteLine($"role password hashes: {(plan.WithRolePasswords ? "stored (--with-role-passwords)" : "not stored (add --with-role-passwords, needs superuser)")}");
        if (plan.StorageEndpoint is { } endpoint)
        {
            o.WriteLine($"storage files from {endpoint}:");
            foreach (var b in plan.StorageBuckets)
            {
                o.WriteLine(b.Error is { } error
                    ? $"  {b.Bucket}: CANNOT BE LISTED: {error}"
                    : $"  {b.Bucket}: {b.Objects:N0} files, {Format.Bytes(b.Bytes)}{(b.RefusedKeys.Count > 0 ? $"; {b.RefusedKeys.Count} key(s) REFUSED (the backup would fail): {string.Join(", ", b.RefusedKeys.Take(5))}" : "")}");
            }
        }
        else
        {
            o.WriteLine("storage files: none (add storage_buckets to back up a Supabase project's Storage files with the database)");
        }
        o.WriteLine("dry run: nothing was written");
        return ExitCodes.Ok;
    }

    public static async Task<int> BackupAsync(Invocation inv, LogicalBackupRequest request, CancellationToken ct)
    {
        var name = request.Database.Name;
        var r = await inv.Console.WithProgressAsync($"backup {name}", null, sink => new LogicalBackupOperation(inv.Operations).RunAsync(request,
            new Progress<BackupProgress>(x => sink.Describe($"backup {name}: {Format.Bytes(x.Bytes)} stored, {x.TablesDone} tables counted ({x.Current})")), ct)).ConfigureAwait(false);
        var fp = r.Fingerprint;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new BackupOutput("summary", r.Snapshot.Id, name, LogicalBackupOperation.Kind, fp.BackupTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                r.Stats.BytesRead, r.Stats.BytesAdded, fp.Tables.Count, fp.TotalRows, Math.Round(r.Duration.TotalSeconds, 3),
                r.Storage is { } st ? new StorageBackupOutput(st.Endpoint, st.Objects, st.Bytes, st.CarriedOver, [.. st.Buckets.Select(b => new StorageBucketRow(b.Name, b.Objects, b.Bytes, b.Vanished))]) : null), CliJson.Default.BackupOutput));
        }
        else
        {
            inv.Console.Out.WriteLine($"backup {r.Snapshot.ShortId} of {name}: {fp.Tables.Count} tables, {fp.TotalRows:N0} rows at {Format.Time(fp.BackupTime)}; {Format.Bytes(r.Stats.BytesRead)} dumped, {Format.Bytes(r.Stats.BytesAdded)} added to the repository, in {Format.Duration(r.Duration)}");
            if (r.Storage is { } st)
            {
                inv.Console.Out.WriteLine($"storage files: {st.Objects:N0} files, {Format.Bytes(st.Bytes)} from {string.Join(", ", st.Buckets.Select(b => $"{b.Name} ({b.Objects:N0})"))}; {st.CarriedOver:N0} unchanged since the previous backup were carried over unread");
                foreach (var b in st.Buckets.Where(b => b.Vanished.Count > 0))
                {
                    inv.Console.Error.WriteLine($"cairn: warning: bucket {b.Name}: {b.Vanished.Count} file(s) were deleted while the backup ran and are not in it: {string.Join(", ", b.Vanished.Take(10).Select(Cairn.Operations.StorageFiles.StorageNames.Display))}");
                }
            }
        }
        return ExitCodes.Ok;
    }

    public static async Task<int> PhysicalBackupAsync(Invocation inv, PhysicalBackupRequest request, CancellationToken ct)
    {
        var name = request.Database.Name;
        var o = await inv.Console.WithProgressAsync($"physical backup {name}", null, sink => new PhysicalBackupOperation(inv.Operations).RunAsync(request, sink, ct)).ConfigureAwait(false);
        var r = o.Backup;
        foreach (var b in r.BadPages)
        {
            inv.Console.Error.WriteLine($"cairn: warning: bad page checksum in {b.File} block {b.Block}: the backup completed and is marked as holding damage");
        }
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PhysicalBackupOutput("summary", r.Snapshot.Id, name, BackupKinds.Physical, r.Info.StartLsn, r.Info.StopLsn, r.Info.Timeline,
                r.Stats.BytesRead, r.Stats.BytesAdded, r.Stats.BytesRead, r.ReusedBytes, r.ReusedFiles, r.ReusedPageBytes, r.IncrementalFrom?.Id, o.Method, Math.Round(r.Duration.TotalSeconds, 3), r.BadPages.Count > 0 ? [.. r.BadPages.Select(b => $"{b.File}:{b.Block}")] : null) { PatchedBlocks = r.Stats.PatchedBlocks, PatchedBytes = r.Stats.PatchedBytes }, CliJson.Default.PhysicalBackupOutput));
            return ExitCodes.Ok;
        }
        var reused = r.IncrementalFrom is { } prev ? $", {Format.Bytes(r.ReusedBytes)} in {r.ReusedFiles} unchanged files carried over from {prev.ShortId} unread, {Format.Bytes(r.ReusedPageBytes)} of unchanged pages carried over without hashing{(r.Stats.PatchedBlocks > 0 ? $", {r.Stats.PatchedBlocks} changed blocks ({Format.Bytes(r.Stats.PatchedBytes)}) stored as page patches" : "")}" : "";
        inv.Console.Out.WriteLine($"physical backup {r.Snapshot.ShortId} of {name}: WAL {r.Info.StartLsn} to {r.Info.StopLsn} on timeline {r.Info.Timeline}; {Format.Bytes(r.Stats.BytesRead)} read{reused}, {Format.Bytes(r.Stats.BytesAdded)} added, in {Format.Duration(r.Duration)}");
        if (!o.ReadFiles)
        {
            inv.Console.Error.WriteLine($"cairn: hint: set data_directory for {name} in cairn.yaml to read the files directly (parallel, and unchanged files are skipped)");
        }
        return ExitCodes.Ok;
    }

    public static Command Snapshots(CliContext ctx)
    {
        var db = new Argument<string?>("DATABASE") { Description = "Only this database's backups", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("snapshots", "List backups: time, kind, size, what each added to the repository, duration, fingerprint") { db };
        cmd.SetAction(ctx, (inv, p, ct) => SnapshotsAsync(inv, new SnapshotListRequest(BackupsOnly: true, p.GetValue(db), WithRecoveryWindows: !inv.Json), ct));
        return cmd;
    }

    public static async Task<int> SnapshotsAsync(Invocation inv, SnapshotListRequest request, CancellationToken ct)
    {
        var r = await new SnapshotListOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        var snaps = r.Snapshots;
        if (inv.Json)
        {
            var now = inv.Operations.Time.GetUtcNow();
            var rows = snaps.Select(s => new BackupRow(s.Id, s.ShortId, s.Manifest.Name, s.Manifest.Kind, s.Manifest.Time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                s.Size, s.Manifest.AddedBytes, s.Manifest.StoredBytes, s.Manifest.DurationMs, s.Manifest.Meta, r.Pins.TryGetValue(s.Id, out var pin) ? PinCommands.Row(pin, now) : null)).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListBackupRow));
            return ExitCodes.Ok;
        }
        if (snaps.Count == 0)
        {
            inv.Console.Out.WriteLine(request.Database is not { } name ? "no database backups yet; take one with 'cairn backup DATABASE'" : $"no backups of {name} yet");
            return ExitCodes.Ok;
        }
        foreach (var w in r.RecoveryWindows)
        {
            var newest = w.NewestSegment;
            inv.Console.Out.WriteLine($"recovery window of {w.Database}: from {w.OldestMeta.StopTime.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}Z (end of backup {w.Oldest.ShortId}, LSN {w.OldestMeta.StopLsn}) " +
                $"to WAL {newest?.Name ?? "none"} (archived {(newest is null ? "?" : Format.Time(newest.LastModified))}); " +
                (w.HasGap ? $"GAP: {w.Missing.Count} segment(s) missing, first {w.Missing[0]} — recovery cannot pass it" : "no gap"));
            var promise = w.Promised is { } within ? $" (keep_within {Format.Duration(within)}{(w.GuaranteedFrom is { } from && newest is not null && newest.LastModified - from < within ? ": NOT yet covered" : "")})" : "";
            inv.Console.Out.WriteLine(w.GuaranteedFrom is { } g
                ? $"guaranteed recovery window of {w.Database}: any point from {g.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}Z to the newest archived WAL{promise}"
                : $"guaranteed recovery window of {w.Database}: NONE — no backup's WAL runs without a gap to the newest archived segment{promise}");
        }
        var t = new Table().AddColumns("ID", "Time (UTC)", "Database", "Kind", "Size", "Added", "Duration", "Fingerprint", "Tags / pin");
        var at = inv.Operations.Time.GetUtcNow();
        foreach (var s in snaps)
        {
            var tags = string.Join(", ", Cairn.Operations.Pins.BackupTags.Of(s));
            var pinText = r.Pins.TryGetValue(s.Id, out var p) ? $"{(p.HoldsAt(at) ? "PINNED" : "pin expired")}{(p.Until is { } u ? $" until {u:yyyy-MM-dd}" : "")}: {p.Reason}" : "";
            var label = string.Join("; ", new[] { tags, pinText }.Where(x => x.Length > 0));
            var m = s.Manifest.Meta;
            var fp = m.TryGetValue("tables", out var tables) ? $"{tables} tables, {(long.TryParse(m.GetValueOrDefault("rows"), CultureInfo.InvariantCulture, out var rows) ? rows.ToString("N0", CultureInfo.InvariantCulture) : "?")} rows ({m.GetValueOrDefault("fingerprint")})" : "";
            t.AddRow(s.ShortId, Format.Time(s.Manifest.Time), Markup.Escape(s.Manifest.Name), s.Manifest.Kind, Format.Bytes(s.Size), Format.Bytes(s.Manifest.AddedBytes), Format.Duration(TimeSpan.FromMilliseconds(s.Manifest.DurationMs)), Markup.Escape(fp), Markup.Escape(label));
        }
        inv.Console.Ansi.Write(t);
        return ExitCodes.Ok;
    }

    public static Command Restore(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "The database whose backup to restore (name in cairn.yaml, or connection string)" };
        var snapshot = new Option<string>("--snapshot", "-s") { Description = "Snapshot ID (prefix) or latest", DefaultValueFactory = _ => "latest" };
        var jobs = new Option<int?>("--jobs", "-j") { Description = "pg_restore workers (default 2); with --physical, files written at once (default: twice the number of cores)" };
        var physical = new Option<bool>("--physical") { Description = "Restore a physical backup into a data directory (--to DIR) with point-in-time recovery" };
        var logicalOptions = new LogicalRestoreBinder();
        var physicalOptions = new PhysicalRestoreBinder();
        var cmd = new Command("restore", "Restore a backup into a new database, or single tables beside the live data, and check the result against the fingerprint; with --physical, to a data directory with point-in-time recovery")
        {
            db, snapshot, jobs, physical,
        };
        logicalOptions.AddTo(cmd);
        physicalOptions.AddTo(cmd);
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            return p.GetValue(physical)
                ? PhysicalRestoreAsync(inv, physicalOptions.Bind(p, target, p.GetValue(snapshot), p.GetValue(jobs)), ct)
                : logicalOptions.Run(inv, p, target, p.GetValue(snapshot), p.GetValue(jobs), ct);
        }, "restore");
        return cmd;
    }

    /// <summary>The options of a logical restore: into a new database, or single tables into a staging schema.</summary>
    private sealed class LogicalRestoreBinder
    {
        private readonly Option<string?> _toDatabase = new("--to-database") { Description = "Restore the whole database into this new database" };
        private readonly Option<string?> _on = new("--on") { Description = "Server to restore onto (connection string; default: the source server)" };
        private readonly Option<bool> _clean = new("--clean") { Description = "Drop and replace the target database if it already holds data" };
        private readonly Option<bool> _noOwner = new("--no-owner") { Description = "Do not create roles or restore ownership and grants (for servers where you cannot create roles)" };
        private readonly Option<bool> _withRoleAttributes = new("--with-role-attributes") { Description = "Give created roles SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and memberships in roles the restore did not create, as on the source (withheld and listed by default)" };
        private readonly Option<bool> _createMissingRoles = new("--create-missing-roles") { Description = "Create the roles a preset's platform manages (anon, authenticated, service_role, …) that the target lacks, empty and NOLOGIN, so the grants, policies and ownership naming them are restored; by default those are left out and listed" };
        private readonly Option<string[]> _table = new("--table", "-t") { Description = "Restore only this table (schema.table; repeatable) into --into-schema, beside the live data", AllowMultipleArgumentsPerToken = false };
        private readonly Option<string?> _intoSchema = new("--into-schema") { Description = "Staging schema for --table restores (created in the target database)" };
        private readonly Option<string?> _merge = new("--merge") { Description = "With --table: 'missing' inserts the rows that exist only in the backup, in one transaction" };
        private readonly Option<bool> _storage = new("--storage") { Description = "Put the backup's Storage files (storage_buckets) back into their buckets, each read back and checked by SHA-256; an object already there with other content is not replaced (see --overwrite)" };
        private readonly Option<string?> _bucket = new("--bucket") { Description = "With --storage: only this bucket of the backup" };
        private readonly Option<string?> _toBucket = new("--to-bucket") { Description = "With --storage: put the files into this bucket instead of their own (one bucket: with --bucket when the backup holds several)" };
        private readonly Option<string?> _endpoint = new("--endpoint") { Description = "With --storage: the S3 endpoint to write to instead of storage_buckets.endpoint (credentials still come from storage_buckets.credentials_file or the environment)" };
        private readonly Option<bool> _overwrite = new("--overwrite") { Description = "With --storage: replace objects the bucket already holds with other content" };

        public void AddTo(Command cmd)
        {
            _merge.AcceptOnlyFromAmong("missing");
            foreach (var o in new Option[] { _toDatabase, _on, _clean, _noOwner, _withRoleAttributes, _createMissingRoles, _table, _intoSchema, _merge, _storage, _bucket, _toBucket, _endpoint, _overwrite })
            {
                cmd.Options.Add(o);
            }
        }

        public Task<int> Run(Invocation inv, ParseResult p, Operations.DatabaseTarget db, string? snapshot, int? jobs, CancellationToken ct)
        {
            if (p.GetValue(_storage))
            {
                if (p.GetValue(_toDatabase) is not null || (p.GetValue(_table) ?? []).Length > 0)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, "--storage restores the Storage files only; restore the database with a separate --to-database (or --table) run");
                }
                Uri? endpoint = null;
                if (p.GetValue(_endpoint) is { } text && !Cairn.Storage.S3.S3Bucket.TryParseEndpoint(text, out endpoint, out var error))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"--endpoint: {error}");
                }
                return StorageRestoreAsync(inv, new Cairn.Operations.StorageFiles.StorageRestoreRequest(db, snapshot, p.GetValue(_bucket), p.GetValue(_toBucket), endpoint, p.GetValue(_overwrite)), ct);
            }
            if (p.GetValue(_bucket) is not null || p.GetValue(_toBucket) is not null || p.GetValue(_endpoint) is not null || p.GetValue(_overwrite))
            {
                throw new RepositoryException(ErrorKind.InvalidInput, "--bucket, --to-bucket, --endpoint and --overwrite go with --storage (the Storage files' restore)");
            }
            var server = p.GetValue(_on) is { } url ? inv.Operations.ParseConnection(url) : null;
            var tables = p.GetValue(_table) ?? [];
            if (tables.Length > 0)
            {
                var schema = p.GetValue(_intoSchema) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--table needs --into-schema NAME: the staging schema the tables are restored into (nothing live is changed)");
                return TableRestoreAsync(inv, new TableRestoreRequest(db, snapshot, tables, schema, p.GetValue(_merge) == "missing", server), ct);
            }
            var to = p.GetValue(_toDatabase) ?? throw new RepositoryException(ErrorKind.InvalidInput, "say where to restore: --to-database NAME (a new database), or --table T --into-schema S for single tables");
            return DatabaseRestoreAsync(inv, new DatabaseRestoreRequest(db, snapshot, to, server, p.GetValue(_clean), jobs ?? 2, p.GetValue(_noOwner), p.GetValue(_withRoleAttributes))
            {
                CreateMissingRoles = p.GetValue(_createMissingRoles),
            }, ct);
        }
    }

    /// <summary>The options of a physical restore: the data directory, the recovery target, delta, tablespaces, starting it.</summary>
    private sealed class PhysicalRestoreBinder
    {
        private readonly Option<string?> _toDir = new("--to") { Description = "With --physical: the data directory to create (must be empty unless --force)" };
        private readonly Option<string?> _targetTime = new("--target-time") { Description = "Recover up to this time (e.g. '2026-12-01 14:30:00+00')" };
        private readonly Option<string?> _targetLsn = new("--target-lsn") { Description = "Recover up to this WAL location" };
        private readonly Option<string?> _targetXid = new("--target-xid") { Description = "Recover up to this transaction ID" };
        private readonly Option<string?> _targetName = new("--target-name") { Description = "Recover up to this restore point (pg_create_restore_point)" };
        private readonly Option<string?> _target = new("--target") { Description = "immediate (the end of the backup) or latest (all archived WAL, the default)" };
        private readonly Option<string?> _targetTimeline = new("--target-timeline") { Description = "Timeline to recover along (default latest)" };
        private readonly Option<string> _targetAction = new("--target-action") { Description = "promote (default), pause or shutdown when the target is reached", DefaultValueFactory = _ => "promote" };
        private readonly Option<bool> _start = new("--start") { Description = "Start the restored server and wait until recovery reached its target" };
        private readonly Option<int?> _port = new("--port") { Description = "Port for the restored server (default 5433)" };
        private readonly Option<bool> _force = new("--force") { Description = "Replace a non-empty --to folder" };
        private readonly Option<bool> _delta = new("--delta") { Description = "With --physical: restore into an existing data directory, keeping files that already match the backup (checked chunk by chunk) and removing what the backup does not hold" };
        private readonly Option<string[]> _tablespaceMap = new("--tablespace-map") { Description = "With --physical: put tablespace OID into DIR (OID=DIR, repeatable); by default tablespaces are restored inside the data directory (pg_tblspc/OID), never onto the original's folders" };
        private readonly Option<bool> _keepArchiving = new("--keep-archiving") { Description = "With --physical: keep the backup's archive settings, for a copy that becomes the new primary (default: archive_mode = off)" };

        public void AddTo(Command cmd)
        {
            _target.AcceptOnlyFromAmong("immediate", "latest");
            _targetAction.AcceptOnlyFromAmong("promote", "pause", "shutdown");
            foreach (var o in new Option[] { _toDir, _targetTime, _targetLsn, _targetXid, _targetName, _target, _targetTimeline, _targetAction, _start, _port, _force, _delta, _tablespaceMap, _keepArchiving })
            {
                cmd.Options.Add(o);
            }
        }

        public PhysicalRestoreRequest Bind(ParseResult p, Operations.DatabaseTarget db, string? snapshot, int? jobs)
        {
            var dir = p.GetValue(_toDir) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--physical needs --to DIR: the data directory to restore into");
            var immediate = p.GetValue(_target) == "immediate" ? "immediate" : null;
            var targets = new[] { p.GetValue(_targetTime), p.GetValue(_targetLsn), p.GetValue(_targetXid), p.GetValue(_targetName), immediate }.Count(x => x is not null);
            if (targets > 1)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, "give one recovery target: --target-time, --target-lsn, --target-xid, --target-name or --target immediate");
            }
            var rt = new RecoveryTarget(p.GetValue(_targetTime), p.GetValue(_targetLsn), p.GetValue(_targetXid), p.GetValue(_targetName), immediate, p.GetValue(_targetAction)!, p.GetValue(_targetTimeline));
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var m in p.GetValue(_tablespaceMap) ?? [])
            {
                var eq = m.IndexOf('=', StringComparison.Ordinal);
                if (eq <= 0 || !uint.TryParse(m[..eq], NumberStyles.None, CultureInfo.InvariantCulture, out _) || eq == m.Length - 1)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"--tablespace-map {m}: write OID=DIR, e.g. 16400=/srv/tblspc (the OIDs are listed under pg_tblspc in the backup)");
                }
                map[m[..eq]] = m[(eq + 1)..];
            }
            var options = new FileRestoreOptions(p.GetValue(_force), p.GetValue(_delta), jobs ?? Environment.ProcessorCount * 2, map);
            return new PhysicalRestoreRequest(db, snapshot, dir, rt, options, p.GetValue(_start), p.GetValue(_port), p.GetValue(_keepArchiving));
        }
    }

    public static async Task<int> DatabaseRestoreAsync(Invocation inv, DatabaseRestoreRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync($"restore {request.Database.Name} into {request.ToDatabase}", null, sink =>
            new LogicalRestoreOperation(inv.Operations).RunAsync(request, new Progress<string>(sink.Describe), ct)).ConfigureAwait(false);
        var result = r.Restore;
        var to = r.ToDatabase;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new RestoreOutput("summary", result.Ok, r.Snapshot.Id, to, result.Fingerprint.Tables.Count, result.Fingerprint.TotalRows, Math.Round(result.Duration.TotalSeconds, 3),
                [.. result.Mismatches.Select(m => new MismatchRow(m.Table, m.Expected, m.Actual, m.What))], result.Warnings, RolesText.Rows(result.Roles.Created), r.Erasures.Entries, r.Erasures.Reapplied,
                [.. result.Skipped.Select(x => new SkippedRow(x.Entry, x.Cause, x.Detail))]), CliJson.Default.RestoreOutput));
        }
        else
        {
            foreach (var w in result.Warnings)
            {
                inv.Console.Error.WriteLine($"warning: {w}");
            }
            foreach (var line in RolesText.Lines(result.Roles.Created))
            {
                inv.Console.Out.WriteLine(line);
            }
            foreach (var x in result.Skipped)
            {
                inv.Console.Out.WriteLine($"SKIPPED {x.Entry} ({x.Cause}: {x.Detail})");
            }
            foreach (var m in result.Mismatches)
            {
                inv.Console.Out.WriteLine($"MISMATCH {m.Table}: {m.What}: expected {m.Expected}, found {(m.Actual?.ToString(CultureInfo.InvariantCulture) ?? "no table")}");
            }
            inv.Console.Out.WriteLine(result.Ok
                ? $"restored {r.Snapshot.ShortId} into {to}: {result.Fingerprint.Tables.Count} tables, {result.Fingerprint.TotalRows:N0} rows, every row count equals the fingerprint ({Format.Duration(result.Duration)})"
                    + (result.Skipped.Count > 0 ? $"; {result.Skipped.Count} object(s) the target could not hold were left out (SKIPPED above)" : "")
                : $"restored {r.Snapshot.ShortId} into {to}, but {result.Mismatches.Count} table(s) differ from the fingerprint");
            if (r.Erasures.Entries > 0)
            {
                inv.Console.Out.WriteLine($"erasure ledger: {r.Erasures.Entries} erasure(s) of {request.Database.Name} applied again to {to}; {r.Erasures.Reapplied} found their subject's data in the backup ({r.Erasures.Rows:N0} rows)");
            }
        }
        return result.Ok ? ExitCodes.Ok : ExitCodes.RestoreCheckFailed;
    }

    public static async Task<int> StorageRestoreAsync(Invocation inv, Cairn.Operations.StorageFiles.StorageRestoreRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync($"restore {request.Database.Name} --storage", null, sink =>
            new Cairn.Operations.StorageFiles.StorageRestoreOperation(inv.Operations).RunAsync(request, new Progress<string>(sink.Describe), ct)).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new StorageRestoreOutput("summary", r.Ok, r.Snapshot.Id, r.Endpoint, r.Files.Count, r.Written, r.Identical, r.Bytes, Math.Round(r.Duration.TotalSeconds, 3),
                [.. r.Conflicts.Select(c => new StorageFileRow(c.Bucket, c.Key, c.ToBucket, c.Size))]), CliJson.Default.StorageRestoreOutput));
        }
        else
        {
            foreach (var c in r.Conflicts)
            {
                inv.Console.Out.WriteLine($"NOT REPLACED {c.ToBucket}/{Cairn.Operations.StorageFiles.StorageNames.Display(c.Key)}: the bucket holds other content under this key (add --overwrite to replace it)");
            }
            inv.Console.Out.WriteLine($"restored the Storage files of {r.Snapshot.ShortId} to {r.Endpoint}: {r.Written:N0} written ({Format.Bytes(r.Bytes)}), each read back with the backup's SHA-256; {r.Identical:N0} already there with the same content"
                + (r.Conflicts.Count > 0 ? $"; {r.Conflicts.Count:N0} NOT replaced (listed above)" : "") + $" ({Format.Duration(r.Duration)})");
        }
        return r.Ok ? ExitCodes.Ok : ExitCodes.RestoreCheckFailed;
    }

    public static async Task<int> TableRestoreAsync(Invocation inv, TableRestoreRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync($"restore {request.Tables.Count} table(s)", null, _ => new TableRestoreOperation(inv.Operations).RunAsync(request, ct)).ConfigureAwait(false);
        if (inv.Json)
        {
            var rows = r.Diffs.Select(d => new TableDiffRow(d.Table, d.StagingTable, d.Key, d.RowsInBackup, d.RowsLive, d.OnlyInBackup, d.OnlyLive, d.Differ, d.Merged)).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListTableDiffRow));
            return ExitCodes.Ok;
        }
        var t = new Table().AddColumns("Table", "Staging copy", "Key", "In backup", "Live", "Only in backup", "Only live", "Differ");
        if (r.Merged)
        {
            t.AddColumn("Merged");
        }
        foreach (var d in r.Diffs)
        {
            var row = new List<string> { Markup.Escape(d.Table), Markup.Escape(d.StagingTable), Markup.Escape(d.Key), N(d.RowsInBackup), d.RowsLive is { } lr ? N(lr) : "(missing)", N(d.OnlyInBackup), N(d.OnlyLive), N(d.Differ) };
            if (r.Merged)
            {
                row.Add(N(d.Merged));
            }
            t.AddRow([.. row]);
        }
        inv.Console.Ansi.Write(t);
        if (r.Erasures is { Entries: > 0 } e)
        {
            inv.Console.Out.WriteLine($"erasure ledger: {e.Entries} erasure(s) applied again in the merge's transaction; {e.Reapplied} removed merged rows of an erased subject ({e.Rows:N0} rows)");
        }
        inv.Console.Out.WriteLine(r.Merged
            ? $"merged {r.Diffs.Sum(d => d.Merged):N0} row(s) that existed only in the backup, in one transaction"
            : "nothing live was changed; add --merge missing to insert the rows that exist only in the backup; drop the staging schema when done");
        return ExitCodes.Ok;
    }

    public static async Task<int> PhysicalRestoreAsync(Invocation inv, PhysicalRestoreRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync($"restore {request.Database.Name} to {request.TargetDirectory}", null, sink => new PhysicalRestoreOperation(inv.Operations).RunAsync(request, sink, ct)).ConfigureAwait(false);
        var stats = r.Files;
        var rec = r.Recovery;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PhysicalRestoreOutput("summary", r.Snapshot.Id, r.DataDirectory, r.Started, stats?.Files, stats?.Bytes, stats?.FilesReused, stats?.BytesReused, stats?.Removed,
                rec?.InRecovery, rec?.ReplayLsn, rec?.PausedState, rec?.LastReplayedTransaction?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), r.SocketDirectory, r.Port, r.Erasures?.Reapplied, r.ErasuresPending, r.ReplayCommand), CliJson.Default.PhysicalRestoreOutput));
            return ExitCodes.Ok;
        }
        inv.Console.Out.WriteLine($"restored physical backup {r.Snapshot.ShortId} into {r.DataDirectory} with recovery settings ({string.Join(", ", r.RecoverySettings)})");
        if (stats is { } st)
        {
            inv.Console.Out.WriteLine($"{st.Files} files: {Format.Bytes(st.Bytes)} written{(r.Delta ? $", {st.FilesReused} files ({Format.Bytes(st.BytesReused)}) already matched and were kept, {st.Removed} entries not in the backup removed" : "")}");
        }
        if (rec is not null)
        {
            inv.Console.Out.WriteLine($"server on port {r.Port} (socket {r.SocketDirectory}): {(rec.InRecovery ? $"recovery {rec.PausedState}" : "recovery finished, promoted")} at LSN {rec.ReplayLsn}, last replayed transaction {rec.LastReplayedTransaction?.UtcDateTime.ToString("u", CultureInfo.InvariantCulture) ?? "-"}");
        }
        else
        {
            inv.Console.Out.WriteLine($"start it with: pg_ctl -D {r.DataDirectory} start (as the postgres user); recovery fetches WAL with cairn wal-fetch");
        }
        if (r.Erasures is { Entries: > 0 } e)
        {
            inv.Console.Out.WriteLine($"erasure ledger: {e.Entries} erasure(s) of {request.Database.Name} applied again after promotion; {e.Reapplied} found their subject's data ({e.Rows:N0} rows)");
        }
        if (r.ReplayCommand is { } replay)
        {
            inv.Console.Out.WriteLine($"erasure ledger: {r.ErasuresPending} erasure(s) NOT applied yet; once the server is promoted run: {replay}");
        }
        return ExitCodes.Ok;
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
}
