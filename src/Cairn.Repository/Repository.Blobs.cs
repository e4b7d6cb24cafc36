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
    /// <summary>
    /// Writes an item's content to <paramref name="output"/>. The item is read in batches of consecutive chunks (about
    /// <see cref="ReadCoalescing.BatchRawBytes"/> of content each); a batch's blobs are read with one ranged request per
    /// run of neighbouring blobs in a pack (see <see cref="FetchBatchAsync"/>), and a few batches are read ahead in
    /// parallel. A batch is written only when every blob in it is authenticated, decompressed and checked against its
    /// ID, so no unauthenticated byte is ever written.
    /// </summary>
    public async Task ReadItemAsync(ManifestItem item, Stream output, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var ids = new ContentId[item.Chunks.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = ContentId.Parse(item.Chunks[i]);
        }
        var batches = SplitIntoBatches(ids);
        var window = Math.Max(2, Coalescing.ReadAhead);
        var queue = new Queue<(int Start, int End, Task<BlobBatch> Blobs)>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var next = 0;
            long written = 0;
            while (next < batches.Count || queue.Count > 0)
            {
                while (next < batches.Count && queue.Count < window)
                {
                    var (start, end) = batches[next++];
                    queue.Enqueue((start, end, Task.Run(() => FetchBatchAsync(new ArraySegment<ContentId>(ids, start, end - start), cts.Token), cts.Token)));
                }
                var (s, e, task) = queue.Dequeue();
                using var blobs = await task.ConfigureAwait(false);
                for (var i = s; i < e; i++)
                {
                    var content = blobs[ids[i]];
                    await output.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                    written += content.Length;
                    progress?.Report(written);
                }
            }
            if (written != item.Size)
            {
                throw new DataDamagedException($"item {item.Name} read back {written} bytes, the manifest says {item.Size}");
            }
        }
        catch
        {
            await cts.CancelAsync().ConfigureAwait(false);
            foreach (var (_, _, t) in queue)
            {
                try
                {
                    (await t.ConfigureAwait(false)).Dispose();
                }
                catch (Exception)
                {
                    // The first error is the one reported.
                }
            }
            throw;
        }
    }

    /// <summary>
    /// Reads many (small) items in few requests: the items are ordered by where their first blob lies, grouped into
    /// batches of about <see cref="ReadCoalescing.BatchRawBytes"/> of content, and each batch is fetched as in
    /// <see cref="ReadItemAsync"/>; then <paramref name="consume"/> is called for each item of the batch with a function
    /// that writes the item's (authenticated) content to a stream. Up to <paramref name="parallelism"/> batches at once;
    /// the order of the calls is not the order of <paramref name="items"/>. An item larger than a batch is streamed
    /// through <see cref="ReadItemAsync"/> instead of held in memory.
    /// </summary>
    public async Task ReadItemsAsync(IEnumerable<ManifestItem> items, Func<ManifestItem, Func<Stream, CancellationToken, Task>, CancellationToken, Task> consume, int parallelism, CancellationToken cancellationToken)
    {
        var batchBytes = Coalescing.BatchRawBytes;
        var ordered = items
            .Select(i => (Item: i, Ids: i.Chunks.Select(ContentId.Parse).ToArray()))
            .Select(x => (x.Item, x.Ids, Where: x.Ids.Length > 0 && _index.TryGetValue(x.Ids[0], out var l) ? (l.Pack.ToHex(), l.Offset) : (string.Empty, -1L)))
            .OrderBy(x => x.Where.Item1, StringComparer.Ordinal).ThenBy(x => x.Where.Item2)
            .ToList();
        var batches = new List<List<(ManifestItem Item, ContentId[] Ids)>>();
        var current = new List<(ManifestItem, ContentId[])>();
        long raw = 0;
        foreach (var (item, ids, _) in ordered)
        {
            if (item.Size > batchBytes)
            {
                batches.Add([(item, ids)]);
                continue;
            }
            if (current.Count > 0 && raw + item.Size > batchBytes)
            {
                batches.Add(current);
                current = [];
                raw = 0;
            }
            current.Add((item, ids));
            raw += item.Size;
        }
        if (current.Count > 0)
        {
            batches.Add(current);
        }
        await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancellationToken }, async (batch, ct) =>
        {
            if (batch is [var (big, _)] && big.Size > batchBytes)
            {
                await consume(big, (s, c) => ReadItemAsync(big, s, null, c), ct).ConfigureAwait(false);
                return;
            }
            using var blobs = await FetchBatchAsync(batch.SelectMany(b => b.Ids), ct).ConfigureAwait(false);
            foreach (var (item, ids) in batch)
            {
                await consume(item, async (s, c) =>
                {
                    long written = 0;
                    foreach (var id in ids)
                    {
                        var content = blobs[id];
                        await s.WriteAsync(content, c).ConfigureAwait(false);
                        written += content.Length;
                    }
                    if (written != item.Size)
                    {
                        throw new DataDamagedException($"item {item.Name} read back {written} bytes, the manifest says {item.Size}");
                    }
                }, ct).ConfigureAwait(false);
            }
        }).ConfigureAwait(false);
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
    internal void DecodeBlobInto(ContentId id, ReadOnlySpan<byte> sealedBlob, Span<byte> raw, string packName)
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
}
