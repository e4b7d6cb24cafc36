using System.Text;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Physical;

/// <summary>One archived WAL file of a database: its PostgreSQL name, stored size and when it was archived.</summary>
public sealed record WalObject(string Name, long Size, DateTimeOffset LastModified)
{
    public bool IsSegment => WalNames.IsSegment(Name);
}

/// <summary>Where a database's WAL listing starts: at <paramref name="WalFile"/> (inclusive) or after it.</summary>
public sealed record WalListStart(string WalFile, bool Inclusive)
{
    public static WalListStart From(string walFile) => new(walFile, true);

    public static WalListStart After(string walFile) => new(walFile, false);
}

/// <summary>
/// The archived WAL of one database: the only owner of how WAL is stored (objects named <c>DATABASE@WALFILE</c>,
/// sealed whole by <see cref="NamedFiles"/>). Put never replaces different content; listing, the newest segment
/// and deletion need only the storage, reading and writing content need the open repository.
/// </summary>
public sealed class WalArchive
{
    private readonly IStorage _storage;
    private readonly Repository.Repository? _repository;

    /// <summary>The archive of <paramref name="database"/> in an open repository (everything).</summary>
    public WalArchive(Repository.Repository repository, string database)
        : this(repository.Storage, database) => _repository = repository;

    /// <summary>The archive of <paramref name="database"/> on a storage, without the key (list, exists, delete, newest).</summary>
    public WalArchive(IStorage storage, string database)
    {
        _storage = storage;
        Database = database;
    }

    public string Database { get; }

    /// <summary>The zstd level WAL is stored at (<c>wal: { compression: zstd:N }</c>); reading needs no level.</summary>
    public int CompressionLevel { get; init; } = NamedFiles.DefaultLevel;

    /// <summary>The object a WAL file is stored as (<c>DATABASE@WALFILE</c>); the one place that name is built.</summary>
    public string ObjectName(string walFile) => $"{Database}@{walFile}";

    private StorageKey KeyOf(string walFile) => new(ObjectKind.Named, ObjectName(walFile));

    /// <summary>Where <paramref name="walFile"/> lives in the repository, for findings and messages.</summary>
    public string ObjectPath(string walFile) => KeyOf(walFile).Path;

    private Repository.Repository Repository => _repository
        ?? throw new InvalidOperationException("the WAL archive was opened without the repository key; reading or writing WAL needs it");

    /// <summary>Archives a WAL file. Identical content archived again succeeds; different content under the same name is refused.</summary>
    public Task<NamedPutResult> PutFileAsync(string path, CancellationToken cancellationToken)
        => NamedFiles.PutFileAsync(Repository, ObjectName(Checked(Path.GetFileName(path))), path, CompressionLevel, cancellationToken);

    /// <summary>Archives WAL content held in memory (tests and tools).</summary>
    public Task<NamedPutResult> PutAsync(string walFile, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        => NamedFiles.PutAsync(Repository, ObjectName(Checked(walFile)), data, CompressionLevel, cancellationToken);

    /// <summary>The content of an archived WAL file, authenticated and checked against its checksum.</summary>
    public Task<byte[]> GetAsync(string walFile, CancellationToken cancellationToken)
        => NamedFiles.GetAsync(Repository, ObjectName(Checked(walFile)), cancellationToken);

    /// <summary>Writes an archived WAL file to <paramref name="path"/> (never a partial or unauthenticated file).</summary>
    public Task GetToFileAsync(string walFile, string path, CancellationToken cancellationToken)
        => NamedFiles.GetToFileAsync(Repository, ObjectName(Checked(walFile)), path, cancellationToken);

    public async Task<bool> ExistsAsync(string walFile, CancellationToken cancellationToken)
        => await _storage.StatAsync(KeyOf(Checked(walFile)), cancellationToken).ConfigureAwait(false) is not null;

    public Task DeleteAsync(string walFile, CancellationToken cancellationToken) => _storage.DeleteAsync(KeyOf(Checked(walFile)), cancellationToken);

    /// <summary>Every archived WAL file of the database (segments, history files, backup labels), in name order.</summary>
    public async Task<List<WalObject>> ListAsync(CancellationToken cancellationToken)
    {
        var prefix = Database + "@";
        var result = new List<WalObject>();
        await foreach (var o in _storage.ListAsync(ObjectKind.Named, cancellationToken).ConfigureAwait(false))
        {
            if (o.Key.Name.StartsWith(prefix, StringComparison.Ordinal) && WalNames.IsValid(o.Key.Name[prefix.Length..]))
            {
                result.Add(new WalObject(o.Key.Name[prefix.Length..], o.Size, o.LastModified));
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    /// <summary>
    /// The archived files of the database from <paramref name="fromWal"/> on, in name order: the segments at and after
    /// it on its timeline, and every later timeline's segments and history file (all recovery from a backup that starts
    /// there can read). One listing that starts at the name and stops after the database's last object, so checking the
    /// WAL of a recent backup costs the WAL after it, not the whole archive; never a cache: what is listed now.
    /// </summary>
    public Task<List<WalObject>> ListFromAsync(string fromWal, CancellationToken cancellationToken)
        // A proper prefix of the name sorts just before it; the few names it lets in before fromWal are harmless.
        => ListAfterNameAsync(Checked(fromWal)[..^1], cancellationToken);

    /// <summary>The archived files of the database whose names sort after <paramref name="walFile"/>, in name order (what was archived since a WAL summary).</summary>
    public Task<List<WalObject>> ListAfterAsync(string walFile, CancellationToken cancellationToken) => ListAfterNameAsync(Checked(walFile), cancellationToken);

    private async Task<List<WalObject>> ListAfterNameAsync(string after, CancellationToken cancellationToken)
    {
        var prefix = Database + "@";
        var startAfter = prefix + after;
        var result = new List<WalObject>();
        await foreach (var o in _storage.ListAsync(ObjectKind.Named, startAfter, cancellationToken).ConfigureAwait(false))
        {
            if (!o.Key.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                break; // names are listed in order: the database's objects are behind us
            }
            if (WalNames.IsValid(o.Key.Name[prefix.Length..]))
            {
                result.Add(new WalObject(o.Key.Name[prefix.Length..], o.Size, o.LastModified));
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return result;
    }

    /// <summary>
    /// The archived files of several databases, each from its own start (<see cref="WalListStart"/>), in one request to
    /// the storage (<see cref="IStorage.ListRangesAsync"/>): a folder reads its names once for every database, not once
    /// each. Database → files in name order; a database with nothing after its start has an empty list. What is listed
    /// now, never a cache.
    /// </summary>
    public static async Task<Dictionary<string, List<WalObject>>> ListFromByDatabaseAsync(IStorage storage, IReadOnlyDictionary<string, WalListStart> starts,
        CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, List<WalObject>>(StringComparer.Ordinal);
        var ranges = new Dictionary<string, NameRange>(StringComparer.Ordinal);
        foreach (var (db, start) in starts)
        {
            var archive = new WalArchive(storage, db);
            // From a WAL file on: a proper prefix of its name sorts just before it (as in ListFromAsync).
            var after = start.Inclusive ? Checked(start.WalFile)[..^1] : Checked(start.WalFile);
            ranges[db] = new NameRange(archive.ObjectName(""), archive.ObjectName(after));
            result[db] = [];
        }
        if (ranges.Count == 0)
        {
            return result;
        }
        var seen = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in storage.ListRangesAsync(ObjectKind.Named, [.. ranges.Values], cancellationToken).ConfigureAwait(false))
        {
            var name = o.Key.Name;
            var at = name.LastIndexOf('@');
            // A database name may itself hold '@': an object belongs to the database before its last one, and only in that
            // database's range (another range whose prefix it also starts with does not make it that database's).
            if (at > 0 && ranges.TryGetValue(name[..at], out var range) && range.Contains(name) && WalNames.IsValid(name[(at + 1)..]) && seen.Add(name))
            {
                result[name[..at]].Add(new WalObject(name[(at + 1)..], o.Size, o.LastModified));
            }
        }
        foreach (var list in result.Values)
        {
            list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        }
        return result;
    }

    /// <summary>
    /// Every database's archived WAL files from one listing of <c>wal/</c> (database → files in name order): what
    /// <c>check</c>, <c>snapshots</c> and <c>verify</c> need for every database, without listing a large archive once per
    /// database.
    /// </summary>
    public static async Task<Dictionary<string, List<WalObject>>> ListByDatabaseAsync(IStorage storage, CancellationToken cancellationToken)
        => (await ListAllAsync(storage, cancellationToken).ConfigureAwait(false)).ByDatabase;

    /// <summary>
    /// <see cref="ListByDatabaseAsync"/> and the bytes every object of <c>wal/</c> occupies (valid WAL names or not): what
    /// <c>check</c> needs for the repository's size too, from the same single listing.
    /// </summary>
    public static async Task<(Dictionary<string, List<WalObject>> ByDatabase, long Bytes)> ListAllAsync(IStorage storage, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, List<WalObject>>(StringComparer.Ordinal);
        long bytes = 0;
        await foreach (var o in storage.ListAsync(ObjectKind.Named, cancellationToken).ConfigureAwait(false))
        {
            bytes += o.Size;
            var at = o.Key.Name.LastIndexOf('@');
            if (at > 0 && WalNames.IsValid(o.Key.Name[(at + 1)..]))
            {
                var db = o.Key.Name[..at];
                if (!result.TryGetValue(db, out var list))
                {
                    result[db] = list = [];
                }
                list.Add(new WalObject(o.Key.Name[(at + 1)..], o.Size, o.LastModified));
            }
        }
        foreach (var list in result.Values)
        {
            list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        }
        return (result, bytes);
    }

    /// <summary>The newest archived segment in WAL order (timeline, then position), with when it was archived; null when none is.</summary>
    public static WalObject? NewestSegment(IEnumerable<WalObject> archived) => archived.Where(w => w.IsSegment).MaxBy(w => w.Name, StringComparer.Ordinal);

    public async Task<WalObject?> NewestSegmentAsync(CancellationToken cancellationToken) => NewestSegment(await ListAsync(cancellationToken).ConfigureAwait(false));

    /// <summary>The archived timeline history files among <paramref name="archived"/> (timeline → content).</summary>
    public async Task<Dictionary<uint, string>> HistoriesAsync(IEnumerable<WalObject> archived, CancellationToken cancellationToken)
    {
        var result = new Dictionary<uint, string>();
        foreach (var h in archived.Where(w => w.Name.EndsWith(".history", StringComparison.Ordinal)))
        {
            var data = await GetAsync(h.Name, cancellationToken).ConfigureAwait(false);
            result[Convert.ToUInt32(h.Name[..8], 16)] = Encoding.UTF8.GetString(data);
        }
        return result;
    }

    /// <summary>
    /// Segments missing on recovery's path from <paramref name="startWal"/> to the newest archived segment, across timeline
    /// switches. Lists the archive as it is now from <paramref name="startWal"/> on (no cache: a segment deleted a moment
    /// ago is missing here).
    /// </summary>
    public async Task<List<string>> MissingAsync(string startWal, CancellationToken cancellationToken)
    {
        var archived = await ListFromAsync(startWal, cancellationToken).ConfigureAwait(false);
        return WalContinuity.Missing(archived.Select(w => w.Name), startWal, await HistoriesAsync(archived, cancellationToken).ConfigureAwait(false));
    }

    private static string Checked(string walFile) => WalNames.IsValid(walFile)
        ? walFile
        : throw new RepositoryException(ErrorKind.InvalidInput, $"'{walFile}' is not a WAL file name");
}
