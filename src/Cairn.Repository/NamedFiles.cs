using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

public enum NamedPutResult
{
    Stored,
    AlreadyStoredIdentical,
}

/// <summary>
/// Files stored whole under a name (<c>wal/NAME</c>): for PostgreSQL WAL, which does not deduplicate
/// and must be fetched by name in one read. Each object is zstd-compressed and AES-256-GCM sealed
/// with the name as associated data; its plaintext starts with the SHA-256 of the file, so a second
/// put of the same name can tell identical content (success) from different content (refused).
/// </summary>
public static class NamedFiles
{
    private static readonly byte[] Context = Encoding.ASCII.GetBytes("cairn-named");

    public static async Task<NamedPutResult> PutAsync(Repository repo, string name, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var key = new StorageKey(ObjectKind.Named, name);
        var hash = SHA256.HashData(data.Span);
        if (await repo.Storage.StatAsync(key, ct).ConfigureAwait(false) is not null)
        {
            var existing = await GetWithHashAsync(repo, name, ct).ConfigureAwait(false);
            if (existing.Hash.AsSpan().SequenceEqual(hash))
            {
                return NamedPutResult.AlreadyStoredIdentical;
            }
            throw new RepositoryException(ErrorKind.AlreadyExists, $"{name} is already archived with different content; refusing to overwrite it (PostgreSQL must not archive a different file under the same name: check for two servers archiving into the same place)");
        }
        // One buffer for hash ‖ compressed data, compressed in place: a 16 MiB segment costs few page faults.
        var plain = GC.AllocateUninitializedArray<byte>(32 + Zstd.CompressBound(data.Length));
        hash.CopyTo(plain, 0);
        var n = Zstd.Compress(data.Span, plain.AsSpan(32), 1);
        var sealedBytes = repo.Aead.Seal(plain.AsSpan(0, 32 + n), Aead.Concat(Context, Encoding.UTF8.GetBytes(name)));
        await repo.Storage.PutAsync(key, sealedBytes, ct).ConfigureAwait(false);
        return NamedPutResult.Stored;
    }

    public static async Task<byte[]> GetAsync(Repository repo, string name, CancellationToken ct) => (await GetWithHashAsync(repo, name, ct).ConfigureAwait(false)).Data;

    private static async Task<(byte[] Hash, byte[] Data)> GetWithHashAsync(Repository repo, string name, CancellationToken ct)
    {
        byte[] stored;
        try
        {
            stored = await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Named, name), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"{name} is not in the repository");
        }
        byte[] plain;
        try
        {
            plain = repo.Aead.Open(stored, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)), $"archived file {name}");
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException(e.Message, e);
        }
        byte[] data;
        try
        {
            data = Zstd.Decompress(plain.AsSpan(32));
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"archived file {name} does not decompress: {e.Message}", e);
        }
        if (!SHA256.HashData(data).AsSpan().SequenceEqual(plain.AsSpan(0, 32)))
        {
            throw new DataDamagedException($"archived file {name} does not match its recorded hash (tampered)");
        }
        return (plain[..32], data);
    }

    public static async Task<List<(string Name, long Size)>> ListAsync(Repository repo, string prefix, CancellationToken ct)
    {
        var result = new List<(string, long)>();
        await foreach (var o in repo.Storage.ListAsync(ObjectKind.Named, ct).ConfigureAwait(false))
        {
            if (o.Key.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                result.Add((o.Key.Name, o.Size));
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }
}
