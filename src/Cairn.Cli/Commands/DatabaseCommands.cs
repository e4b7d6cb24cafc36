using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Operations.Checks;
using Cairn.Operations.Configuration;
using Cairn.Operations.Logical;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>Commands about databases: backup, snapshots, restore.</summary>
internal static class DatabaseCommands
{
    /// <summary>A database from cairn.yaml by name, or a connection string given on the command line for one-off use.</summary>
    internal static (string Name, PgConnection Connection, DatabaseConfig? Config) Resolve(CliContext ctx, string nameOrUrl)
    {
        if (ctx.Config.Databases.TryGetValue(nameOrUrl, out var db))
        {
            return (db.Name, PgConnection.Parse(db.Connection, db.PasswordFile), db);
        }
        if (nameOrUrl.Contains("://", StringComparison.Ordinal) || nameOrUrl.Contains('=', StringComparison.Ordinal))
        {
            var c = PgConnection.Parse(nameOrUrl, ctx.Env("CAIRN_DB_PASSWORD_FILE"));
            return (c.Database, c, null);
        }
        var known = ctx.Config.Databases.Count == 0 ? "no databases are configured" : "configured: " + string.Join(", ", ctx.Config.Databases.Keys);
        throw new RepositoryException(ErrorKind.NotFound, $"unknown database '{nameOrUrl}' ({known}{(ctx.Config.File is { } f ? $" in {f}" : "; no cairn.yaml found")}); add it under databases: or pass a connection string");
    }

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
        var cmd = new Command("backup", "Back up a database: pg_dump in one snapshot, deduplicated and encrypted, with its roles and a fingerprint of every table; or, with --physical, the whole cluster for point-in-time recovery") { db, fingerprint, jobs, withPasswords, physical, full, archiveTimeout };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var (name, connection, config) = Resolve(ctx, p.GetValue(db)!);
            ctx.LastDatabase = name;
            if (p.GetValue(physical))
            {
                return await PhysicalCommands.BackupAsync(ctx, p, name, connection, config?.DataDirectory, new Cairn.Operations.Physical.FileBackupOptions(p.GetValue(jobs) ?? Environment.ProcessorCount, TimeSpan.FromSeconds(p.GetValue(archiveTimeout)), p.GetValue(full)), ct).ConfigureAwait(false);
            }
            // SQL checks that expect "= fingerprint" are evaluated now, in the backup's own snapshot.
            var queries = CheckParser.Parse(config?.Checks, ctx.Config.File ?? "cairn.yaml", name).OfType<SqlCheck>()
                .Where(c => c.Expect.Fingerprint).Select(c => (c.Name, CheckRunner.BindBackupTime(c.Query))).ToList();
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: false, $"backup {name}", ct).ConfigureAwait(false);
            var options = new DumpOptions(p.GetValue(fingerprint) == "content", p.GetValue(withPasswords), Math.Max(1, p.GetValue(jobs) ?? 2), ctx.Config.WorkDirectory, queries);
            var result = await ctx.Console.WithProgressAsync($"backup {name}", null, async sink =>
                    await LogicalBackupOperation.RunAsync(repo, name, connection, options,
                        new Progress<BackupProgress>(x => sink.Describe($"backup {name}: {Format.Bytes(x.Bytes)} stored, {x.TablesDone} tables counted ({x.Current})")), ct, ctx.Config.PostgresBin).ConfigureAwait(false)).ConfigureAwait(false);
            var fp = result.Fingerprint;
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "backup", "pass", new()
            {
                ["type"] = "logical",
                ["source"] = connection.Redacted,
                ["size_bytes"] = result.Stats.BytesRead.ToString(CultureInfo.InvariantCulture),
                ["added_bytes"] = result.Stats.BytesAdded.ToString(CultureInfo.InvariantCulture),
                ["tables"] = fp.Tables.Count.ToString(CultureInfo.InvariantCulture),
                ["rows"] = fp.TotalRows.ToString(CultureInfo.InvariantCulture),
                ["backup_time"] = fp.BackupTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                ["server_version"] = fp.ServerVersion,
                ["fingerprint"] = fp.Mode,
                ["encrypted"] = "AES-256-GCM",
            }, ct, database: name, snapshot: result.Snapshot.Id, durationMs: (long)result.Duration.TotalMilliseconds).ConfigureAwait(false);
            if (p.GetValue(CommandRunner.Json))
            {
                var o = new JsonObject
                {
                    ["message_type"] = "summary",
                    ["snapshot_id"] = result.Snapshot.Id,
                    ["database"] = name,
                    ["kind"] = "logical",
                    ["backup_time"] = fp.BackupTime.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                    ["size_bytes"] = result.Stats.BytesRead,
                    ["added_bytes"] = result.Stats.BytesAdded,
                    ["tables"] = fp.Tables.Count,
                    ["rows"] = fp.TotalRows,
                    ["seconds"] = Math.Round(result.Duration.TotalSeconds, 3),
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                ctx.Console.Out.WriteLine($"backup {result.Snapshot.ShortId} of {name}: {fp.Tables.Count} tables, {fp.TotalRows:N0} rows at {Format.Time(fp.BackupTime)}; {Format.Bytes(result.Stats.BytesRead)} dumped, {Format.Bytes(result.Stats.BytesAdded)} added to the repository, in {Format.Duration(result.Duration)}");
            }
            return ExitCodes.Ok;
        }, "backup");
        return cmd;
    }

    public static Command Snapshots(CliContext ctx)
    {
        var db = new Argument<string?>("DATABASE") { Description = "Only this database's backups", Arity = ArgumentArity.ZeroOrOne };
        var cmd = new Command("snapshots", "List backups: time, kind, size, what each added to the repository, duration, fingerprint") { db };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            var name = p.GetValue(db);
            var snaps = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(s => s.Manifest.Kind != "file" && (name is null || s.Manifest.Name == name)).ToList();
            if (p.GetValue(CommandRunner.Json))
            {
                var arr = new JsonArray();
                foreach (var s in snaps)
                {
                    var meta = new JsonObject();
                    foreach (var (k, v) in s.Manifest.Meta)
                    {
                        meta[k] = v;
                    }
                    arr.Add((JsonNode)new JsonObject
                    {
                        ["id"] = s.Id,
                        ["short_id"] = s.ShortId,
                        ["database"] = s.Manifest.Name,
                        ["kind"] = s.Manifest.Kind,
                        ["time"] = s.Manifest.Time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                        ["size_bytes"] = s.Size,
                        ["added_bytes"] = s.Manifest.AddedBytes,
                        ["stored_bytes"] = s.Manifest.StoredBytes,
                        ["duration_ms"] = s.Manifest.DurationMs,
                        ["meta"] = meta,
                    });
                }
                ctx.Console.Out.WriteLine(arr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }
            if (snaps.Count == 0)
            {
                ctx.Console.Out.WriteLine(name is null ? "no database backups yet; take one with 'cairn backup DATABASE'" : $"no backups of {name} yet");
                return ExitCodes.Ok;
            }
            foreach (var w in await RecoveryWindowsAsync(repo, snaps, ct).ConfigureAwait(false))
            {
                ctx.Console.Out.WriteLine(w);
            }
            var t = new Table().AddColumns("ID", "Time (UTC)", "Database", "Kind", "Size", "Added", "Duration", "Fingerprint");
            foreach (var s in snaps)
            {
                var m = s.Manifest.Meta;
                var fp = m.TryGetValue("tables", out var tables) ? $"{tables} tables, {(long.TryParse(m.GetValueOrDefault("rows"), CultureInfo.InvariantCulture, out var rows) ? rows.ToString("N0", CultureInfo.InvariantCulture) : "?")} rows ({m.GetValueOrDefault("fingerprint")})" : "";
                t.AddRow(s.ShortId, Format.Time(s.Manifest.Time), Markup.Escape(s.Manifest.Name), s.Manifest.Kind, Format.Bytes(s.Size), Format.Bytes(s.Manifest.AddedBytes), Format.Duration(TimeSpan.FromMilliseconds(s.Manifest.DurationMs)), Markup.Escape(fp));
            }
            ctx.Console.Ansi.Write(t);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command Restore(CliContext ctx)
    {
        var db = new Argument<string>("DATABASE") { Description = "The database whose backup to restore (name in cairn.yaml, or connection string)" };
        var snapshot = new Option<string>("--snapshot", "-s") { Description = "Snapshot ID (prefix) or latest", DefaultValueFactory = _ => "latest" };
        var toDatabase = new Option<string?>("--to-database") { Description = "Restore the whole database into this new database" };
        var on = new Option<string?>("--on") { Description = "Server to restore onto (connection string; default: the source server)" };
        var clean = new Option<bool>("--clean") { Description = "Drop and replace the target database if it already holds data" };
        var jobs = new Option<int?>("--jobs", "-j") { Description = "pg_restore workers (default 2); with --physical, files written at once (default: twice the number of cores)" };
        var noOwner = new Option<bool>("--no-owner") { Description = "Do not create roles or restore ownership and grants (for servers where you cannot create roles)" };
        var withRoleAttributes = new Option<bool>("--with-role-attributes") { Description = "Give created roles SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and memberships in roles the restore did not create, as on the source (withheld and listed by default)" };
        var table = new Option<string[]>("--table", "-t") { Description = "Restore only this table (schema.table; repeatable) into --into-schema, beside the live data", AllowMultipleArgumentsPerToken = false };
        var intoSchema = new Option<string?>("--into-schema") { Description = "Staging schema for --table restores (created in the target database)" };
        var merge = new Option<string?>("--merge") { Description = "With --table: 'missing' inserts the rows that exist only in the backup, in one transaction" };
        merge.AcceptOnlyFromAmong("missing");
        var physical = new Option<bool>("--physical") { Description = "Restore a physical backup into a data directory (--to DIR) with point-in-time recovery" };
        var toDir = new Option<string?>("--to") { Description = "With --physical: the data directory to create (must be empty unless --force)" };
        var targetTime = new Option<string?>("--target-time") { Description = "Recover up to this time (e.g. '2026-12-01 14:30:00+00')" };
        var targetLsn = new Option<string?>("--target-lsn") { Description = "Recover up to this WAL location" };
        var targetXid = new Option<string?>("--target-xid") { Description = "Recover up to this transaction ID" };
        var targetName = new Option<string?>("--target-name") { Description = "Recover up to this restore point (pg_create_restore_point)" };
        var target = new Option<string?>("--target") { Description = "immediate (the end of the backup) or latest (all archived WAL, the default)" };
        target.AcceptOnlyFromAmong("immediate", "latest");
        var targetTimeline = new Option<string?>("--target-timeline") { Description = "Timeline to recover along (default latest)" };
        var targetAction = new Option<string>("--target-action") { Description = "promote (default), pause or shutdown when the target is reached", DefaultValueFactory = _ => "promote" };
        targetAction.AcceptOnlyFromAmong("promote", "pause", "shutdown");
        var start = new Option<bool>("--start") { Description = "Start the restored server and wait until recovery reached its target" };
        var port = new Option<int?>("--port") { Description = "Port for the restored server (default 5433)" };
        var force = new Option<bool>("--force") { Description = "Replace a non-empty --to folder" };
        var delta = new Option<bool>("--delta") { Description = "With --physical: restore into an existing data directory, keeping files that already match the backup (checked chunk by chunk) and removing what the backup does not hold" };
        var tablespaceMap = new Option<string[]>("--tablespace-map") { Description = "With --physical: put tablespace OID into DIR (OID=DIR, repeatable); by default tablespaces are restored inside the data directory (pg_tblspc/OID), never onto the original's folders" };
        var keepArchiving = new Option<bool>("--keep-archiving") { Description = "With --physical: keep the backup's archive settings, for a copy that becomes the new primary (default: archive_mode = off)" };
        var cmd = new Command("restore", "Restore a backup into a new database, or single tables beside the live data, and check the result against the fingerprint; with --physical, to a data directory with point-in-time recovery")
        {
            db, snapshot, toDatabase, on, clean, jobs, noOwner, withRoleAttributes, table, intoSchema, merge, physical, toDir, targetTime, targetLsn, targetXid, targetName, target, targetTimeline, targetAction, start, port, force, delta, tablespaceMap, keepArchiving,
        };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var (name, source, _) = Resolve(ctx, p.GetValue(db)!);
            ctx.LastDatabase = name;
            if (p.GetValue(physical))
            {
                var dir = p.GetValue(toDir) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--physical needs --to DIR: the data directory to restore into");
                var targets = new[] { p.GetValue(targetTime), p.GetValue(targetLsn), p.GetValue(targetXid), p.GetValue(targetName), p.GetValue(target) == "immediate" ? "immediate" : null }.Count(x => x is not null);
                if (targets > 1)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, "give one recovery target: --target-time, --target-lsn, --target-xid, --target-name or --target immediate");
                }
                var rt = new Cairn.PostgreSql.Physical.RecoveryTarget(p.GetValue(targetTime), p.GetValue(targetLsn), p.GetValue(targetXid), p.GetValue(targetName),
                    p.GetValue(target) == "immediate" ? "immediate" : null, p.GetValue(targetAction)!, p.GetValue(targetTimeline));
                var map = new Dictionary<string, string>(StringComparer.Ordinal);
                foreach (var m in p.GetValue(tablespaceMap) ?? [])
                {
                    var eq = m.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0 || !uint.TryParse(m[..eq], NumberStyles.None, CultureInfo.InvariantCulture, out _) || eq == m.Length - 1)
                    {
                        throw new RepositoryException(ErrorKind.InvalidInput, $"--tablespace-map {m}: write OID=DIR, e.g. 16400=/srv/tblspc (the OIDs are listed under pg_tblspc in the backup)");
                    }
                    map[m[..eq]] = m[(eq + 1)..];
                }
                var fileOptions = new Cairn.Operations.Physical.FileRestoreOptions(p.GetValue(force), p.GetValue(delta), p.GetValue(jobs) ?? Environment.ProcessorCount * 2, map);
                return await PhysicalCommands.RestoreAsync(ctx, p, name, p.GetValue(snapshot), dir, rt, fileOptions, p.GetValue(start), p.GetValue(port), ct, p.GetValue(keepArchiving)).ConfigureAwait(false);
            }
            var server = p.GetValue(on) is { } url ? PgConnection.Parse(url, ctx.Env("CAIRN_DB_PASSWORD_FILE")) : source;
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: false, $"restore {name}", ct).ConfigureAwait(false);
            await Evidence.WarnIfNewerBackupsKnownAsync(ctx, repo, name, ct).ConfigureAwait(false);
            var snap = await LogicalRestoreOperation.FindAsync(repo, name, p.GetValue(snapshot), ct).ConfigureAwait(false);
            var tables = p.GetValue(table) ?? [];
            var json = p.GetValue(CommandRunner.Json);
            if (tables.Length > 0)
            {
                var schema = p.GetValue(intoSchema) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--table needs --into-schema NAME: the staging schema the tables are restored into (nothing live is changed)");
                var parsed = tables.Select(Catalog.ParseQualified).ToList();
                var target = p.GetValue(on) is not null ? server : source;
                var diffs = await ctx.Console.WithProgressAsync($"restore {tables.Length} table(s)", null, async _ =>
                    await LogicalRestoreOperation.RestoreTablesAsync(repo, snap, target, parsed, schema, p.GetValue(merge) == "missing", ct, ctx.Config.WorkDirectory, ctx.Config.PostgresBin).ConfigureAwait(false)).ConfigureAwait(false);
                await Evidence.RecordAsync(ctx, repo.Storage.Location, "restore", "pass", new()
                {
                    ["type"] = "table",
                    ["tables"] = string.Join(",", tables),
                    ["staging_schema"] = schema,
                    ["merge"] = p.GetValue(merge) ?? "none",
                    ["rows_merged"] = diffs.Sum(d => d.Merged).ToString(CultureInfo.InvariantCulture),
                }, ct, database: name, snapshot: snap.Id).ConfigureAwait(false);
                PrintDiffs(ctx, diffs, json, p.GetValue(merge) is not null);
                return ExitCodes.Ok;
            }
            var to = p.GetValue(toDatabase) ?? throw new RepositoryException(ErrorKind.InvalidInput, "say where to restore: --to-database NAME (a new database), or --table T --into-schema S for single tables");
            var result = await ctx.Console.WithProgressAsync($"restore {snap.ShortId} into {to}", null, async sink =>
                await LogicalRestoreOperation.RestoreDatabaseAsync(repo, snap, server, to, p.GetValue(clean), Math.Max(1, p.GetValue(jobs) ?? 2), p.GetValue(noOwner),
                    new Progress<string>(sink.Describe), ct, ctx.Config.WorkDirectory, ctx.Config.PostgresBin, p.GetValue(withRoleAttributes)).ConfigureAwait(false)).ConfigureAwait(false);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "restore", result.Ok ? "pass" : "fail", new()
            {
                ["type"] = "database",
                ["target"] = server.WithDatabase(to).Redacted,
                ["tables"] = result.Fingerprint.Tables.Count.ToString(CultureInfo.InvariantCulture),
                ["rows"] = result.Fingerprint.TotalRows.ToString(CultureInfo.InvariantCulture),
                ["mismatches"] = result.Mismatches.Count.ToString(CultureInfo.InvariantCulture),
                ["roles_created"] = RolesText.Summary(result.Roles.Created),
            }, ct, database: name, snapshot: snap.Id, durationMs: (long)result.Duration.TotalMilliseconds).ConfigureAwait(false);
            if (json)
            {
                var o = new JsonObject
                {
                    ["message_type"] = "summary",
                    ["ok"] = result.Ok,
                    ["snapshot_id"] = snap.Id,
                    ["database"] = to,
                    ["tables"] = result.Fingerprint.Tables.Count,
                    ["rows"] = result.Fingerprint.TotalRows,
                    ["seconds"] = Math.Round(result.Duration.TotalSeconds, 3),
                    ["mismatches"] = new JsonArray([.. result.Mismatches.Select(m => (JsonNode)new JsonObject { ["table"] = m.Table, ["expected"] = m.Expected, ["actual"] = m.Actual, ["what"] = m.What })]),
                    ["warnings"] = new JsonArray([.. result.Warnings.Select(w => (JsonNode?)JsonValue.Create(w))]),
                    ["roles_created"] = RolesText.Json(result.Roles.Created),
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            }
            else
            {
                foreach (var w in result.Warnings)
                {
                    ctx.Console.Error.WriteLine($"warning: {w}");
                }
                foreach (var line in RolesText.Lines(result.Roles.Created))
                {
                    ctx.Console.Out.WriteLine(line);
                }
                foreach (var m in result.Mismatches)
                {
                    ctx.Console.Out.WriteLine($"MISMATCH {m.Table}: {m.What}: expected {m.Expected}, found {(m.Actual?.ToString(CultureInfo.InvariantCulture) ?? "no table")}");
                }
                ctx.Console.Out.WriteLine(result.Ok
                    ? $"restored {snap.ShortId} into {to}: {result.Fingerprint.Tables.Count} tables, {result.Fingerprint.TotalRows:N0} rows, every row count equals the fingerprint ({Format.Duration(result.Duration)})"
                    : $"restored {snap.ShortId} into {to}, but {result.Mismatches.Count} table(s) differ from the fingerprint");
            }
            return result.Ok ? ExitCodes.Ok : ExitCodes.RestoreCheckFailed;
        }, "restore");
        return cmd;
    }

    /// <summary>Per database with physical backups: from the oldest restorable point to the newest archived WAL, and any gap.</summary>
    internal static async Task<List<string>> RecoveryWindowsAsync(Cairn.Repository.Repository repo, IEnumerable<Cairn.Repository.Manifests.Snapshot> snaps, CancellationToken ct)
    {
        var lines = new List<string>();
        foreach (var group in snaps.Where(x => x.Manifest.Kind == Cairn.Operations.Physical.PhysicalOperation.Kind).GroupBy(x => x.Manifest.Name))
        {
            var oldest = group.OrderBy(x => Cairn.PostgreSql.Physical.WalNames.ParseLsn(x.Manifest.Meta["stop_lsn"])).First();
            var wal = await Cairn.Operations.Physical.PhysicalOperation.WalFilesAsync(repo, group.Key, ct).ConfigureAwait(false);
            var segments = wal.Where(Cairn.PostgreSql.Physical.WalNames.IsSegment).ToList();
            var missing = Cairn.PostgreSql.Physical.WalContinuity.Missing(wal, oldest.Manifest.Meta["start_wal"], await Cairn.Operations.Physical.WalArchive.HistoriesAsync(repo, group.Key, wal, ct).ConfigureAwait(false));
            var newestWal = segments.Count > 0 ? segments.Max(StringComparer.Ordinal) : "none";
            var newestTime = segments.Count > 0 && repo.Storage is Cairn.Repository.Storage.FileSystemStorage
                ? File.GetLastWriteTimeUtc(Path.Combine(repo.Storage.Location, "wal", $"{group.Key}@{newestWal}")).ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture)
                : "?";
            lines.Add($"recovery window of {group.Key}: from {oldest.Manifest.Meta["stop_time"][..19].Replace('T', ' ')}Z (end of backup {oldest.ShortId}, LSN {oldest.Manifest.Meta["stop_lsn"]}) to WAL {newestWal} (archived {newestTime}); " +
                (missing.Count == 0 ? "no gap" : $"GAP: {missing.Count} segment(s) missing, first {missing[0]} — recovery cannot pass it"));
        }
        return lines;
    }

    private static void PrintDiffs(CliContext ctx, List<TableDiff> diffs, bool json, bool merged)
    {
        if (json)
        {
            var arr = new JsonArray([.. diffs.Select(d => (JsonNode)new JsonObject
            {
                ["table"] = d.Table,
                ["staging_table"] = d.StagingTable,
                ["key"] = d.Key,
                ["rows_in_backup"] = d.RowsInBackup,
                ["rows_live"] = d.RowsLive,
                ["only_in_backup"] = d.OnlyInBackup,
                ["only_live"] = d.OnlyLive,
                ["differ"] = d.Differ,
                ["merged"] = d.Merged,
            })]);
            ctx.Console.Out.WriteLine(arr.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            return;
        }
        var t = new Table().AddColumns("Table", "Staging copy", "Key", "In backup", "Live", "Only in backup", "Only live", "Differ");
        if (merged)
        {
            t.AddColumn("Merged");
        }
        foreach (var d in diffs)
        {
            var row = new List<string> { Markup.Escape(d.Table), Markup.Escape(d.StagingTable), Markup.Escape(d.Key), N(d.RowsInBackup), d.RowsLive is { } lr ? N(lr) : "(missing)", N(d.OnlyInBackup), N(d.OnlyLive), N(d.Differ) };
            if (merged)
            {
                row.Add(N(d.Merged));
            }
            t.AddRow([.. row]);
        }
        ctx.Console.Ansi.Write(t);
        ctx.Console.Out.WriteLine(merged
            ? $"merged {diffs.Sum(d => d.Merged):N0} row(s) that existed only in the backup, in one transaction"
            : "nothing live was changed; add --merge missing to insert the rows that exist only in the backup; drop the staging schema when done");
    }

    private static string N(long v) => v.ToString("N0", CultureInfo.InvariantCulture);
}
