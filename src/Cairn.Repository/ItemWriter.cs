using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>Figures of one write, for progress and reports.</summary>
public sealed record WriteStats(long BytesRead, long ChunksTotal, long ChunksNew, long BytesAdded, int PacksWritten)
{
    /// <summary>Blocks stored as page patches (new patch blobs and patches already stored).</summary>
    public long PatchedBlocks { get; init; }

    /// <summary>The content those patched blocks stand for (their rebuilt length).</summary>
    public long PatchedBytes { get; init; }

    /// <summary>What the new patch blobs cost after compression (before encryption overhead).</summary>
    public long PatchBytesStored { get; init; }
}

/// <summary>
/// What to do with one block of a fixed-block item (<see cref="ItemWriter.AddBlocksAsync(string, Stream, int, Func{int, ReadOnlySpan{byte}, BlockChoice}, IProgress{long}?, string, Dictionary{string, string}?, CancellationToken)"/>):
/// <see cref="Reuse"/> names a stored chunk (with <see cref="ReuseBase"/> when that chunk is a page patch) the caller
/// proved holds this block; otherwise, with <see cref="PatchBase"/>, the block may be stored as a page patch on that
/// whole chunk (pages of <see cref="PageSize"/> bytes) when that is worth it; otherwise it is stored whole.
/// </summary>
public readonly record struct BlockChoice(string? Reuse, string? ReuseBase, string? PatchBase, int PageSize)
{
    public static BlockChoice Whole => default;
}

/// <summary>
/// Writes items into the repository through a bounded parallel pipeline:
/// read → chunk → (hash → dedup → compress → encrypt) × workers → pack → store.
/// Memory stays bounded: at most a few chunks per worker and two packs are in flight.
/// Nothing is visible until <see cref="CommitAsync"/> stores the index and then the manifest.
/// </summary>
public sealed class ItemWriter : IAsyncDisposable
{
    private readonly Repository _repo;
    private readonly RepositoryOptions _options;
    private readonly ConcurrentDictionary<ContentId, byte> _claimed = new();
    private readonly Channel<SealedBlob> _blobs;
    private readonly Channel<(ContentId Id, ReadOnlyMemory<byte> Bytes, IndexPack Index)> _uploads;
    private readonly List<IndexPack> _written = [];
    private readonly List<ManifestItem> _items = [];
    private readonly Task _packer;
    private readonly Task _uploader;
    private readonly CancellationTokenSource _cts = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _bytesRead;
    private long _chunksTotal;
    private long _chunksNew;
    private long _bytesAdded;
    private long _patchedBlocks;
    private long _patchedBytes;
    private long _patchBytesStored;
    private bool _committed;
    private Exception? _failure;

    internal ItemWriter(Repository repo, RepositoryOptions options)
    {
        _repo = repo;
        _options = options;
        _blobs = Channel.CreateBounded<SealedBlob>(new BoundedChannelOptions(Math.Max(2, options.Workers * 2)) { SingleReader = true });
        _uploads = Channel.CreateBounded<(ContentId, ReadOnlyMemory<byte>, IndexPack)>(new BoundedChannelOptions(1) { SingleReader = true, SingleWriter = true });
        _packer = Task.Run(PackLoopAsync);
        _uploader = Task.Run(UploadLoopAsync);
    }

    public WriteStats Stats => new(Interlocked.Read(ref _bytesRead), Interlocked.Read(ref _chunksTotal), Interlocked.Read(ref _chunksNew), Interlocked.Read(ref _bytesAdded), _written.Count)
    {
        PatchedBlocks = Interlocked.Read(ref _patchedBlocks),
        PatchedBytes = Interlocked.Read(ref _patchedBytes),
        PatchBytesStored = Interlocked.Read(ref _patchBytesStored),
    };

    public IReadOnlyList<ManifestItem> Items => _items;

    /// <summary>Set when the commit stored the manifest but could not update the snapshot index (a cache; nothing is lost).</summary>
    public string? IndexWarning { get; private set; }

    /// <summary>Reads <paramref name="input"/> to the end and stores it as an item of the coming manifest.</summary>
    public Task<ManifestItem> AddStreamAsync(string name, Stream input, IProgress<long>? bytesRead, CancellationToken cancellationToken)
        => AddStreamAsync(name, input, bytesRead, "stream", null, cancellationToken);

    /// <summary>Like <see cref="AddStreamAsync(string, Stream, IProgress{long}?, CancellationToken)"/>, with the item's type and metadata.</summary>
    public Task<ManifestItem> AddStreamAsync(string name, Stream input, IProgress<long>? bytesRead, string type, Dictionary<string, string>? meta, CancellationToken cancellationToken)
        => AddPiecesAsync(name, Pieces(_repo.Chunker.ChunkAsync(input, cancellationToken)), bytesRead, type, meta, cancellationToken);

    /// <summary>
    /// Stores <paramref name="input"/> in fixed blocks of <paramref name="blockSize"/> bytes (the last may be shorter),
    /// for files whose content never shifts (PostgreSQL relation files: fixed pages). <paramref name="known"/> may name,
    /// for block <c>i</c> with its bytes, the ID of a chunk already stored that the caller has proven to hold this
    /// block's content; such a block is neither hashed nor compressed. A named chunk that is not in the repository
    /// is ignored and the block stored as usual.
    /// </summary>
    /// <remarks>
    /// Under <c>zstd:auto</c> the compression level is chosen per item by measured gain (see <see cref="LevelProbe"/>):
    /// the first full block is compressed at <see cref="LevelProbe.Weak"/> and <see cref="LevelProbe.Strong"/>, and the
    /// item's blocks use the strong level only when it saved at least <see cref="LevelProbe.MinimumGain"/> of the weak
    /// level's bytes on that block. A fixed <c>zstd:N</c> compresses every block at N.
    /// </remarks>
    public Task<ManifestItem> AddBlocksAsync(string name, Stream input, int blockSize, Func<int, ReadOnlySpan<byte>, string?> known, IProgress<long>? bytesRead, string type, Dictionary<string, string>? meta, CancellationToken cancellationToken)
        => AddBlocksAsync(name, input, blockSize, (i, b) => known(i, b) is { } id ? new BlockChoice(id, null, null, 0) : BlockChoice.Whole, bytesRead, type, meta, cancellationToken);

    /// <summary>
    /// Like <see cref="AddBlocksAsync(string, Stream, int, Func{int, ReadOnlySpan{byte}, string?}, IProgress{long}?, string, Dictionary{string, string}?, CancellationToken)"/>,
    /// with page patches (docs/repository-format.md, "Page patches"): a block whose <see cref="BlockChoice"/> names a
    /// patch base is compared page by page with that base, read back from the repository (authenticated), and stored
    /// as the XOR of its changed pages when the compressed patch is at most half the base's stored size, the base is a
    /// whole chunk of the block's length, and the repository has the <c>page-patches</c> feature. Depth stays one: the
    /// base is never a patch.
    /// </summary>
    public Task<ManifestItem> AddBlocksAsync(string name, Stream input, int blockSize, Func<int, ReadOnlySpan<byte>, BlockChoice> choose, IProgress<long>? bytesRead, string type, Dictionary<string, string>? meta, CancellationToken cancellationToken)
        => AddPiecesAsync(name, Blocks(input, blockSize, choose, cancellationToken), bytesRead, type, meta, cancellationToken, probeBlockSize: blockSize);

    /// <summary>
    /// The per-item choice of zstd level for fixed-block items under <c>zstd:auto</c>. Measured on the benchmark's
    /// PostgreSQL data directory in 256 KiB blocks (docs/benchmarks.md, "Choosing the compression level";
    /// <c>Cairn.Bench levels</c>): level 2 costs about a quarter more compression CPU than level 1 and saves 3 % of the
    /// bytes; level 3 at 256 KiB is worse than level 2; level 6 saves 13 % but costs 3.6× level 1's CPU, and its gain is
    /// all in some files (text and JSON rows, their indexes) while on others (pgbench's blank filler, blocks that
    /// compress to under a tenth) it gains nothing for the most CPU. Relation files are homogeneous, so one probe block
    /// speaks for its file.
    /// </summary>
    internal static class LevelProbe
    {
        public const int Weak = 2;
        public const int Strong = 6;

        /// <summary>The strong level is used when it saves at least this fraction of the probe block's weak-level bytes.</summary>
        public const double MinimumGain = 0.15;

        public static int Choose(ReadOnlySpan<byte> block)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(Zstd.CompressBound(block.Length));
            try
            {
                var weak = Zstd.Compress(block, buffer, Weak);
                var strong = Zstd.Compress(block, buffer, Strong);
                return strong <= weak * (1 - MinimumGain) ? Strong : Weak;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>One piece of an item and what the caller knows of it (see <see cref="BlockChoice"/>).</summary>
    private readonly record struct Piece(Chunk Chunk, ContentId? Known, ContentId? KnownBase, ContentId? PatchBase, int PageSize);

    private static async IAsyncEnumerable<Piece> Pieces(IAsyncEnumerable<Chunk> chunks)
    {
        await foreach (var c in chunks.ConfigureAwait(false))
        {
            yield return new Piece(c, null, null, null, 0);
        }
    }

    private static async IAsyncEnumerable<Piece> Blocks(Stream input, int blockSize, Func<int, ReadOnlySpan<byte>, BlockChoice> choose, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        for (var i = 0; ; i++)
        {
            var buffer = ArrayPool<byte>.Shared.Rent(blockSize);
            int n;
            try
            {
                // Synchronous: the producer runs on its own pool thread, and a file read from the page cache does
                // not block for long; an asynchronous read would hand every block to another pool thread and back,
                // which on a loaded machine costs a scheduling delay per block.
                ct.ThrowIfCancellationRequested();
                n = input.ReadAtLeast(buffer.AsSpan(0, blockSize), blockSize, throwOnEndOfStream: false);
            }
            catch
            {
                ArrayPool<byte>.Shared.Return(buffer);
                throw;
            }
            if (n == 0)
            {
                ArrayPool<byte>.Shared.Return(buffer);
                yield break;
            }
            var choice = choose(i, buffer.AsSpan(0, n));
            yield return new Piece(new Chunk(buffer, n), Id(choice.Reuse), Id(choice.ReuseBase), Id(choice.PatchBase), choice.PageSize);
            if (n < blockSize)
            {
                yield break;
            }
        }
    }

    private static ContentId? Id(string? hex) => hex is null ? null : ContentId.Parse(hex);

    private async Task<ManifestItem> AddPiecesAsync(string name, IAsyncEnumerable<Piece> pieces, IProgress<long>? bytesRead, string type, Dictionary<string, string>? meta, CancellationToken cancellationToken, int probeBlockSize = 0)
    {
        var setting = _options.Compression;
        var probed = probeBlockSize == 0 || !setting.IsAuto;
        var level = probed ? setting.StreamLevel : LevelProbe.Weak;
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _cts.Token);
        var ct = linked.Token;
        var workers = Math.Max(1, _options.Workers);
        var chunks = Channel.CreateBounded<(int Seq, Chunk Chunk, ContentId? PatchBase, int PageSize, byte[]? BaseBytes)>(new BoundedChannelOptions(workers * 2));
        var ids = new ConcurrentDictionary<int, ContentId>();
        var bases = new ConcurrentDictionary<int, ContentId>();
        var patches = _repo.Config.Has(RepositoryConfig.PagePatches);
        long size = 0;

        // Blocks that may become page patches wait here until their bases are read: the bases of a batch of them (about
        // ReadCoalescing.BatchRawBytes) are read together, neighbouring blobs of a pack in one ranged request, not one
        // request per block (on S3 one GET per changed block). One batch is read while the next one fills.
        var pending = new List<(int Seq, Chunk Chunk, ContentId Base, int PageSize)>();
        long pendingBytes = 0;
        Task? inflight = null;

        async Task DispatchAsync(List<(int Seq, Chunk Chunk, ContentId Base, int PageSize)> batch, CancellationToken token)
        {
            byte[]?[] loaded;
            try
            {
                // Authenticated (AES-GCM, bound to the base's ID), not hashed: the patch is built on the bytes as stored,
                // which a restore reads identically, and its rebuilt ID is the keyed hash of the block read from disk, so
                // a restore checks the result against the block itself whatever the base holds.
                loaded = await _repo.LoadBlobsPooledAsync([.. batch.Select(b => b.Base)], authenticateOnly: true, token).ConfigureAwait(false);
            }
            catch
            {
                foreach (var b in batch)
                {
                    b.Chunk.Return();
                }
                throw;
            }
            for (var k = 0; k < batch.Count; k++)
            {
                var (seq, chunk, baseId, pageSize) = batch[k];
                try
                {
                    await chunks.Writer.WriteAsync((seq, chunk, loaded[k] is null ? null : baseId, pageSize, loaded[k]), token).ConfigureAwait(false);
                }
                catch
                {
                    for (var j = k; j < batch.Count; j++)
                    {
                        batch[j].Chunk.Return();
                        if (loaded[j] is { } buffer)
                        {
                            ArrayPool<byte>.Shared.Return(buffer);
                        }
                    }
                    throw;
                }
            }
        }

        async Task FlushAsync(CancellationToken token)
        {
            if (inflight is not null)
            {
                await inflight.ConfigureAwait(false);
                inflight = null;
            }
            if (pending.Count > 0)
            {
                inflight = DispatchAsync(pending, token);
                pending = [];
                pendingBytes = 0;
            }
        }

        var producer = Task.Run(async () =>
        {
            try
            {
                var seq = 0;
                await foreach (var (c, known, knownBase, patchBase, pageSize) in pieces.WithCancellation(ct).ConfigureAwait(false))
                {
                    size += c.Length;
                    Interlocked.Add(ref _bytesRead, c.Length);
                    bytesRead?.Report(size);
                    if (known is { } id && _repo.Index.ContainsKey(id) && (knownBase is null || (patches && _repo.Index.ContainsKey(knownBase.Value))))
                    {
                        // Proven equal by the caller and present (a patch with its base): nothing to hash, compress or store.
                        if (knownBase is { } b)
                        {
                            bases[seq] = b;
                            Interlocked.Increment(ref _patchedBlocks);
                            Interlocked.Add(ref _patchedBytes, c.Length);
                        }
                        ids[seq++] = id;
                        Interlocked.Increment(ref _chunksTotal);
                        c.Return();
                        continue;
                    }
                    if (!probed && c.Length == probeBlockSize)
                    {
                        // Before any block of this item is compressed: every block of it uses the same level.
                        level = LevelProbe.Choose(c.Span);
                        probed = true;
                    }
                    if (patches && patchBase is { } pb && pageSize > 0 && c.Length % pageSize == 0 && _repo.Index.TryGetValue(pb, out var baseLocation) && baseLocation.RawLength == c.Length)
                    {
                        pending.Add((seq++, c, pb, pageSize));
                        pendingBytes += baseLocation.RawLength;
                        if (pendingBytes >= _repo.Coalescing.BatchRawBytes)
                        {
                            await FlushAsync(ct).ConfigureAwait(false);
                        }
                        continue;
                    }
                    // Not patchable (no base, or the base is not a whole chunk of this block's length): stored whole.
                    await chunks.Writer.WriteAsync((seq++, c, null, 0, null), ct).ConfigureAwait(false);
                }
                await FlushAsync(ct).ConfigureAwait(false);
                await FlushAsync(ct).ConfigureAwait(false);
                chunks.Writer.Complete();
            }
            catch (Exception e)
            {
                foreach (var p in pending)
                {
                    p.Chunk.Return();
                }
                pending.Clear();
                chunks.Writer.Complete(e);
                if (inflight is not null)
                {
                    // The batch being read ends (its chunks go back when it writes to the completed channel) before
                    // this item's failure propagates: nothing reads packs after the caller has moved on.
                    try
                    {
                        await inflight.ConfigureAwait(false);
                    }
                    catch (Exception)
                    {
                        // The producer's own failure is the one reported.
                    }
                }
                throw;
            }
        }, ct);

        var workerTasks = Enumerable.Range(0, workers).Select(_ => Task.Run(async () =>
        {
            var aad = new byte[Aead.BlobContext.Length + ContentId.Size];
            Aead.BlobContext.CopyTo(aad, 0);
            await foreach (var (seq, chunk, patchBase, pageSize, baseBytes) in chunks.Reader.ReadAllAsync(ct).ConfigureAwait(false))
            {
                try
                {
                    var id = _repo.Keys.ChunkId(chunk.Span);
                    Interlocked.Increment(ref _chunksTotal);
                    if (patchBase is { } b && baseBytes is not null && !_repo.Index.ContainsKey(id) && !_claimed.ContainsKey(id)
                        && await TryPatchAsync(seq, chunk, id, b, baseBytes.AsMemory(0, chunk.Length), pageSize, level, aad, ids, bases, ct).ConfigureAwait(false))
                    {
                        continue;
                    }
                    ids[seq] = id;
                    if (_repo.Index.ContainsKey(id) || !_claimed.TryAdd(id, 0))
                    {
                        continue;
                    }
                    var bound = Zstd.CompressBound(chunk.Length);
                    var compressed = ArrayPool<byte>.Shared.Rent(bound);
                    try
                    {
                        var n = Zstd.Compress(chunk.Span, compressed, level);
                        var sealedBytes = ArrayPool<byte>.Shared.Rent(n + Aead.Overhead);
                        id.WriteTo(aad.AsSpan(Aead.BlobContext.Length));
                        var length = _repo.Aead.Seal(compressed.AsSpan(0, n), aad, sealedBytes);
                        Interlocked.Increment(ref _chunksNew);
                        await _blobs.Writer.WriteAsync(new SealedBlob(id, sealedBytes, length, chunk.Length), ct).ConfigureAwait(false);
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(compressed);
                    }
                }
                finally
                {
                    chunk.Return();
                    if (baseBytes is not null)
                    {
                        ArrayPool<byte>.Shared.Return(baseBytes);
                    }
                }
            }
        }, ct)).ToArray();

        try
        {
            await Task.WhenAll([producer, .. workerTasks]).ConfigureAwait(false);
        }
        catch
        {
            // Drain what is left so pooled buffers go back; then surface the first error.
            while (chunks.Reader.TryRead(out var left))
            {
                left.Chunk.Return();
                if (left.BaseBytes is not null)
                {
                    ArrayPool<byte>.Shared.Return(left.BaseBytes);
                }
            }
            ThrowIfPipelineFailed();
            throw;
        }
        ThrowIfPipelineFailed();
        var list = new List<string>(ids.Count);
        for (var i = 0; i < ids.Count; i++)
        {
            list.Add(ids[i].ToHex());
        }
        var item = new ManifestItem
        {
            Name = name,
            Type = type,
            Size = size,
            Chunks = list,
            Meta = meta,
            Bases = bases.IsEmpty ? null : bases.OrderBy(b => b.Key).ToDictionary(b => b.Key.ToString(System.Globalization.CultureInfo.InvariantCulture), b => b.Value.ToHex(), StringComparer.Ordinal),
        };
        lock (_items)
        {
            _items.Add(item);
        }
        return item;
    }

    /// <summary>
    /// Stores block <paramref name="seq"/> as a page patch on <paramref name="baseId"/> when the base is a whole chunk
    /// of the block's length and the compressed patch is at most half the base's stored size; false (nothing stored,
    /// the caller stores the block whole) otherwise. <paramref name="baseBlock"/> was read back by the producer with the
    /// other bases of its batch, authenticated (a damaged base is no base: that block is stored whole, and verify
    /// reports the damage).
    /// </summary>
    private async Task<bool> TryPatchAsync(int seq, Chunk chunk, ContentId blockId, ContentId baseId, ReadOnlyMemory<byte> baseBlock, int pageSize, int level, byte[] aad, ConcurrentDictionary<int, ContentId> ids, ConcurrentDictionary<int, ContentId> bases, CancellationToken ct)
    {
        if (!_repo.Index.TryGetValue(baseId, out var baseLocation) || baseLocation.RawLength != chunk.Length || pageSize <= 0 || chunk.Length % pageSize != 0)
        {
            return false;
        }
        var patch = PagePatch.Build(baseBlock.Span, chunk.Span, pageSize, baseId, blockId);
        if (patch is null)
        {
            return false; // the same bytes as the base: then its ID is the base's, which is stored, so this never happens
        }
        var compressed = ArrayPool<byte>.Shared.Rent(Zstd.CompressBound(patch.Length));
        try
        {
            var n = Zstd.Compress(patch, compressed, level);
            if (n + Aead.Overhead > baseLocation.Length / 2)
            {
                return false;
            }
            var patchId = _repo.Keys.ChunkId(patch);
            ids[seq] = patchId;
            bases[seq] = baseId;
            Interlocked.Increment(ref _patchedBlocks);
            Interlocked.Add(ref _patchedBytes, chunk.Length);
            if (_repo.Index.ContainsKey(patchId) || !_claimed.TryAdd(patchId, 0))
            {
                return true;
            }
            Interlocked.Add(ref _patchBytesStored, n);
            var sealedBytes = ArrayPool<byte>.Shared.Rent(n + Aead.Overhead);
            patchId.WriteTo(aad.AsSpan(Aead.BlobContext.Length));
            var length = _repo.Aead.Seal(compressed.AsSpan(0, n), aad, sealedBytes);
            Interlocked.Increment(ref _chunksNew);
            await _blobs.Writer.WriteAsync(new SealedBlob(patchId, sealedBytes, length, patch.Length), ct).ConfigureAwait(false);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    /// <summary>Adds an item whose chunks are already stored (e.g. carried over from another snapshot).</summary>
    public void AddExistingItem(ManifestItem item)
    {
        foreach (var c in item.ReferencedBlobs)
        {
            if (!_repo.Index.ContainsKey(ContentId.Parse(c)))
            {
                throw new DataDamagedException($"item {item.Name} refers to blob {c[..8]}, which is not in the repository");
            }
        }
        lock (_items)
        {
            _items.Add(item);
        }
    }

    /// <summary>Replaces an item added earlier (e.g. to add metadata known only after reading it, such as a checksum).</summary>
    public void ReplaceItem(ManifestItem old, ManifestItem replacement)
    {
        lock (_items)
        {
            for (var i = _items.Count - 1; i >= 0; i--)
            {
                if (ReferenceEquals(_items[i], old))
                {
                    _items[i] = replacement;
                    return;
                }
            }
        }
        throw new InvalidOperationException($"item {old.Name} is not part of this write");
    }

    /// <summary>Flushes packs, stores the index, then the manifest. Only now does the backup become visible.</summary>
    public async Task<Snapshot> CommitAsync(string name, string kind, Dictionary<string, string>? meta, CancellationToken cancellationToken)
    {
        _blobs.Writer.TryComplete();
        try
        {
            await _packer.ConfigureAwait(false);
            await _uploader.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            ThrowIfPipelineFailed();
            throw;
        }
        ThrowIfPipelineFailed();
        cancellationToken.ThrowIfCancellationRequested();
        if (_written.Count > 0)
        {
            var index = new IndexFile { Packs = _written };
            var json = JsonSerializer.SerializeToUtf8Bytes(index, RepositoryJson.Default.IndexFile);
            await _repo.PutObjectAsync(ObjectKind.Index, json, cancellationToken).ConfigureAwait(false);
            _repo.AddToIndex(index);
        }
        var patched = _items.Any(i => i.Bases is { Count: > 0 });
        if (patched && !_repo.Config.Has(RepositoryConfig.PagePatches))
        {
            throw new InvalidOperationException("a manifest with page patches may only be written to a repository with the page-patches feature");
        }
        var manifest = new Manifest
        {
            Version = patched ? 2 : 1,
            Time = _repo.Time.GetUtcNow(),
            Host = Environment.MachineName,
            Name = name,
            Kind = kind,
            Items = [.. _items],
            Meta = meta ?? [],
            DurationMs = _clock.ElapsedMilliseconds,
            AddedBytes = Interlocked.Read(ref _bytesAdded),
            StoredBytes = StoredSizeOf(_items),
        };
        var mjson = JsonSerializer.SerializeToUtf8Bytes(manifest, RepositoryJson.Default.Manifest);
        var id = await _repo.PutObjectAsync(ObjectKind.Snapshot, mjson, cancellationToken).ConfigureAwait(false);
        _committed = true;
        var snapshot = new Snapshot(id, manifest);
        try
        {
            await _repo.UpdateSnapshotIndexAsync(snapshot, cancellationToken).ConfigureAwait(false);
        }
#pragma warning disable CA1031 // the index is a cache: the backup is committed, and readers cope without the index (docs/repository-format.md)
        catch (Exception e)
#pragma warning restore CA1031
        {
            IndexWarning = $"the snapshot index was not updated ({e.Message}); listings read the manifests until the next backup writes it";
        }
        return snapshot;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_committed)
        {
            await _cts.CancelAsync().ConfigureAwait(false);
            _blobs.Writer.TryComplete();
            try
            {
                await Task.WhenAll(_packer, _uploader).ConfigureAwait(false);
            }
            catch (Exception)
            {
                // Abandoned write: packs already stored stay as garbage for prune.
            }
        }
        _cts.Dispose();
    }

    private long StoredSizeOf(IEnumerable<ManifestItem> items)
    {
        long total = 0;
        var seen = new HashSet<string>();
        foreach (var item in items)
        {
            foreach (var c in item.ReferencedBlobs)
            {
                if (seen.Add(c) && _repo.Index.TryGetValue(ContentId.Parse(c), out var loc))
                {
                    total += loc.Length;
                }
            }
        }
        return total;
    }

    /// <summary>Surfaces the error that stopped the pipeline (e.g. disk full), not the cancellation it caused downstream.</summary>
    private void ThrowIfPipelineFailed()
    {
        if (Volatile.Read(ref _failure) is { } failure)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    private void Fail(Exception e)
    {
        if (e is not OperationCanceledException)
        {
            Interlocked.CompareExchange(ref _failure, e, null);
        }
    }

    private async Task PackLoopAsync()
    {
        PackBuilder? pack = null;
        try
        {
            await foreach (var blob in _blobs.Reader.ReadAllAsync(_cts.Token).ConfigureAwait(false))
            {
                pack ??= new PackBuilder(PackBuffers.Rent(_repo.Config.PackSize + (5 * 1024 * 1024)));
                pack.Add(blob.Id, blob.Bytes.AsSpan(0, blob.Length), blob.RawLength);
                ArrayPool<byte>.Shared.Return(blob.Bytes);
                if (pack.Length >= _repo.Config.PackSize)
                {
                    await _uploads.Writer.WriteAsync(pack.Finish(_repo.Aead), _cts.Token).ConfigureAwait(false);
                    pack = null;
                }
            }
            if (pack is { Count: > 0 })
            {
                await _uploads.Writer.WriteAsync(pack.Finish(_repo.Aead), _cts.Token).ConfigureAwait(false);
            }
            _uploads.Writer.Complete();
        }
        catch (Exception e)
        {
            Fail(e);
            _uploads.Writer.TryComplete(e);
            await _cts.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task UploadLoopAsync()
    {
        try
        {
            await foreach (var (id, bytes, index) in _uploads.Reader.ReadAllAsync(_cts.Token).ConfigureAwait(false))
            {
                await _repo.Storage.PutAsync(new StorageKey(ObjectKind.Data, id.ToHex()), bytes, _cts.Token).ConfigureAwait(false);
                if (System.Runtime.InteropServices.MemoryMarshal.TryGetArray(bytes, out var segment) && segment.Array is { } array)
                {
                    PackBuffers.Return(array);
                }
                lock (_written)
                {
                    _written.Add(index);
                }
                Interlocked.Add(ref _bytesAdded, bytes.Length);
            }
        }
        catch (Exception e)
        {
            Fail(e);
            await _cts.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private readonly record struct SealedBlob(ContentId Id, byte[] Bytes, int Length, int RawLength);

    /// <summary>Pack buffers are tens of MB: reuse them instead of allocating (and page-faulting) one per pack.</summary>
    private static readonly ArrayPool<byte> PackBuffers = ArrayPool<byte>.Create(128 * 1024 * 1024, 4);
}
