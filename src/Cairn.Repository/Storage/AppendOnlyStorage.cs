namespace Cairn.Repository.Storage;

/// <summary>A delete or a replacement that an append-only client refuses to make (or that the server refused it).</summary>
public sealed class AppendOnlyViolationException(string message) : RepositoryException(ErrorKind.InvalidInput, message);

/// <summary>
/// A client that creates objects and never deletes or replaces one: what a database host runs with when its
/// credentials may not delete (an S3 policy without s3:DeleteObject, see docs/security.md). The server is what
/// enforces it against an intruder; this wrapper makes Cairn itself never ask, so a backup and wal-push succeed
/// under such a policy, and says clearly when an operation would need a delete (prune, unlock, key removal).
/// Every put is a create: through the backend's create-only put where it has one (so an S3 bucket policy can
/// demand <c>If-None-Match: *</c> on every PUT), else a stat and a put (the server's policy refuses the rest).
/// Locks see <see cref="RepositoryLock"/>: an append-only client supersedes and releases its lock with new objects.
/// </summary>
public sealed class AppendOnlyStorage(IStorage inner) : IStorage
{
    private bool _noCreateOnly;

    public IStorage Inner { get; } = inner;

    public string Location => Inner.Location;

    public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (!Volatile.Read(ref _noCreateOnly))
        {
            try
            {
                if (!await Inner.PutIfAbsentAsync(key, data, cancellationToken).ConfigureAwait(false))
                {
                    throw Refused($"replace {key.Path}");
                }
                return;
            }
            catch (NotSupportedException)
            {
                Volatile.Write(ref _noCreateOnly, true);
            }
        }
        if (await Inner.StatAsync(key, cancellationToken).ConfigureAwait(false) is not null)
        {
            throw Refused($"replace {key.Path}");
        }
        await Inner.PutAsync(key, data, cancellationToken).ConfigureAwait(false);
    }

    public Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        => Inner.PutIfAbsentAsync(key, data, cancellationToken);

    public Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
        => Inner.GetAsync(key, offset, length, cancellationToken);

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken) => Inner.StatAsync(key, cancellationToken);

    public IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, CancellationToken cancellationToken) => Inner.ListAsync(kind, startAfter, cancellationToken);

    public IAsyncEnumerable<ObjectInfo> ListRangesAsync(ObjectKind kind, IReadOnlyList<NameRange> ranges, CancellationToken cancellationToken) => Inner.ListRangesAsync(kind, ranges, cancellationToken);

    public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken) => throw Refused($"delete {key.Path}");

    private AppendOnlyViolationException Refused(string what) => new(
        $"this client is append-only (append_only: true in cairn.yaml or CAIRN_APPEND_ONLY) and does not {what} in {Location}; run prune, unlock and key removal from a host whose credentials may delete");

    /// <summary>Whether <paramref name="storage"/> is used append-only.</summary>
    public static bool Is(IStorage storage) => storage is AppendOnlyStorage;
}
