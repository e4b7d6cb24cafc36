using System.Diagnostics;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>
/// A physical backup of <see cref="Database"/> (<see cref="SnapshotId"/>, default: the newest that finished before the
/// target) written into <see cref="TargetDirectory"/> with recovery settings; with <see cref="Start"/> the server is started
/// on <see cref="Port"/> (default 5433) and the restore waits until recovery reached its target.
/// </summary>
public sealed record PhysicalRestoreRequest(DatabaseTarget Database, string? SnapshotId, string TargetDirectory, RecoveryTarget Target, FileRestoreOptions Options,
    bool Start = false, int? Port = null, bool KeepArchiving = false)
{
    public const int DefaultPort = 5433;

    public int StartPort => Port ?? DefaultPort;
}

/// <param name="Erasures">The erasure ledger applied after promotion (with --start), or null.</param>
/// <param name="ErasuresPending">Erasures not yet applied (no --start, or the server stayed in recovery): the note file says how.</param>
public sealed record PhysicalRestoreResult(Snapshot Snapshot, string DataDirectory, IReadOnlyList<string> RecoverySettings, FileRestoreStats? Files, RecoveryResult? Recovery,
    bool Started, int? Port, string? SocketDirectory, bool Delta, Lifecycle.Erasure.ReplayResult? Erasures = null, int ErasuresPending = 0, string? ReplayCommand = null);

/// <summary>
/// <c>restore DATABASE --physical</c>: choose the backup, refuse a WAL gap recovery could not pass (a gap would make
/// PostgreSQL stop early and call it the end), write the files, configure recovery with <c>cairn wal-fetch</c> as
/// restore_command, and optionally start the server and wait for recovery.
/// </summary>
public sealed class PhysicalRestoreOperation(OperationContext context)
{
    public async Task<PhysicalRestoreResult> RunAsync(PhysicalRestoreRequest request, IByteProgress? progress, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        var name = request.Database.Name;
        var target = request.Target;
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        // Held until recovery finished: a prune meanwhile could delete the WAL the replay still fetches.
        await using var l = await repo.LockAsync(exclusive: false, $"restore {name} --physical", cancellationToken).ConfigureAwait(false);
        await DeletedBackups.WarnAsync(context, repo, name, cancellationToken).ConfigureAwait(false);
        var snap = await ChooseAsync(repo, name, request.SnapshotId, target, cancellationToken).ConfigureAwait(false);
        var restoreCommand = WalCommands.RestoreCommand(context, repo.Storage.Location, name);
        var missing = await new WalArchive(repo, name).MissingAsync(PhysicalBackupMeta.Of(snap).StartWal, cancellationToken).ConfigureAwait(false);
        string? gap = null;
        if (missing.Count > 0)
        {
            var toEnd = target.Time is null && target.Lsn is null && target.Xid is null && target.Name is null && target.Immediate is null;
            var message = $"WAL segment {missing[0]} is missing from the archive{(missing.Count > 1 ? $" ({missing.Count} segments missing in all)" : "")}: recovery from backup {snap.ShortId} cannot pass it";
            gap = $"{message}; restore to a target before it, or from a physical backup taken after it (--snapshot ID; 'cairn snapshots {name}' shows the recovery window), or find the segment (pg_wal of the original server) and 'cairn wal-push' it";
            if (toEnd)
            {
                throw new RepositoryException(ErrorKind.Damaged, message + "; restore to a target before it (--target-time/--target-lsn), or find the segment (pg_wal of the original server) and 'cairn wal-push' it");
            }
            context.Warn($"{message}; if the target lies after it, recovery stops at the gap and the server reports it");
        }
        var to = request.TargetDirectory;
        progress?.SetTotal(snap.Size);
        var stats = await PhysicalBackups.RestoreAsync(repo, snap, to, request.Options, progress, cancellationToken).ConfigureAwait(false);
        var full = Path.GetFullPath(to);
        var socketDir = Path.Combine(Path.GetDirectoryName(full)!, Path.GetFileName(full) + ".sock");
        if (request.Start)
        {
            Directory.CreateDirectory(socketDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            PgProcess.GiveToServerUser(socketDir);
        }
        await PhysicalRestorer.ConfigureRecoveryAsync(to, restoreCommand, target, request.Start ? request.StartPort : request.Port, request.Start ? socketDir : null, request.KeepArchiving, cancellationToken).ConfigureAwait(false);
        RecoveryResult? recovery = null;
        if (request.Start)
        {
            try
            {
                recovery = await PhysicalRestorer.StartAndWaitAsync(to, request.StartPort, socketDir, target.Action, TimeSpan.FromMinutes(30), context.Toolchain.PostgresBin, cancellationToken).ConfigureAwait(false);
            }
            catch (PgToolException e) when (gap is not null)
            {
                // The server's "recovery ended before configured recovery target was reached" is this gap: say so, with the fix.
                throw new PgToolException($"{e.Message}; {gap}", e);
            }
        }
        var settings = target.Settings().ToList();
        // The erasure ledger: applied once the server is promoted; otherwise a note in the folder says how to apply it.
        var ledger = await Lifecycle.Erasure.ErasureLedgerEntries.ReadAsync(repo, name, cancellationToken).ConfigureAwait(false);
        Lifecycle.Erasure.ReplayResult? erasures = null;
        var pending = 0;
        string? replayCommand = null;
        if (ledger.Count > 0)
        {
            var url = Cairn.PostgreSql.Connections.SocketUrl.For(socketDir, request.StartPort, request.Database.Connection.Database);
            if (recovery is { InRecovery: false })
            {
                erasures = await Lifecycle.Erasure.ErasureReplay.ApplyAsync(repo, name, Cairn.PostgreSql.Connections.PgConnection.Parse(url), cancellationToken).ConfigureAwait(false);
            }
            else
            {
                pending = ledger.Count;
                replayCommand = $"cairn erase {name} --replay --to {WalCommands.Sh(url)}";
                var note = $"This copy of {name} was restored by Cairn from backup {snap.ShortId} before {ledger.Count} erasure(s) in the repository's erasure ledger.\n" +
                    $"Once the server is up and promoted (not in recovery), apply them before anyone uses the copy:\n\n    {replayCommand}\n\n(give the port and socket the server really uses).\n";
                // CreateNew is O_CREAT|O_EXCL: a link planted under this name is never followed.
                await using var f = new FileStream(Path.Combine(full, "CAIRN-ERASURES-PENDING.txt"), new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite });
                await f.WriteAsync(System.Text.Encoding.UTF8.GetBytes(note), cancellationToken).ConfigureAwait(false);
                context.Warn($"{ledger.Count} erasure(s) are not applied to this copy yet: once the server is promoted run {replayCommand} (note: {Path.Combine(full, "CAIRN-ERASURES-PENDING.txt")})");
            }
        }
        context.Evidence.Record(new PhysicalRestoreEvent(full, string.Join("; ", settings), recovery?.ReplayLsn, request.Start, request.Options.Delta, stats?.FilesReused)
        {
            ErasuresReapplied = erasures?.Reapplied,
            ErasuresPending = pending,
            Repository = repo.Storage.Location,
            Database = name,
            Snapshot = snap.Id,
            DurationMs = sw.ElapsedMilliseconds,
        });
        return new PhysicalRestoreResult(snap, full, settings, stats, recovery, request.Start, request.Start ? request.StartPort : null, request.Start ? socketDir : null, request.Options.Delta,
            erasures, pending, replayCommand);
    }

    /// <summary>The backup given by ID, else the newest physical backup of <paramref name="database"/> that can reach <paramref name="target"/>.</summary>
    internal static async Task<Snapshot> ChooseAsync(Repository.Repository repo, string database, string? snapshotId, RecoveryTarget target, CancellationToken cancellationToken)
    {
        var filter = new SnapshotFilter(database, BackupKinds.Physical);
        return await SnapshotSelector.ChooseAsync(repo, all => snapshotId is null or SnapshotSelector.Latest
            ? SnapshotSelector.NewestBefore([.. all.Where(filter.Matches)], target, database)
            : SnapshotSelector.Select(all, snapshotId, filter), cancellationToken).ConfigureAwait(false);
    }
}
