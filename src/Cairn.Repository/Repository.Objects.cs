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

/// <summary>The object codec: metadata (indexes, manifests) compressed, sealed and named by the SHA-256 of what is stored.</summary>
public sealed partial class Repository
{
    /// <summary>Seals and compresses metadata, stores it under the SHA-256 of the stored bytes, returns that name.</summary>
    internal async Task<string> PutObjectAsync(ObjectKind kind, ReadOnlyMemory<byte> json, CancellationToken cancellationToken)
    {
        var context = kind switch
        {
            ObjectKind.Index => Aead.IndexContext,
            ObjectKind.Snapshot => Aead.SnapshotContext,
            ObjectKind.SnapshotIndex => Aead.SnapshotIndexContext,
            _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "only indexes, manifests and the snapshot index are sealed metadata objects"),
        };
        var compressed = Zstd.Compress(json.Span, 3);
        var sealedBytes = Aead.Seal(compressed, context);
        var name = ContentId.Sha256(sealedBytes).ToHex();
        await Storage.PutAsync(new StorageKey(kind, name), sealedBytes, cancellationToken).ConfigureAwait(false);
        return name;
    }

    internal byte[] OpenObject(byte[] stored, byte[] context, string what, string expectedName)
    {
        if (ContentId.Sha256(stored).ToHex() != expectedName)
        {
            throw new DataDamagedException($"{what} is damaged: its content no longer matches its name (SHA-256)");
        }
        byte[] compressed;
        try
        {
            compressed = Aead.Open(stored, context, what);
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException(e.Message, e);
        }
        try
        {
            return Zstd.Decompress(compressed);
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"{what} does not decompress: {e.Message}", e);
        }
    }
}
