namespace Cairn.Repository.Storage;

/// <summary>The kinds of object a repository stores; each maps to a folder or key prefix.</summary>
public enum ObjectKind
{
    Config,
    Key,
    Data,
    Index,
    Snapshot,
    Lock,

    /// <summary>Files stored whole under their own name (PostgreSQL WAL segments and history files).</summary>
    Named,

    /// <summary>The erasure ledger: one sealed object per erasure, append-only, never pruned (docs/repository-format.md).</summary>
    Ledger,
    /// <summary>Holds on snapshots (<c>pins/&lt;snapshot ID&gt;</c>): a pinned snapshot is never pruned.</summary>
    Pin,

    /// <summary>The evidence log published into the repository (<c>evidence/</c>): sealed pieces named by path and SHA-256, and clear-text publications (<c>EvidencePublication</c>).</summary>
    Evidence,
    /// <summary>The snapshot index: a cache of every manifest's summary (docs/repository-format.md, "Snapshot index").</summary>
    SnapshotIndex,
    /// <summary>Incidents (<c>incidents/&lt;ID&gt;.state.&lt;n&gt;</c>, <c>incidents/&lt;ID&gt;.forensics</c>): sealed, create-only (docs/repository-format.md, "Incidents").</summary>
    Incident,
    /// <summary>The WAL summary: a cache of which WAL files <c>wal/</c> held (docs/repository-format.md, "WAL summary").</summary>
    WalSummary,
}

/// <summary>Addresses one stored object. <see cref="Name"/> is a plain file name without slashes.</summary>
public readonly record struct StorageKey(ObjectKind Kind, string Name)
{
    public static readonly StorageKey Config = new(ObjectKind.Config, "config");

    /// <summary>The object's path relative to the repository root, e.g. <c>data/3f/3f…</c>.</summary>
    public string Path => Kind switch
    {
        ObjectKind.Config => "config",
        ObjectKind.Data => FolderOf(Kind) + "/" + Name[..Math.Min(2, Name.Length)] + "/" + Name, // a listed name may be shorter than an ID
        _ => FolderOf(Kind) + "/" + Name,
    };

    /// <summary>The folder (or key prefix) that holds objects of <paramref name="kind"/>; the one place the layout is named.</summary>
    public static string FolderOf(ObjectKind kind) => kind switch
    {
        ObjectKind.Key => "keys",
        ObjectKind.Data => "data",
        ObjectKind.Index => "index",
        ObjectKind.Snapshot => "snapshots",
        ObjectKind.Lock => "locks",
        ObjectKind.Named => "wal",
        ObjectKind.Ledger => "ledger",
        ObjectKind.Pin => "pins",
        ObjectKind.Evidence => "evidence",
        ObjectKind.SnapshotIndex => "snapshot-index",
        ObjectKind.Incident => "incidents",
        ObjectKind.WalSummary => "wal-summary",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public override string ToString() => Path;

    /// <summary>
    /// The order of names in a listing with a start: the ordinal order of their UTF-8 bytes (Unicode code point order),
    /// which is S3's key order. It differs from <see cref="string.CompareOrdinal(string, string)"/> (UTF-16 code units)
    /// only where a character above U+FFFF meets one in U+E000–U+FFFF.
    /// </summary>
    public static int CompareNames(string a, string b)
    {
        var n = Math.Min(a.Length, b.Length);
        for (var i = 0; i < n; i++)
        {
            var x = a[i];
            var y = b[i];
            if (x != y)
            {
                return CodePointOrder(x) - CodePointOrder(y);
            }
        }
        return a.Length - b.Length;
    }

    /// <summary>Moves surrogates above U+E000–U+FFFF so UTF-16 code units compare as code points do (ICU's fix-up).</summary>
    private static int CodePointOrder(char c) => c < 0xD800 ? c : c >= 0xE000 ? c - 0x800 : c + 0x2000;
}

/// <summary>
/// What <see cref="IStorage.StatAsync"/> and <see cref="IStorage.ListAsync"/> report. Every backend fills
/// <see cref="LastModified"/> (the time the object was stored, UTC), so nothing above the interface needs the
/// file system behind it (WAL freshness and the recovery window read it).
/// </summary>
public readonly record struct ObjectInfo(StorageKey Key, long Size, DateTimeOffset LastModified);

/// <summary>Thrown when an object does not exist. Permanent: retrying does not help.</summary>
public sealed class ObjectNotFoundException(StorageKey key)
    : IOException($"object {key.Path} does not exist in the repository")
{
    public StorageKey Key { get; } = key;
}

/// <summary>
/// The storage a repository lives on. Kept tiny on purpose: every backend (folder, S3, in-memory,
/// fault-injecting) implements only this, and retry/limits/logging wrap it as decorators.
/// </summary>
/// <remarks>
/// Contract (every backend MUST pass <c>StorageConformanceTests</c>):
/// <list type="bullet">
/// <item><see cref="PutAsync"/> is atomic: a concurrent or later reader sees either the whole new
/// object or no object; never a prefix. A failed or cancelled put leaves no object under the key.
/// Putting an existing key replaces it atomically (used only for lock refresh).</item>
/// <item>Read-after-write: once <see cref="PutAsync"/> returned, <see cref="GetAsync"/>,
/// <see cref="StatAsync"/> and <see cref="ListAsync"/> see the object.</item>
/// <item><see cref="GetAsync"/> returns exactly the bytes of the requested range; a range past the
/// end returns the bytes that exist (callers compare lengths to detect truncation). A missing object
/// throws <see cref="ObjectNotFoundException"/>, which is permanent; other <see cref="IOException"/>s
/// may be transient.</item>
/// <item><see cref="PutIfAbsentAsync"/> creates an object only when none exists under the key, as one
/// atomic step: of any number of concurrent creators of one key (in any process, on any host) exactly
/// one returns true and its bytes are what every later read sees; the others return false and change
/// nothing. It is what makes "first archiver wins, a different file under the same name is refused"
/// hold for <c>wal/</c>. A backend MUST implement it with a primitive the storage itself makes atomic
/// (link(2) or renameat2(RENAME_NOREPLACE) on a file system, a conditional write such as S3's
/// <c>If-None-Match: *</c>). A backend that has no such primitive MUST throw
/// <see cref="NotSupportedException"/> naming what is missing; it MUST NOT emulate the call with a
/// stat followed by a put, which lets two creators both succeed and the later one replace the
/// earlier one's bytes.</item>
/// <item><see cref="DeleteAsync"/> of a missing object succeeds (delete is idempotent).</item>
/// <item><see cref="ListAsync"/> lists only complete objects of one kind (no temp files). Without a start, in any
/// order. With <c>startAfter</c>, only the objects whose name sorts after it, in ascending name order (the ordinal
/// order of the names' UTF-8 bytes, as S3's ListObjectsV2 <c>start-after</c> orders keys; see
/// <see cref="StorageKey.CompareNames"/>): a caller that wants one name prefix from a point on stops reading at the
/// first name past the prefix, and a backend that can seek (S3) reads no more than that. Some S3-compatible servers
/// misorder a name and a longer name it is a prefix of, so such a caller sorts the names of its prefix itself.</item>
/// <item><see cref="ObjectInfo.LastModified"/> is the time of the put that stored the object, in UTC.</item>
/// </list>
/// </remarks>
public interface IStorage
{
    /// <summary>A human-readable location, e.g. a path or a bucket URL without credentials.</summary>
    string Location { get; }

    Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Creates the object unless one exists under <paramref name="key"/>; true when this call created it (see the contract above).</summary>
    Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken);

    /// <summary>Reads <paramref name="length"/> bytes from <paramref name="offset"/>; a negative length reads to the end.</summary>
    Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken);

    /// <summary>Size of an object, or null when it does not exist.</summary>
    Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken);

    /// <summary>
    /// The objects of <paramref name="kind"/>; with <paramref name="startAfter"/> only those named after it, in name
    /// order (see the contract above). Null lists every object, in any order.
    /// </summary>
    IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, CancellationToken cancellationToken);

    /// <summary>
    /// The objects of <paramref name="kind"/> in any of <paramref name="ranges"/> (named with the range's prefix and sorting
    /// after its start): the tails of several databases' WAL in one request. A backend that must read every name to list
    /// from a start (a folder) reads them once for all ranges instead of once per range; one that can seek (S3) lists each
    /// range from its start, which is the default. In no particular order; an object in two ranges may come twice.
    /// </summary>
    IAsyncEnumerable<ObjectInfo> ListRangesAsync(ObjectKind kind, IReadOnlyList<NameRange> ranges, CancellationToken cancellationToken)
        => StorageExtensions.ListRangesOneByOneAsync(this, kind, ranges, cancellationToken);

    Task DeleteAsync(StorageKey key, CancellationToken cancellationToken);
}

/// <summary>
/// Optional ability: read a range into the caller's buffer instead of a new array (restores read megabyte ranges of
/// packs into pooled buffers). Same contract as <see cref="IStorage.GetAsync"/>: the bytes that exist (fewer at the
/// object's end, none past it), <see cref="ObjectNotFoundException"/> when the object does not exist.
/// </summary>
public interface IRangeReadStorage
{
    /// <summary>Reads up to <paramref name="destination"/>'s length from <paramref name="offset"/>; returns how many bytes were read.</summary>
    Task<int> ReadRangeAsync(StorageKey key, long offset, Memory<byte> destination, CancellationToken cancellationToken);
}

/// <summary>Optional ability: remove garbage a crashed writer left behind (temp files).</summary>
public interface ICleanableStorage
{
    /// <summary>Removes leftovers older than <paramref name="olderThan"/>; returns how many were removed.</summary>
    Task<int> RemoveLeftoversAsync(TimeSpan olderThan, bool dryRun, CancellationToken cancellationToken);
}

/// <summary>The names that start with <paramref name="Prefix"/> and sort after <paramref name="StartAfter"/> (which starts with the prefix).</summary>
public sealed record NameRange
{
    public NameRange(string prefix, string startAfter)
    {
        if (!startAfter.StartsWith(prefix, StringComparison.Ordinal))
        {
            throw new ArgumentException($"the start '{startAfter}' of a name range does not begin with its prefix '{prefix}'", nameof(startAfter));
        }
        Prefix = prefix;
        StartAfter = startAfter;
    }

    public string Prefix { get; }

    public string StartAfter { get; }

    public bool Contains(string name) => name.StartsWith(Prefix, StringComparison.Ordinal) && StorageKey.CompareNames(name, StartAfter) > 0;
}

public static class StorageExtensions
{
    /// <summary>
    /// <see cref="IStorage.ListRangesAsync"/> as one start-after listing per range, each read up to the first name past its
    /// prefix (names come in order after a start).
    /// </summary>
    public static async IAsyncEnumerable<ObjectInfo> ListRangesOneByOneAsync(IStorage storage, ObjectKind kind, IReadOnlyList<NameRange> ranges,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        foreach (var range in ranges)
        {
            await foreach (var o in storage.ListAsync(kind, range.StartAfter, cancellationToken).ConfigureAwait(false))
            {
                if (!o.Key.Name.StartsWith(range.Prefix, StringComparison.Ordinal))
                {
                    break;
                }
                yield return o;
            }
        }
    }

    /// <summary>Every object of <paramref name="kind"/>, in any order.</summary>
    public static IAsyncEnumerable<ObjectInfo> ListAsync(this IStorage storage, ObjectKind kind, CancellationToken cancellationToken)
        => storage.ListAsync(kind, null, cancellationToken);

    public static Task<byte[]> GetAllAsync(this IStorage storage, StorageKey key, CancellationToken cancellationToken)
        => storage.GetAsync(key, 0, -1, cancellationToken);

    /// <summary>Bytes the stored objects of every kind occupy (what a repository costs in storage).</summary>
    public static async Task<long> TotalBytesAsync(this IStorage storage, CancellationToken cancellationToken)
    {
        long bytes = 0;
        foreach (var kind in Enum.GetValues<ObjectKind>())
        {
            await foreach (var o in storage.ListAsync(kind, cancellationToken).ConfigureAwait(false))
            {
                bytes += o.Size;
            }
        }
        return bytes;
    }
}
