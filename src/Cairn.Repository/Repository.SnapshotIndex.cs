using System.Text.Json;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// The snapshot index (docs/repository-format.md, "Snapshot index"): one object that summarises every manifest, so
/// listing a thousand backups reads one object instead of decrypting a thousand manifests. A cache only: the listing
/// of <c>snapshots/</c> decides what exists, and whatever the index lacks, or gets wrong, is read from the manifests.
/// </summary>
public sealed partial class Repository
{
    /// <summary>
    /// Every listed snapshot as a summary (no items; see <see cref="Snapshot.IsSummary"/>), oldest first: from the index
    /// where it covers the snapshot, else from the manifest (then a full snapshot). <paramref name="onDamaged"/> hears of
    /// each manifest that cannot be read, <paramref name="onIndexIgnored"/> of each index object that was not used.
    /// Writes nothing.
    /// </summary>
    public async Task<List<Snapshot>> ListSnapshotSummariesAsync(Action<string, Exception>? onDamaged, Action<string>? onIndexIgnored, CancellationToken cancellationToken)
    {
        var listed = await ListSnapshotIdsAsync(cancellationToken).ConfigureAwait(false);
        var (entries, _) = await ReadSnapshotIndexAsync(listed, readAll: false, onIndexIgnored, cancellationToken).ConfigureAwait(false);
        var result = new List<Snapshot>(listed.Count);
        foreach (var id in listed)
        {
            if (entries.TryGetValue(id, out var e))
            {
                result.Add(e.ToSnapshot());
                continue;
            }
            try
            {
                result.Add(await LoadSnapshotAsync(id, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception x) when (x is DataDamagedException or JsonException or ObjectNotFoundException)
            {
                onDamaged?.Invoke(id, x);
            }
        }
        result.Sort((a, b) => a.Manifest.Time.CompareTo(b.Manifest.Time) is var c && c != 0 ? c : string.CompareOrdinal(a.Id, b.Id));
        return result;
    }

    /// <summary>
    /// The full snapshot behind <paramref name="chosen"/> (a summary or not), or null when its manifest disagrees with
    /// the index entry it was chosen by (the caller then chooses again from the manifests).
    /// </summary>
    public async Task<Snapshot?> LoadChosenAsync(Snapshot chosen, CancellationToken cancellationToken)
    {
        if (!chosen.IsSummary)
        {
            return chosen;
        }
        var loaded = await LoadSnapshotAsync(chosen.Id, cancellationToken).ConfigureAwait(false);
        return SnapshotIndexEntry.Agrees(chosen, loaded) ? loaded : null;
    }

    /// <summary>
    /// After a manifest was committed (<paramref name="added"/>), or to bring the index up to date: writes one index
    /// object covering every listed snapshot, then deletes the index objects it read (not on an append-only storage).
    /// </summary>
    public async Task UpdateSnapshotIndexAsync(Snapshot? added, CancellationToken cancellationToken)
    {
        var listed = await ListSnapshotIdsAsync(cancellationToken).ConfigureAwait(false);
        var appendOnly = AppendOnlyStorage.Is(Storage);
        // A client that may delete reads every index object (normally one) so it can supersede them all; an append-only
        // one can delete none, so it reads only as many as cover the listing (the newest first).
        var (entries, read) = await ReadSnapshotIndexAsync(listed, readAll: !appendOnly, null, cancellationToken).ConfigureAwait(false);
        if (added is not null && listed.Contains(added.Id))
        {
            entries[added.Id] = SnapshotIndexEntry.Of(added);
        }
        foreach (var id in listed)
        {
            if (entries.ContainsKey(id))
            {
                continue;
            }
            try
            {
                entries[id] = SnapshotIndexEntry.Of(await LoadSnapshotAsync(id, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception x) when (x is DataDamagedException or JsonException or ObjectNotFoundException)
            {
                // A damaged manifest has no entry: readers read it themselves and report it.
            }
        }
        var file = new SnapshotIndexFile
        {
            Snapshots = [.. entries.Values.Where(e => listed.Contains(e.Id)).OrderBy(e => e.Time).ThenBy(e => e.Id, StringComparer.Ordinal)],
        };
        var json = JsonSerializer.SerializeToUtf8Bytes(file, RepositoryJson.Default.SnapshotIndexFile);
        var name = await PutIndexObjectAsync(json, cancellationToken).ConfigureAwait(false);
        if (appendOnly)
        {
            return;
        }
        foreach (var old in read.Where(r => r != name))
        {
            await Storage.DeleteAsync(new StorageKey(ObjectKind.SnapshotIndex, old), cancellationToken).ConfigureAwait(false);
        }
    }

    internal async Task<string> PutIndexObjectAsync(byte[] json, CancellationToken cancellationToken)
    {
        // Content-addressed: an object already under the name holds these very bytes (a plain put, since not every S3
        // server makes conditional writes, and an append-only client must not replace it).
        var compressed = Compression.Zstd.Compress(json, 3);
        var sealedBytes = Aead.Seal(compressed, Aead.SnapshotIndexContext);
        var name = ContentId.Sha256(sealedBytes).ToHex();
        var key = new StorageKey(ObjectKind.SnapshotIndex, name);
        if (await Storage.StatAsync(key, cancellationToken).ConfigureAwait(false) is null)
        {
            await Storage.PutAsync(key, sealedBytes, cancellationToken).ConfigureAwait(false);
        }
        return name;
    }

    private async Task<HashSet<string>> ListSnapshotIdsAsync(CancellationToken cancellationToken)
    {
        var listed = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in Storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            listed.Add(o.Key.Name);
        }
        return listed;
    }

    /// <summary>
    /// The entries of the index objects for listed snapshots (newest object first; the first entry of an ID wins), and
    /// the names of the objects read. Unreadable objects are skipped (<paramref name="onIgnored"/> hears why).
    /// </summary>
    private async Task<(Dictionary<string, SnapshotIndexEntry> Entries, List<string> Read)> ReadSnapshotIndexAsync(HashSet<string> listed, bool readAll, Action<string>? onIgnored,
        CancellationToken cancellationToken)
    {
        var objects = new List<ObjectInfo>();
        await foreach (var o in Storage.ListAsync(ObjectKind.SnapshotIndex, cancellationToken).ConfigureAwait(false))
        {
            objects.Add(o);
        }
        objects.Sort((a, b) => b.LastModified.CompareTo(a.LastModified) is var c && c != 0 ? c : string.CompareOrdinal(a.Key.Name, b.Key.Name));
        var entries = new Dictionary<string, SnapshotIndexEntry>(StringComparer.Ordinal);
        var read = new List<string>();
        foreach (var o in objects)
        {
            if (!readAll && entries.Count == listed.Count)
            {
                break;
            }
            var what = $"snapshot index {ObjectNames.Short(o.Key.Name)}";
            SnapshotIndexFile file;
            try
            {
                var bytes = await Storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false);
                read.Add(o.Key.Name);
                file = Checked(StoredJson.Decode(OpenObject(bytes, Aead.SnapshotIndexContext, what, o.Key.Name), RepositoryJson.Default.SnapshotIndexFile, what), what);
            }
            catch (ObjectNotFoundException)
            {
                continue; // superseded and deleted by a writer since it was listed
            }
            catch (DataDamagedException e)
            {
                onIgnored?.Invoke($"{what} is not used ({e.Message}); the manifests it covered were read instead, and the next backup writes a new index");
                continue;
            }
            foreach (var e in file.Snapshots)
            {
                if (listed.Contains(e.Id))
                {
                    entries.TryAdd(e.Id, e);
                }
            }
        }
        return (entries, read);
    }

    private static SnapshotIndexFile Checked(SnapshotIndexFile f, string what)
    {
        if (f.Version != 1)
        {
            throw new DataDamagedException($"{what} has version {f.Version}; this Cairn reads version 1");
        }
        if (f.Snapshots is null)
        {
            throw new DataDamagedException($"{what} has no snapshots list");
        }
        foreach (var e in f.Snapshots)
        {
            if (e is null || e.Id is null || e.Id.Length != 64 || !e.Id.All(char.IsAsciiHexDigitLower) || e.Name is null || e.Kind is null || e.Host is null
                || e.Meta is null || e.Meta.Values.Any(v => v is null) || e.Size < 0 || e.Items < 0)
            {
                throw new DataDamagedException($"{what} has an entry that breaks the format (ID not 64 lowercase hex digits, a null field or a negative size)");
            }
        }
        return f;
    }
}
