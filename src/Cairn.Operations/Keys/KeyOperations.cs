using Cairn.Operations.Recording;
using Cairn.Repository.Crypto;

namespace Cairn.Operations.Keys;

/// <summary>One passphrase (key file) of the repository; <see cref="Current"/> is the one this session opened with.</summary>
public sealed record KeyEntry(string Id, bool Current, DateTimeOffset Created, string Host, string? Label, int KdfMemoryKib, int KdfIterations);

public sealed record KeyListResult(IReadOnlyList<KeyEntry> Keys);

/// <summary>Lists the passphrases that open the repository.</summary>
public sealed class KeyListOperation(OperationContext context)
{
    public async Task<KeyListResult> RunAsync(CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var keys = await repo.ListKeysAsync(cancellationToken).ConfigureAwait(false);
        return new KeyListResult([.. keys.Select(k => new KeyEntry(k.Id, k.Id == repo.KeyId, k.Data.Created, k.Data.Host, k.Data.Label, k.Data.MemoryKib, k.Data.Iterations))]);
    }
}

public sealed record KeyAddRequest(KdfParameters Kdf, string? Label);

public sealed record KeyAddResult(string KeyId);

/// <summary>Adds a passphrase (the new one comes from the secret source); no data is rewritten.</summary>
public sealed class KeyAddOperation(OperationContext context)
{
    public async Task<KeyAddResult> RunAsync(KeyAddRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var id = await repo.AddKeyAsync(context.Secrets.NewPassphrase(), request.Kdf, request.Label, cancellationToken).ConfigureAwait(false);
        context.Evidence.Record(new KeyChangeEvent("add", id[..8]) { Repository = repo.Storage.Location });
        return new KeyAddResult(id);
    }
}

public sealed record KeyRemoveRequest(string IdOrPrefix);

public sealed record KeyRemoveResult(string IdOrPrefix);

/// <summary>Removes a passphrase, under an exclusive lock. Refuses the key in use and the last key.</summary>
public sealed class KeyRemoveOperation(OperationContext context)
{
    public async Task<KeyRemoveResult> RunAsync(KeyRemoveRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        OperationContext.RequireDeleteRights(repo.Storage, "key remove");
        await using var l = await repo.LockAsync(exclusive: true, "key remove", cancellationToken).ConfigureAwait(false);
        await repo.RemoveKeyAsync(request.IdOrPrefix, cancellationToken).ConfigureAwait(false);
        var id = request.IdOrPrefix;
        context.Evidence.Record(new KeyChangeEvent("remove", id.Length > 8 ? id[..8] : id) { Repository = repo.Storage.Location });
        return new KeyRemoveResult(id);
    }
}
