using Cairn.Operations.Physical;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Snapshots;

/// <summary>
/// The snapshots to list: every one (<c>repo ls</c>), or only database backups, optionally of one database
/// (<c>snapshots</c>), with each database's recovery window when <see cref="WithRecoveryWindows"/>.
/// </summary>
public sealed record SnapshotListRequest(bool BackupsOnly, string? Database = null, bool WithRecoveryWindows = false);

/// <summary>Snapshots oldest first; <see cref="Unreadable"/> names manifests that could not be read.</summary>
public sealed record SnapshotListResult(IReadOnlyList<Snapshot> Snapshots, IReadOnlyList<string> Unreadable, IReadOnlyList<RecoveryWindow> RecoveryWindows)
{
    /// <summary>The pins of the listed snapshots, by snapshot ID (expired ones included: the listing says so).</summary>
    public IReadOnlyDictionary<string, Cairn.Repository.Pin> Pins { get; init; } = new Dictionary<string, Cairn.Repository.Pin>();
}

public sealed class SnapshotListOperation(OperationContext context)
{
    public async Task<SnapshotListResult> RunAsync(SnapshotListRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var unreadable = new List<string>();
        // Summaries from the snapshot index (one object, not a thousand manifests): a listing reads no items.
        var all = await repo.ListSnapshotSummariesAsync((id, e) => unreadable.Add($"manifest {Cairn.Repository.ObjectNames.Short(id)} is unreadable: {e.Message}"), context.Warn,
            cancellationToken).ConfigureAwait(false);
        var shown = all.Where(s => (!request.BackupsOnly || s.Manifest.Kind != BackupKinds.File) && (request.Database is null || s.Manifest.Name == request.Database)).ToList();
        var windows = request.WithRecoveryWindows ? await RecoveryWindow.ComputeAsync(repo, shown, cancellationToken, context.Config, context.Warn).ConfigureAwait(false) : [];
        var pins = await repo.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        return new SnapshotListResult(shown, unreadable, windows) { Pins = pins };
    }
}
