using Cairn.Repository.Locks;

namespace Cairn.Operations.Maintenance;

public sealed record UnlockRequest(bool Force);

/// <summary>The locks that were there, and those removed.</summary>
public sealed record UnlockResult(IReadOnlyList<LockInfo> Before, IReadOnlyList<LockInfo> Removed)
{
    public bool WasRemoved(LockInfo l) => Removed.Any(r => r.Id == l.Id);
}

/// <summary>Removes stale locks (left by a process that died), or with <see cref="UnlockRequest.Force"/> every lock. Needs no passphrase.</summary>
public sealed class UnlockOperation(OperationContext context)
{
    public async Task<UnlockResult> RunAsync(UnlockRequest request, CancellationToken cancellationToken)
    {
        var storage = context.OpenStorage();
        OperationContext.RequireDeleteRights(storage, "unlock");
        var before = await RepositoryLock.ListAsync(storage, context.Time, cancellationToken).ConfigureAwait(false);
        var removed = await RepositoryLock.RemoveAsync(storage, context.Time, request.Force, cancellationToken).ConfigureAwait(false);
        if (removed.Count > 0)
        {
            context.Evidence.RecordLockRemoval(new StaleLockRemoval(removed, request.Force ? "unlock --force" : "unlock"), storage.Location);
        }
        return new UnlockResult(before, removed);
    }
}
