using System.Buffers;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Copying;

/// <summary>
/// What a blob-level copy takes: <see cref="Snapshots"/> (loaded manifests of the primary, any order), the
/// <c>wal/</c> names to carry, and the databases whose erasure ledger goes along. The choice is the caller's.
/// </summary>
public sealed record SnapshotCopyPlan(IReadOnlyList<Snapshot> Snapshots, IReadOnlyCollection<string> WalNames, IReadOnlyCollection<string> LedgerDatabases);

/// <summary>
/// The figures of one blob-level copy: snapshots written and already there, blobs written (each read from the primary
/// and authenticated) and already there, the bytes read from the primary's packs and written to the target (packs, WAL,
/// manifests and the rest), and what was found wrong. <see cref="Reencrypted"/>: the target has other keys.
/// <see cref="WholePackBytes"/>: the size of the primary's packs the blobs came from, what copying those packs whole
/// would have moved instead (docs/benchmarks.md compares the two).
/// </summary>
public sealed record SnapshotCopyReport(bool Reencrypted, int SnapshotsCopied, int SnapshotsPresent, long BlobsCopied, long BlobsPresent, long BytesRead, long BytesWritten,
    int PacksWritten, int WalCopied, int WalPresent, int PinsCopied, int LedgerCopied, int IncidentsCopied, IReadOnlyList<CopyFinding> Findings)
{
    public long WholePackBytes { get; init; }

    public long ObjectsCopied => PacksWritten + (PacksWritten > 0 ? 1 : 0) + SnapshotsCopied + WalCopied + PinsCopied + LedgerCopied + IncidentsCopied;
}

/// <summary>
/// Copies chosen snapshots (and the WAL, pins, ledger entries and incidents that go with them) from one open repository
/// into another, blob by blob: only the blobs the snapshots reference and the target lacks are read (ranged reads of the
/// primary's packs, neighbouring blobs coalesced), authenticated under the primary's keys, and written into new packs
/// and one new index of the target. With the same keys (the target is the same repository) sealed bytes and manifests
/// go unchanged; with other keys every blob gets the target's ID (HMAC under its chunk-ID key) and is sealed under its
/// key, and manifests are rewritten (docs/repository-format.md, "Filtered copies and copies into a repository with
/// other keys"). The caller holds a shared lock on both.
/// </summary>
public static class SnapshotCopier
{
    /// <summary>Neighbouring blobs of one pack closer than this are read with one request.</summary>
    private const long CoalesceGap = 256 * 1024;

    /// <summary>The most one ranged read fetches.</summary>
    private const long MaxRead = 8 * 1024 * 1024;

    public const string CopiedFrom = "copied_from";
    public const string CopySource = "copy_source";
    public const string IncrementalFrom = "incremental_from";

    public static async Task<SnapshotCopyReport> CopyAsync(Repository source, Repository target, SnapshotCopyPlan plan, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(plan);
        var reseal = source.Config.Id != target.Config.Id;
        var findings = new ConcurrentQueue<CopyFinding>();

        // What the target holds: its snapshots, and (other keys) which of the primary's each one is a copy of.
        var targetSnapshots = await target.ListSnapshotsAsync((id, e) => findings.Enqueue(new CopyFinding("snapshots/" + id, $"unreadable in the target: {e.Message}")), cancellationToken).ConfigureAwait(false);
        var copiedAs = new Dictionary<string, string>(StringComparer.Ordinal);
        var map = new Dictionary<ContentId, ContentId>();
        var planned = plan.Snapshots.ToDictionary(s => s.Id, StringComparer.Ordinal);
        foreach (var t in targetSnapshots)
        {
            if (!reseal)
            {
                copiedAs[t.Id] = t.Id;
                continue;
            }
            if (t.Manifest.Meta.GetValueOrDefault(CopySource) != source.Config.Id || t.Manifest.Meta.GetValueOrDefault(CopiedFrom) is not { Length: 64 } from)
            {
                continue;
            }
            copiedAs[from] = t.Id;
            var original = planned.GetValueOrDefault(from);
            if (original is null)
            {
                try
                {
                    original = await source.LoadSnapshotAsync(from, cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is ObjectNotFoundException or DataDamagedException or JsonException)
                {
                    continue; // pruned in the primary (or unreadable): this pair gives no mapping
                }
            }
            Zip(original.Manifest, t.Manifest, map);
        }

        var toCopy = plan.Snapshots.Where(s => !copiedAs.ContainsKey(s.Id)).OrderBy(s => s.Manifest.Time).ThenBy(s => s.Id, StringComparer.Ordinal).ToList();
        var needed = new HashSet<ContentId>();
        var seen = new HashSet<ContentId>();
        long present = 0;
        // A page patch's blob names its base chunk by the primary's keyed ID, and its rebuilt block's ID too: re-sealing under
        // other keys would need every patched block rebuilt and re-patched, which this copier does not do (yet). Refused
        // before anything is written; a copy under the same keys carries patches and their bases as they are.
        if (reseal && toCopy.FirstOrDefault(s => s.Manifest.Items.Any(i => i.Bases is { Count: > 0 })) is { } patched)
        {
            throw new RepositoryException(ErrorKind.InvalidInput,
                $"snapshot {patched.ShortId} ({patched.Manifest.Name}) stores page patches (a repository upgraded with 'cairn repo upgrade --page-patches'), and a copy into a repository with other keys cannot re-seal them yet: nothing was copied. Copy into a repository with the same keys (an empty place, or a copy made that way), or leave such snapshots out with --since or --database");
        }
        // Every blob a restore reads: the chunks and, for page patches, their bases.
        foreach (var chunk in toCopy.SelectMany(s => s.Manifest.Items).SelectMany(i => i.ReferencedBlobs))
        {
            var id = ContentId.Parse(chunk);
            if (!seen.Add(id))
            {
                continue;
            }
            var there = reseal ? map.TryGetValue(id, out var mapped) && target.Index.ContainsKey(mapped) : target.Index.ContainsKey(id);
            if (there)
            {
                present++;
            }
            else
            {
                needed.Add(id);
            }
        }

        // Blobs: read from the primary by pack, authenticated, (re)sealed, packed for the target.
        var packer = new TargetPacker(target);
        long bytesRead = 0, blobsCopied = 0;
        var byPack = new Dictionary<ContentId, List<(ContentId Id, BlobLocation Location)>>();
        foreach (var id in needed)
        {
            if (!source.Index.TryGetValue(id, out var loc))
            {
                throw new DataDamagedException($"blob {id.Short}, which a snapshot to copy references, is not in the primary's index (missing data): nothing of it was copied; run 'cairn verify' on the primary");
            }
            if (!byPack.TryGetValue(loc.Pack, out var list))
            {
                byPack[loc.Pack] = list = [];
            }
            list.Add((id, loc));
        }
        var mapLock = new object();
        long packsDone = 0, wholePackBytes = 0;
        await Parallel.ForEachAsync(byPack.OrderBy(p => p.Key.ToHex(), StringComparer.Ordinal), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (pack, ct) =>
        {
            var packName = pack.Key.ToHex();
            Interlocked.Add(ref wholePackBytes, (await source.Storage.StatAsync(new StorageKey(ObjectKind.Data, packName), ct).ConfigureAwait(false))?.Size ?? 0);
            var blobs = pack.Value.OrderBy(b => b.Location.Offset).ToList();
            var i = 0;
            while (i < blobs.Count)
            {
                var start = blobs[i].Location.Offset;
                var end = start + blobs[i].Location.Length;
                var j = i + 1;
                while (j < blobs.Count && blobs[j].Location.Offset - end <= CoalesceGap && blobs[j].Location.Offset + blobs[j].Location.Length - start <= MaxRead)
                {
                    end = Math.Max(end, blobs[j].Location.Offset + blobs[j].Location.Length);
                    j++;
                }
                byte[] range;
                try
                {
                    range = await source.Storage.GetAsync(new StorageKey(ObjectKind.Data, packName), start, end - start, ct).ConfigureAwait(false);
                }
                catch (ObjectNotFoundException e)
                {
                    throw new DataDamagedException($"pack {pack.Key.Short} of the primary is missing: the snapshots that need it cannot be copied; run 'cairn verify' on the primary", e);
                }
                if (range.Length != end - start)
                {
                    throw new DataDamagedException($"pack {pack.Key.Short} of the primary is truncated ({range.Length} bytes at offset {start}, {end - start} expected); run 'cairn verify' on the primary");
                }
                Interlocked.Add(ref bytesRead, range.Length);
                for (; i < j; i++)
                {
                    var (id, loc) = blobs[i];
                    var sealedBlob = range.AsSpan((int)(loc.Offset - start), loc.Length);
                    var (targetId, output) = Transform(source, target, reseal, id, sealedBlob, loc.RawLength, packName);
                    bool write;
                    lock (mapLock)
                    {
                        map[id] = targetId;
                        write = !target.Index.ContainsKey(targetId) && packer.Claim(targetId);
                    }
                    if (write)
                    {
                        await packer.AddAsync(targetId, output, loc.RawLength, ct).ConfigureAwait(false);
                        Interlocked.Increment(ref blobsCopied);
                    }
                    else
                    {
                        Interlocked.Increment(ref present);
                    }
                }
            }
            progress?.Report($"blobs: {Interlocked.Increment(ref packsDone)}/{byPack.Count} pack(s) of the primary read");
        }).ConfigureAwait(false);
        await packer.FinishAsync(cancellationToken).ConfigureAwait(false);
        long bytesWritten = packer.BytesWritten;

        // WAL, ledger, incidents: whole objects under the same names.
        var targetWal = new Dictionary<string, ObjectInfo>(StringComparer.Ordinal);
        await foreach (var o in target.Storage.ListAsync(ObjectKind.Named, cancellationToken).ConfigureAwait(false))
        {
            targetWal[o.Key.Name] = o;
        }
        int walCopied = 0, walPresent = 0;
        await Parallel.ForEachAsync(plan.WalNames.Order(StringComparer.Ordinal), new ParallelOptions { MaxDegreeOfParallelism = 4, CancellationToken = cancellationToken }, async (name, ct) =>
        {
            if (targetWal.ContainsKey(name))
            {
                Interlocked.Increment(ref walPresent);
                return;
            }
            long written;
            if (reseal)
            {
                var data = await NamedFiles.GetAsync(source, name, ct).ConfigureAwait(false);
                await NamedFiles.PutAsync(target, name, data, ct).ConfigureAwait(false);
                written = (await target.Storage.StatAsync(new StorageKey(ObjectKind.Named, name), ct).ConfigureAwait(false))?.Size ?? 0;
            }
            else
            {
                // Opened (authenticated) before it is copied: damage is not spread.
                _ = await NamedFiles.GetAsync(source, name, ct).ConfigureAwait(false);
                written = await CopyRawAsync(source.Storage, target.Storage, new StorageKey(ObjectKind.Named, name), findings, ct).ConfigureAwait(false);
            }
            Interlocked.Add(ref bytesWritten, written);
            Interlocked.Increment(ref walCopied);
        }).ConfigureAwait(false);
        progress?.Report($"wal: {walCopied} file(s) copied, {walPresent} already there");

        var targetLedger = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in target.Storage.ListAsync(ObjectKind.Ledger, cancellationToken).ConfigureAwait(false))
        {
            targetLedger.Add(o.Key.Name);
        }
        var ledgerCopied = 0;
        foreach (var database in plan.LedgerDatabases.Order(StringComparer.Ordinal))
        {
            foreach (var (name, entry) in await ErasureLedger.ReadAsync(source, database, cancellationToken).ConfigureAwait(false))
            {
                if (targetLedger.Contains(name))
                {
                    continue;
                }
                bytesWritten += reseal
                    ? await ErasureLedger.PutEntryAsync(target, name, entry, cancellationToken).ConfigureAwait(false)
                    : await CopyRawAsync(source.Storage, target.Storage, new StorageKey(ObjectKind.Ledger, name), findings, cancellationToken).ConfigureAwait(false);
                ledgerCopied++;
            }
        }

        var targetIncidents = (await target.ListIncidentObjectsAsync(cancellationToken).ConfigureAwait(false)).ToHashSet(StringComparer.Ordinal);
        var incidentsCopied = 0;
        foreach (var name in await source.ListIncidentObjectsAsync(cancellationToken).ConfigureAwait(false))
        {
            if (targetIncidents.Contains(name))
            {
                continue;
            }
            var plain = await source.GetIncidentObjectAsync(name, cancellationToken).ConfigureAwait(false);
            if (reseal)
            {
                await target.PutIncidentObjectAsync(name, plain, cancellationToken).ConfigureAwait(false);
                bytesWritten += plain.Length + Aead.Overhead;
            }
            else
            {
                bytesWritten += await CopyRawAsync(source.Storage, target.Storage, new StorageKey(ObjectKind.Incident, name), findings, cancellationToken).ConfigureAwait(false);
            }
            incidentsCopied++;
        }

        // Manifests last (oldest first, so an incremental's parent is mapped before it), then their pins.
        var snapshotsCopied = 0;
        foreach (var s in toCopy)
        {
            if (reseal)
            {
                var manifest = Rewrite(s, source.Config.Id, map, copiedAs, target);
                var json = JsonSerializer.SerializeToUtf8Bytes(manifest, RepositoryJson.Default.Manifest);
                copiedAs[s.Id] = await target.PutObjectAsync(ObjectKind.Snapshot, json, cancellationToken).ConfigureAwait(false);
                bytesWritten += json.Length;
            }
            else
            {
                bytesWritten += await CopyRawAsync(source.Storage, target.Storage, new StorageKey(ObjectKind.Snapshot, s.Id), findings, cancellationToken).ConfigureAwait(false);
            }
            snapshotsCopied++;
        }
        progress?.Report($"snapshots: {snapshotsCopied} copied, {plan.Snapshots.Count - toCopy.Count} already there");

        var pinsCopied = 0;
        var sourcePins = await source.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        var targetPins = await target.ListPinsAsync(cancellationToken).ConfigureAwait(false);
        foreach (var (snapshot, pin) in sourcePins.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (!planned.ContainsKey(snapshot) || !copiedAs.TryGetValue(snapshot, out var targetSnapshot))
            {
                continue;
            }
            var wanted = pin with { Snapshot = targetSnapshot };
            if (targetPins.TryGetValue(targetSnapshot, out var theirs) && theirs == wanted)
            {
                continue;
            }
            await target.PutPinAsync(wanted, cancellationToken).ConfigureAwait(false);
            pinsCopied++;
        }

        if (snapshotsCopied > 0)
        {
            try
            {
                await target.UpdateSnapshotIndexAsync(null, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RepositoryException or IOException)
            {
                findings.Enqueue(new CopyFinding("snapshot-index", $"not updated in the target ({e.Message}); readers list the manifests until the next write"));
            }
        }
        return new SnapshotCopyReport(reseal, snapshotsCopied, plan.Snapshots.Count - toCopy.Count, blobsCopied, present, bytesRead, bytesWritten, packer.PacksWritten,
            walCopied, walPresent, pinsCopied, ledgerCopied, incidentsCopied, [.. findings]) { WholePackBytes = wholePackBytes };
    }

    /// <summary>
    /// Opens one blob of the primary (tag, decompression, ID under the primary's chunk-ID key) and returns its ID in the
    /// target and the bytes to store there: the sealed bytes unchanged (same keys), or the compressed bytes sealed under
    /// the target's key with its ID (other keys).
    /// </summary>
    private static (ContentId Id, byte[] Sealed) Transform(Repository source, Repository target, bool reseal, ContentId id, ReadOnlySpan<byte> sealedBlob, int rawLength, string packName)
    {
        Span<byte> aad = stackalloc byte[Aead.BlobContext.Length + ContentId.Size];
        Aead.BlobContext.CopyTo(aad);
        id.WriteTo(aad[Aead.BlobContext.Length..]);
        var compressed = ArrayPool<byte>.Shared.Rent(Math.Max(1, sealedBlob.Length));
        var raw = ArrayPool<byte>.Shared.Rent(Math.Max(1, rawLength));
        try
        {
            int n;
            try
            {
                n = source.Aead.Open(sealedBlob, aad, compressed, $"blob {id.Short} in pack {packName[..8]} of the primary");
            }
            catch (AuthenticationFailedException e)
            {
                throw new DataDamagedException($"{e.Message}: it is not copied; run 'cairn verify --read-data' on the primary", e);
            }
            int m;
            try
            {
                m = Zstd.Decompress(compressed.AsSpan(0, n), raw.AsSpan(0, rawLength));
            }
            catch (InvalidDataException e)
            {
                throw new DataDamagedException($"blob {id.Short} of the primary does not decompress ({e.Message}): it is not copied", e);
            }
            if (m != rawLength || source.Keys.ChunkId(raw.AsSpan(0, rawLength)) != id)
            {
                throw new DataDamagedException($"blob {id.Short} in pack {packName[..8]} of the primary does not match its ID (tampered): it is not copied");
            }
            if (!reseal)
            {
                return (id, sealedBlob.ToArray());
            }
            var targetId = target.Keys.ChunkId(raw.AsSpan(0, rawLength));
            targetId.WriteTo(aad[Aead.BlobContext.Length..]);
            var output = new byte[n + Aead.Overhead];
            target.Aead.Seal(compressed.AsSpan(0, n), aad, output);
            return (targetId, output);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    /// <summary>The primary's manifest with every chunk ID mapped to the target's, the copy's origin in its meta, and its parent mapped.</summary>
    private static Manifest Rewrite(Snapshot s, string sourceId, Dictionary<ContentId, ContentId> map, Dictionary<string, string> copiedAs, Repository target)
    {
        var items = s.Manifest.Items.Select(i => i with { Chunks = [.. i.Chunks.Select(c => map.TryGetValue(ContentId.Parse(c), out var t) ? t.ToHex() : throw new InvalidOperationException($"blob {c[..8]} was not mapped"))] }).ToList();
        var meta = new Dictionary<string, string>(s.Manifest.Meta, StringComparer.Ordinal)
        {
            [CopiedFrom] = s.Id,
            [CopySource] = sourceId,
        };
        if (meta.TryGetValue(IncrementalFrom, out var parent) && parent.Length > 0)
        {
            meta[IncrementalFrom] = copiedAs.GetValueOrDefault(parent) ?? "";
        }
        long stored = 0;
        foreach (var id in items.SelectMany(i => i.Chunks).Distinct(StringComparer.Ordinal))
        {
            stored += target.Index.TryGetValue(ContentId.Parse(id), out var loc) ? loc.Length : 0;
        }
        return s.Manifest with { Items = items, Meta = meta, StoredBytes = stored };
    }

    /// <summary>Adds the pairs of a copied manifest and its original to the blob map; a pair that does not line up adds nothing.</summary>
    private static void Zip(Manifest original, Manifest copy, Dictionary<ContentId, ContentId> map)
    {
        if (original.Items.Count != copy.Items.Count)
        {
            return;
        }
        for (var i = 0; i < original.Items.Count; i++)
        {
            if (original.Items[i].Name != copy.Items[i].Name || original.Items[i].Chunks.Count != copy.Items[i].Chunks.Count)
            {
                return;
            }
        }
        for (var i = 0; i < original.Items.Count; i++)
        {
            for (var c = 0; c < original.Items[i].Chunks.Count; c++)
            {
                if (ContentId.TryParse(original.Items[i].Chunks[c], out var from) && ContentId.TryParse(copy.Items[i].Chunks[c], out var to))
                {
                    map[from] = to;
                }
            }
        }
    }

    /// <summary>An object copied byte for byte (create-only, read back); its SHA-256 checked first when its kind is content-addressed.</summary>
    private static async Task<long> CopyRawAsync(IStorage source, IStorage target, StorageKey key, ConcurrentQueue<CopyFinding> findings, CancellationToken ct)
    {
        var bytes = await source.GetAllAsync(key, ct).ConfigureAwait(false);
        if (RepositoryCopier.IsContentAddressed(key.Kind) && Convert.ToHexStringLower(SHA256.HashData(bytes)) != key.Name)
        {
            throw new DataDamagedException($"{key.Path} of the primary does not match its name (SHA-256): it is not copied; run 'cairn verify' on the primary");
        }
        await RepositoryCopier.CreateAsync(target, key, bytes, ct).ConfigureAwait(false);
        var back = await target.GetAllAsync(key, ct).ConfigureAwait(false);
        if (!back.AsSpan().SequenceEqual(bytes))
        {
            findings.Enqueue(new CopyFinding(key.Path, $"read back from the target, it differs from what was written ({back.Length} bytes, {bytes.Length} written)"));
        }
        return bytes.Length;
    }

    /// <summary>New packs for the target (its pack size, sealed header under its key), each read back; then one index listing them.</summary>
    private sealed class TargetPacker(Repository target)
    {
        private readonly SemaphoreSlim _gate = new(1, 1);
        private readonly HashSet<ContentId> _claimed = [];
        private readonly List<IndexPack> _written = [];
        private PackBuilder? _pack;

        public long BytesWritten { get; private set; }

        public int PacksWritten => _written.Count;

        /// <summary>True the first time a target ID is claimed in this run (the caller holds its lock).</summary>
        public bool Claim(ContentId id) => _claimed.Add(id);

        public async Task AddAsync(ContentId id, byte[] sealedBlob, int rawLength, CancellationToken ct)
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                _pack ??= new PackBuilder(Math.Min(target.Config.PackSize, 64 << 20) + (1 << 20));
                _pack.Add(id, sealedBlob, rawLength);
                if (_pack.Length >= target.Config.PackSize)
                {
                    await StoreAsync(ct).ConfigureAwait(false);
                }
            }
            finally
            {
                _gate.Release();
            }
        }

        public async Task FinishAsync(CancellationToken ct)
        {
            if (_pack is { Count: > 0 })
            {
                await StoreAsync(ct).ConfigureAwait(false);
            }
            if (_written.Count == 0)
            {
                return;
            }
            var index = new IndexFile { Packs = [.. _written] };
            var json = JsonSerializer.SerializeToUtf8Bytes(index, RepositoryJson.Default.IndexFile);
            await target.PutObjectAsync(ObjectKind.Index, json, ct).ConfigureAwait(false);
            target.AddToIndex(index);
            BytesWritten += json.Length;
        }

        private async Task StoreAsync(CancellationToken ct)
        {
            var (id, bytes, entry) = _pack!.Finish(target.Aead);
            _pack = null;
            var key = new StorageKey(ObjectKind.Data, id.ToHex());
            await target.Storage.PutAsync(key, bytes, ct).ConfigureAwait(false);
            // Checked, not trusted: the stored pack is read back and must hash to its name.
            var back = await target.Storage.GetAllAsync(key, ct).ConfigureAwait(false);
            if (ContentId.Sha256(back) != id)
            {
                throw new DataDamagedException($"pack {id.Short} read back from {target.Storage.Location} does not hold what was written; nothing that needs it was committed");
            }
            _written.Add(entry);
            BytesWritten += bytes.Length;
        }
    }
}
