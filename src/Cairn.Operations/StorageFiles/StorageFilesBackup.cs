using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Cairn.Operations.Configuration;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Storage.S3;

namespace Cairn.Operations.StorageFiles;

/// <summary>What a backup stored of the buckets: per bucket its objects and bytes, the files carried over unread, those that vanished.</summary>
public sealed record StorageBackupSummary(string Endpoint, IReadOnlyList<StoragePartBucket> Buckets, long CarriedOver)
{
    public long Objects => Buckets.Sum(b => b.Objects);

    public long Bytes => Buckets.Sum(b => b.Bytes);

    public int Vanished => Buckets.Sum(b => b.Vanished.Count);
}

/// <summary>One bucket as <c>backup --dry-run</c> sees it: objects and bytes listed, keys that would be refused, or why it cannot be listed.</summary>
public sealed record StorageBucketPlan(string Bucket, long Objects, long Bytes, IReadOnlyList<string> RefusedKeys, string? Error);

/// <summary>
/// Copies every object of the configured buckets into a backup that is being written (the storage part of the logical
/// snapshot; docs/repository-format.md, "Storage files"): keys checked before anything is read, listing page by page,
/// objects streamed through the chunker (deduplicated, encrypted) with their SHA-256 taken on the way, four at a time.
/// An object whose size, ETag and last-modified time equal the previous backup's is carried over without reading it.
/// </summary>
public static class StorageFilesBackup
{
    private const int Parallelism = 4;

    /// <summary>
    /// Fails before the database is dumped when a bucket cannot be listed (missing, no rights, unreachable): a backup
    /// that was asked for the files never silently goes without them.
    /// </summary>
    public static async Task ProbeAsync(OperationContext context, StorageBucketsConfig config, CancellationToken ct)
    {
        using var client = Connect(context, config.ToOptions());
        foreach (var b in config.Buckets)
        {
            await client.ProbeAsync(b, ct).ConfigureAwait(false);
        }
    }

    /// <summary>The dry run: each bucket listed (keys checked), nothing read or written; a bucket that cannot be listed says why.</summary>
    public static async Task<IReadOnlyList<StorageBucketPlan>> PlanAsync(OperationContext context, StorageBucketsConfig config, CancellationToken ct)
    {
        using var client = Connect(context, config.ToOptions());
        var plans = new List<StorageBucketPlan>();
        foreach (var b in config.Buckets)
        {
            long objects = 0, bytes = 0;
            var refused = new List<string>();
            try
            {
                await foreach (var o in client.ListAsync(b, ct).ConfigureAwait(false))
                {
                    if (IsFolderMarker(o))
                    {
                        continue;
                    }
                    if (StorageNames.KeyProblem(o.Key) is { } problem)
                    {
                        refused.Add($"{StorageNames.Display(o.Key)} ({problem})");
                        continue;
                    }
                    objects++;
                    bytes += o.Size;
                }
                plans.Add(new StorageBucketPlan(b, objects, bytes, refused, null));
            }
            catch (S3StorageException e)
            {
                plans.Add(new StorageBucketPlan(b, objects, bytes, refused, e.Message));
            }
        }
        return plans;
    }

    /// <summary>
    /// Adds the storage part to <paramref name="writer"/>. A key that breaks the rules (<see cref="StorageNames.KeyProblem"/>)
    /// fails the backup, naming bucket and key, before that object is read; nothing is committed.
    /// </summary>
    public static async Task<StorageBackupSummary> WriteAsync(OperationContext context, ItemWriter writer, StorageBucketsConfig config, Snapshot? previous, IProgress<string>? progress, CancellationToken ct)
    {
        var earlier = new Dictionary<(string, string), ManifestItem>();
        if (previous is not null)
        {
            foreach (var item in previous.Manifest.Items.Where(i => i.Type == StoragePart.ObjectType && i.Meta is not null))
            {
                if (item.Meta!.TryGetValue("bucket", out var b) && item.Meta.TryGetValue("key", out var k) && item.Meta.ContainsKey("sha256") && item.Name == StoragePart.ItemName(b, k))
                {
                    earlier[(b, k)] = item;
                }
            }
        }
        using var client = Connect(context, config.ToOptions());
        var buckets = new List<StoragePartBucket>();
        long carried = 0;
        foreach (var bucket in config.Buckets)
        {
            long objects = 0, bytes = 0;
            var vanished = new ConcurrentBag<string>();
            await Parallel.ForEachAsync(client.ListAsync(bucket, ct), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = ct }, async (o, token) =>
            {
                if (IsFolderMarker(o))
                {
                    return;
                }
                if (StorageNames.KeyProblem(o.Key) is { } problem)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput,
                        $"bucket {bucket}: object key '{StorageNames.Display(o.Key)}' is refused: {problem}; nothing was backed up. Rename or remove that object in the bucket (Cairn never stores a key it could not safely restore)");
                }
                var name = StoragePart.ItemName(bucket, o.Key);
                if (earlier.TryGetValue((bucket, o.Key), out var old) && old.Size == o.Size && old.Meta!.GetValueOrDefault("etag") == o.ETag && o.ETag.Length > 0
                    && old.Meta!.GetValueOrDefault("last_modified") == Time(o.LastModified))
                {
                    writer.AddExistingItem(old);
                    Interlocked.Increment(ref carried);
                    Interlocked.Increment(ref objects);
                    Interlocked.Add(ref bytes, o.Size);
                    return;
                }
                var opened = await client.OpenReadAsync(bucket, o.Key, token).ConfigureAwait(false);
                if (opened is not { } read)
                {
                    // Deleted between the listing and the read: recorded, so the storage_files check can name it if its row is in the backup.
                    vanished.Add(o.Key);
                    return;
                }
                using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                ManifestItem item;
                await using (var hashing = new HashingReadStream(read.Stream, sha))
                {
                    var meta = new Dictionary<string, string>
                    {
                        ["bucket"] = bucket,
                        ["key"] = o.Key,
                        ["etag"] = read.Head.ETag,
                        ["last_modified"] = Time(read.Head.LastModified),
                    };
                    if (read.Head.ContentType is { } type)
                    {
                        meta["content_type"] = type;
                    }
                    try
                    {
                        item = await writer.AddStreamAsync(name, hashing, null, StoragePart.ObjectType, meta, token).ConfigureAwait(false);
                    }
                    catch (S3StorageException e)
                    {
                        throw new S3StorageException($"bucket {bucket}, object {StorageNames.Display(o.Key)}: {e.Message}", e.Transient, e);
                    }
                    if (item.Size != read.Head.Size)
                    {
                        throw new IOException($"bucket {bucket}, object {StorageNames.Display(o.Key)}: read {item.Size} bytes, the server announced {read.Head.Size}");
                    }
                    // The hash is known only once the stream is read: the item gets it by replacement, before the commit.
                    var complete = item with { Meta = new Dictionary<string, string>(meta) { ["sha256"] = Convert.ToHexStringLower(sha.GetHashAndReset()) } };
                    writer.ReplaceItem(item, complete);
                    item = complete;
                }
                Interlocked.Increment(ref objects);
                Interlocked.Add(ref bytes, item.Size);
                progress?.Report($"storage {bucket}: {Interlocked.Read(ref objects)} files");
            }).ConfigureAwait(false);
            buckets.Add(new StoragePartBucket(bucket, objects, bytes, [.. vanished.Order(StringComparer.Ordinal)]));
        }
        var file = new StoragePartFile(1, config.EndpointText, buckets);
        await writer.AddStreamAsync(StoragePart.SummaryItem, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(file, StoragePartJson.Default.StoragePartFile)), null, "file", null, ct).ConfigureAwait(false);
        return new StorageBackupSummary(config.EndpointText, buckets, carried);
    }

    /// <summary>The client for the buckets; a configuration problem (a credentials file others can read, …) becomes an error that names the fix.</summary>
    internal static S3Bucket Connect(OperationContext context, S3Options options)
    {
        try
        {
            return new S3Bucket(options, context.Environment, context.Time);
        }
        catch (S3ConfigurationException e)
        {
            throw new ConfigException($"storage_buckets: {e.Message}");
        }
    }

    /// <summary>The manifest meta of the part (also read by <c>snapshots</c> and records).</summary>
    public static void AddMeta(Dictionary<string, string> meta, StorageBackupSummary s)
    {
        meta[StoragePart.MetaBuckets] = string.Join(',', s.Buckets.Select(b => b.Name));
        meta[StoragePart.MetaObjects] = s.Objects.ToString(CultureInfo.InvariantCulture);
        meta[StoragePart.MetaBytes] = s.Bytes.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>A zero-byte key ending in '/' is the folder an S3 console shows, not a file: nothing to keep.</summary>
    private static bool IsFolderMarker(BucketObject o) => o.Size == 0 && o.Key.EndsWith('/') && o.Key.Length > 1 && StorageNames.KeyProblem(o.Key.TrimEnd('/')) is null;

    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}

/// <summary>Passes a stream's bytes through while hashing them.</summary>
internal sealed class HashingReadStream(Stream inner, IncrementalHash hash) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        hash.AppendData(buffer.Span[..n]);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count)
    {
        var n = inner.Read(buffer, offset, count);
        hash.AppendData(buffer, offset, n);
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
