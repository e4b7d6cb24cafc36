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

/// <summary>The blob reader: items read back chunk by chunk, every blob authenticated, decompressed and checked against its ID.</summary>
public sealed partial class Repository
{
    /// <summary>Writes an item's content to <paramref name="output"/>, reading ahead in parallel. Never writes unauthenticated bytes.</summary>
    public async Task ReadItemAsync(ManifestItem item, Stream output, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var window = Math.Max(4, Environment.ProcessorCount * 4);
        var queue = new Queue<Task<(byte[] Buffer, int Length)>>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var next = 0;
            long written = 0;
            while (next < item.Chunks.Count || queue.Count > 0)
            {
                while (next < item.Chunks.Count && queue.Count < window)
                {
                    var id = ContentId.Parse(item.Chunks[next++]);
                    queue.Enqueue(Task.Run(() => LoadBlobPooledAsync(id, cts.Token), cts.Token));
                }
                var (buffer, length) = await queue.Dequeue().ConfigureAwait(false);
                try
                {
                    await output.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
                written += length;
                progress?.Report(written);
            }
            if (written != item.Size)
            {
                throw new DataDamagedException($"item {item.Name} read back {written} bytes, the manifest says {item.Size}");
            }
        }
        catch
        {
            await cts.CancelAsync().ConfigureAwait(false);
            foreach (var t in queue)
            {
                try
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return((await t.ConfigureAwait(false)).Buffer);
                }
                catch (Exception)
                {
                    // The first error is the one reported.
                }
            }
            throw;
        }
    }

    /// <summary>True when <paramref name="content"/> chunks to exactly the item's chunk IDs (keyed, so a match proves equal content).</summary>
    public async Task<bool> ContentMatchesAsync(ManifestItem item, Stream content, CancellationToken cancellationToken)
    {
        var i = 0;
        await foreach (var c in Chunker.ChunkAsync(content, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                if (i >= item.Chunks.Count || Keys.ChunkId(c.Span).ToHex() != item.Chunks[i])
                {
                    return false;
                }
                i++;
            }
            finally
            {
                c.Return();
            }
        }
        return i == item.Chunks.Count;
    }

    /// <summary>Reads one blob: range read, authenticate, decompress, and check its ID.</summary>
    public async Task<byte[]> LoadBlobAsync(ContentId id, CancellationToken cancellationToken)
    {
        var (sealedBlob, loc, packName) = await ReadSealedAsync(id, cancellationToken).ConfigureAwait(false);
        return DecodeBlob(id, sealedBlob, loc.RawLength, packName);
    }

    /// <summary>The sealed bytes of a blob from its pack, with a clear error when the pack or the range is gone.</summary>
    private async Task<(byte[] Sealed, BlobLocation Location, string PackName)> ReadSealedAsync(ContentId id, CancellationToken cancellationToken)
    {
        if (!_index.TryGetValue(id, out var loc))
        {
            throw new DataDamagedException($"blob {id.Short} is not in any index (missing data); run 'cairn verify' to see what is affected");
        }
        var packName = loc.Pack.ToHex();
        byte[] sealedBlob;
        try
        {
            sealedBlob = await Storage.GetAsync(new StorageKey(ObjectKind.Data, packName), loc.Offset, loc.Length, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException e)
        {
            throw new DataDamagedException($"pack {loc.Pack.Short} holding blob {id.Short} is missing from the repository", e);
        }
        if (sealedBlob.Length != loc.Length)
        {
            throw new DataDamagedException($"pack {loc.Pack.Short} is truncated: blob {id.Short} should be {loc.Length} bytes at offset {loc.Offset}, found {sealedBlob.Length}");
        }
        return (sealedBlob, loc, packName);
    }

    internal byte[] DecodeBlob(ContentId id, ReadOnlySpan<byte> sealedBlob, int rawLength, string packName)
    {
        var raw = GC.AllocateUninitializedArray<byte>(rawLength);
        DecodeBlobInto(id, sealedBlob, raw, packName);
        return raw;
    }

    /// <summary>Authenticates, decompresses into <paramref name="raw"/> (exactly the blob's raw length) and checks the ID.</summary>
    private void DecodeBlobInto(ContentId id, ReadOnlySpan<byte> sealedBlob, Span<byte> raw, string packName)
    {
        Span<byte> aad = stackalloc byte[Aead.BlobContext.Length + ContentId.Size];
        Aead.BlobContext.CopyTo(aad);
        id.WriteTo(aad[Aead.BlobContext.Length..]);
        var compressed = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, sealedBlob.Length));
        try
        {
            int n;
            try
            {
                n = Aead.Open(sealedBlob, aad, compressed, $"blob {id.Short} in pack {packName[..8]}");
            }
            catch (AuthenticationFailedException e)
            {
                throw new DataDamagedException(e.Message, e);
            }
            int m;
            try
            {
                m = Zstd.Decompress(compressed.AsSpan(0, n), raw);
            }
            catch (InvalidDataException e)
            {
                throw new DataDamagedException($"blob {id.Short} does not decompress: {e.Message}", e);
            }
            if (m != raw.Length || Keys.ChunkId(raw) != id)
            {
                throw new DataDamagedException($"blob {id.Short} in pack {packName[..8]} does not match its ID (tampered)");
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    /// <summary>Like <see cref="LoadBlobAsync"/>, into a pooled buffer the caller returns (streaming reads reuse memory instead of faulting in fresh pages).</summary>
    private async Task<(byte[] Buffer, int Length)> LoadBlobPooledAsync(ContentId id, CancellationToken cancellationToken)
    {
        var (sealedBlob, loc, packName) = await ReadSealedAsync(id, cancellationToken).ConfigureAwait(false);
        var raw = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, loc.RawLength));
        try
        {
            DecodeBlobInto(id, sealedBlob, raw.AsSpan(0, loc.RawLength), packName);
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(raw);
            throw;
        }
        return (raw, loc.RawLength);
    }
}
