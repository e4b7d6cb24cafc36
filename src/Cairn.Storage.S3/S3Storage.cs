using System.Net;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Cairn.Repository.Storage;
using S3Location = Cairn.Repository.Storage.S3Location;

namespace Cairn.Storage.S3;

/// <summary>
/// A repository in an S3 bucket (AWS, MinIO, Ceph RGW, R2, B2, …) under a prefix, with the folder
/// backend's layout (<see cref="StorageKey.Path"/>). Object stores have no rename, so a put is atomic
/// because it is one PUT, or one CompleteMultipartUpload for objects above
/// <see cref="S3Options.MultipartThreshold"/>; a failed or cancelled multipart upload is aborted, and
/// <see cref="RemoveLeftoversAsync"/> aborts the ones a crash left behind. Every request carries
/// Content-MD5 (so a server refuses a body damaged in transit) and is retried by <see cref="S3Retrier"/>.
/// </summary>
public sealed partial class S3Storage : IStorage, ICleanableStorage, IObjectLockStorage, IRangeReadStorage, IDisposable
{
    /// <summary>
    /// Multipart uploads younger than this are never aborted, whatever the caller asks: WAL pushes take
    /// no repository lock, another host's clock may be off, and the parts are invisible anyway (AWS
    /// recommends the same day in a lifecycle rule).
    /// </summary>
    public static readonly TimeSpan LeftoverMinimumAge = TimeSpan.FromDays(1);

    private readonly IAmazonS3 _client;
    private readonly S3Location _location;
    private readonly S3Options _options;
    private readonly TimeProvider _time;
    private readonly S3Retrier _retry;
    private bool? _conditionalWrites;

    /// <param name="environment">Reads an environment variable (AWS_*); pass <c>Environment.GetEnvironmentVariable</c> outside tests.</param>
    public S3Storage(S3Location location, S3Options options, Func<string, string?> environment, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(options);
        if (options.PartSize < 5 * 1024 * 1024 || options.MultipartThreshold < options.PartSize || options.PartConcurrency < 1)
        {
            throw new ArgumentException("S3 parts must be at least 5 MiB, the multipart threshold at least one part, and at least one part in flight", nameof(options));
        }
        (var client, Endpoint) = S3ClientFactory.Create(options, environment);
        _client = client;
        _location = location;
        _options = options;
        _time = time;
        _retry = new S3Retrier(options.Retry, time, Permanent);
    }

    public string Location => _location.ToString();

    /// <summary>Where requests go and how credentials were found (no secrets).</summary>
    public S3Endpoint Endpoint { get; }

    /// <summary>Failed attempts that were retried since this storage was created.</summary>
    public long Retries => _retry.Retries;

    public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
        => await WriteAsync(key, data, createOnly: false, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Creates the object only when none exists under the key, with S3's conditional write
    /// (<c>If-None-Match: *</c> on the PUT or on CompleteMultipartUpload): of concurrent creators exactly
    /// one gets true. Some servers ignore the header and would let a second put replace the first
    /// (s3rver does); the first call checks this once per storage (put a probe object twice, expect 412
    /// the second time) and throws <see cref="NotSupportedException"/> on such a server rather than
    /// pretend.
    /// </summary>
    public async Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await EnsureConditionalWritesAsync(cancellationToken).ConfigureAwait(false);
        return await WriteAsync(key, data, createOnly: true, cancellationToken).ConfigureAwait(false);
    }

    private async Task<bool> WriteAsync(StorageKey key, ReadOnlyMemory<byte> data, bool createOnly, CancellationToken cancellationToken)
    {
        var objectKey = ObjectKeyOf(key);
        cancellationToken.ThrowIfCancellationRequested();
        if (data.Length > _options.MultipartThreshold)
        {
            return await PutMultipartAsync(key, objectKey, data, createOnly, cancellationToken).ConfigureAwait(false);
        }
        var digest = MD5.HashData(data.Span);
        var md5 = Convert.ToBase64String(digest);
        var attempts = 0;
        return await _retry.RunAsync($"PUT {key}", async ct =>
        {
            attempts++;
            using var body = StreamOf(data);
            var request = new PutObjectRequest
            {
                BucketName = _location.Bucket,
                Key = objectKey,
                InputStream = body,
                AutoCloseStream = false,
                AutoResetStreamPosition = true,
                MD5Digest = md5,
                // A plain signed body with Content-Length: accepted by every S3-compatible server.
                UseChunkEncoding = false,
                ContentType = "application/octet-stream",
                IfNoneMatch = createOnly ? "*" : null,
            };
            ApplyWriteOptions(request, key);
            try
            {
                await _client.PutObjectAsync(request, ct).ConfigureAwait(false);
                return true;
            }
            catch (AmazonS3Exception e) when (createOnly && e.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                // After a retried attempt the object may be this call's own, stored by an attempt whose answer was lost.
                return attempts > 1 && await StoredEtagAsync(objectKey, ct).ConfigureAwait(false) == Convert.ToHexStringLower(digest);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    private async Task<string?> StoredEtagAsync(string objectKey, CancellationToken cancellationToken)
    {
        try
        {
            var head = await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _location.Bucket, Key = objectKey }, cancellationToken).ConfigureAwait(false);
            return head.ETag?.Trim('"').ToLowerInvariant();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>
    /// The object (outside the repository layout: <see cref="ListAsync"/> never returns it) that remembers whether
    /// this server honours conditional writes, so a wal-push process does not probe every time.
    /// </summary>
    public const string ConditionalWritesMarker = ".cairn-conditional-writes";

    /// <summary>Once per storage: does the server refuse a second <c>If-None-Match: *</c> put of one key?</summary>
    private async Task EnsureConditionalWritesAsync(CancellationToken cancellationToken)
    {
        var supported = _conditionalWrites ?? await RememberedConditionalWritesAsync(cancellationToken).ConfigureAwait(false);
        if (supported is null)
        {
            supported = await ProbeConditionalWritesAsync(cancellationToken).ConfigureAwait(false);
            await RememberConditionalWritesAsync(supported.Value, cancellationToken).ConfigureAwait(false);
        }
        _conditionalWrites = supported;
        if (supported != true)
        {
            throw ConditionalWritesMissing();
        }
    }

    /// <summary>What an earlier probe of this prefix found (the marker object), or null when none was made.</summary>
    public async Task<bool?> RememberedConditionalWritesAsync(CancellationToken cancellationToken)
    {
        var key = _location.KeyOf(ConditionalWritesMarker);
        return await _retry.RunAsync<bool?>("GET conditional-writes marker", async ct =>
        {
            try
            {
                using var response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _location.Bucket, Key = key }, ct).ConfigureAwait(false);
                using var reader = new StreamReader(response.ResponseStream);
                return (await reader.ReadToEndAsync(ct).ConfigureAwait(false)).Trim() switch
                {
                    "supported" => true,
                    "ignored" => false,
                    _ => null,
                };
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
                return null;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Best effort: a client that may not write the marker (or a race with another prober) just probes again next time.</summary>
    private async Task RememberConditionalWritesAsync(bool supported, CancellationToken cancellationToken)
    {
        try
        {
            await _retry.RunAsync("PUT conditional-writes marker", ct => _client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = _location.Bucket,
                Key = _location.KeyOf(ConditionalWritesMarker),
                ContentBody = supported ? "supported\n" : "ignored\n",
                MD5Digest = Md5Of(supported ? "supported\n" : "ignored\n"),
                UseChunkEncoding = false,
                IfNoneMatch = "*",
            }, ct), cancellationToken).ConfigureAwait(false);
        }
        catch (S3StorageException)
        {
        }
    }

    /// <summary>
    /// Asks the server now (ignoring the marker): a probe object put twice with <c>If-None-Match: *</c>, expected
    /// 412 the second time, then deleted when this client may delete (an append-only client leaves the few bytes).
    /// </summary>
    public async Task<bool> ProbeConditionalWritesAsync(CancellationToken cancellationToken)
    {
        var probe = _location.KeyOf(".cairn-probe-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        async Task<bool> TryCreateAsync(CancellationToken ct)
        {
            try
            {
                await _client.PutObjectAsync(new PutObjectRequest { BucketName = _location.Bucket, Key = probe, ContentBody = "probe", MD5Digest = Md5Of("probe"), IfNoneMatch = "*", UseChunkEncoding = false }, ct).ConfigureAwait(false);
                return true;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                return false;
            }
        }
        try
        {
            if (!await _retry.RunAsync("PUT probe (conditional write)", TryCreateAsync, cancellationToken).ConfigureAwait(false))
            {
                throw new S3StorageException($"the probe object {probe} for conditional writes already existed", false);
            }
            return !await _retry.RunAsync("PUT probe again (conditional write)", TryCreateAsync, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                if (!_options.AppendOnly)
                {
                    await _retry.RunAsync("DELETE probe", ct => _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = probe }, ct), CancellationToken.None).ConfigureAwait(false);
                }
            }
            catch (S3StorageException)
            {
            }
        }
    }

    private NotSupportedException ConditionalWritesMissing() => new(
        $"the S3 server{At()} ignores conditional writes (If-None-Match: * on PUT), so it cannot create an object only if absent; a second writer would replace the first's bytes. Use a server that supports them (AWS S3 since August 2024, MinIO, Ceph RGW Squid and later)");

    public async Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        var objectKey = ObjectKeyOf(key);
        if (length == 0)
        {
            return await StatAsync(key, cancellationToken).ConfigureAwait(false) is null ? throw new ObjectNotFoundException(key) : [];
        }
        var mismatches = 0;
        return await _retry.RunAsync($"GET {key}", async ct =>
        {
            var request = new GetObjectRequest { BucketName = _location.Bucket, Key = objectKey };
            // After two bodies that did not match the object's stored MD5, the whole object is asked for as a range,
            // which the SDK does not check: see ChecksumMismatch below.
            if (offset > 0 || length > 0 || (mismatches >= 2 && ReadUncheckedAfterMismatch(key.Kind)))
            {
                request.ByteRange = length < 0 ? new ByteRange($"bytes={offset}-") : new ByteRange(offset, offset + length - 1);
            }
            GetObjectResponse response;
            try
            {
                response = await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode is "NoSuchKey" or "NotFound" or null or "")
            {
                throw new ObjectNotFoundException(key);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return []; // the range starts at or past the end (the contract: the bytes that exist)
            }
            try
            {
                // The SDK compares the MD5 when the response is disposed, so the check is inside this try.
                using (response)
                {
                    return await ReadBodyAsync(response, key, ct).ConfigureAwait(false);
                }
            }
            catch (AmazonClientException e) when (IsChecksumMismatch(e))
            {
                // The body does not match the MD5 the server keeps with the object (its ETag): damaged on the way,
                // which reading again cures (the IOException is retried), or damaged at rest, which it does not.
                // Then the bytes are read once more without the SDK's check and returned: the repository
                // authenticates every blob and pack itself, so verify reports the damaged pack and the snapshots
                // it touches (exit 5), and a restore names the blob, as on a folder; an opaque I/O error would
                // stop verify at the first damaged object instead.
                mismatches++;
                throw new IOException($"GET {key}: the body did not match the checksum stored with the object ({e.Message})", e);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The kinds read without the SDK's MD5 check after two mismatches: packs, indexes and snapshots, which every reader
    /// (restore, verify, and the copier, which hashes them) authenticates by content. Any other object (config, key
    /// files, ledger, evidence, pins, WAL) stays an I/O error after the retries, so a byte-level copy cannot carry one
    /// damaged at rest.
    /// </summary>
    private static bool ReadUncheckedAfterMismatch(ObjectKind kind) => kind is ObjectKind.Data or ObjectKind.Index or ObjectKind.Snapshot;

    /// <summary>The SDK's check of a whole-object GET against the object's MD5 failed (it has no type of its own for it).</summary>
    internal static bool IsChecksumMismatch(AmazonClientException e)
        => e.Message.Contains("Expected hash not equal to calculated hash", StringComparison.Ordinal);

    public async Task<int> ReadRangeAsync(StorageKey key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        if (destination.Length == 0)
        {
            return await StatAsync(key, cancellationToken).ConfigureAwait(false) is null ? throw new ObjectNotFoundException(key) : 0;
        }
        var objectKey = ObjectKeyOf(key);
        return await _retry.RunAsync($"GET {key}", async ct =>
        {
            var request = new GetObjectRequest { BucketName = _location.Bucket, Key = objectKey, ByteRange = new ByteRange(offset, offset + destination.Length - 1) };
            GetObjectResponse response;
            try
            {
                response = await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode is "NoSuchKey" or "NotFound" or null or "")
            {
                throw new ObjectNotFoundException(key);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return 0; // the range starts at or past the end (the contract: the bytes that exist)
            }
            using (response)
            {
                var expected = response.ContentLength;
                if (expected > destination.Length)
                {
                    throw new IOException($"GET {key}: the server sent {expected} bytes for a range of {destination.Length}");
                }
                var stream = response.ResponseStream;
                var done = 0;
                while (done < expected)
                {
                    var n = await stream.ReadAsync(destination[done..(int)expected], ct).ConfigureAwait(false);
                    if (n == 0)
                    {
                        // Transient: the connection ended early; the retry reads the range again.
                        throw new IOException($"GET {key}: the response body ended after {done} of {expected} bytes");
                    }
                    done += n;
                }
                return done;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    public async Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var objectKey = ObjectKeyOf(key);
        return await _retry.RunAsync<ObjectInfo?>($"HEAD {key}", async ct =>
        {
            try
            {
                var head = await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _location.Bucket, Key = objectKey }, ct).ConfigureAwait(false);
                return new ObjectInfo(key, head.ContentLength, Utc(head.LastModified));
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (kind == ObjectKind.Config)
        {
            if (await StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false) is { } config && (startAfter is null || StorageKey.CompareNames(config.Key.Name, startAfter) > 0))
            {
                yield return config;
            }
            yield break;
        }
        var folder = FolderOf(kind) + "/";
        var prefix = _location.KeyOf(folder);
        // S3 orders keys by their UTF-8 bytes, as the contract orders names; a data key's folder is its name's first two
        // characters, so key order is name order there too.
        var after = startAfter is null ? null : _location.KeyOf(new StorageKey(kind, startAfter).Path);
        string? token = null;
        do
        {
            var page = await _retry.RunAsync($"LIST {folder}", ct => _client.ListObjectsV2Async(new ListObjectsV2Request
            {
                BucketName = _location.Bucket,
                Prefix = prefix,
                StartAfter = token is null ? after : null,
                ContinuationToken = token,
                MaxKeys = 1000,
            }, ct), cancellationToken).ConfigureAwait(false);
            foreach (var o in page.S3Objects ?? [])
            {
                if (KeyFromObjectKey(kind, o.Key[(prefix.Length - folder.Length)..]) is not { } key)
                {
                    continue;
                }
                // A server that ignored start-after would hand a caller names it did not ask for: say so rather than answer
                // wrongly. (Some S3-compatible servers, s3rver among them, list a name after a longer name it is a prefix of,
                // e.g. a segment after its .backup label: callers keep every name of their prefix and sort it themselves.)
                if (startAfter is not null && StorageKey.CompareNames(key.Name, startAfter) <= 0)
                {
                    throw new S3StorageException($"LIST {folder} after {startAfter}: the server listed {key.Name}, which does not sort after it; this S3 server does not implement start-after", false);
                }
                yield return new ObjectInfo(key, o.Size ?? 0, Utc(o.LastModified));
            }
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
            if (page.IsTruncated == true && string.IsNullOrEmpty(token))
            {
                throw new S3StorageException($"LIST {folder}: the server said the listing is truncated but gave no continuation token", false);
            }
        }
        while (token is not null);
    }

    public async Task DeleteAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var objectKey = ObjectKeyOf(key);
        string? version = null;
        if (ObjectLock is not null && ObjectLockPolicy.Applies(key.Kind))
        {
            // A plain DELETE in a versioned bucket only hides a locked object behind a delete marker (its bytes stay):
            // a locked object is left alone and said so; an unlocked one is removed for good by its version ID.
            var state = await LockStateAsync(key, cancellationToken).ConfigureAwait(false);
            if (state is null)
            {
                return;
            }
            if (state.Value.Until is { } until && until > _time.GetUtcNow())
            {
                throw new ObjectLockedException(key, until);
            }
            version = state.Value.VersionId;
        }
        await _retry.RunAsync($"DELETE {key}", async ct =>
        {
            try
            {
                await _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = objectKey, VersionId = version }, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
                // Deleting what is not there succeeds (some servers answer 404 where AWS answers 204).
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Aborts multipart uploads under the prefix that were started more than
    /// max(<paramref name="olderThan"/>, <see cref="LeftoverMinimumAge"/>) ago. A server that does not
    /// implement listing uploads (s3rver) has nothing to report: returns 0.
    /// </summary>
    public async Task<int> RemoveLeftoversAsync(TimeSpan olderThan, bool dryRun, CancellationToken cancellationToken)
    {
        var cutoff = _time.GetUtcNow() - (olderThan > LeftoverMinimumAge ? olderThan : LeftoverMinimumAge);
        var prefix = _location.KeyOf("");
        string? keyMarker = null;
        string? uploadMarker = null;
        var removed = 0;
        while (true)
        {
            ListMultipartUploadsResponse page;
            try
            {
                page = await _retry.RunAsync("LIST multipart uploads", ct => _client.ListMultipartUploadsAsync(new ListMultipartUploadsRequest
                {
                    BucketName = _location.Bucket,
                    Prefix = prefix,
                    KeyMarker = keyMarker,
                    UploadIdMarker = uploadMarker,
                }, ct), cancellationToken).ConfigureAwait(false);
            }
            catch (S3StorageException e) when (e.InnerException is AmazonS3Exception { StatusCode: HttpStatusCode.NotImplemented })
            {
                return removed;
            }
            foreach (var u in page.MultipartUploads ?? [])
            {
                if (u.Initiated is not { } initiated || new DateTimeOffset(DateTime.SpecifyKind(initiated, initiated.Kind == DateTimeKind.Unspecified ? DateTimeKind.Utc : initiated.Kind)) >= cutoff)
                {
                    continue;
                }
                removed++;
                if (!dryRun)
                {
                    await AbortAsync(u.Key, u.UploadId, cancellationToken).ConfigureAwait(false);
                }
            }
            if (page.IsTruncated != true)
            {
                return removed;
            }
            (keyMarker, uploadMarker) = (page.NextKeyMarker, page.NextUploadIdMarker);
        }
    }

    public void Dispose() => _client.Dispose();

    private async Task<bool> PutMultipartAsync(StorageKey key, string objectKey, ReadOnlyMemory<byte> data, bool createOnly, CancellationToken cancellationToken)
    {
        var initiate = new InitiateMultipartUploadRequest { BucketName = _location.Bucket, Key = objectKey, ContentType = "application/octet-stream" };
        if (_options.Sse != S3ServerSideEncryption.None)
        {
            initiate.ServerSideEncryptionMethod = _options.Sse == S3ServerSideEncryption.Kms ? ServerSideEncryptionMethod.AWSKMS : ServerSideEncryptionMethod.AES256;
            initiate.ServerSideEncryptionKeyManagementServiceKeyId = _options.Sse == S3ServerSideEncryption.Kms ? _options.SseKmsKeyId : null;
        }
        if (_options.StorageClass is { } storageClass)
        {
            initiate.StorageClass = S3StorageClass.FindValue(storageClass);
        }
        if (LockFor(key) is { } objectLock)
        {
            initiate.ObjectLockMode = objectLock.Mode;
            initiate.ObjectLockRetainUntilDate = objectLock.Until;
        }
        var uploadId = (await _retry.RunAsync($"START multipart PUT {key}", ct => _client.InitiateMultipartUploadAsync(initiate, ct), cancellationToken).ConfigureAwait(false)).UploadId;
        var parts = (int)((data.Length + (long)_options.PartSize - 1) / _options.PartSize);
        var etags = new string[parts];
        var md5s = new byte[parts][];
        try
        {
            await Parallel.ForAsync(0, parts, new ParallelOptions { MaxDegreeOfParallelism = _options.PartConcurrency, CancellationToken = cancellationToken }, async (i, ct) =>
            {
                var slice = data.Slice(i * _options.PartSize, Math.Min(_options.PartSize, data.Length - (i * _options.PartSize)));
                md5s[i] = MD5.HashData(slice.Span);
                var md5 = Convert.ToBase64String(md5s[i]);
                etags[i] = await _retry.RunAsync($"PUT {key} part {i + 1}/{parts}", async attemptToken =>
                {
                    using var body = StreamOf(slice);
                    var response = await _client.UploadPartAsync(new UploadPartRequest
                    {
                        BucketName = _location.Bucket,
                        Key = objectKey,
                        UploadId = uploadId,
                        PartNumber = i + 1,
                        InputStream = body,
                        PartSize = slice.Length,
                        MD5Digest = md5,
                        UseChunkEncoding = false,
                        IsLastPart = i == parts - 1,
                    }, attemptToken).ConfigureAwait(false);
                    return response.ETag;
                }, ct).ConfigureAwait(false);
            }).ConfigureAwait(false);

            var expectedEtag = MultipartEtag(md5s);
            var completeAttempts = 0;
            var created = await _retry.RunAsync($"COMPLETE multipart PUT {key}", async ct =>
            {
                completeAttempts++;
                try
                {
                    await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                    {
                        BucketName = _location.Bucket,
                        Key = objectKey,
                        UploadId = uploadId,
                        PartETags = [.. etags.Select((e, i) => new PartETag(i + 1, e))],
                        IfNoneMatch = createOnly ? "*" : null,
                    }, ct).ConfigureAwait(false);
                    return true;
                }
                catch (AmazonS3Exception e) when (createOnly && e.StatusCode == HttpStatusCode.PreconditionFailed)
                {
                    return completeAttempts > 1 && await StoredEtagAsync(objectKey, ct).ConfigureAwait(false) == expectedEtag;
                }
                catch (AmazonS3Exception e) when (completeAttempts > 1 && e.ErrorCode == "NoSuchUpload")
                {
                    // An earlier attempt completed the upload but its answer was lost: the object is there if its ETag says so.
                    if (await StoredEtagAsync(objectKey, ct).ConfigureAwait(false) != expectedEtag)
                    {
                        throw;
                    }
                    return true;
                }
            }, cancellationToken).ConfigureAwait(false);
            if (!created)
            {
                await AbortAsync(objectKey, uploadId, CancellationToken.None).ConfigureAwait(false);
            }
            return created;
        }
        catch
        {
            // Nothing became visible; free the parts now rather than leave them for RemoveLeftoversAsync.
            await AbortAsync(objectKey, uploadId, CancellationToken.None).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Best effort, bounded: a failed abort leaves invisible parts that RemoveLeftoversAsync (or a lifecycle rule) removes.</summary>
    private async Task AbortAsync(string objectKey, string uploadId, CancellationToken cancellationToken)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30), _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, bound.Token);
        try
        {
            await _client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = _location.Bucket, Key = objectKey, UploadId = uploadId }, linked.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AmazonServiceException or IOException or HttpRequestException or OperationCanceledException)
        {
        }
    }

    private static async Task<byte[]> ReadBodyAsync(GetObjectResponse response, StorageKey key, CancellationToken cancellationToken)
    {
        var expected = response.ContentLength;
        var buffer = GC.AllocateUninitializedArray<byte>(checked((int)expected));
        var stream = response.ResponseStream;
        var done = 0;
        while (done < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(done), cancellationToken).ConfigureAwait(false);
            if (n == 0)
            {
                // Transient: the connection ended early; the retry reads the range again.
                throw new IOException($"GET {key}: the response body ended after {done} of {expected} bytes");
            }
            done += n;
        }
        return buffer;
    }

    private void ApplyWriteOptions(PutObjectRequest request, StorageKey key)
    {
        if (LockFor(key) is { } objectLock)
        {
            // S3 demands Content-MD5 (or a checksum) on a put with a retention date: every put here carries it.
            request.ObjectLockMode = objectLock.Mode;
            request.ObjectLockRetainUntilDate = objectLock.Until;
        }
        if (_options.Sse != S3ServerSideEncryption.None)
        {
            request.ServerSideEncryptionMethod = _options.Sse == S3ServerSideEncryption.Kms ? ServerSideEncryptionMethod.AWSKMS : ServerSideEncryptionMethod.AES256;
            request.ServerSideEncryptionKeyManagementServiceKeyId = _options.Sse == S3ServerSideEncryption.Kms ? _options.SseKmsKeyId : null;
        }
        if (_options.StorageClass is { } storageClass)
        {
            request.StorageClass = S3StorageClass.FindValue(storageClass);
        }
    }

    /// <summary>Turns a failure no retry can fix into a message that names the fix.</summary>
    private Exception? Permanent(Exception e, string what)
    {
        if (e is AmazonS3Exception s)
        {
            return s.ErrorCode switch
            {
                "NoSuchBucket" => new S3StorageException($"{what}: the bucket '{_location.Bucket}' does not exist{At()}; create it first (for example: aws s3 mb s3://{_location.Bucket})", false, e),
                "AccessDenied" or "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "ExpiredToken" or "InvalidToken" or "AllAccessDisabled" =>
                    new S3StorageException($"{what}: the S3 server refused the request ({s.ErrorCode}){At()}; check the credentials ({Endpoint.CredentialSource}) and that the bucket policy allows s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on {_location}", false, e),
                // A HEAD answer has no body, so a refusal arrives as a bare 403 with no error code.
                null or "" or "Forbidden" when s.StatusCode == HttpStatusCode.Forbidden =>
                    new S3StorageException($"{what}: the S3 server refused the request (403 Forbidden){At()}; check the credentials ({Endpoint.CredentialSource}) and that the bucket policy allows s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on {_location}; 'cairn doctor' tells which request is refused", false, e),
                "InvalidRequest" or "InvalidArgument" when _options.ObjectLock is not null && (s.Message ?? "").Contains("lock", StringComparison.OrdinalIgnoreCase) =>
                    new S3StorageException($"{what}: the S3 server refused an object lock ({s.ErrorCode}: {s.Message}){At()}; s3.object_lock needs a bucket created with Object Lock enabled (aws s3api create-bucket --object-lock-enabled-for-bucket); run 'cairn doctor'", false, e),
                "PermanentRedirect" or "AuthorizationHeaderMalformed" or "IllegalLocationConstraintException" =>
                    new S3StorageException($"{what}: the bucket '{_location.Bucket}' is in another region than {Endpoint.Region}; set s3.region in cairn.yaml or AWS_REGION", false, e),
                _ => null,
            };
        }
        if (e is AmazonClientException c && c.Message.Contains("credentials", StringComparison.OrdinalIgnoreCase))
        {
            return new S3StorageException($"{what}: no S3 credentials were found; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, s3.credentials_file or s3.profile ({c.Message})", false, e);
        }
        return Endpoint.Trust.Explain(e, what, Endpoint.ServiceUrl) is { } tls ? new S3StorageException(tls, false, e) : null;
    }

    private string At() => Endpoint.ServiceUrl is { } u ? $" at {u.GetLeftPart(UriPartial.Authority)}" : "";

    /// <summary>Content-MD5 of a small text body (a bucket with a default retention demands it on every put).</summary>
    internal static string Md5Of(string body) => Convert.ToBase64String(MD5.HashData(System.Text.Encoding.UTF8.GetBytes(body)));

    /// <summary>S3's ETag of a multipart object: MD5 of the parts' MD5s, then "-" and the number of parts.</summary>
    internal static string MultipartEtag(byte[][] partMd5s)
        => Convert.ToHexStringLower(MD5.HashData(partMd5s.SelectMany(m => m).ToArray())) + "-" + partMd5s.Length;

    /// <summary>A read-only stream over the bytes without copying them when they live in an array.</summary>
    private static MemoryStream StreamOf(ReadOnlyMemory<byte> data)
        => MemoryMarshal.TryGetArray(data, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(data.ToArray(), writable: false);

    /// <summary>The object key of a storage key; names are checked like the folder backend checks them.</summary>
    internal string ObjectKeyOf(StorageKey key)
    {
        if (!IsValidName(key.Kind, key.Name))
        {
            throw new ArgumentException($"invalid object name '{key.Name}'", nameof(key));
        }
        return _location.KeyOf(key.Path);
    }

    private static bool IsValidName(ObjectKind kind, string name)
        => name.Length > 0 && !name.Contains('/', StringComparison.Ordinal) && !name.Contains("..", StringComparison.Ordinal)
            && !name.StartsWith('.') && !name.Any(char.IsControl) && (kind != ObjectKind.Data || name.Length >= 3);

    /// <summary>Maps a listed key (relative to the prefix) back to a storage key; anything that does not fit the layout is skipped.</summary>
    internal static StorageKey? KeyFromObjectKey(ObjectKind kind, string relative)
    {
        var folder = FolderOf(kind) + "/";
        if (!relative.StartsWith(folder, StringComparison.Ordinal))
        {
            return null;
        }
        var rest = relative[folder.Length..];
        string name;
        if (kind == ObjectKind.Data)
        {
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            if (slash != 2)
            {
                return null;
            }
            name = rest[3..];
            if (!name.StartsWith(rest[..2], StringComparison.Ordinal))
            {
                return null;
            }
        }
        else
        {
            name = rest;
        }
        return IsValidName(kind, name) ? new StorageKey(kind, name) : null;
    }

    private static string FolderOf(ObjectKind kind) => StorageKey.FolderOf(kind);

    /// <summary>S3's Last-Modified as UTC (the SDK may hand it over without a kind).</summary>
    private static DateTimeOffset Utc(DateTime? t) => t is { } v
        ? new DateTimeOffset(v.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(v, DateTimeKind.Utc) : v.ToUniversalTime(), TimeSpan.Zero)
        : throw new IOException("the S3 server sent an object without Last-Modified");
}
