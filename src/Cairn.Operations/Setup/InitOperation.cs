using Cairn.Operations.Recording;
using Cairn.Repository;
using Cairn.Repository.Crypto;

namespace Cairn.Operations.Setup;

public sealed record InitRequest(KdfParameters Kdf);

/// <summary>Where the evidence log is, when an operation created it.</summary>
public sealed record EvidenceLogCreated(string Folder, string SigningKeyPath, string PublicKeyPath);

public sealed record InitResult(string RepositoryId, string Location, EvidenceLogCreated? EvidenceLog);

/// <summary>Creates an encrypted repository and, beside it, the evidence log that records what happens to it.</summary>
public sealed class InitOperation(OperationContext context)
{
    public async Task<InitResult> RunAsync(InitRequest request, CancellationToken cancellationToken)
    {
        var storage = context.OpenStorage();
        // Where the evidence log goes is settled first: a repository in S3 has no folder beside it, and a repository
        // created before that error would leave the log never created (a second init finds the repository there).
        _ = context.Evidence.Open();
        if (await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.AlreadyExists, $"a repository already exists at {storage.Location}; nothing was changed");
        }
        var passphrase = context.Secrets.Passphrase(confirm: true);
        using var repo = await Repository.Repository.InitAsync(storage, passphrase, new RepositoryOptions { Kdf = request.Kdf }, context.Time, cancellationToken).ConfigureAwait(false);
        EvidenceLogCreated? created = null;
        if (context.Evidence.EnsureCreated(out var log))
        {
            created = new EvidenceLogCreated(log.Folder, log.SigningKeyPath, log.PublicKeyPath);
        }
        context.Evidence.Record(new KeyChangeEvent("init", repo.KeyId[..8], repo.Config.Id) { Repository = repo.Storage.Location });
        return new InitResult(repo.Config.Id, storage.Location, created);
    }
}
