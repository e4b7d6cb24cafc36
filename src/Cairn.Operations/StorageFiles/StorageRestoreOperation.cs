using System.Diagnostics;
using System.IO.Pipelines;
using System.Security.Cryptography;
using Cairn.Operations.Logical;
using Cairn.Operations.Recording;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Storage.S3;

namespace Cairn.Operations.StorageFiles;

/// <summary>
/// <c>restore DATABASE --storage</c>: the files of a backup's storage part (all buckets, or <see cref="Bucket"/>) put back
/// into their bucket (or <see cref="ToBucket"/>) at the configured endpoint (or <see cref="Endpoint"/>). Create-only unless
/// <see cref="Overwrite"/>: an object already there with other content is left alone and reported.
/// </summary>
public sealed record StorageRestoreRequest(DatabaseTarget Database, string? SnapshotId, string? Bucket = null, string? ToBucket = null, Uri? Endpoint = null, bool Overwrite = false);

public enum StorageFileOutcome
{
    /// <summary>Written and read back with the backup's SHA-256.</summary>
    Written,

    /// <summary>Already in the bucket with the backup's content (same ETag, or same SHA-256 when read); left as it was.</summary>
    Identical,

    /// <summary>Already in the bucket with other content; not replaced (create-only; <c>--overwrite</c> replaces).</summary>
    Conflict,
}

public sealed record StorageFileResult(string Bucket, string Key, string ToBucket, long Size, StorageFileOutcome Outcome);

public sealed record StorageRestoreResult(Snapshot Snapshot, string Endpoint, IReadOnlyList<StorageFileResult> Files, TimeSpan Duration)
{
    public int Written => Files.Count(f => f.Outcome == StorageFileOutcome.Written);

    public int Identical => Files.Count(f => f.Outcome == StorageFileOutcome.Identical);

    public IReadOnlyList<StorageFileResult> Conflicts => [.. Files.Where(f => f.Outcome == StorageFileOutcome.Conflict)];

    public long Bytes => Files.Where(f => f.Outcome == StorageFileOutcome.Written).Sum(f => f.Size);

    public bool Ok => Conflicts.Count == 0;
}

public sealed class StorageRestoreOperation(OperationContext context)
{
    private const int Parallelism = 4;

    public async Task<StorageRestoreResult> RunAsync(StorageRestoreRequest request, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var config = db.Config?.StorageBuckets ?? throw new RepositoryException(ErrorKind.InvalidInput,
            $"{db.Name} has no storage_buckets in cairn.yaml: add it (endpoint, credentials_file, buckets) so the restore knows where to write and with which credentials; --endpoint replaces only the endpoint");
        if (request.ToBucket is { } tb && StorageNames.BucketProblem(tb) is { } tbp)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to-bucket '{StorageNames.Display(tb)}': {tbp}");
        }
        var sw = Stopwatch.StartNew();
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"restore {db.Name} --storage", cancellationToken).ConfigureAwait(false);
        var snap = await LogicalSnapshots.SelectAsync(repo, db.Name, request.SnapshotId, cancellationToken).ConfigureAwait(false);
        // Every item is checked (names, hashes) before the first request is made.
        var part = await StoragePart.ReadAsync(repo, snap, cancellationToken).ConfigureAwait(false)
            ?? throw new RepositoryException(ErrorKind.NotFound, $"backup {snap.ShortId} of {db.Name} holds no storage files (it was taken without storage_buckets); choose another with --snapshot");
        var held = part.File.Buckets.Select(b => b.Name).ToList();
        List<string> chosen;
        if (request.Bucket is { } one)
        {
            chosen = held.Contains(one, StringComparer.Ordinal) ? [one] : throw new RepositoryException(ErrorKind.NotFound, $"backup {snap.ShortId} holds no bucket '{StorageNames.Display(one)}' (it holds: {string.Join(", ", held)})");
        }
        else
        {
            chosen = held;
        }
        if (request.ToBucket is not null && chosen.Count != 1)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to-bucket puts one bucket's files somewhere else, and backup {snap.ShortId} holds {string.Join(", ", held)}: choose one with --bucket NAME");
        }
        var options = config.ToOptions(request.Endpoint);
        var endpointText = request.Endpoint?.ToString().TrimEnd('/') ?? config.EndpointText;
        using var client = StorageFilesBackup.Connect(context, options);
        foreach (var b in chosen)
        {
            await client.ProbeAsync(request.ToBucket ?? b, cancellationToken).ConfigureAwait(false);
        }
        var objects = part.Objects.Where(o => chosen.Contains(o.Bucket, StringComparer.Ordinal)).ToList();
        var results = new StorageFileResult[objects.Count];
        var done = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, objects.Count), new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken }, async (i, token) =>
        {
            var o = objects[i];
            var to = request.ToBucket ?? o.Bucket;
            results[i] = new StorageFileResult(o.Bucket, o.Key, to, o.Size, await RestoreOneAsync(repo, client, o, to, request.Overwrite, token).ConfigureAwait(false));
            progress?.Report($"storage: {Interlocked.Increment(ref done)} of {objects.Count} files");
        }).ConfigureAwait(false);
        var result = new StorageRestoreResult(snap, endpointText, results, sw.Elapsed);
        context.Evidence.Record(new StorageRestoreEvent(endpointText, [.. chosen.Select(b => request.ToBucket is { } t ? $"{b}->{t}" : b)], objects.Count, objects.Sum(o => o.Size),
            result.Written, result.Identical, result.Conflicts.Count, result.Written)
        {
            Repository = repo.Storage.Location,
            Result = EvidenceEvent.Outcome(result.Ok),
            Database = db.Name,
            Snapshot = snap.Id,
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
        });
        return result;
    }

    private static async Task<StorageFileOutcome> RestoreOneAsync(Repository.Repository repo, S3Bucket client, StoredObject o, string to, bool overwrite, CancellationToken ct)
    {
        var where = $"{to}/{StorageNames.Display(o.Key)}";
        if (!overwrite && await client.HeadAsync(to, o.Key, ct).ConfigureAwait(false) is { } existing)
        {
            if (existing.Size != o.Size)
            {
                return StorageFileOutcome.Conflict;
            }
            if (existing.ETag.Length > 0 && existing.ETag == o.ETag)
            {
                return StorageFileOutcome.Identical;
            }
            return await BucketSha256Async(client, to, o.Key, where, ct).ConfigureAwait(false) == o.Sha256 ? StorageFileOutcome.Identical : StorageFileOutcome.Conflict;
        }
        // The backup's bytes stream from the repository (every chunk authenticated) into the PUT through a pipe: one part in memory at a time.
        var pipe = new Pipe();
        var producer = Task.Run(async () =>
        {
            Exception? error = null;
            try
            {
                await using var w = pipe.Writer.AsStream(leaveOpen: true);
                await repo.ReadItemAsync(o.Item, w, null, ct).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                error = e;
                throw;
            }
            finally
            {
                await pipe.Writer.CompleteAsync(error).ConfigureAwait(false);
            }
        }, ct);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        bool created;
        try
        {
            await using var hashing = new HashingReadStream(pipe.Reader.AsStream(leaveOpen: true), sha);
            created = await client.PutAsync(to, o.Key, hashing, o.Size, o.ContentType, createOnly: !overwrite, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            await pipe.Reader.CompleteAsync().ConfigureAwait(false);
            try
            {
                await producer.ConfigureAwait(false);
            }
            catch (RepositoryException)
            {
                // The backup could not be read back intact: that, not the PUT it broke, is the error (and its exit code).
                throw;
            }
            catch (Exception)
            {
                // The reader was completed under it: the PUT's error below is the cause.
            }
            if (e is S3StorageException or RepositoryException)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
            }
            throw new IOException($"{where}: {e.Message}", e);
        }
        await pipe.Reader.CompleteAsync().ConfigureAwait(false);
        await producer.ConfigureAwait(false);
        if (!created)
        {
            // Another writer created it between our HEAD and the PUT (the server honoured If-None-Match): not ours to replace.
            return StorageFileOutcome.Conflict;
        }
        if (Convert.ToHexStringLower(sha.GetHashAndReset()) != o.Sha256)
        {
            throw new DataDamagedException($"{where}: the backup's bytes do not have the SHA-256 its manifest records; the object was written, but do not trust it: run 'cairn verify --read-data'");
        }
        if (await BucketSha256Async(client, to, o.Key, where, ct).ConfigureAwait(false) != o.Sha256)
        {
            throw new IOException($"{where}: read back from the bucket, the object does not have the backup's SHA-256 (the server stored other bytes); restore it again with --overwrite");
        }
        return StorageFileOutcome.Written;
    }

    /// <summary>The SHA-256 of what the bucket holds under the key, read as a stream.</summary>
    private static async Task<string?> BucketSha256Async(S3Bucket client, string bucket, string key, string where, CancellationToken ct)
    {
        var opened = await client.OpenReadAsync(bucket, key, ct).ConfigureAwait(false);
        if (opened is not { } read)
        {
            return null;
        }
        await using var s = read.Stream;
        try
        {
            return Convert.ToHexStringLower(await SHA256.HashDataAsync(s, ct).ConfigureAwait(false));
        }
        catch (S3StorageException e)
        {
            throw new S3StorageException($"{where}: {e.Message}", e.Transient, e);
        }
    }
}
