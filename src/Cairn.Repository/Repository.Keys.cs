using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Locks;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>The key ring: the key files (passphrases) that wrap the repository's master secret.</summary>
public sealed partial class Repository
{
    public async Task<List<(string Id, KeyFileData Data)>> ListKeysAsync(CancellationToken cancellationToken)
    {
        var result = new List<(string, KeyFileData)>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Key, cancellationToken).ConfigureAwait(false))
        {
            // Unreadable and oversized key files are listed too, so 'key remove' can take them away.
            KeyFileData? data = null;
            if (o.Size <= KeyFile.MaxFileSize)
            {
                try
                {
                    data = JsonSerializer.Deserialize(await Storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false), RepositoryJson.Default.KeyFileData) is { } d ? StoredJson.Checked(d) : null;
                }
                catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or OverflowException)
                {
                }
                catch (ObjectNotFoundException)
                {
                    continue;
                }
            }
            result.Add((o.Key.Name, data ?? new KeyFileData { Label = $"(unreadable key file of {o.Size} bytes)" }));
        }
        result.Sort((a, b) => a.Item2.Created.CompareTo(b.Item2.Created));
        return result;
    }

    /// <summary>Adds a passphrase: one new key file wrapping the same master secret. No data is rewritten.</summary>
    public async Task<string> AddKeyAsync(string passphrase, KdfParameters kdf, string? label, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(passphrase))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "an empty passphrase is not allowed");
        }
        var id = NewKeyId();
        var data = KeyFile.Wrap(id, Keys.Master, passphrase, kdf, Time.GetUtcNow(), label);
        await Storage.PutAsync(new StorageKey(ObjectKind.Key, id), JsonSerializer.SerializeToUtf8Bytes(data, RepositoryJson.Default.KeyFileData), cancellationToken).ConfigureAwait(false);
        return id;
    }

    /// <summary>Removes a passphrase. Refuses the key in use and the last key.</summary>
    public async Task RemoveKeyAsync(string idOrPrefix, CancellationToken cancellationToken)
    {
        var keys = await ListKeysAsync(cancellationToken).ConfigureAwait(false);
        var matches = keys.Where(k => k.Id.StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase)).ToList();
        if (matches.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no key {idOrPrefix}; list keys with 'cairn key list'");
        }
        if (matches.Count > 1)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"key prefix {idOrPrefix} is ambiguous; give more characters");
        }
        var id = matches[0].Id;
        if (id == KeyId)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"key {id[..8]} is the one this session opened the repository with; open with another passphrase to remove it");
        }
        if (keys.Count <= 1)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "refusing to remove the last key: the repository could never be opened again");
        }
        await Storage.DeleteAsync(new StorageKey(ObjectKind.Key, id), cancellationToken).ConfigureAwait(false);
    }

    private static string NewKeyId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
}
