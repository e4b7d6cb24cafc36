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

/// <summary>
/// A check of a block rebuilt from a page patch, before it is written (the layer above knows more of the block, e.g. its
/// CRC-32C); it throws <see cref="DataDamagedException"/> to refuse the block.
/// </summary>
public delegate void RebuiltBlockCheck(ManifestItem item, int index, ReadOnlySpan<byte> block);

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
    public Task ReadItemAsync(ManifestItem item, Stream output, IProgress<long>? progress, CancellationToken cancellationToken)
        => ReadItemAsync(item, output, progress, null, cancellationToken);

    /// <summary>
    /// Like <see cref="ReadItemAsync(ManifestItem, Stream, IProgress{long}?, CancellationToken)"/>; a block stored as a
    /// page patch is read with its base, rebuilt, checked against the patch's rebuilt ID (and by <paramref name="check"/>)
    /// and only then written. Every base is looked up before the first byte is written.
    /// </summary>
    public async Task ReadItemAsync(ManifestItem item, Stream output, IProgress<long>? progress, RebuiltBlockCheck? check, CancellationToken cancellationToken)
    {
        var ids = new ContentId[item.Chunks.Count];
        for (var i = 0; i < ids.Length; i++)
        {
            ids[i] = ContentId.Parse(item.Chunks[i]);
        }
        var bases = BasesOf(item);
        var batches = SplitIntoBatches(ids, bases);
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
                    queue.Enqueue((start, end, Task.Run(() => FetchBatchAsync(WithBases(ids, bases, start, end), cts.Token, BaseOnly([(ids, bases, start, end)])), cts.Token)));
                }
                var (s, e, task) = queue.Dequeue();
                using var blobs = await task.ConfigureAwait(false);
                for (var i = s; i < e; i++)
                {
                    written += await WriteBlockAsync(item, i, ids[i], bases?[i], blobs, output, check, cancellationToken).ConfigureAwait(false);
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
    public Task ReadItemsAsync(IEnumerable<ManifestItem> items, Func<ManifestItem, Func<Stream, CancellationToken, Task>, CancellationToken, Task> consume, int parallelism, CancellationToken cancellationToken)
        => ReadItemsAsync(items, consume, parallelism, null, cancellationToken);

    /// <summary>Like <see cref="ReadItemsAsync(IEnumerable{ManifestItem}, Func{ManifestItem, Func{Stream, CancellationToken, Task}, CancellationToken, Task}, int, CancellationToken)"/>, with page patches checked by <paramref name="check"/> too.</summary>
    public async Task ReadItemsAsync(IEnumerable<ManifestItem> items, Func<ManifestItem, Func<Stream, CancellationToken, Task>, CancellationToken, Task> consume, int parallelism, RebuiltBlockCheck? check, CancellationToken cancellationToken)
    {
        var batchBytes = Coalescing.BatchRawBytes;
        var ordered = items
            .Select(i => (Item: i, Ids: i.Chunks.Select(ContentId.Parse).ToArray(), Bases: BasesOf(i)))
            .Select(x => (x.Item, x.Ids, x.Bases, Where: x.Ids.Length > 0 && _index.TryGetValue(x.Ids[0], out var l) ? (l.Pack.ToHex(), l.Offset) : (string.Empty, -1L)))
            .OrderBy(x => x.Where.Item1, StringComparer.Ordinal).ThenBy(x => x.Where.Item2)
            .ToList();
        var batches = new List<List<(ManifestItem Item, ContentId[] Ids, ContentId?[]? Bases)>>();
        var current = new List<(ManifestItem, ContentId[], ContentId?[]?)>();
        long raw = 0;
        foreach (var (item, ids, bases, _) in ordered)
        {
            // A patched item reads its patches and their bases: at most twice its size.
            var cost = bases is null ? item.Size : 2 * item.Size;
            if (cost > batchBytes)
            {
                batches.Add([(item, ids, bases)]);
                continue;
            }
            if (current.Count > 0 && raw + cost > batchBytes)
            {
                batches.Add(current);
                current = [];
                raw = 0;
            }
            current.Add((item, ids, bases));
            raw += cost;
        }
        if (current.Count > 0)
        {
            batches.Add(current);
        }
        await Parallel.ForEachAsync(batches, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancellationToken }, async (batch, ct) =>
        {
            if (batch is [var (big, _, bigBases)] && (bigBases is null ? big.Size : 2 * big.Size) > batchBytes)
            {
                await consume(big, (s, c) => ReadItemAsync(big, s, null, check, c), ct).ConfigureAwait(false);
                return;
            }
            using var blobs = await FetchBatchAsync(batch.SelectMany(b => WithBases(b.Ids, b.Bases, 0, b.Ids.Length)), ct, BaseOnly(batch.Select(b => (b.Ids, b.Bases, 0, b.Ids.Length)))).ConfigureAwait(false);
            foreach (var (item, ids, bases) in batch)
            {
                await consume(item, async (s, c) =>
                {
                    long written = 0;
                    for (var i = 0; i < ids.Length; i++)
                    {
                        written += await WriteBlockAsync(item, i, ids[i], bases?[i], blobs, s, check, c).ConfigureAwait(false);
                    }
                    if (written != item.Size)
                    {
                        throw new DataDamagedException($"item {item.Name} read back {written} bytes, the manifest says {item.Size}");
                    }
                }, ct).ConfigureAwait(false);
            }
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The base of each block of <paramref name="item"/> stored as a page patch (null when none is), after checking
    /// that every one is in the index: a missing base refuses the item before any of it is written.
    /// </summary>
    public ContentId?[]? BasesOf(ManifestItem item)
    {
        if (item.Bases is not { Count: > 0 })
        {
            return null;
        }
        var bases = new ContentId?[item.Chunks.Count];
        for (var i = 0; i < bases.Length; i++)
        {
            if (item.BaseOf(i) is { } hex)
            {
                var b = ContentId.Parse(hex);
                if (!_index.ContainsKey(b))
                {
                    throw new DataDamagedException($"block {i} of {item.Name} is a page patch on chunk {b.Short}, which is not in the repository; restore an older backup, and run 'cairn verify' to see what else is affected");
                }
                bases[i] = b;
            }
        }
        return bases;
    }

    private static IEnumerable<ContentId> WithBases(ContentId[] ids, ContentId?[]? bases, int start, int end)
    {
        for (var i = start; i < end; i++)
        {
            yield return ids[i];
            if (bases?[i] is { } b)
            {
                yield return b;
            }
        }
    }

    /// <summary>
    /// The bases among these runs of blocks that are not also blocks of them: such a blob never reaches the output as
    /// it is, only through the blocks rebuilt on it, whose keyed hash is checked against the patch's rebuilt ID (and
    /// their CRC-32C) before a byte is written, so its own keyed hash is not computed (its AEAD tag, bound to its ID, is
    /// still checked): one SHA-256 pass over 256 KiB less per patched block. Null when there is none.
    /// </summary>
    private static HashSet<ContentId>? BaseOnly(IEnumerable<(ContentId[] Ids, ContentId?[]? Bases, int Start, int End)> runs)
    {
        var list = runs.ToList();
        HashSet<ContentId>? bases = null;
        foreach (var (_, b, start, end) in list)
        {
            for (var i = start; b is not null && i < end; i++)
            {
                if (b[i] is { } one)
                {
                    (bases ??= []).Add(one);
                }
            }
        }
        if (bases is null)
        {
            return null;
        }
        foreach (var (ids, _, start, end) in list)
        {
            for (var i = start; i < end; i++)
            {
                bases.Remove(ids[i]);
            }
        }
        return bases.Count > 0 ? bases : null;
    }

    /// <summary>Writes block <paramref name="index"/>: the blob itself, or, for a page patch, the block rebuilt on its base and checked first.</summary>
    private async ValueTask<long> WriteBlockAsync(ManifestItem item, int index, ContentId id, ContentId? baseId, BlobBatch blobs, Stream output, RebuiltBlockCheck? check, CancellationToken cancellationToken)
    {
        if (baseId is not { } b)
        {
            var content = blobs[id];
            await output.WriteAsync(content, cancellationToken).ConfigureAwait(false);
            return content.Length;
        }
        var rebuilt = Rebuild(item, index, id, b, blobs[id], blobs[b].Span, check);
        try
        {
            await output.WriteAsync(rebuilt.Block, cancellationToken).ConfigureAwait(false);
            return rebuilt.Block.Length;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rebuilt.Buffer);
        }
    }

    /// <summary>
    /// Rebuilds a patched block (into a pooled buffer the caller returns): the patch names the base the manifest
    /// names, the rebuilt block's keyed hash is the patch's rebuilt ID, and <paramref name="check"/> passes.
    /// </summary>
    private (byte[] Buffer, ReadOnlyMemory<byte> Block) Rebuild(ManifestItem item, int index, ContentId patchId, ContentId baseId, ReadOnlyMemory<byte> patchBytes, ReadOnlySpan<byte> baseBlock, RebuiltBlockCheck? check)
    {
        var what = $"block {index} of {item.Name} (page patch {patchId.Short})";
        var patch = PagePatch.Parse(patchBytes, what);
        if (patch.BaseId != baseId)
        {
            throw new DataDamagedException($"{what} applies to chunk {patch.BaseId.Short}, the manifest names {baseId.Short}; restore an older backup, and run 'cairn verify'");
        }
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(patch.RebuiltLength);
        try
        {
            var block = buffer.AsSpan(0, patch.RebuiltLength);
            patch.Apply(baseBlock, block);
            if (Keys.ChunkId(block) != patch.RebuiltId)
            {
                throw new DataDamagedException($"{what} does not rebuild the block the backup read (its keyed hash differs); restore an older backup, and run 'cairn verify'");
            }
            check?.Invoke(item, index, block);
            return (buffer, buffer.AsMemory(0, patch.RebuiltLength));
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>
    /// True when <paramref name="content"/>, read in fixed blocks of <paramref name="blockSize"/>, is exactly the item's
    /// blocks: each block's keyed hash equals its chunk ID, or, for a page patch, the patch's rebuilt ID (only the patch
    /// is read, not its base). For <c>restore --delta</c> of fixed-block items.
    /// </summary>
    public async Task<bool> BlocksMatchAsync(ManifestItem item, Stream content, int blockSize, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(blockSize);
        try
        {
            for (var i = 0; ; i++)
            {
                var n = await content.ReadAtLeastAsync(buffer.AsMemory(0, blockSize), blockSize, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return i == item.Chunks.Count;
                }
                if (i >= item.Chunks.Count)
                {
                    return false;
                }
                var expected = ContentId.Parse(item.Chunks[i]);
                if (item.BaseOf(i) is not null)
                {
                    var patch = PagePatch.Parse(await LoadBlobAsync(expected, cancellationToken).ConfigureAwait(false), $"block {i} of {item.Name} (page patch {expected.Short})");
                    expected = patch.RebuiltId;
                }
                if (Keys.ChunkId(buffer.AsSpan(0, n)) != expected)
                {
                    return false;
                }
                if (n < blockSize)
                {
                    return i + 1 == item.Chunks.Count && await content.ReadAsync(buffer.AsMemory(0, 1), cancellationToken).ConfigureAwait(false) == 0;
                }
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>True when <paramref name="content"/> chunks to exactly the item's chunk IDs (keyed, so a match proves equal content).</summary>
    public async Task<bool> ContentMatchesAsync(ManifestItem item, Stream content, CancellationToken cancellationToken)
    {
        if (item.Bases is { Count: > 0 })
        {
            return false; // page patches are matched block by block (BlocksMatchAsync)
        }
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

    /// <summary>
    /// Authenticates, decompresses into <paramref name="raw"/> (exactly the blob's raw length) and checks the ID; with
    /// <paramref name="checkId"/> false (a page patch's base, see <see cref="BaseOnly"/>) the keyed hash is left to the
    /// block rebuilt on it.
    /// </summary>
    internal void DecodeBlobInto(ContentId id, ReadOnlySpan<byte> sealedBlob, Span<byte> raw, string packName, bool checkId = true)
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
            if (m != raw.Length || (checkId && Keys.ChunkId(raw) != id))
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
