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

/// <summary>The master index: which pack holds each blob, loaded from every index object and kept current under a lock.</summary>
public sealed partial class Repository
{
    /// <summary>Reads every index object into memory. Damaged indexes are skipped here and reported by verify.</summary>
    public async Task LoadIndexAsync(CancellationToken cancellationToken)
    {
        _index.Clear();
        _indexFiles.Clear();
        _indexListed.Clear();
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            _indexListed.Add(o.Key.Name);
            IndexFile file;
            try
            {
                file = await ReadIndexAsync(o.Key.Name, cancellationToken).ConfigureAwait(false);
            }
            catch (DataDamagedException)
            {
                continue;
            }
            catch (ObjectNotFoundException)
            {
                continue;
            }
            _indexFiles.Add(o.Key.Name);
            AddToIndex(file);
        }
    }

    internal void AddToIndex(IndexFile file)
    {
        foreach (var p in file.Packs)
        {
            var pack = ContentId.Parse(p.Id);
            foreach (var b in p.Blobs)
            {
                _index.TryAdd(ContentId.Parse(b.Id), new BlobLocation(pack, b.Offset, b.Length, b.RawLength));
            }
        }
    }

    internal async Task<IndexFile> ReadIndexAsync(string name, CancellationToken cancellationToken)
    {
        var bytes = await Storage.GetAllAsync(new StorageKey(ObjectKind.Index, name), cancellationToken).ConfigureAwait(false);
        var json = OpenObject(bytes, Aead.IndexContext, $"index {ObjectNames.Short(name)}", name);
        var what = $"index {ObjectNames.Short(name)}";
        return StoredJson.Checked(StoredJson.Decode(json, RepositoryJson.Default.IndexFile, what), what);
    }

    /// <summary>Reloads the index when the set of index objects changed since it was loaded (indexes are immutable, so equal names mean equal content).</summary>
    public async Task RefreshIndexAsync(CancellationToken cancellationToken)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            names.Add(o.Key.Name);
        }
        if (!names.SetEquals(_indexListed))
        {
            await LoadIndexAsync(cancellationToken).ConfigureAwait(false);
        }
    }
}
