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

    /// <summary>The object a WAL file is stored as (<c>DATABASE@WALFILE</c>); the one place that name is built.</summary>
    public string ObjectName(string walFile) => $"{Database}@{walFile}";

    private StorageKey KeyOf(string walFile) => new(ObjectKind.Named, ObjectName(walFile));

    /// <summary>Where <paramref name="walFile"/> lives in the repository, for findings and messages.</summary>
    public string ObjectPath(string walFile) => KeyOf(walFile).Path;

    private Repository.Repository Repository => _repository
        ?? throw new InvalidOperationException("the WAL archive was opened without the repository key; reading or writing WAL needs it");

    /// <summary>Archives a WAL file. Identical content archived again succeeds; different content under the same name is refused.</summary>
    public Task<NamedPutResult> PutFileAsync(string path, CancellationToken cancellationToken)
        => NamedFiles.PutFileAsync(Repository, ObjectName(Checked(Path.GetFileName(path))), path, cancellationToken);

    /// <summary>Archives WAL content held in memory (tests and tools).</summary>
    public Task<NamedPutResult> PutAsync(string walFile, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        => NamedFiles.PutAsync(Repository, ObjectName(Checked(walFile)), data, cancellationToken);

    /// <summary>The content of an archived WAL file, authenticated and checked against its hash.</summary>
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
    /// Every database's archived WAL files from one listing of <c>wal/</c> (database → files in name order): what
    /// <c>check</c> needs for every configured database, without listing a large archive once per database.
    /// </summary>
    public static async Task<Dictionary<string, List<WalObject>>> ListByDatabaseAsync(IStorage storage, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, List<WalObject>>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(ObjectKind.Named, cancellationToken).ConfigureAwait(false))
        {
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
        return result;
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

    /// <summary>Segments missing on recovery's path from <paramref name="startWal"/> to the newest archived segment, across timeline switches.</summary>
    public async Task<List<string>> MissingAsync(string startWal, CancellationToken cancellationToken)
    {
        var archived = await ListAsync(cancellationToken).ConfigureAwait(false);
        return WalContinuity.Missing(archived.Select(w => w.Name), startWal, await HistoriesAsync(archived, cancellationToken).ConfigureAwait(false));
    }

    private static string Checked(string walFile) => WalNames.IsValid(walFile)
        ? walFile
        : throw new RepositoryException(ErrorKind.InvalidInput, $"'{walFile}' is not a WAL file name");
}
