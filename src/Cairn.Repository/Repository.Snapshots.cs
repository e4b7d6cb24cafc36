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

/// <summary>Snapshots: listing, loading, finding by ID prefix (the storage-level lookup) and forgetting manifests.</summary>
public sealed partial class Repository
{
    public Task<List<Snapshot>> ListSnapshotsAsync(CancellationToken cancellationToken) => ListSnapshotsAsync(null, cancellationToken);

    /// <summary>Every readable snapshot, oldest first; <paramref name="onDamaged"/> hears of each manifest that cannot be read.</summary>
    public async Task<List<Snapshot>> ListSnapshotsAsync(Action<string, Exception>? onDamaged, CancellationToken cancellationToken)
    {
        var ids = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            ids.Add(o.Key.Name);
        }
        // Decrypting, decompressing and parsing a thousand manifests is CPU work: on every core (bench/scale.sh).
        var loaded = new Snapshot?[ids.Count];
        var gate = new object();
        await Parallel.ForEachAsync(Enumerable.Range(0, ids.Count), new ParallelOptions { MaxDegreeOfParallelism = Math.Max(2, Environment.ProcessorCount), CancellationToken = cancellationToken },
            async (i, ct) =>
            {
                try
                {
                    loaded[i] = await LoadSnapshotAsync(ids[i], ct).ConfigureAwait(false);
                }
                catch (Exception e) when (e is DataDamagedException or JsonException or ObjectNotFoundException)
                {
                    lock (gate)
                    {
                        onDamaged?.Invoke(ids[i], e);
                    }
                }
            }).ConfigureAwait(false);
        var result = loaded.OfType<Snapshot>().ToList();
        result.Sort((a, b) => a.Manifest.Time.CompareTo(b.Manifest.Time) is var c && c != 0 ? c : string.CompareOrdinal(a.Id, b.Id));
        return result;
    }

    public async Task<Snapshot> LoadSnapshotAsync(string id, CancellationToken cancellationToken)
    {
        var bytes = await Storage.GetAllAsync(new StorageKey(ObjectKind.Snapshot, id), cancellationToken).ConfigureAwait(false);
        var json = OpenObject(bytes, Aead.SnapshotContext, $"manifest {ObjectNames.Short(id)}", id);
        var what = $"manifest {ObjectNames.Short(id)}";
        var m = StoredJson.Checked(StoredJson.Decode(json, RepositoryJson.Default.Manifest, what), what);
        return new Snapshot(id, m);
    }

    /// <summary>Finds a snapshot by full ID or unique prefix.</summary>
    public async Task<Snapshot> FindSnapshotAsync(string idOrPrefix, CancellationToken cancellationToken)
    {
        var matches = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            if (o.Key.Name.StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase))
            {
                matches.Add(o.Key.Name);
            }
        }
        return matches.Count switch
        {
            0 => throw new RepositoryException(ErrorKind.NotFound, $"no snapshot {idOrPrefix}; list them with 'cairn repo ls'"),
            1 => await LoadSnapshotAsync(matches[0], cancellationToken).ConfigureAwait(false),
            _ => throw new RepositoryException(ErrorKind.InvalidInput, $"snapshot prefix {idOrPrefix} is ambiguous ({matches.Count} match); give more characters"),
        };
    }

    /// <summary>Removes a manifest. Its data stays until <c>prune</c>.</summary>
    public Task ForgetAsync(Snapshot snapshot, CancellationToken cancellationToken)
        => Storage.DeleteAsync(new StorageKey(ObjectKind.Snapshot, snapshot.Id), cancellationToken);
}
