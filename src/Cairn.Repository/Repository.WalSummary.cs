using System.Text.Json;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// Storing and reading the WAL summary (docs/repository-format.md, "WAL summary"). What a summary says and how it is used
/// with the listing is <c>WalSummaries</c>' (Cairn.Operations): this is the sealed object only.
/// </summary>
public sealed partial class Repository
{
    /// <summary>Stores <paramref name="summary"/> and then deletes the summaries <paramref name="superseded"/> (not on an append-only storage).</summary>
    public async Task<string> PutWalSummaryAsync(WalSummaryFile summary, IReadOnlyCollection<string> superseded, CancellationToken cancellationToken)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(summary, RepositoryJson.Default.WalSummaryFile);
        var sealedBytes = Aead.Seal(Compression.Zstd.Compress(json, 3), Aead.WalSummaryContext);
        var name = ContentId.Sha256(sealedBytes).ToHex();
        var key = new StorageKey(ObjectKind.WalSummary, name);
        // Content-addressed: an object already under the name holds these very bytes.
        if (await Storage.StatAsync(key, cancellationToken).ConfigureAwait(false) is null)
        {
            await Storage.PutAsync(key, sealedBytes, cancellationToken).ConfigureAwait(false);
        }
        if (!AppendOnlyStorage.Is(Storage))
        {
            foreach (var old in superseded.Where(o => o != name))
            {
                await Storage.DeleteAsync(new StorageKey(ObjectKind.WalSummary, old), cancellationToken).ConfigureAwait(false);
            }
        }
        return name;
    }

    /// <summary>The names of the stored WAL summaries (a writer supersedes them).</summary>
    public async Task<List<string>> ListWalSummariesAsync(CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.WalSummary, cancellationToken).ConfigureAwait(false))
        {
            names.Add(o.Key.Name);
        }
        return names;
    }

    /// <summary>
    /// The newest WAL summary that opens under its own name and parses (newest by when it was written, then by name), or
    /// null when there is none; <paramref name="onIgnored"/> hears of each one skipped and why. The caller checks what it
    /// says (names, runs) and may reject it still. Writes nothing.
    /// </summary>
    public async Task<WalSummaryFile?> ReadNewestWalSummaryAsync(Action<string>? onIgnored, CancellationToken cancellationToken)
    {
        var objects = new List<ObjectInfo>();
        await foreach (var o in Storage.ListAsync(ObjectKind.WalSummary, cancellationToken).ConfigureAwait(false))
        {
            objects.Add(o);
        }
        WalSummaryFile? best = null;
        foreach (var o in objects)
        {
            var what = $"WAL summary {ObjectNames.Short(o.Key.Name)}";
            try
            {
                var bytes = await Storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false);
                var file = CheckedSummary(StoredJson.Decode(OpenObject(bytes, Aead.WalSummaryContext, what, o.Key.Name), RepositoryJson.Default.WalSummaryFile, what), what);
                if (best is null || file.Written > best.Written)
                {
                    best = file;
                }
            }
            catch (ObjectNotFoundException)
            {
                // superseded and deleted by a writer since it was listed
            }
            catch (DataDamagedException e)
            {
                onIgnored?.Invoke($"{what} is not used ({e.Message}); wal/ was listed instead");
            }
        }
        return best;
    }

    private static WalSummaryFile CheckedSummary(WalSummaryFile f, string what)
    {
        if (f.Version != 1)
        {
            throw new DataDamagedException($"{what} has version {f.Version}; this Cairn reads version 1");
        }
        if (f.Databases is null || f.Databases.Any(d => d is null || string.IsNullOrEmpty(d.Database) || d.Through is null || d.Runs is null || d.Files is null
            || d.Runs.Any(r => r is null || r.First is null || r.Last is null) || d.Files.Any(n => n is null)
            || d.Newest is { } n && (n.Name is null || n.Size < 0)))
        {
            throw new DataDamagedException($"{what} breaks the format (a null field, an empty database name or a negative size)");
        }
        if (f.Databases.Select(d => d.Database).Distinct(StringComparer.Ordinal).Count() != f.Databases.Count)
        {
            throw new DataDamagedException($"{what} names a database twice");
        }
        return f;
    }
}
