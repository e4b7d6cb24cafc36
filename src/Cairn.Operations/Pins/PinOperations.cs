using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Pins;

/// <summary>Pin a snapshot (a legal or forensic hold): <paramref name="Snapshot"/> is an ID prefix; <paramref name="Until"/> null holds until unpinned.</summary>
public sealed record PinRequest(string Snapshot, string Reason, DateTimeOffset? Until = null, string? Incident = null);

public sealed record PinResult(Snapshot Snapshot, Pin Pin, bool Replaced, long EvidenceSeq)
{
    /// <summary>S3 Object Lock: the date the snapshot's objects are now retained until at least; null when the repository locks nothing.</summary>
    public DateTimeOffset? LockedUntil { get; init; }

    /// <summary>How many of the snapshot's objects (config, keys, manifest, indexes, packs, its WAL) were checked.</summary>
    public int LockedObjects { get; init; }

    /// <summary>How many of them had a shorter lock and were extended (PutObjectRetention).</summary>
    public int LocksExtended { get; init; }
}

public sealed record UnpinRequest(string Snapshot, string Reason);

public sealed record UnpinResult(Snapshot Snapshot, Pin Removed, long EvidenceSeq)
{
    /// <summary>Whether the repository locks its objects (S3 Object Lock): unpin leaves every lock as it is, never shorter.</summary>
    public bool LocksKept { get; init; }
}

/// <summary>The pins of a repository, shown beside the snapshots they hold.</summary>
public sealed record PinListResult(IReadOnlyList<(Snapshot? Snapshot, Pin Pin)> Pins);

/// <summary>
/// Pins and unpins snapshots. Pins live in the repository (<c>pins/</c>), so every host that prunes sees them; each change
/// is taken under a shared lock (prune holds the exclusive one) and is an evidence record.
/// </summary>
public sealed class PinOperation(OperationContext context)
{
    public async Task<PinResult> PinAsync(PinRequest request, CancellationToken cancellationToken)
    {
        var reason = request.Reason.Trim();
        if (reason.Length == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "a pin needs a reason: --reason \"why this backup must be kept\"");
        }
        var now = context.Time.GetUtcNow();
        if (request.Until is { } until && until <= now)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--until {until:yyyy-MM-dd HH:mm}Z is not in the future; give a later date or none (until unpinned)");
        }
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "pin", cancellationToken).ConfigureAwait(false);
        var snapshots = await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false);
        var snapshot = SnapshotSelector.Select(snapshots, request.Snapshot, new SnapshotFilter());
        var existing = await repo.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        var pin = new Pin(1, snapshot.Id, reason, now, Environment.MachineName, request.Until, request.Incident);
        await repo.PutPinAsync(pin, cancellationToken).ConfigureAwait(false);
        // The pin keeps prune away; the lock keeps everyone else away (an intruder with the bucket's credentials too).
        (DateTimeOffset Until, int Objects, int Extended)? locked = null;
        if (ObjectLocks.Of(repo.Storage) is { } locks)
        {
            locked = await ExtendLocksAsync(repo, locks, snapshot, request.Until ?? now + locks.ObjectLock!.Period, cancellationToken).ConfigureAwait(false);
        }
        var seq = context.Evidence.Record(new PinEvent("pin", reason, request.Until, request.Incident)
        {
            Repository = repo.Storage.Location,
            Database = snapshot.Manifest.Name,
            Snapshot = snapshot.Id,
        });
        return new PinResult(snapshot, pin, existing.ContainsKey(snapshot.Id), seq)
        {
            LockedUntil = locked?.Until,
            LockedObjects = locked?.Objects ?? 0,
            LocksExtended = locked?.Extended ?? 0,
        };
    }

    /// <summary>
    /// Retains every object a restore of the snapshot reads until at least <paramref name="until"/>: config, keys,
    /// manifest, the indexes and packs of its chunks and, for a physical backup, the WAL from its start to its end.
    /// </summary>
    private static async Task<(DateTimeOffset, int, int)> ExtendLocksAsync(Repository.Repository repo, IObjectLockStorage locks, Snapshot snapshot, DateTimeOffset until, CancellationToken cancellationToken)
    {
        var keys = (await repo.ObjectsOfAsync(snapshot, cancellationToken).ConfigureAwait(false)).ToList();
        if (snapshot.Manifest.Kind == BackupKinds.Physical)
        {
            var meta = PhysicalBackupMeta.Of(snapshot);
            var archive = new WalArchive(repo, snapshot.Manifest.Name);
            var last = (meta.StopWal ?? meta.StartWal)[8..];
            foreach (var w in await archive.ListAsync(cancellationToken).ConfigureAwait(false))
            {
                if (!w.IsSegment || (string.CompareOrdinal(w.Name[8..], meta.StartPosition) >= 0 && string.CompareOrdinal(w.Name[8..], last) <= 0))
                {
                    keys.Add(new StorageKey(ObjectKind.Named, archive.ObjectName(w.Name)));
                }
            }
        }
        var extended = 0;
        foreach (var key in keys)
        {
            if (await locks.ExtendLockAsync(key, until, cancellationToken).ConfigureAwait(false))
            {
                extended++;
            }
        }
        return (until, keys.Count, extended);
    }

    public async Task<UnpinResult> UnpinAsync(UnpinRequest request, CancellationToken cancellationToken)
    {
        var reason = request.Reason.Trim();
        if (reason.Length == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "lifting a hold needs a reason too: --reason \"why it may go\"");
        }
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "unpin", cancellationToken).ConfigureAwait(false);
        var snapshots = await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false);
        var snapshot = SnapshotSelector.Select(snapshots, request.Snapshot, new SnapshotFilter());
        var pins = await repo.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        if (!pins.TryGetValue(snapshot.Id, out var pin))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"snapshot {snapshot.ShortId} is not pinned; 'cairn snapshots' shows the pins");
        }
        await repo.DeletePinAsync(snapshot.Id, cancellationToken).ConfigureAwait(false);
        var seq = context.Evidence.Record(new PinEvent("unpin", reason, pin.Until, pin.Incident)
        {
            Repository = repo.Storage.Location,
            Database = snapshot.Manifest.Name,
            Snapshot = snapshot.Id,
        });
        // Never shortens a lock: S3 would refuse it in compliance mode, and in governance mode it would take bypass rights
        // this host should not have. The objects stay retained until their dates, then prune may remove them.
        return new UnpinResult(snapshot, pin, seq) { LocksKept = ObjectLocks.Of(repo.Storage) is not null };
    }

    public async Task<PinListResult> ListAsync(CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var snapshots = (await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).ToDictionary(s => s.Id, StringComparer.Ordinal);
        var pins = await repo.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        return new PinListResult([.. pins.Values.OrderBy(p => p.Created).Select(p => (snapshots.GetValueOrDefault(p.Snapshot), p))]);
    }

    /// <summary>Parses --until: a date (midnight UTC) or a date and time, always UTC.</summary>
    public static DateTimeOffset ParseUntil(string text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new RepositoryException(ErrorKind.InvalidInput, $"--until '{text}' is not a date; write 2027-06-30 or 2027-06-30T12:00Z (UTC)");
}

/// <summary>Tags on backups (<c>backup --tag NAME</c>), stored in the manifest's meta as <c>tags</c> (comma-separated).</summary>
public static partial class BackupTags
{
    public const string MetaKey = "tags";

    public static IReadOnlyList<string> Validate(IEnumerable<string> tags)
    {
        var list = tags.Select(t => t.Trim()).Where(t => t.Length > 0).Distinct(StringComparer.Ordinal).ToList();
        foreach (var t in list.Where(t => !TagName().IsMatch(t)))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"tag '{t}' is not allowed: use 1 to 64 letters, digits, '.', '_' or '-' (e.g. --tag pre-migration)");
        }
        return list;
    }

    public static IReadOnlyList<string> Of(Snapshot snapshot) =>
        snapshot.Manifest.Meta.TryGetValue(MetaKey, out var v) && v.Length > 0 ? v.Split(',') : [];

    /// <summary>Adds the tags to a manifest's meta (nothing when there are none, so untagged manifests stay as they were).</summary>
    public static void AddTo(Dictionary<string, string> meta, IReadOnlyList<string>? tags)
    {
        if (tags is { Count: > 0 })
        {
            meta[MetaKey] = string.Join(',', Validate(tags));
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}\\z")]
    private static partial Regex TagName();
}
