using System.Diagnostics;
using System.Globalization;
using Cairn.Operations.Drills;
using Cairn.Operations.Physical;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Lifecycle.Recovery;

/// <summary>Whether a physical backup and the archived WAL reach a moment: <see cref="Backup"/> when they do, else null and <see cref="Why"/> says what is missing.</summary>
public sealed record PitrCoverage(Snapshot? Backup, string Why);

/// <summary>
/// Point-in-time recovery into a throwaway server: the rule that decides whether physical backups cover a moment (used by
/// <c>recover --table --at --from auto</c> and by the incident's recover step), and the scratch restore itself, proved to have
/// stopped at the moment, handed to the caller while the server runs and removed afterwards.
/// </summary>
internal static class ScratchPitr
{
    /// <summary>
    /// Covered when the newest physical backup that finished before <paramref name="at"/> exists, the WAL archived since its
    /// start has no gap, and a segment was archived after <paramref name="at"/> (so the WAL reaches it).
    /// </summary>
    public static async Task<PitrCoverage> CoverageAsync(Repository.Repository repo, string database, DateTimeOffset at, CancellationToken ct)
    {
        var physical = await SnapshotSelector.NewestMatchingAsync(repo, s => s.Manifest.Name == database && s.Manifest.Kind == BackupKinds.Physical && PhysicalBackupMeta.Of(s).StopTime < at, ct).ConfigureAwait(false);
        if (physical is null)
        {
            return new PitrCoverage(null, $"no physical backup of {database} finished before {Stamp(at)}");
        }
        var archive = new WalArchive(repo, database);
        var missing = await archive.MissingAsync(PhysicalBackupMeta.Of(physical).StartWal, ct).ConfigureAwait(false);
        if (missing.Count > 0)
        {
            return new PitrCoverage(null, $"WAL segment {missing[0]} is missing from the archive after physical backup {physical.ShortId}");
        }
        var newest = await archive.NewestSegmentAsync(ct).ConfigureAwait(false);
        if (newest is null || newest.LastModified <= at)
        {
            return new PitrCoverage(null, $"no WAL segment was archived after {Stamp(at)} (the newest {(newest is null ? "is none" : $"was archived at {Stamp(newest.LastModified)}")}), so the WAL may not reach that moment");
        }
        return new PitrCoverage(physical, $"physical backup {physical.ShortId} and WAL archived without a gap past {Stamp(at)}");
    }

    /// <summary>
    /// Restores the physical backup (<paramref name="snapshotId"/>, or the newest before <paramref name="at"/>) into a scratch
    /// folder, replays the archived WAL to <paramref name="at"/>, promotes, proves where recovery stopped, and calls
    /// <paramref name="use"/> with the backup, the scratch server's connection to <paramref name="databaseName"/> and the proof
    /// (<paramref name="otherwise"/> ends the error when the proof fails: what the caller can do instead).
    /// The server is stopped and its folder removed afterwards, whatever happened.
    /// </summary>
    public static async Task<T> RunAsync<T>(OperationContext context, Repository.Repository repo, string database, string? snapshotId, DateTimeOffset at, string databaseName,
        Func<Snapshot, PgConnection, Checks.CheckResult, Task<T>> use, string otherwise, CancellationToken ct)
    {
        var target = new RecoveryTarget(Time: Stamp(at), Action: "promote");
        var snap = await PhysicalRestoreOperation.ChooseAsync(repo, database, snapshotId, target, ct).ConfigureAwait(false);
        await using var scratch = ScratchRecovery.Create(context, "recover", "the recovery");
        var sw = Stopwatch.StartNew();
        var rr = await scratch.RecoverAsync(repo, snap, database, target, ct).ConfigureAwait(false);
        var log = await scratch.ServerLogAsync(ct).ConfigureAwait(false);
        var proof = PhysicalDrillOperation.StopPointProof(at, rr.LastReplayedTransaction, log, sw.Elapsed);
        if (proof.Status != Checks.CheckStatus.Pass)
        {
            throw new PgToolException($"the scratch copy is not the database as of {Stamp(at)}, so nothing was recovered: {proof.Detail}; " +
                "check that the archived WAL reaches past that moment ('cairn snapshots " + database + "' shows the recovery window), " + otherwise);
        }
        return await use(snap, PgConnection.Parse(scratch.Url(databaseName)), proof).ConfigureAwait(false);
    }

    internal static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
}
