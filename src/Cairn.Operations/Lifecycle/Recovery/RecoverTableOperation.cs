using System.Diagnostics;
using System.Globalization;
using Cairn.Operations.Drills;
using Cairn.Operations.Lifecycle.Erasure;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Lifecycle.Recovery;

/// <param name="Table">The live table to bring back, <c>schema.table</c> (a bare name means public).</param>
/// <param name="At">The moment the table is rebuilt as of.</param>
/// <param name="StagingSchema">Where the copy as of <paramref name="At"/> is staged beside the live table.</param>
/// <param name="Merge">Insert the rows the copy has and the live table lacks (one transaction, the ledger applied before the commit).</param>
/// <param name="DryRun">Build and compare the copy, then drop it: nothing in the database changes and nothing is recorded.</param>
public sealed record RecoverTableRequest(DatabaseTarget Database, string Table, DateTimeOffset At, string StagingSchema = RecoverTableRequest.DefaultSchema, bool Merge = false, bool DryRun = false,
    string? SnapshotId = null)
{
    public const string DefaultSchema = "cairn_recover";
}

/// <param name="Diff">The copy as of <see cref="At"/> against the live table (by primary key); <c>Merged</c> is what came back.</param>
/// <param name="Erasures">The erasure ledger applied to the copy before anything was read from it (and again inside a merge).</param>
/// <param name="StopProof">Where recovery stopped: the copy is the table as of <see cref="At"/> only when this passed.</param>
public sealed record RecoverTableResult(string Database, string Table, DateTimeOffset At, Snapshot Snapshot, TableDiff Diff, bool Merged, bool DryRun, ReplayResult Erasures,
    ReplayResult? MergeErasures, Checks.CheckResult StopProof, TimeSpan Duration);

/// <summary>
/// <c>cairn recover DATABASE --table T --at TIME</c>: the table as it was at TIME, from the physical backup and the archived
/// WAL: a scratch point-in-time restore to TIME (proved to have stopped there), the erasure ledger applied to it, the
/// table's rows staged beside the live table with the diff of table restore, and with <see cref="RecoverTableRequest.Merge"/>
/// the rows that are missing now inserted in one transaction that applies the ledger again before it commits. Rows
/// inserted after TIME and rows that exist in both are never touched. One <c>recover</c> evidence record per run.
/// </summary>
public sealed class RecoverTableOperation(OperationContext context)
{
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
        var target = new RecoveryTarget(Time: Stamp(request.At), Action: "promote");
        var snap = await PhysicalRestoreOperation.ChooseAsync(repo, name, request.SnapshotId, target, ct).ConfigureAwait(false);
        var root = Path.Combine(Path.GetTempPath(), $"cairn-recover-{Guid.NewGuid():N}"[..28]);
        var data = Path.Combine(root, "data");
        var sock = Path.Combine(root, "sock");
        Directory.CreateDirectory(sock, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var started = false;
        TableDiff diff;
        ReplayResult erasures;
        ReplayResult? mergeErasures = null;
        Checks.CheckResult proof;
        try
        {
            // As the physical drill does: restore as root into a folder only root can write to, then hand it to the server's user.
            await PhysicalBackups.RestoreAsync(repo, snap, data, new FileRestoreOptions(Force: false, Delta: false, Jobs: Environment.ProcessorCount * 2), null, ct).ConfigureAwait(false);
            PgProcess.GiveToServerUser(root);
            var port = ScratchServer.FreePort();
            await PhysicalRestorer.ConfigureRecoveryAsync(data, WalCommands.RestoreCommand(context, repo.Storage.Location, name), target, port, sock, keepArchiving: false, ct).ConfigureAwait(false);
            PgProcess.GiveToServerUser(sock);
            started = true;
            var rr = await PhysicalRestorer.StartAndWaitAsync(data, port, sock, "promote", TimeSpan.FromMinutes(30), context.Toolchain.PostgresBin, ct).ConfigureAwait(false);
            var log = await File.ReadAllTextAsync(Path.Combine(sock, "server.log"), ct).ConfigureAwait(false);
            proof = PhysicalDrillOperation.StopPointProof(request.At, rr.LastReplayedTransaction, log, sw.Elapsed);
            if (proof.Status != Checks.CheckStatus.Pass)
            {
                throw new PgToolException($"the scratch copy is not the database as of {Stamp(request.At)}, so nothing was recovered: {proof.Detail}; " +
                    "check that the archived WAL reaches past that moment ('cairn snapshots " + name + "' shows the recovery window)");
            }
            var copy = PgConnection.Parse(SocketUrl.For(sock, port, db.Connection.Database));
            // Erased subjects never come back: the copy is erased before a row of it is read.
            erasures = await ErasureReplay.ApplyAsync(repo, name, copy, ct).ConfigureAwait(false);
            diff = (await TableRestorer.StageFromAsync(copy, db.Connection, tables, request.StagingSchema, ct).ConfigureAwait(false)).Single();
        }
        finally
        {
            if (started)
            {
                await PgProcess.RunAsServerUserAsync(context.Toolchain.Binaries()["pg_ctl"], ["-D", data, "-m", "immediate", "-w", "stop"], null, CancellationToken.None).ConfigureAwait(false);
            }
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }
        if (request.DryRun)
        {
            await TableRestorer.DropStagingAsync(db.Connection, tables, request.StagingSchema, ct).ConfigureAwait(false);
            return new RecoverTableResult(name, Catalog.Qualified(table.Schema, table.Name), request.At, snap, diff, false, true, erasures, null, proof, sw.Elapsed);
        }
        if (request.Merge)
        {
            // The diff stays the one from before the merge (what differed); Merged says how many rows came back.
            var merged = (await TableRestorer.MergeMissingAsync(db.Connection, tables, request.StagingSchema,
                async (c, tx) => mergeErasures = await ErasureReplay.ApplyAsync(c, tx, ledger, ct).ConfigureAwait(false), ct).ConfigureAwait(false)).Single();
            diff = diff with { Merged = merged.Merged };
        }
        var result = new RecoverTableResult(name, Catalog.Qualified(table.Schema, table.Name), request.At, snap, diff, request.Merge, false, erasures, mergeErasures, proof, sw.Elapsed);
        context.Evidence.Record(new RecoverEvent("pitr", PhysicalBackupMeta.Of(snap).StopTime, request.At, diff.Merged, diff.RowsInBackup - diff.OnlyInBackup, erasures.Rows, 0, 0, [result.Table])
        {
            Repository = repo.Storage.Location,
            Database = name,
            Snapshot = snap.Id,
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
        });
        return result;
    }

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
}
