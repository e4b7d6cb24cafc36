using Cairn.Operations.Recording;
using Cairn.Repository;

namespace Cairn.Operations.Maintenance;

/// <summary>Which format feature to switch on (<c>cairn repo upgrade --page-patches</c>).</summary>
public sealed record UpgradeRequest(string Feature);

/// <summary>The repository's format after the upgrade; <see cref="Changed"/> is false when the feature was already on.</summary>
public sealed record UpgradeResult(string RepositoryId, int Version, IReadOnlyList<string> Features, bool Changed);

/// <summary>
/// Switches a repository format feature on (docs/repository-format.md, "Page patches"): the config becomes version 2,
/// which a Cairn that reads only version 1 refuses, so it is explicit and on the record, under an exclusive lock (no
/// writer holds the old config while it changes). Rewriting the config replaces an object: not on an append-only client.
/// </summary>
public sealed class UpgradeOperation(OperationContext context)
{
    public async Task<UpgradeResult> RunAsync(UpgradeRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        OperationContext.RequireDeleteRights(repo.Storage, "upgrading the repository format (it replaces the config)");
        await using var l = await repo.LockAsync(exclusive: true, "upgrade", cancellationToken).ConfigureAwait(false);
        var changed = await repo.UpgradeAsync(request.Feature, cancellationToken).ConfigureAwait(false);
        if (changed)
        {
            context.Evidence.Record(new RepositoryUpgradeEvent(repo.Config.Id, repo.Config.Version, [.. repo.Config.Features ?? []]) { Repository = repo.Storage.Location });
        }
        return new UpgradeResult(repo.Config.Id, repo.Config.Version, [.. repo.Config.Features ?? []], changed);
    }
}
