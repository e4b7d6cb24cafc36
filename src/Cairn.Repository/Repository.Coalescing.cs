using Cairn.Repository.Crypto;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// How reads are grouped into requests. <see cref="MaxRangeBytes"/>: the most one ranged read fetches (sealed bytes);
/// <see cref="MaxGapBytes"/>: the largest hole between two wanted blobs of a pack that one read still spans (reading a
/// few unwanted bytes costs less than a second request); <see cref="BatchRawBytes"/>: the content one batch holds in
/// memory until it is written; <see cref="ReadAhead"/>: batches of one item read ahead in parallel.
/// </summary>
public sealed record ReadCoalescing(int MaxRangeBytes, int MaxGapBytes, int BatchRawBytes, int ReadAhead)
{
    /// <summary>4 MiB reads, 128 KiB holes, 8 MiB of content per batch, 3 batches ahead (about 24 MiB per item read).</summary>
    public static readonly ReadCoalescing Default = new(4 * 1024 * 1024, 128 * 1024, 8 * 1024 * 1024, 3);

    /// <summary>One request per blob, as before coalescing (for comparisons in tests and benchmarks).</summary>
    public static readonly ReadCoalescing PerBlob = new(1, 0, 8 * 1024 * 1024, 3);
}

/// <summary>Coalesced blob reads: neighbouring blobs of a pack come in one ranged request.</summary>
public sealed partial class Repository
{
    /// <summary>How reads are grouped into requests (see <see cref="ReadCoalescing"/>).</summary>
    public ReadCoalescing Coalescing { get; set; } = ReadCoalescing.Default;

    /// <summary>Consecutive chunk runs [Start, End) of about <see cref="ReadCoalescing.BatchRawBytes"/> of content each; a missing blob fails here, before anything is written.</summary>
    private List<(int Start, int End)> SplitIntoBatches(ContentId[] ids, ContentId?[]? bases = null)
    {
        var batches = new List<(int, int)>();
        var start = 0;
        long raw = 0;
        for (var i = 0; i < ids.Length; i++)
        {
            // A page patch is read with its base: both count.
            var length = (long)Locate(ids[i]).RawLength + (bases?[i] is { } b ? Locate(b).RawLength : 0);
            if (i > start && raw + length > Coalescing.BatchRawBytes)
            {
                batches.Add((start, i));
                start = i;
                raw = 0;
            }
            raw += length;
        }
        if (start < ids.Length)
        {
            batches.Add((start, ids.Length));
        }
        return batches;
    }

    private BlobLocation Locate(ContentId id) => _index.TryGetValue(id, out var loc)
        ? loc
        : throw new DataDamagedException($"blob {id.Short} is not in any index (missing data); run 'cairn verify' to see what is affected");

    /// <summary>One ranged read of a pack and the wanted blobs it covers, in offset order.</summary>
    internal sealed record ReadRange(ContentId Pack, long Offset, long Length, List<(ContentId Id, BlobLocation Location)> Blobs);

    /// <summary>
    /// Groups blobs by pack and, in offset order, merges neighbours into ranges of at most <see cref="ReadCoalescing.MaxRangeBytes"/>
    /// whose holes are at most <see cref="ReadCoalescing.MaxGapBytes"/> (a blob larger than the limit gets a range of its own).
    /// </summary>
    internal static List<ReadRange> PlanRanges(IEnumerable<KeyValuePair<ContentId, BlobLocation>> blobs, ReadCoalescing limits)
    {
        var ranges = new List<ReadRange>();
        foreach (var pack in blobs.GroupBy(b => b.Value.Pack))
        {
            ReadRange? current = null;
            foreach (var (id, loc) in pack.OrderBy(b => b.Value.Offset))
            {
                var end = loc.Offset + loc.Length;
                if (current is not null)
                {
                    var currentEnd = current.Offset + current.Length;
                    var mergedEnd = Math.Max(currentEnd, end);
                    if (loc.Offset - currentEnd <= limits.MaxGapBytes && mergedEnd - current.Offset <= limits.MaxRangeBytes)
                    {
                        current.Blobs.Add((id, loc));
                        current = current with { Length = mergedEnd - current.Offset };
                        ranges[^1] = current;
                        continue;
                    }
                }
                current = new ReadRange(loc.Pack, loc.Offset, loc.Length, [(id, loc)]);
                ranges.Add(current);
            }
        }
        return ranges;
    }

    /// <summary>
    /// Reads, authenticates and decodes the distinct blobs among <paramref name="ids"/> into pooled buffers: one ranged
    /// read per planned range (see <see cref="PlanRanges"/>), the ranges in parallel, each decoded as it arrives. Any
    /// damage (a missing pack, a truncated range, a blob that fails authentication or its ID) fails the whole batch
    /// with an error naming that blob, and nothing of the batch is handed out. Blobs in <paramref name="baseOnly"/> (bases
    /// used only to rebuild patched blocks) are authenticated but their keyed hash is left to the rebuilt blocks.
    /// </summary>
    private async Task<BlobBatch> FetchBatchAsync(IEnumerable<ContentId> ids, CancellationToken cancellationToken, HashSet<ContentId>? baseOnly = null)
    {
        var wanted = new Dictionary<ContentId, BlobLocation>();
        foreach (var id in ids)
        {
            if (!wanted.ContainsKey(id))
            {
                wanted[id] = Locate(id);
            }
        }
        var ranges = PlanRanges(wanted, Coalescing);
        var batch = new BlobBatch(wanted);
        try
        {
            await Parallel.ForEachAsync(ranges, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, ranges.Count), CancellationToken = cancellationToken }, async (range, ct) =>
            {
                var (bytes, pooled) = await ReadRangeAsync(range, ct).ConfigureAwait(false);
                try
                {
                    var packName = range.Pack.ToHex();
                    foreach (var (id, loc) in range.Blobs)
                    {
                        ct.ThrowIfCancellationRequested();
                        DecodeBlobInto(id, bytes.AsSpan(checked((int)(loc.Offset - range.Offset)), loc.Length), batch.Slot(id), packName, checkId: baseOnly is null || !baseOnly.Contains(id));
                    }
                }
                finally
                {
                    if (pooled)
                    {
                        RangeBuffers.Return(bytes);
                    }
                }
            }).ConfigureAwait(false);
        }
        catch
        {
            batch.Dispose();
            throw;
        }
        return batch;
    }

    /// <summary>
    /// The decoded content of each blob in <paramref name="ids"/> (a blob may be named more than once), each in its own
    /// buffer rented from <see cref="System.Buffers.ArrayPool{T}.Shared"/> that the caller returns; read as one batch
    /// (see <see cref="FetchBatchAsync"/>: neighbouring blobs of a pack in one ranged request). A blob that is damaged
    /// or gone gets null (the batch is then read again blob by blob, so only the damaged ones are null): the page-patch
    /// writer stores such a block whole, as it did when it read each base alone. With <paramref name="authenticateOnly"/>
    /// the blobs' AES-GCM tags (bound to their IDs) are checked but not their keyed hashes: for a page patch's base, whose
    /// bytes reach a restore only through the rebuilt block, checked against the block's own keyed hash.
    /// </summary>
    internal async Task<byte[]?[]> LoadBlobsPooledAsync(IReadOnlyList<ContentId> ids, bool authenticateOnly, CancellationToken cancellationToken)
    {
        var result = new byte[]?[ids.Count];
        try
        {
            using var batch = await FetchBatchAsync(ids, cancellationToken, authenticateOnly ? [.. ids] : null).ConfigureAwait(false);
            for (var i = 0; i < ids.Count; i++)
            {
                var content = batch[ids[i]];
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(content.Length);
                content.CopyTo(buffer);
                result[i] = buffer;
            }
            return result;
        }
        catch (DataDamagedException)
        {
            foreach (var b in result)
            {
                if (b is not null)
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(b);
                }
            }
            Array.Clear(result);
        }
        for (var i = 0; i < ids.Count; i++)
        {
            try
            {
                var content = await LoadBlobAsync(ids[i], cancellationToken).ConfigureAwait(false);
                var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(content.Length);
                content.CopyTo(buffer, 0);
                result[i] = buffer;
            }
            catch (DataDamagedException)
            {
                result[i] = null;
            }
        }
        return result;
    }

    /// <summary>Range buffers are megabytes: reused rather than allocated (and page-faulted) per read.</summary>
    private static readonly System.Buffers.ArrayPool<byte> RangeBuffers = System.Buffers.ArrayPool<byte>.Create(32 * 1024 * 1024, 16);

    /// <summary>
    /// The bytes of one range (into a pooled buffer when the storage can read into one: <c>Pooled</c>, the caller returns
    /// it), with a clear error when the pack is gone or shorter than the blobs it should hold.
    /// </summary>
    private async Task<(byte[] Bytes, bool Pooled)> ReadRangeAsync(ReadRange range, CancellationToken cancellationToken)
    {
        var key = new StorageKey(ObjectKind.Data, range.Pack.ToHex());
        byte[] bytes;
        int length;
        var pooled = Storage is IRangeReadStorage;
        try
        {
            if (Storage is IRangeReadStorage reader)
            {
                bytes = RangeBuffers.Rent(checked((int)range.Length));
                try
                {
                    length = await reader.ReadRangeAsync(key, range.Offset, bytes.AsMemory(0, (int)range.Length), cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    RangeBuffers.Return(bytes);
                    throw;
                }
            }
            else
            {
                bytes = await Storage.GetAsync(key, range.Offset, range.Length, cancellationToken).ConfigureAwait(false);
                length = bytes.Length;
            }
        }
        catch (ObjectNotFoundException e)
        {
            throw new DataDamagedException($"pack {range.Pack.Short} holding blob {range.Blobs[0].Id.Short} is missing from the repository", e);
        }
        if (length != range.Length)
        {
            if (pooled)
            {
                RangeBuffers.Return(bytes);
            }
            foreach (var (id, loc) in range.Blobs)
            {
                var at = loc.Offset - range.Offset;
                if (at + loc.Length > length)
                {
                    throw new DataDamagedException($"pack {range.Pack.Short} is truncated: blob {id.Short} should be {loc.Length} bytes at offset {loc.Offset}, found {Math.Max(0, length - at)}");
                }
            }
            throw new DataDamagedException($"pack {range.Pack.Short} returned {length} bytes for a range of {range.Length} at offset {range.Offset}");
        }
        return (bytes, pooled);
    }

    /// <summary>
    /// The decoded blobs of one batch, side by side in one pooled buffer (each blob has its slot, decoded into by one
    /// range's task); disposing returns the buffer. Handed out only when every blob was decoded.
    /// </summary>
    private sealed class BlobBatch : IDisposable
    {
        /// <summary>Batch buffers are megabytes: reused rather than allocated (and page-faulted) per batch.</summary>
        private static readonly System.Buffers.ArrayPool<byte> Buffers = System.Buffers.ArrayPool<byte>.Create(32 * 1024 * 1024, 16);

        private readonly Dictionary<ContentId, (int Offset, int Length)> _slots;
        private byte[]? _buffer;

        public BlobBatch(Dictionary<ContentId, BlobLocation> blobs)
        {
            _slots = new Dictionary<ContentId, (int, int)>(blobs.Count);
            long total = 0;
            foreach (var (id, loc) in blobs)
            {
                _slots[id] = (checked((int)total), loc.RawLength);
                total += loc.RawLength;
            }
            _buffer = Buffers.Rent(checked((int)Math.Max(1, total)));
        }

        public ReadOnlyMemory<byte> this[ContentId id]
        {
            get
            {
                var (offset, length) = _slots[id];
                return _buffer!.AsMemory(offset, length);
            }
        }

        public Span<byte> Slot(ContentId id)
        {
            var (offset, length) = _slots[id];
            return _buffer.AsSpan(offset, length);
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _buffer, null) is { } buffer)
            {
                Buffers.Return(buffer);
            }
        }
    }
}
