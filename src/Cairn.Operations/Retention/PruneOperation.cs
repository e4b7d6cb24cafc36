using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Retention;

/// <summary><paramref name="AcceptGap"/>: prune even when a kept recovery window has a gap (the gap is then on the record).</summary>
public sealed record PruneRequest(bool DryRun, bool AcceptGap = false);

/// <summary>A backup the retention planner judged, and the database it belongs to.</summary>
public sealed record PruneDecision(string Database, RetentionDecision Decision);

/// <summary>One database's recovery window before and after prune, as WAL positions (segment numbers without the timeline).</summary>
public sealed record PruneWindow(string Database, string OldestBefore, string OldestAfter, IReadOnlyList<string> SegmentsDeleted);

public sealed record PruneResult(bool DryRun, IReadOnlyList<PruneDecision> Decisions, IReadOnlyList<PruneWindow> Windows, IReadOnlyList<string> WalObjectsDeleted, PruneReport Data)
{
    /// <summary>Recovery windows with a part no kept backup reaches (only with <see cref="PruneRequest.AcceptGap"/>; otherwise prune refuses).</summary>
    public IReadOnlyList<string> AcceptedGaps { get; init; } = [];

    /// <summary>Objects left because S3 Object Lock still retains them: manifests, WAL and data (a later prune removes them).</summary>
    public IReadOnlyList<LockedObject> Locked { get; init; } = [];

    /// <summary>S3 Object Lock: objects the kept backups need whose lock ran out within half the period and was extended by a full period.</summary>
    public int LocksRenewed { get; init; }

    public int Forgotten => Decisions.Count(d => !d.Decision.Keep);

    public int Kept => Decisions.Count - Forgotten;
}

/// <summary>
/// Applies each database's retention, then deletes the data no snapshot references, under an exclusive lock.
/// Logical and physical backups of a database are judged separately (each kind keeps its own history). WAL
/// MUST NOT be deleted from or after the start of the oldest physical backup that stays: every restorable
/// point inside the kept window keeps the WAL it needs, so prune never creates a gap. With keep_within, the
/// window's start must stay recoverable: older physical backups are kept when that bridges it
/// (<see cref="WindowCoverage"/>), and prune refuses, naming the missing WAL, when a gap inside the window remains.
/// </summary>
public sealed class PruneOperation(OperationContext context)
{
    public async Task<PruneResult> RunAsync(PruneRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        OperationContext.RequireDeleteRights(repo.Storage, "prune");
        await using var l = await repo.LockAsync(exclusive: true, "prune", cancellationToken).ConfigureAwait(false);
        var snapshots = await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false);
        var pins = await repo.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        var decisions = Plan(snapshots, context.Config, pins, context.Time.GetUtcNow());

        var physical = snapshots.Where(s => s.Manifest.Kind == BackupKinds.Physical).GroupBy(s => s.Manifest.Name).ToList();
        var archives = new Dictionary<string, (WalArchive Archive, List<WalObject> Objects)>(StringComparer.Ordinal);
        var gaps = new List<string>();
        // The archive as it is now (prune deletes: never the WAL summary), listed once for every database.
        var listed = physical.Count > 0 ? await WalArchive.ListByDatabaseAsync(repo.Storage, cancellationToken).ConfigureAwait(false) : [];
        foreach (var group in physical)
        {
            var archive = new WalArchive(repo, group.Key);
            var objects = listed.GetValueOrDefault(group.Key) ?? [];
            archives[group.Key] = (archive, objects);
            var policy = context.Config.Databases.TryGetValue(group.Key, out var db) ? db.Retention : new Configuration.RetentionPolicy();
            if (policy.KeepWithin is not { } within)
            {
                continue;
            }
            var histories = await archive.HistoriesAsync(objects, cancellationToken).ConfigureAwait(false);
            var mine = decisions.Where(d => d.Database == group.Key && group.Any(s => s.Id == d.Decision.Id)).ToList();
            var bases = group.Select(s => (s.Id, Meta: PhysicalBackupMeta.Of(s))).Select(x => new RestoreBase(x.Id, x.Meta.StartWal, x.Meta.StopTime)).ToList();
            var plan = WindowCoverage.Bridge(group.Key, [.. mine.Select(d => d.Decision)], bases, policy, [.. objects.Select(o => o.Name)], histories);
            foreach (var d in plan.Decisions)
            {
                decisions[decisions.FindIndex(x => x.Decision.Id == d.Id)] = new PruneDecision(group.Key, d);
            }
            if (plan.Gap is { } gap)
            {
                gaps.Add(gap.Describe(within));
            }
        }
        if (gaps.Count > 0 && !request.AcceptGap)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"prune refused: {string.Join("; ", gaps)}. Nothing was deleted. " +
                "Find the missing WAL (another copy of the archive, the server's pg_wal) and push it with 'cairn wal-push', or accept that those points are lost with 'cairn prune --accept-gap' (recorded in the evidence log)");
        }
        var forgotten = decisions.Where(d => !d.Decision.Keep).Select(d => d.Decision.Id).ToHashSet(StringComparer.Ordinal);
        var locked = new List<LockedObject>();
        var keptOnlyByLock = new HashSet<string>(StringComparer.Ordinal);
        if (ObjectLocks.Of(repo.Storage) is { } locks)
        {
            // A backup whose manifest is still locked stays a backup (with its WAL window) until a later prune.
            foreach (var id in forgotten.Order(StringComparer.Ordinal).ToList())
            {
                var key = new StorageKey(ObjectKind.Snapshot, id);
                if (await locks.LockedUntilAsync(key, cancellationToken).ConfigureAwait(false) is not { } until)
                {
                    continue;
                }
                forgotten.Remove(id);
                keptOnlyByLock.Add(id);
                locked.Add(new LockedObject(key.Path, until));
                var i = decisions.FindIndex(d => d.Decision.Id == id);
                decisions[i] = decisions[i] with { Decision = decisions[i].Decision with { Keep = true, Reasons = [.. decisions[i].Decision.Reasons, $"no rule keeps it, but S3 Object Lock retains it until {until:yyyy-MM-dd HH:mm}Z"] } };
            }
        }

        var windows = new List<PruneWindow>();
        var walDeleted = new List<(WalArchive Archive, string Segment)>();
        foreach (var group in physical)
        {
            var (archive, objects) = archives[group.Key];
            var window = WalWindow(group.Key, [.. group], forgotten, objects);
            if (window is null)
            {
                continue;
            }
            windows.Add(window);
            walDeleted.AddRange(window.SegmentsDeleted.Select(s => (archive, s)));
        }
        if (!request.DryRun)
        {
            var keptByLock = new HashSet<string>(StringComparer.Ordinal);
            foreach (var s in snapshots.Where(s => forgotten.Contains(s.Id)))
            {
                try
                {
                    await repo.ForgetAsync(s, cancellationToken).ConfigureAwait(false);
                }
                catch (ObjectLockedException e)
                {
                    // Locked since the check above (a pin): its database's WAL stays whole this time.
                    locked.Add(new LockedObject(e.Key.Path, e.Until));
                    keptByLock.Add(s.Manifest.Name);
                }
            }
            var walLeft = new List<(WalArchive Archive, string Segment)>();
            foreach (var w in walDeleted)
            {
                if (keptByLock.Contains(w.Archive.Database))
                {
                    walLeft.Add(w);
                }
                else if (await WalDeleteUnlessLockedAsync(w.Archive, w.Segment, cancellationToken).ConfigureAwait(false) is { } until)
                {
                    locked.Add(new LockedObject(w.Archive.ObjectPath(w.Segment), until));
                    walLeft.Add(w);
                }
            }
            walDeleted.RemoveAll(walLeft.Contains);
            // The windows say what was removed, not what was planned.
            for (var i = 0; i < windows.Count; i++)
            {
                var left = walLeft.Where(w => w.Archive.Database == windows[i].Database).Select(w => w.Segment).ToHashSet(StringComparer.Ordinal);
                windows[i] = windows[i] with { SegmentsDeleted = [.. windows[i].SegmentsDeleted.Where(x => !left.Contains(x))] };
            }
            if (walDeleted.Count > 0)
            {
                await WalSummaryWriter.TryWriteAsync(context, repo, cancellationToken).ConfigureAwait(false);
            }
        }
        var data = await new Pruner(repo).PruneAsync(request.DryRun, cancellationToken).ConfigureAwait(false);
        var renewed = 0;
        if (!request.DryRun && ObjectLocks.Of(repo.Storage) is { } lockable)
        {
            var stale = locked.Concat(data.Locked).Select(l => l.Path).ToHashSet(StringComparer.Ordinal);
            var keptManifests = snapshots.Where(s => !forgotten.Contains(s.Id) && !keptOnlyByLock.Contains(s.Id)).Select(s => new StorageKey(ObjectKind.Snapshot, s.Id));
            renewed = await RenewLocksAsync(repo.Storage, lockable, [.. keptManifests, .. data.Needed], stale, cancellationToken).ConfigureAwait(false);
        }
        var result = new PruneResult(request.DryRun, decisions, windows, [.. walDeleted.Select(w => w.Archive.ObjectName(w.Segment))], data)
        {
            AcceptedGaps = gaps,
            Locked = [.. locked, .. data.Locked],
            LocksRenewed = renewed,
        };
        if (!request.DryRun)
        {
            context.Evidence.Record(new PruneEvent(result.Forgotten, walDeleted.Count, result.Kept, data.PacksDeleted, data.PacksRepacked, data.BytesDeleted, data.BytesKept)
            {
                Repository = repo.Storage.Location,
                AcceptedGaps = gaps,
            });
            await Recording.EvidencePublishing.AfterAsync(context, repo, cancellationToken).ConfigureAwait(false);
        }
        return result;
    }

    /// <summary>
    /// Deduplication means a new backup reuses packs written long ago, whose lock may be about to run out: every object the
    /// kept backups need (config, keys, their manifests, packs and indexes, the archived WAL prune kept, the ledger and the
    /// evidence copies) whose lock ends within half the period is retained a full period from now. So while prune runs at
    /// least every half period, nothing a kept backup needs is ever unlocked. Objects prune left only because they were
    /// locked (<paramref name="stale"/>) are not renewed: they go once their dates pass.
    /// </summary>
    private async Task<int> RenewLocksAsync(IStorage storage, IObjectLockStorage locks, List<StorageKey> needed, HashSet<string> stale, CancellationToken cancellationToken)
    {
        var policy = locks.ObjectLock!;
        needed.Add(StorageKey.Config);
        foreach (var kind in (ObjectKind[])[ObjectKind.Key, ObjectKind.Named, ObjectKind.Ledger, ObjectKind.Evidence])
        {
            await foreach (var o in storage.ListAsync(kind, cancellationToken).ConfigureAwait(false))
            {
                needed.Add(o.Key);
            }
        }
        var now = context.Time.GetUtcNow();
        var renewed = 0;
        foreach (var key in needed.Distinct().Where(k => !stale.Contains(k.Path)))
        {
            if (await locks.LockedUntilAsync(key, cancellationToken).ConfigureAwait(false) is { } until && until >= now + (policy.Period / 2))
            {
                continue;
            }
            try
            {
                if (await locks.ExtendLockAsync(key, now + policy.Period, cancellationToken).ConfigureAwait(false))
                {
                    renewed++;
                }
            }
            catch (ObjectNotFoundException)
            {
                // Gone since it was listed (a WAL segment another prune removed): nothing to keep.
            }
        }
        return renewed;
    }

    private static async Task<DateTimeOffset?> WalDeleteUnlessLockedAsync(WalArchive archive, string segment, CancellationToken cancellationToken)
    {
        try
        {
            await archive.DeleteAsync(segment, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (ObjectLockedException e)
        {
            return e.Until;
        }
    }

    /// <summary>
    /// Retention decisions for every database backup (files stored with <c>repo put</c> are not judged). A snapshot whose
    /// pin holds at <paramref name="now"/> stays whatever the policy says, and so does one tagged with a keep_tag tag.
    /// </summary>
    public static List<PruneDecision> Plan(IEnumerable<Snapshot> snapshots, Configuration.CairnConfig config, IReadOnlyDictionary<string, Pin>? pins = null, DateTimeOffset? now = null)
    {
        var decisions = new List<PruneDecision>();
        var all = snapshots.ToDictionary(s => s.Id, StringComparer.Ordinal);
        foreach (var group in all.Values.Where(s => s.Manifest.Kind != BackupKinds.File).GroupBy(s => (s.Manifest.Name, s.Manifest.Kind)))
        {
            var policy = config.Databases.TryGetValue(group.Key.Name, out var db) ? db.Retention : new Configuration.RetentionPolicy();
            foreach (var d in RetentionPlanner.Plan(group.Select(s => (s.Id, s.Manifest.Time)), policy))
            {
                var extra = new List<string>();
                if (pins is not null && pins.TryGetValue(d.Id, out var pin) && (now is null || pin.HoldsAt(now.Value)))
                {
                    extra.Add($"pinned{(pin.Until is { } u ? $" until {u:yyyy-MM-dd}" : "")}: {pin.Reason}");
                }
                extra.AddRange(Pins.BackupTags.Of(all[d.Id]).Where(policy.KeepTag.Contains).Select(t => $"tag {t}"));
                var reasons = d.Reasons.Count == 1 && d.Reasons[0] == "newest backup" && extra.Count > 0 ? extra : [.. d.Reasons, .. extra];
                decisions.Add(new PruneDecision(group.Key.Name, d with { Keep = d.Keep || extra.Count > 0, Reasons = reasons }));
            }
        }
        return decisions;
    }

    /// <summary>
    /// The WAL segments of one database that may go: those before the start of the oldest physical backup that stays.
    /// Null when no physical backup of it stays (then its WAL is kept whole).
    /// </summary>
    public static PruneWindow? WalWindow(string database, IReadOnlyList<Snapshot> physical, IReadOnlySet<string> forgotten, IEnumerable<WalObject> archived)
    {
        var kept = physical.Where(s => !forgotten.Contains(s.Id)).ToList();
        if (kept.Count == 0)
        {
            return null;
        }
        var oldestAll = physical.Select(s => PhysicalBackupMeta.Of(s).StartPosition).Min(StringComparer.Ordinal)!;
        var oldestKept = kept.Select(s => PhysicalBackupMeta.Of(s).StartPosition).Min(StringComparer.Ordinal)!;
        var goes = archived.Where(w => w.IsSegment && string.CompareOrdinal(w.Name[8..], oldestKept) < 0).Select(w => w.Name).ToList();
        return new PruneWindow(database, oldestAll, oldestKept, goes);
    }
}
