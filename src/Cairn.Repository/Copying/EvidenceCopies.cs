using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Copying;

/// <summary>
/// The sealed pieces of the evidence log in a repository or a copy (<c>evidence/</c>, docs/repository-format.md): a piece
/// of one file of the log's folder as a sealed object named <c>&lt;path with '/' as '~'&gt;.&lt;SHA-256 of the piece&gt;</c>,
/// written create-only; which pieces make up which file is a publication's (<see cref="EvidencePublication"/>). The engine
/// knows nothing of what the files mean: it seals and returns bytes under validated names.
/// </summary>
public static class EvidenceCopies
{
    private static readonly byte[] Context = Encoding.ASCII.GetBytes("cairn-evidence");

    /// <summary>The object name of one version of the file at <paramref name="relativePath"/> (inside the log's folder, '/'-separated).</summary>
    public static string NameOf(string relativePath, ReadOnlySpan<byte> data)
    {
        var flat = relativePath.Replace('/', '~');
        var name = flat + "." + Convert.ToHexStringLower(SHA256.HashData(data));
        return RepositoryCopier.IsValidName(ObjectKind.Evidence, name) && !relativePath.Split('/').Any(p => p is "" or "." or "..")
            ? name
            : throw new RepositoryException(ErrorKind.InvalidInput, $"the evidence file '{relativePath}' cannot be copied: only letters, digits, '.', '_', '-' in its path");
    }

    /// <summary>Stores one version of an evidence file in <paramref name="target"/> unless it is there; true when it was written now.</summary>
    public static async Task<bool> PutAsync(Repository repo, IStorage target, string relativePath, byte[] data, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(repo);
        ArgumentNullException.ThrowIfNull(target);
        var name = NameOf(relativePath, data);
        var key = new StorageKey(ObjectKind.Evidence, name);
        if (await target.StatAsync(key, ct).ConfigureAwait(false) is not null)
        {
            return false;
        }
        var sealedBytes = repo.Aead.Seal(data, Aead.Concat(Context, Encoding.ASCII.GetBytes(name)));
        var created = await RepositoryCopier.CreateAsync(target, key, sealedBytes, ct).ConfigureAwait(false);
        // Checked, not trusted: the stored object opens under its name and holds the file.
        var back = await GetAsync(repo, target, name, ct).ConfigureAwait(false);
        return !back.AsSpan().SequenceEqual(data)
            ? throw new DataDamagedException($"evidence/{name} read back from {target.Location} does not hold the file written")
            : created;
    }

    /// <summary>One version's bytes, opened under its name and checked against the SHA-256 in the name.</summary>
    public static async Task<byte[]> GetAsync(Repository repo, IStorage storage, string name, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(repo);
        ArgumentNullException.ThrowIfNull(storage);
        if (!RepositoryCopier.IsValidName(ObjectKind.Evidence, name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not the name of a copied evidence file");
        }
        var stored = await storage.GetAllAsync(new StorageKey(ObjectKind.Evidence, name), ct).ConfigureAwait(false);
        byte[] data;
        try
        {
            data = repo.Aead.Open(stored, Aead.Concat(Context, Encoding.ASCII.GetBytes(name)), $"evidence/{name}");
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException($"evidence/{name} in {storage.Location} does not authenticate: {e.Message}", e);
        }
        return Convert.ToHexStringLower(SHA256.HashData(data)) == name[^64..]
            ? data
            : throw new DataDamagedException($"evidence/{name} in {storage.Location} does not hold the file its name's SHA-256 names");
    }
}
