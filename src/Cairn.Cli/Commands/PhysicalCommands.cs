using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli.Terminal;
using Cairn.Operations.Physical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;

namespace Cairn.Cli.Commands;

/// <summary>WAL archiving (<c>wal-push</c> for archive_command, <c>wal-fetch</c> for restore_command) and physical backup/restore.</summary>
internal static class PhysicalCommands
{
    /// <summary>Exit code that makes PostgreSQL abort recovery (above 125: "shell error") instead of treating it as "no such file".</summary>
    public const int AbortRecovery = 126;

    private static readonly Option<string?> Database = new("--database", "-d") { Description = "The database (name in cairn.yaml) whose WAL this is; default: the only configured one" };

    private static string DatabaseName(CliContext ctx, ParseResult p)
    {
        if (p.GetValue(Database) is { } d)
        {
            return d;
        }
        if (ctx.Env("CAIRN_DATABASE") is { Length: > 0 } e)
        {
            return e;
        }
        return ctx.Config.Databases.Count == 1 ? ctx.Config.Databases.Keys.Single()
            : throw new RepositoryException(ErrorKind.InvalidInput, "say which database this WAL belongs to: --database NAME (or CAIRN_DATABASE)");
    }

    public static Command WalPush(CliContext ctx)
    {
        var path = new Argument<string>("PATH") { Description = "The WAL file to archive (%p in archive_command)" };
        var cmd = new Command("wal-push", "Archive one WAL file (archive_command = 'cairn wal-push %p --database NAME'). Pushing identical content again succeeds; different content is refused") { path, Database };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var file = p.GetValue(path)!;
            var name = Path.GetFileName(file);
            if (!WalNames.IsValid(name))
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not a WAL file name; archive_command should pass %p");
            }
            var db = DatabaseName(ctx, p);
            if (!File.Exists(file))
            {
                throw new RepositoryException(ErrorKind.NotFound, $"{file} does not exist");
            }
            using var repo = await ctx.OpenRepositoryForWalAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            var result = await NamedFiles.PutFileAsync(repo, PhysicalOperation.WalObjectName(db, name), file, ct).ConfigureAwait(false);
            if (result == NamedPutResult.AlreadyStoredIdentical)
            {
                ctx.Console.Error.WriteLine($"cairn: {name} was already archived with the same content");
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command WalFetch(CliContext ctx)
    {
        var name = new Argument<string>("NAME") { Description = "The WAL file name PostgreSQL asks for (%f)" };
        var dest = new Argument<string>("PATH") { Description = "Where to write it (%p)" };
        var cmd = new Command("wal-fetch", "Fetch one archived WAL file for recovery (restore_command = 'cairn wal-fetch %f %p --database NAME'). Exit 1 when it is not archived; 126 (PostgreSQL aborts recovery) on a wrong passphrase or damage") { name, dest, Database };
        cmd.SetAction(async (ParseResult p, CancellationToken ct) =>
        {
            ctx.RepoOption = p.GetValue(CommandRunner.Repo);
            ctx.ConfigOption = p.GetValue(CommandRunner.Config);
            var file = p.GetValue(name)!;
            if (!WalNames.IsValid(file))
            {
                ctx.Console.Error.WriteLine($"cairn wal-fetch: '{file}' is not a WAL file name; refusing it");
                return AbortRecovery;
            }
            try
            {
                var db = DatabaseName(ctx, p);
                using var repo = await ctx.OpenRepositoryForWalAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
                try
                {
                    await NamedFiles.GetToFileAsync(repo, PhysicalOperation.WalObjectName(db, file), Path.GetFullPath(p.GetValue(dest)!), ct).ConfigureAwait(false);
                }
                catch (RepositoryException e) when (e.Kind == ErrorKind.NotFound)
                {
                    ctx.Console.Error.WriteLine($"cairn wal-fetch: {file} is not archived for {db}");
                    return 1;
                }
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is RepositoryException or Cairn.Operations.Configuration.ConfigException or IOException or UnauthorizedAccessException)
            {
                ctx.Console.Error.WriteLine($"cairn wal-fetch: FATAL: {e.Message}");
                return AbortRecovery;
            }
        });
        return cmd;
    }

    public static async Task<int> BackupAsync(CliContext ctx, ParseResult p, string name, Cairn.PostgreSql.Connections.PgConnection connection, string? dataDirectory, FileBackupOptions options, CancellationToken ct)
    {
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"backup {name} --physical", ct).ConfigureAwait(false);
        var r = await ctx.Console.WithProgressAsync($"physical backup {name}", null, async sink => dataDirectory is not null
            ? await PhysicalFiles.BackupAsync(repo, name, connection, dataDirectory, options, ctx.Time, sink.SetTotal, sink, ct).ConfigureAwait(false)
            : await PhysicalOperation.BackupAsync(repo, name, connection, ctx.Time, ct, ctx.Config.PostgresBin).ConfigureAwait(false)).ConfigureAwait(false);
        await Evidence.RecordAsync(ctx, repo.Storage.Location, "backup", "pass", new()
        {
            ["type"] = "physical",
            ["source"] = connection.Redacted,
            ["size_bytes"] = r.Stats.BytesRead.ToString(CultureInfo.InvariantCulture),
            ["added_bytes"] = r.Stats.BytesAdded.ToString(CultureInfo.InvariantCulture),
            ["start_lsn"] = r.Info.StartLsn,
            ["stop_lsn"] = r.Info.StopLsn,
            ["timeline"] = r.Info.Timeline.ToString(CultureInfo.InvariantCulture),
            ["method"] = dataDirectory is null ? "pg_basebackup" : "files",
            ["reused_bytes"] = r.ReusedBytes.ToString(CultureInfo.InvariantCulture),
            ["incremental_from"] = r.IncrementalFrom?.Id ?? "",
            ["encrypted"] = "AES-256-GCM",
        }, ct, database: name, snapshot: r.Snapshot.Id, durationMs: (long)r.Duration.TotalMilliseconds).ConfigureAwait(false);
        if (p.GetValue(CommandRunner.Json))
        {
            ctx.Console.Out.WriteLine(new JsonObject
            {
                ["message_type"] = "summary",
                ["snapshot_id"] = r.Snapshot.Id,
                ["database"] = name,
                ["kind"] = "physical",
                ["start_lsn"] = r.Info.StartLsn,
                ["stop_lsn"] = r.Info.StopLsn,
                ["timeline"] = r.Info.Timeline,
                ["size_bytes"] = r.Stats.BytesRead,
                ["added_bytes"] = r.Stats.BytesAdded,
                ["read_bytes"] = r.Stats.BytesRead,
                ["reused_bytes"] = r.ReusedBytes,
                ["reused_files"] = r.ReusedFiles,
                ["reused_page_bytes"] = r.ReusedPageBytes,
                ["incremental_from"] = r.IncrementalFrom?.Id,
                ["method"] = dataDirectory is null ? "pg_basebackup" : "files",
                ["seconds"] = Math.Round(r.Duration.TotalSeconds, 3),
            }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            var reused = r.IncrementalFrom is { } prev ? $", {Format.Bytes(r.ReusedBytes)} in {r.ReusedFiles} unchanged files carried over from {prev.ShortId} unread, {Format.Bytes(r.ReusedPageBytes)} of unchanged pages carried over without hashing" : "";
            ctx.Console.Out.WriteLine($"physical backup {r.Snapshot.ShortId} of {name}: WAL {r.Info.StartLsn} to {r.Info.StopLsn} on timeline {r.Info.Timeline}; {Format.Bytes(r.Stats.BytesRead)} read{reused}, {Format.Bytes(r.Stats.BytesAdded)} added, in {Format.Duration(r.Duration)}");
            if (dataDirectory is null)
            {
                ctx.Console.Error.WriteLine($"cairn: hint: set data_directory for {name} in cairn.yaml to read the files directly (parallel, and unchanged files are skipped)");
            }
        }
        return ExitCodes.Ok;
    }

    /// <summary>The command PostgreSQL runs to fetch WAL: this very binary, the repository, the passphrase file (never the passphrase).</summary>
    internal static string RestoreCommand(CliContext ctx, string repoPath, string database)
    {
        // The server's restore_command may use its own key file (e.g. a machine key readable by postgres).
        var passFile = ctx.Env("CAIRN_RESTORE_PASSPHRASE_FILE") ?? ctx.Env("CAIRN_PASSPHRASE_FILE") ?? throw new RepositoryException(ErrorKind.InvalidInput,
            "restore_command needs the passphrase from a file: set CAIRN_PASSPHRASE_FILE (or CAIRN_RESTORE_PASSPHRASE_FILE) to a file the postgres user can read (a passphrase is never written into the server's configuration)");
        return $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {Self(ctx)} --repo {Sh(Path.GetFullPath(repoPath))} wal-fetch %f %p --database {Sh(database)}";
    }

    /// <summary>The archive_command that pushes WAL into <paramref name="repoPath"/> with the passphrase read from <paramref name="passFile"/>.</summary>
    internal static string ArchiveCommand(CliContext ctx, string repoPath, string passFile, string database)
        => $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {Self(ctx)} --repo {Sh(Path.GetFullPath(repoPath))} wal-push %p --database {Sh(database)}";

    /// <summary>How a shell runs this very binary (or dotnet cairn.dll when not published).</summary>
    private static string Self(CliContext ctx) => ctx.Env("CAIRN_BIN") ?? (Environment.ProcessPath is { } pp && Path.GetFileName(pp) == "dotnet"
        ? $"{Sh(pp)} {Sh(Path.Combine(AppContext.BaseDirectory, "cairn.dll"))}"
        : Sh(Environment.ProcessPath ?? "cairn"));

    private static string Sh(string s) => Cairn.PostgreSql.Programs.ShellQuote.ForPostgresCommand(s);

    public static async Task<int> RestoreAsync(CliContext ctx, ParseResult p, string name, string? snapshotId, string to, RecoveryTarget target, FileRestoreOptions options, bool start, int? port, CancellationToken ct, bool keepArchiving = false)
    {
        var sw = Stopwatch.StartNew();
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        // Held until recovery finished: a prune meanwhile could delete the WAL the replay still fetches.
        await using var l = await repo.LockAsync(exclusive: false, $"restore {name} --physical", ct).ConfigureAwait(false);
        await Evidence.WarnIfNewerBackupsKnownAsync(ctx, repo, name, ct).ConfigureAwait(false);
        var snap = await PhysicalOperation.ChooseAsync(repo, name, snapshotId, target, ct).ConfigureAwait(false);
        var restoreCommand = RestoreCommand(ctx, repo.Storage.Location, name);
        // A gap in the archive would make PostgreSQL stop early and call it the end: find it first.
        var missing = await WalArchive.MissingAsync(repo, name, snap.Manifest.Meta["start_wal"], ct).ConfigureAwait(false);
        if (missing.Count > 0)
        {
            var toEnd = target.Time is null && target.Lsn is null && target.Xid is null && target.Name is null && target.Immediate is null;
            var message = $"WAL segment {missing[0]} is missing from the archive{(missing.Count > 1 ? $" ({missing.Count} segments missing in all)" : "")}: recovery from backup {snap.ShortId} cannot pass it";
            if (toEnd)
            {
                throw new RepositoryException(ErrorKind.Damaged, message + "; restore to a target before it (--target-time/--target-lsn), or find the segment (pg_wal of the original server) and 'cairn wal-push' it");
            }
            ctx.Console.Error.WriteLine($"cairn: warning: {message}; if the target lies after it, recovery stops at the gap and the server reports it");
        }
        FileRestoreStats? stats;
        {
            stats = await ctx.Console.WithProgressAsync($"restore {snap.ShortId} to {to}", snap.Size, async sink =>
                await PhysicalOperation.RestoreAsync(repo, snap, to, options, sink, ct).ConfigureAwait(false)).ConfigureAwait(false);
        }
        var socketDir = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(to))!, Path.GetFileName(Path.GetFullPath(to)) + ".sock");
        if (start)
        {
            Directory.CreateDirectory(socketDir);
            Cairn.PostgreSql.Programs.PgProcess.GiveToServerUser(socketDir);
        }
        await PhysicalRestorer.ConfigureRecoveryAsync(to, restoreCommand, target, start ? port ?? 5433 : port, start ? socketDir : null, ct, keepArchiving).ConfigureAwait(false);
        RecoveryResult? result = null;
        if (start)
        {
            result = await PhysicalRestorer.StartAndWaitAsync(to, port ?? 5433, socketDir, target.Action, TimeSpan.FromMinutes(30), ct, ctx.Config.PostgresBin).ConfigureAwait(false);
        }
        await Evidence.RecordAsync(ctx, repo.Storage.Location, "restore", "pass", new()
        {
            ["type"] = "physical",
            ["target_dir"] = Path.GetFullPath(to),
            ["recovery_target"] = string.Join("; ", target.Settings()),
            ["reached_lsn"] = result?.ReplayLsn ?? "",
            ["started"] = start ? "yes" : "no",
            ["delta"] = options.Delta ? "yes" : "no",
            ["files_reused"] = stats?.FilesReused.ToString(CultureInfo.InvariantCulture) ?? "",
        }, ct, database: name, snapshot: snap.Id, durationMs: sw.ElapsedMilliseconds).ConfigureAwait(false);
        if (p.GetValue(CommandRunner.Json))
        {
            ctx.Console.Out.WriteLine(new JsonObject
            {
                ["message_type"] = "summary",
                ["snapshot_id"] = snap.Id,
                ["data_directory"] = Path.GetFullPath(to),
                ["started"] = start,
                ["files"] = stats?.Files,
                ["bytes_written"] = stats?.Bytes,
                ["files_reused"] = stats?.FilesReused,
                ["bytes_reused"] = stats?.BytesReused,
                ["removed"] = stats?.Removed,
                ["in_recovery"] = result?.InRecovery,
                ["replay_lsn"] = result?.ReplayLsn,
                ["paused"] = result?.PausedState,
                ["last_replayed_transaction"] = result?.LastReplayedTransaction?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
                ["socket"] = start ? socketDir : null,
                ["port"] = start ? port ?? 5433 : null,
            }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        }
        else
        {
            ctx.Console.Out.WriteLine($"restored physical backup {snap.ShortId} into {Path.GetFullPath(to)} with recovery settings ({string.Join(", ", target.Settings())})");
            if (stats is { } st)
            {
                ctx.Console.Out.WriteLine($"{st.Files} files: {Format.Bytes(st.Bytes)} written{(options.Delta ? $", {st.FilesReused} files ({Format.Bytes(st.BytesReused)}) already matched and were kept, {st.Removed} entries not in the backup removed" : "")}");
            }
            if (result is not null)
            {
                ctx.Console.Out.WriteLine($"server on port {port ?? 5433} (socket {socketDir}): {(result.InRecovery ? $"recovery {result.PausedState}" : "recovery finished, promoted")} at LSN {result.ReplayLsn}, last replayed transaction {result.LastReplayedTransaction?.UtcDateTime.ToString("u", CultureInfo.InvariantCulture) ?? "-"}");
            }
            else
            {
                ctx.Console.Out.WriteLine($"start it with: pg_ctl -D {Path.GetFullPath(to)} start (as the postgres user); recovery fetches WAL with cairn wal-fetch");
            }
        }
        return ExitCodes.Ok;
    }
}

/// <summary>Physical drills: restore to a point in time in a throwaway folder, prove where recovery stopped, run the checks, tear down.</summary>
internal static partial class PhysicalDrill
{
    [System.Text.RegularExpressions.GeneratedRegex(@"recovery stopping before commit of transaction (\d+), time (.+)")]
    private static partial System.Text.RegularExpressions.Regex StoppingBefore();

    public static async Task<int> RunAsync(CliContext ctx, ParseResult p, string name, Cairn.PostgreSql.Connections.PgConnection connection, IReadOnlyList<Cairn.Operations.Checks.CheckSpec> checks, string? snapshotId, string? targetTime, bool randomTarget, bool keep, CancellationToken ct)
    {
        var total = Stopwatch.StartNew();
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        await using var repoLock = await repo.LockAsync(exclusive: false, $"drill {name} --physical", ct).ConfigureAwait(false);
        var physical = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(s => s.Manifest.Kind == PhysicalOperation.Kind && s.Manifest.Name == name).ToList();
        if (physical.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no physical backup of {name}; take one with 'cairn backup {name} --physical'");
        }
        DateTimeOffset? target = targetTime is not null ? DateTimeOffset.Parse(targetTime, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : null;
        if (randomTarget)
        {
            // A random point between two real transactions inside the window, read from the archived WAL
            // (pg_waldump): recovery must then keep the earlier one and stop before the later one.
            target = await RandomTargetAsync(ctx, repo, name, physical[0], ct).ConfigureAwait(false);
        }
        var rt = new RecoveryTarget(Time: target?.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + (target is null ? null : "+00"), Action: "promote");
        if (target is null)
        {
            rt = new RecoveryTarget(Action: "promote");
        }
        var snap = await PhysicalOperation.ChooseAsync(repo, name, snapshotId, rt, ct).ConfigureAwait(false);
        var root = Path.Combine(Path.GetTempPath(), $"cairn-pdrill-{Guid.NewGuid():N}"[..26]);
        var data = Path.Combine(root, "data");
        var sock = Path.Combine(root, "sock");
        Directory.CreateDirectory(sock);
        var results = new List<Cairn.Operations.Checks.CheckResult>();
        TimeSpan? rto = null;
        TimeSpan? dataAge = null;
        var started = false;
        try
        {
            // Restore first, as root, into a folder only root can write to; hand it to the server's user afterwards.
            await PhysicalOperation.RestoreAsync(repo, snap, data, new FileRestoreOptions(Force: false, Delta: false, Jobs: Environment.ProcessorCount * 2), null, ct).ConfigureAwait(false);
            Cairn.PostgreSql.Programs.PgProcess.GiveToServerUser(root);
            var port = Cairn.PostgreSql.Servers.ScratchServer.FreePort();
            await PhysicalRestorer.ConfigureRecoveryAsync(data, PhysicalCommands.RestoreCommand(ctx, repo.Storage.Location, name), rt, port, sock, ct).ConfigureAwait(false);
            Cairn.PostgreSql.Programs.PgProcess.GiveToServerUser(sock);
            started = true;
            var rr = await PhysicalRestorer.StartAndWaitAsync(data, port, sock, "promote", TimeSpan.FromMinutes(30), ct, ctx.Config.PostgresBin).ConfigureAwait(false);
            rto = total.Elapsed;
            dataAge = rr.LastReplayedTransaction is { } lr ? ctx.Time.GetUtcNow() - lr : null;
            var log = await File.ReadAllTextAsync(Path.Combine(sock, "server.log"), ct).ConfigureAwait(false);
            if (target is { } t)
            {
                var stop = StoppingBefore().Match(log);
                var lastOk = rr.LastReplayedTransaction is null || rr.LastReplayedTransaction <= t;
                var nextAfter = stop.Success ? DateTimeOffset.Parse(stop.Groups[2].Value.Trim(), CultureInfo.InvariantCulture) : (DateTimeOffset?)null;
                var proven = lastOk && (nextAfter is null || nextAfter > t);
                results.Add(new Cairn.Operations.Checks.CheckResult("pitr_target", "pitr", $"recovery stops at {t.UtcDateTime:yyyy-MM-dd HH:mm:ss.fff}Z",
                    $"last replayed transaction {rr.LastReplayedTransaction?.UtcDateTime.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture) ?? "none"}; {(stop.Success ? $"first later transaction {stop.Groups[1].Value} at {nextAfter?.UtcDateTime:HH:mm:ss.fff} not applied" : "no later transaction in the archive")}",
                    proven ? Cairn.Operations.Checks.CheckStatus.Pass : Cairn.Operations.Checks.CheckStatus.Fail, rto.Value));
            }
            var db = connection.Database;
            var target2 = Cairn.PostgreSql.Connections.PgConnection.Parse($"postgresql://postgres@/{Uri.EscapeDataString(db)}?host={Uri.EscapeDataString(sock)}&port={port}");
            var backupTime = target ?? DateTimeOffset.Parse(snap.Manifest.Meta["stop_time"], CultureInfo.InvariantCulture);
            results.AddRange(await Cairn.Operations.Checks.CheckRunner.RunAsync(checks, new Cairn.Operations.Checks.CheckTarget(target2, backupTime, null, null, IsScratchCopy: true, $"postgresql://postgres@/{db}?host={sock}&port={port}"), TimeSpan.FromMinutes(10), ct).ConfigureAwait(false));
            if (keep)
            {
                ctx.Console.Error.WriteLine($"kept the restored server: psql \"postgresql://postgres@/{db}?host={sock}&port={port}\"; stop with pg_ctl -D {data} stop, then remove {root}");
                started = false;
                root = "";
            }
        }
        catch (Exception e) when (e is Cairn.PostgreSql.PgToolException or RepositoryException or IOException)
        {
            results.Add(new Cairn.Operations.Checks.CheckResult("restore", "restore", "the backup restores and recovers", "failed", Cairn.Operations.Checks.CheckStatus.Fail, total.Elapsed, e.Message));
        }
        finally
        {
            if (started)
            {
                var bin = Cairn.PostgreSql.Programs.PgBinaries.Find(null, ctx.Config.PostgresBin);
                await Cairn.PostgreSql.Programs.PgProcess.RunAsync(bin["pg_ctl"], ["-D", data, "-m", "immediate", "-w", "stop"], null, CancellationToken.None, asServerUser: true).ConfigureAwait(false);
            }
            if (root.Length > 0 && Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
        var passed = results.All(r => r.Passed);
        await Evidence.RecordAsync(ctx, repo.Storage.Location, "drill", passed ? "pass" : "fail", new()
        {
            ["type"] = "physical",
            ["target_time"] = target?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture) ?? "latest",
            ["random_target"] = randomTarget ? "yes" : "no",
            ["rto_ms"] = ((long?)rto?.TotalMilliseconds)?.ToString(CultureInfo.InvariantCulture) ?? "",
            ["data_age_s"] = ((long?)dataAge?.TotalSeconds)?.ToString(CultureInfo.InvariantCulture) ?? "",
            ["checks_passed"] = results.Count(c => c.Passed).ToString(CultureInfo.InvariantCulture),
            ["checks_failed"] = results.Count(c => !c.Passed).ToString(CultureInfo.InvariantCulture),
        }, ct, database: name, snapshot: snap.Id, durationMs: total.ElapsedMilliseconds, checks: DrillCommands.ChecksJson(results)).ConfigureAwait(false);
        DrillCommands.PrintResults(ctx, p.GetValue(CommandRunner.Json), $"physical drill of {name} (backup {snap.ShortId})", results, rto, dataAge, total.Elapsed, snap.Id);
        if (!passed)
        {
            ctx.Console.Error.WriteLine($"cairn: drill failed: {string.Join(", ", results.Where(r => !r.Passed).Select(r => r.Name))}");
            return ExitCodes.ChecksFailed;
        }
        return ExitCodes.Ok;
    }

    private static async Task<DateTimeOffset> RandomTargetAsync(CliContext ctx, Cairn.Repository.Repository repo, string name, Cairn.Repository.Manifests.Snapshot oldest, CancellationToken ct)
    {
        var from = DateTimeOffset.Parse(oldest.Manifest.Meta["stop_time"], CultureInfo.InvariantCulture);
        var segments = (await PhysicalOperation.WalFilesAsync(repo, name, ct).ConfigureAwait(false))
            .Where(w => WalNames.IsSegment(w) && string.CompareOrdinal(w, oldest.Manifest.Meta["start_wal"]) >= 0).TakeLast(16).ToList();
        var bin = Cairn.PostgreSql.Programs.PgBinaries.Find(null, ctx.Config.PostgresBin);
        var temp = Path.Combine(Path.GetTempPath(), $"cairn-waldump-{Guid.NewGuid():N}"[..27]);
        Directory.CreateDirectory(temp);
        var commits = new List<DateTimeOffset>();
        try
        {
            foreach (var seg in segments)
            {
                var path = Path.Combine(temp, seg);
                await File.WriteAllBytesAsync(path, await NamedFiles.GetAsync(repo, PhysicalOperation.WalObjectName(name, seg), ct).ConfigureAwait(false), ct).ConfigureAwait(false);
                var r = await Cairn.PostgreSql.Programs.PgProcess.RunAsync(bin["pg_waldump"], ["--rmgr=Transaction", path], new Dictionary<string, string> { ["TZ"] = "UTC" }, ct).ConfigureAwait(false);
                foreach (System.Text.RegularExpressions.Match m in CommitTime().Matches(r.StandardOutput))
                {
                    if (DateTimeOffset.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t) && t > from)
                    {
                        commits.Add(t);
                    }
                }
                File.Delete(path);
            }
        }
        finally
        {
            Directory.Delete(temp, recursive: true);
        }
        commits = [.. commits.Distinct().Order()];
        if (commits.Count < 2)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"the archived WAL of {name} holds fewer than two transactions after backup {oldest.ShortId}; there is no window to pick a random target in yet");
        }
        var i = Random.Shared.Next(commits.Count - 1);
        return commits[i] + ((commits[i + 1] - commits[i]) / 2);
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"desc: COMMIT (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC")]
    private static partial System.Text.RegularExpressions.Regex CommitTime();

}
