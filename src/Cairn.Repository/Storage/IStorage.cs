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

    /// <summary>A copy's copy of the evidence log (<c>evidence/</c>): sealed files named by path and SHA-256, written by <c>cairn copy</c>.</summary>
    Evidence,
    /// <summary>The snapshot index: a cache of every manifest's summary (docs/repository-format.md, "Snapshot index").</summary>
    SnapshotIndex,
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
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public override string ToString() => Path;
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
/// <item><see cref="ListAsync"/> lists only complete objects of one kind (no temp files).</item>
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

    IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, CancellationToken cancellationToken);

    Task DeleteAsync(StorageKey key, CancellationToken cancellationToken);
}

/// <summary>Optional ability: remove garbage a crashed writer left behind (temp files).</summary>
public interface ICleanableStorage
{
    /// <summary>Removes leftovers older than <paramref name="olderThan"/>; returns how many were removed.</summary>
    Task<int> RemoveLeftoversAsync(TimeSpan olderThan, bool dryRun, CancellationToken cancellationToken);
}

public static class StorageExtensions
{
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
