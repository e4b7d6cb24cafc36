using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

public sealed partial class Repository
{
    /// <summary>
    /// Every object a restore of <paramref name="snapshot"/> reads: the config, the keys, its manifest, the packs that hold
    /// its chunks and the index files that list those packs (WAL is the caller's: it knows which segments a backup needs).
    /// What <c>cairn pin</c> extends the S3 Object Lock of.
    /// </summary>
    public async Task<IReadOnlyList<StorageKey>> ObjectsOfAsync(Snapshot snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        var chunks = snapshot.Manifest.Items.SelectMany(i => i.ReferencedBlobs).ToHashSet(StringComparer.Ordinal);
        var keys = new List<StorageKey> { StorageKey.Config, new(ObjectKind.Snapshot, snapshot.Id) };
        await foreach (var o in Storage.ListAsync(ObjectKind.Key, cancellationToken).ConfigureAwait(false))
        {
            keys.Add(o.Key);
        }
        var packs = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            var file = await ReadIndexAsync(o.Key.Name, cancellationToken).ConfigureAwait(false);
            var needed = file.Packs.Where(p => p.Blobs.Any(b => chunks.Contains(b.Id))).Select(p => p.Id).ToList();
            if (needed.Count > 0)
            {
                keys.Add(o.Key);
                packs.UnionWith(needed);
            }
        }
        keys.AddRange(packs.Order(StringComparer.Ordinal).Select(p => new StorageKey(ObjectKind.Data, p)));
        return keys;
    }
}
