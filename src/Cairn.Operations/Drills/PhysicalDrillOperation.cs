using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.Operations.Checks;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Drills;

/// <summary>
/// A drill of a physical backup of <see cref="Database"/>: recover to <see cref="TargetTime"/>, to a random point in
/// the window (<see cref="RandomTarget"/>; the same <see cref="Seed"/> picks the same point), or to the end of the
/// archive. <see cref="Keep"/> leaves the restored server running.
/// </summary>
public sealed record PhysicalDrillRequest(DatabaseTarget Database, string? SnapshotId = null, DateTimeOffset? TargetTime = null, bool RandomTarget = false, bool Keep = false, int? Seed = null, bool AllowSkipped = false);

/// <summary>Where a kept server is and how to stop it.</summary>
public sealed record KeptServer(string Url, string DataDirectory, string Root);

public sealed record PhysicalDrillResult(Snapshot Snapshot, DateTimeOffset? Target, IReadOnlyList<CheckResult> Checks, TimeSpan? Rto, TimeSpan? DataAge, TimeSpan Total, KeptServer? Kept, bool AllowSkipped = false)
{
    public CheckTally Tally => CheckTally.Of(Checks, AllowSkipped);

    public bool Passed => Tally.Ok;
}

/// <summary>
/// Physical drills: restore to a point in time in a throwaway folder, prove where recovery stopped (the last replayed
/// transaction is not after the target and the first later one was not applied), run the checks, tear down —
/// also on failure. A restore that fails is a failed check, not an error: the drill's record says so.
/// </summary>
public sealed partial class PhysicalDrillOperation(OperationContext context)
{
    public async Task<PhysicalDrillResult> RunAsync(PhysicalDrillRequest request, CancellationToken cancellationToken)
    {
        var ct = cancellationToken;
        var name = request.Database.Name;
        var total = Stopwatch.StartNew();
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        await using var repoLock = await repo.LockAsync(exclusive: false, $"drill {name} --physical", ct).ConfigureAwait(false);
        var physical = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(new SnapshotFilter(name, BackupKinds.Physical).Matches).ToList();
        if (physical.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no physical backup of {name}; take one with 'cairn backup {name} --physical'");
        }
        var target = request.TargetTime;
        if (request.RandomTarget)
        {
            // A random point between two real transactions inside the window, read from the archived WAL
            // (pg_waldump): recovery must then keep the earlier one and stop before the later one.
            target = await RandomTargetAsync(repo, name, physical[0], request.Seed ?? Random.Shared.Next(), ct).ConfigureAwait(false);
        }
        var rt = target is { } tt
            ? new RecoveryTarget(Time: tt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00", Action: "promote")
            : new RecoveryTarget(Action: "promote");
        var snap = await PhysicalRestoreOperation.ChooseAsync(repo, name, request.SnapshotId, rt, ct).ConfigureAwait(false);
        var scratch = ScratchRecovery.Create(context, "pdrill", "the drill");
        var results = new List<CheckResult>();
        TimeSpan? rto = null;
        TimeSpan? dataAge = null;
        KeptServer? kept = null;
        try
        {
            var rr = await scratch.RecoverAsync(repo, snap, name, rt, ct).ConfigureAwait(false);
            rto = total.Elapsed;
            dataAge = rr.LastReplayedTransaction is { } lr ? context.Time.GetUtcNow() - lr : null;
            var log = await scratch.ServerLogAsync(ct).ConfigureAwait(false);
            if (target is { } t)
            {
                results.Add(StopPointProof(t, rr.LastReplayedTransaction, log, rto.Value));
            }
            var url = scratch.Url(request.Database.Connection.Database);
            var backupTime = target ?? PhysicalBackupMeta.Of(snap).StopTime;
            // The checks run on the erased state: the server was promoted, so the ledger can be applied first.
            var erasures = await Lifecycle.Erasure.ErasureReplay.ApplyAsync(repo, name, PgConnection.Parse(url), ct).ConfigureAwait(false);
            if (erasures.Entries > 0)
            {
                results.Add(new CheckResult("erasure ledger", "erasure_replay", $"{erasures.Entries} erasure(s) applied again", $"{erasures.Reapplied} found data ({erasures.Rows} rows)", CheckStatus.Pass, default));
            }
            // Command checks see the recovered copy as their default server (PGHOST...), never the live one, as in logical drills.
            using (var commandEnvironment = PgConnection.Parse(url).ProgramEnvironment())
            {
                results.AddRange(await CheckRunner.RunAsync(request.Database.Checks, new CheckTarget(PgConnection.Parse(url), backupTime, null, null, IsScratchCopy: true, url, commandEnvironment.Variables, erasures.Ledger), TimeSpan.FromMinutes(10), ct).ConfigureAwait(false));
            }
            if (request.Keep)
            {
                kept = new KeptServer(url, scratch.DataDirectory, scratch.Root);
                scratch.Keep();
            }
        }
        catch (Exception e) when (e is PgToolException or RepositoryException or IOException)
        {
            results.Add(new CheckResult("restore", "restore", "the backup restores and recovers", "failed", CheckStatus.Fail, total.Elapsed, e.Message));
            if (target is { } t && scratch.Started && !results.Exists(r => r.Kind == "pitr"))
            {
                // Recovery that stops short (PostgreSQL ≥ 13 refuses to promote when the archive ends before the target) proves nothing about the target.
                results.Add(new CheckResult("pitr_target", "pitr", $"recovery stops at {Stamp(t)}", "recovery did not reach the target", CheckStatus.Fail, total.Elapsed, e.Message));
            }
        }
        finally
        {
            await scratch.DisposeAsync().ConfigureAwait(false);
        }
        var result = new PhysicalDrillResult(snap, target, results, rto, dataAge, total.Elapsed, kept, request.AllowSkipped);
        var seq = context.Evidence.Record(new PhysicalDrillEvent(target, request.RandomTarget, (long?)rto?.TotalMilliseconds, (long?)dataAge?.TotalSeconds, result.Tally, request.AllowSkipped)
        {
            Repository = repo.Storage.Location,
            Result = EvidenceEvent.Outcome(result.Passed),
            Database = name,
            Snapshot = snap.Id,
            DurationMs = total.ElapsedMilliseconds,
            Checks = results,
        });
        if (await ResultMirror.WriteAsync(context, request.Database.Connection, ResultMirror.CheckRows("drill_physical", name, results, context.Time.GetUtcNow(), total.Elapsed, seq), ct).ConfigureAwait(false) is { } warning)
        {
            context.Warn(warning);
        }
        await Recording.EvidencePublishing.AfterAsync(context, repo, ct).ConfigureAwait(false);
        return result;
    }

    /// <summary>
    /// Proof that recovery stopped at <paramref name="target"/>. Both facts are required: the last replayed transaction
    /// (from the server), when there is one, is not after the target, and the first transaction recovery did not apply
    /// (PostgreSQL's "recovery stopping before …" line in the server log) is after it. A missing stop line fails the proof
    /// with the reason, because recovery that ended early (at the end of the available WAL) leaves exactly that line out.
    /// </summary>
    internal static CheckResult StopPointProof(DateTimeOffset target, DateTimeOffset? lastReplayed, string log, TimeSpan elapsed)
    {
        var stop = StoppingBefore().Match(log);
        DateTimeOffset? notApplied = stop.Success && DateTimeOffset.TryParse(stop.Groups[3].Value.Trim(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed) ? parsed : null;
        var problems = new List<string>();
        // No replayed transaction is not a failure by itself: when no transaction committed between the backup's start and
        // the target, recovery replays none and the stop line alone shows it went up to the first commit after the target.
        // An early end of recovery is still caught, because then the stop line is missing.
        if (lastReplayed is { } last && last > target)
        {
            problems.Add($"the last replayed transaction ({Stamp(last)}) is after the target: recovery went too far");
        }
        if (!stop.Success)
        {
            problems.Add("the server log has no 'recovery stopping before' line: recovery did not stop at the target (it may have ended early, at the end of the archived WAL)");
        }
        else if (notApplied is not { } next)
        {
            problems.Add($"the server log's stop line has a time that cannot be read: '{stop.Value.Trim()}'");
        }
        else if (next <= target)
        {
            problems.Add($"the first transaction not applied ({stop.Groups[2].Value} at {Stamp(next)}) is not after the target: recovery stopped too early");
        }
        var actual = (lastReplayed is { } l ? $"last replayed transaction {Stamp(l)}; " : "no transaction replayed (none committed between the backup and the target); ")
            + (notApplied is { } n ? $"first later {stop.Groups[1].Value} of transaction {stop.Groups[2].Value} at {Stamp(n)} not applied" : "no 'recovery stopping before' line in the server log");
        return new CheckResult("pitr_target", "pitr", $"recovery stops at {Stamp(target)}", actual,
            problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, elapsed, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);

    /// <summary>A point halfway between two consecutive commits after <paramref name="oldest"/> ended, among the newest 16 archived segments.</summary>
    private async Task<DateTimeOffset> RandomTargetAsync(Repository.Repository repo, string name, Snapshot oldest, int seed, CancellationToken ct)
    {
        var meta = PhysicalBackupMeta.Of(oldest);
        var from = meta.StopTime;
        var archive = new WalArchive(repo, name);
        var segments = (await archive.ListAsync(ct).ConfigureAwait(false))
            .Where(w => w.IsSegment && string.CompareOrdinal(w.Name, meta.StartWal) >= 0).TakeLast(16).Select(w => w.Name).ToList();
        var bin = context.Toolchain.Binaries();
        var temp = Path.Combine(Path.GetTempPath(), $"cairn-waldump-{Guid.NewGuid():N}"[..27]);
        Directory.CreateDirectory(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var commits = new List<DateTimeOffset>();
        try
        {
            foreach (var seg in segments)
            {
                var path = Path.Combine(temp, seg);
                await File.WriteAllBytesAsync(path, await archive.GetAsync(seg, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
                var r = await PgProcess.RunAsync(bin["pg_waldump"], ["--rmgr=Transaction", path], new Dictionary<string, string> { ["TZ"] = "UTC" }, ct).ConfigureAwait(false);
                foreach (Match m in CommitTime().Matches(r.StandardOutput))
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
        var i = new Random(seed).Next(commits.Count - 1);
        return commits[i] + ((commits[i + 1] - commits[i]) / 2);
    }

    [GeneratedRegex(@"recovery stopping before (commit|abort) of transaction (\d+), time (.+)")]
    private static partial Regex StoppingBefore();

    [GeneratedRegex(@"desc: COMMIT (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?) UTC")]
    private static partial Regex CommitTime();
}

/// <summary>What a scheduled <c>drill</c> drills: the logical backups, or the physical ones when a database has only those.</summary>
public static class ScheduledDrill
{
    public static async Task<bool> PhysicalOnlyAsync(OperationContext context, string database, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var mine = (await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).Where(s => s.Manifest.Name == database).ToList();
        return mine.Any(s => s.Manifest.Kind == Snapshots.BackupKinds.Physical) && !mine.Any(s => s.Manifest.Kind == Snapshots.BackupKinds.Logical);
    }
}
