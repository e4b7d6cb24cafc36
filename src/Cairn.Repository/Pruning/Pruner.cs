using System.Text.Json;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Pruning;

/// <summary>What prune did, or would do with <c>--dry-run</c>.</summary>
public sealed record PruneReport(
    bool DryRun,
    int PacksTotal,
    int PacksDeleted,
    int PacksRepacked,
    int PacksWritten,
    long BytesDeleted,
    long BytesKept,
    int IndexesReplaced,
    int OrphanPacks,
    int TempFilesRemoved,
    IReadOnlyList<string> DeletedObjects)
{
    /// <summary>Objects prune would have deleted but left because S3 Object Lock still retains them (a later prune removes them).</summary>
    public IReadOnlyList<LockedObject> Locked { get; init; } = [];

    /// <summary>The packs the kept snapshots need and the index files that name them now (what S3 Object Lock renewal keeps locked).</summary>
    public IReadOnlyList<StorageKey> Needed { get; init; } = [];
}

/// <summary>
/// Removes data no manifest references. Runs under an exclusive lock (the caller holds it).
/// Order: repack → write new index → delete old indexes → delete unused packs → delete temp files.
/// A crash between steps leaves duplicates or garbage, never a missing blob.
/// </summary>
public sealed class Pruner(Repository repo)
{
    /// <summary>A pack is repacked when less than this share of its bytes is still used.</summary>
    public double RepackBelowUsedShare { get; init; } = 0.5;

    /// <summary>
    /// The blobs an item keeps: <see cref="ManifestItem.ReferencedBlobs"/> (its chunks and its page patches' bases).
    /// Tests set it to the chunks alone to make what a prune that predates page patches would make of a repository.
    /// </summary>
    internal Func<ManifestItem, IEnumerable<string>> Marks { get; init; } = static i => i.ReferencedBlobs;

    public async Task<PruneReport> PruneAsync(bool dryRun, CancellationToken cancellationToken)
    {
        var storage = repo.Storage;
        // Every manifest is read (the index of snapshots has no chunk lists), one at a time per core, and only its chunk
        // IDs are kept: a thousand manifests held at once cost a gigabyte.
        var ids = new List<string>();
        await foreach (var o in storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            ids.Add(o.Key.Name);
        }
        var used = new HashSet<ContentId>();
        await Parallel.ForEachAsync(ids, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(2, Environment.ProcessorCount), CancellationToken = cancellationToken }, async (id, ct) =>
        {
            Snapshot s;
            try
            {
                s = await repo.LoadSnapshotAsync(id, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is DataDamagedException or System.Text.Json.JsonException or ObjectNotFoundException)
            {
                throw new DataDamagedException($"manifest {ObjectNames.Short(id)} is unreadable ({e.Message}); prune refuses to run because it cannot tell which data that backup needs. Run 'cairn verify' and remove or repair it first", e);
            }
            var mine = s.Manifest.Items.SelectMany(Marks).Select(ContentId.Parse).ToList();
            lock (used)
            {
                used.UnionWith(mine);
            }
        }).ConfigureAwait(false);

        var indexes = new List<string>();
        var listedBy = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var packs = new Dictionary<string, IndexPack>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            IndexFile file;
            try
            {
                file = await repo.ReadIndexAsync(o.Key.Name, cancellationToken).ConfigureAwait(false);
            }
            catch (DataDamagedException e)
            {
                throw new DataDamagedException($"index {ObjectNames.Short(o.Key.Name)} is unreadable ({e.Message}); prune refuses to run. Run 'cairn verify'", e);
            }
            indexes.Add(o.Key.Name);
            listedBy[o.Key.Name] = [.. file.Packs.Select(p => p.Id)];
            foreach (var p in file.Packs)
            {
                packs.TryAdd(p.Id, p);
            }
        }
        var stored = new Dictionary<string, long>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(ObjectKind.Data, cancellationToken).ConfigureAwait(false))
        {
            stored[o.Key.Name] = o.Size;
        }

        // Every used blob must be somewhere we keep; a blob may sit in several packs: keep one copy.
        var keep = new List<IndexPack>();
        var delete = new List<IndexPack>();
        var repack = new List<IndexPack>();
        var covered = new HashSet<ContentId>();
        foreach (var p in packs.Values.OrderBy(p => p.Id, StringComparer.Ordinal))
        {
            if (!stored.ContainsKey(p.Id))
            {
                continue; // missing pack: verify reports it; nothing to delete
            }
            long usedBytes = 0;
            var usefulHere = 0;
            foreach (var b in p.Blobs)
            {
                var id = ContentId.Parse(b.Id);
                if (used.Contains(id) && !covered.Contains(id))
                {
                    usedBytes += b.Length;
                    usefulHere++;
                }
            }
            if (usefulHere == 0)
            {
                delete.Add(p);
            }
            else if (usedBytes < p.Size * RepackBelowUsedShare)
            {
                repack.Add(p);
                foreach (var b in p.Blobs)
                {
                    var id = ContentId.Parse(b.Id);
                    if (used.Contains(id))
                    {
                        covered.Add(id);
                    }
                }
            }
            else
            {
                keep.Add(p);
                foreach (var b in p.Blobs)
                {
                    var id = ContentId.Parse(b.Id);
                    if (used.Contains(id))
                    {
                        covered.Add(id);
                    }
                }
            }
        }
        var orphans = stored.Keys.Where(k => !packs.ContainsKey(k)).ToList();
        var locked = new List<LockedObject>();
        // Counted before locked indexes leave the list: locked indexes do not stop a new index being written (they stay
        // beside it, superseded, and go once their locks run out), or a repository whose indexes are all locked and
        // renewed would never consolidate them, nor free the packs they list.
        var indexCount = indexes.Count;
        if (ObjectLocks.Of(storage) is { } locks)
        {
            var planned = delete.Count > 0 || repack.Count > 0 || orphans.Count > 0 || indexCount > 1;
            await LeaveLockedAsync(locks, planned, indexes, listedBy, delete, repack, keep, orphans, locked, cancellationToken).ConfigureAwait(false);
        }
        var deletedObjects = new List<string>();
        deletedObjects.AddRange(delete.Select(p => new StorageKey(ObjectKind.Data, p.Id).Path));
        deletedObjects.AddRange(repack.Select(p => new StorageKey(ObjectKind.Data, p.Id).Path));
        deletedObjects.AddRange(orphans.Select(o => new StorageKey(ObjectKind.Data, o).Path));
        var bytesDeleted = delete.Sum(p => p.Size) + orphans.Sum(o => stored[o]);
        var nothingToDo = delete.Count == 0 && repack.Count == 0 && orphans.Count == 0 && indexCount <= 1;
        var temp = 0;
        if (storage is ICleanableStorage cleanable)
        {
            temp = await cleanable.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: true, cancellationToken).ConfigureAwait(false);
        }
        if (dryRun || nothingToDo)
        {
            if (!dryRun && temp > 0 && storage is ICleanableStorage c)
            {
                await c.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, cancellationToken).ConfigureAwait(false);
            }
            return new PruneReport(dryRun, stored.Count, delete.Count + orphans.Count, repack.Count, 0, bytesDeleted, keep.Sum(p => p.Size), nothingToDo ? 0 : indexes.Count, orphans.Count, temp, deletedObjects)
            {
                Locked = locked,
                Needed = NeededOf([.. keep, .. repack], listedBy),
            };
        }

        // 1. Repack the used blobs of mostly-unused packs.
        var written = new List<IndexPack>();
        if (repack.Count > 0)
        {
            written.AddRange(await RepackAsync(repack, used, cancellationToken).ConfigureAwait(false));
        }
        // 2. One index for everything kept.
        var newIndex = new IndexFile { Packs = [.. keep, .. written], Supersedes = indexes };
        var newIndexName = await repo.PutObjectAsync(ObjectKind.Index, JsonSerializer.SerializeToUtf8Bytes(newIndex, RepositoryJson.Default.IndexFile), cancellationToken).ConfigureAwait(false);
        // 3. Old indexes, 4. packs nothing needs, 5. temp files.
        // An object locked since the check above (a pin extended it) stays, and so does every pack an index that stays lists.
        var stillListed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var i in indexes)
        {
            var key = new StorageKey(ObjectKind.Index, i);
            if (await storage.DeleteUnlessLockedAsync(key, cancellationToken).ConfigureAwait(false) is { } until)
            {
                locked.Add(new LockedObject(key.Path, until));
                stillListed.UnionWith(listedBy[i]);
            }
        }
        foreach (var id in delete.Concat(repack).Select(p => p.Id).Concat(orphans).Where(id => !stillListed.Contains(id)))
        {
            var key = new StorageKey(ObjectKind.Data, id);
            if (await storage.DeleteUnlessLockedAsync(key, cancellationToken).ConfigureAwait(false) is { } until)
            {
                locked.Add(new LockedObject(key.Path, until));
                deletedObjects.Remove(key.Path);
            }
        }
        if (storage is ICleanableStorage cl)
        {
            await cl.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, cancellationToken).ConfigureAwait(false);
        }
        await repo.LoadIndexAsync(cancellationToken).ConfigureAwait(false);
        return new PruneReport(false, stored.Count, delete.Count + orphans.Count, repack.Count, written.Count, bytesDeleted + repack.Sum(p => p.Size) - written.Sum(p => p.Size), keep.Sum(p => p.Size) + written.Sum(p => p.Size), indexes.Count, orphans.Count, temp, deletedObjects)
        {
            Locked = locked,
            Needed = [.. keep.Concat(written).Select(p => new StorageKey(ObjectKind.Data, p.Id)), new StorageKey(ObjectKind.Index, newIndexName)],
        };
    }

    /// <summary>The packs and every index file that names one of them (nothing new was written: no index covers them all).</summary>
    private static List<StorageKey> NeededOf(List<IndexPack> packs, Dictionary<string, List<string>> listedBy)
    {
        var ids = packs.Select(p => p.Id).ToHashSet(StringComparer.Ordinal);
        return [.. ids.Order(StringComparer.Ordinal).Select(id => new StorageKey(ObjectKind.Data, id)),
            .. listedBy.Where(i => i.Value.Any(ids.Contains)).Select(i => new StorageKey(ObjectKind.Index, i.Key))];
    }

    /// <summary>
    /// S3 Object Lock: what is still retained is left, before anything is planned around deleting it. A locked index
    /// stays current (the new index does not supersede it) and no pack it lists goes; a locked pack that would have been
    /// repacked is kept as it is; a locked unused pack stays for a later prune.
    /// </summary>
    private static async Task LeaveLockedAsync(IObjectLockStorage locks, bool planned, List<string> indexes, Dictionary<string, List<string>> listedBy, List<IndexPack> delete, List<IndexPack> repack, List<IndexPack> keep, List<string> orphans, List<LockedObject> locked, CancellationToken cancellationToken)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        // When prune would change nothing, no index is going anywhere: none is "left because locked".
        foreach (var i in planned ? indexes.ToList() : [])
        {
            var key = new StorageKey(ObjectKind.Index, i);
            if (await locks.LockedUntilAsync(key, cancellationToken).ConfigureAwait(false) is { } until)
            {
                locked.Add(new LockedObject(key.Path, until));
                indexes.Remove(i);
                listed.UnionWith(listedBy[i]);
            }
        }
        async Task<bool> LockedAsync(string pack)
        {
            var key = new StorageKey(ObjectKind.Data, pack);
            if (await locks.LockedUntilAsync(key, cancellationToken).ConfigureAwait(false) is not { } until)
            {
                return false;
            }
            locked.Add(new LockedObject(key.Path, until));
            return true;
        }
        foreach (var p in repack.ToList())
        {
            if (listed.Contains(p.Id) || await LockedAsync(p.Id).ConfigureAwait(false))
            {
                repack.Remove(p);
                keep.Add(p);
            }
        }
        foreach (var p in delete.ToList())
        {
            if (listed.Contains(p.Id) || await LockedAsync(p.Id).ConfigureAwait(false))
            {
                delete.Remove(p);
            }
        }
        foreach (var o in orphans.ToList())
        {
            if (await LockedAsync(o).ConfigureAwait(false))
            {
                orphans.Remove(o);
            }
        }
    }

    private async Task<List<IndexPack>> RepackAsync(List<IndexPack> sources, HashSet<ContentId> used, CancellationToken cancellationToken)
    {
        var result = new List<IndexPack>();
        PackBuilder? pack = null;
        var copied = new HashSet<ContentId>();
        foreach (var p in sources)
        {
            var bytes = await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Data, p.Id), cancellationToken).ConfigureAwait(false);
            foreach (var b in p.Blobs)
            {
                var id = ContentId.Parse(b.Id);
                if (!used.Contains(id) || !copied.Add(id))
                {
                    continue;
                }
                var sealedBlob = bytes.AsSpan((int)b.Offset, b.Length);
                // Authenticate before copying: prune must never spread damage into a new pack.
                repo.DecodeBlob(id, sealedBlob, b.RawLength, p.Id);
                pack ??= new PackBuilder(repo.Config.PackSize + (4 * 1024 * 1024));
                pack.Add(id, sealedBlob, b.RawLength);
                if (pack.Length >= repo.Config.PackSize)
                {
                    result.Add(await StoreAsync(pack, cancellationToken).ConfigureAwait(false));
                    pack = null;
                }
            }
        }
        if (pack is { Count: > 0 })
        {
            result.Add(await StoreAsync(pack, cancellationToken).ConfigureAwait(false));
        }
        return result;
    }

    private async Task<IndexPack> StoreAsync(PackBuilder pack, CancellationToken cancellationToken)
    {
        var (id, bytes, index) = pack.Finish(repo.Aead);
        await repo.Storage.PutAsync(new StorageKey(ObjectKind.Data, id.ToHex()), bytes, cancellationToken).ConfigureAwait(false);
        return index;
    }
}
