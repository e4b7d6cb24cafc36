using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Pins;

/// <summary>Pin a snapshot (a legal or forensic hold): <paramref name="Snapshot"/> is an ID prefix; <paramref name="Until"/> null holds until unpinned.</summary>
public sealed record PinRequest(string Snapshot, string Reason, DateTimeOffset? Until = null, string? Incident = null);

public sealed record PinResult(Snapshot Snapshot, Pin Pin, bool Replaced, long EvidenceSeq);

public sealed record UnpinRequest(string Snapshot, string Reason);

public sealed record UnpinResult(Snapshot Snapshot, Pin Removed, long EvidenceSeq);

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
        var seq = context.Evidence.Record(new PinEvent("pin", reason, request.Until, request.Incident)
        {
            Repository = repo.Storage.Location,
            Database = snapshot.Manifest.Name,
            Snapshot = snapshot.Id,
        });
        return new PinResult(snapshot, pin, existing.ContainsKey(snapshot.Id), seq);
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
        return new UnpinResult(snapshot, pin, seq);
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

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TagName();
}
