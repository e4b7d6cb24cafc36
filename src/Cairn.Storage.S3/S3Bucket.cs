using System.Net;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;

namespace Cairn.Storage.S3;

/// <summary>One object as a bucket lists it (the key is the bucket's, unchecked: the caller validates it).</summary>
public sealed record BucketObject(string Key, long Size, string ETag, DateTimeOffset LastModified);

/// <summary>What a GET or HEAD said about an object.</summary>
public sealed record BucketObjectHead(long Size, string ETag, DateTimeOffset LastModified, string? ContentType);

/// <summary>
/// Files in someone else's buckets (an application's Storage, e.g. Supabase Storage through its S3 protocol), as opposed
/// to <see cref="S3Storage"/>, which holds a repository. Lists page by page, reads as a stream (a broken read resumes
/// with a ranged GET of the same ETag, so no file is ever held whole in memory), writes with one PUT or, above
/// <see cref="S3Options.MultipartThreshold"/>, part by part from the stream. Every failure names the bucket and key.
/// </summary>
public sealed class S3Bucket : IDisposable
{
    private readonly IAmazonS3 _client;
    private readonly S3Options _options;
    private readonly S3Retrier _retry;
    private readonly TimeProvider _time;

    /// <param name="environment">Reads an environment variable (AWS_*); credentials come from there or from <see cref="S3Options.CredentialsFile"/>.</param>
    public S3Bucket(S3Options options, Func<string, string?> environment, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        (var client, Endpoint) = S3ClientFactory.Create(options, environment, "storage_buckets.ca_file");
        _client = client;
        _options = options;
        _time = time;
        _retry = new S3Retrier(options.Retry, time, Permanent);
    }

    /// <summary>Where requests go and how credentials were found (no secrets).</summary>
    public S3Endpoint Endpoint { get; }

    /// <summary>
    /// Parses a Storage endpoint: like the repository's (scheme, host, port, no credentials), but a path is allowed,
    /// because Supabase serves its S3 protocol under one (<c>https://REF.supabase.co/storage/v1/s3</c>).
    /// </summary>
    public static bool TryParseEndpoint(string text, out Uri? endpoint, out string error)
    {
        endpoint = null;
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            error = $"'{text}' is not an endpoint URL; write it like https://PROJECT.supabase.co/storage/v1/s3 or http://127.0.0.1:9000";
            return false;
        }
        if (uri.UserInfo.Length > 0)
        {
            error = "the endpoint URL must not hold credentials; name a credentials file (credentials_file, mode 0600) or use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
            return false;
        }
        if (uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            error = $"'{text}' has a query or fragment; give scheme, host, port and path only";
            return false;
        }
        endpoint = uri;
        error = "";
        return true;
    }

    /// <summary>Fails, naming the fix, when the bucket cannot be listed (missing, no rights, unreachable).</summary>
    public async Task ProbeAsync(string bucket, CancellationToken cancellationToken)
        => await _retry.RunAsync($"LIST bucket {bucket}", ct => _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = bucket, MaxKeys = 1 }, ct), cancellationToken).ConfigureAwait(false);

    /// <summary>Every object of the bucket, a page (1,000 keys) at a time.</summary>
    public async IAsyncEnumerable<BucketObject> ListAsync(string bucket, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string? token = null;
        do
        {
            var page = await _retry.RunAsync($"LIST bucket {bucket}", ct => _client.ListObjectsV2Async(new ListObjectsV2Request
            {
                BucketName = bucket,
                ContinuationToken = token,
                MaxKeys = 1000,
            }, ct), cancellationToken).ConfigureAwait(false);
            foreach (var o in page.S3Objects ?? [])
            {
                yield return new BucketObject(o.Key, o.Size ?? 0, Etag(o.ETag), Utc(o.LastModified));
            }
            token = page.IsTruncated == true ? page.NextContinuationToken : null;
            if (page.IsTruncated == true && string.IsNullOrEmpty(token))
            {
                throw new S3StorageException($"LIST bucket {bucket}: the server said the listing is truncated but gave no continuation token", false);
            }
        }
        while (token is not null);
    }

    /// <summary>The object's size, ETag, time and type, or null when there is none under the key.</summary>
    public async Task<BucketObjectHead?> HeadAsync(string bucket, string key, CancellationToken cancellationToken)
        => await _retry.RunAsync<BucketObjectHead?>($"HEAD {bucket}/{key}", async ct =>
        {
            try
            {
                var head = await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = bucket, Key = key }, ct).ConfigureAwait(false);
                return new BucketObjectHead(head.ContentLength, Etag(head.ETag), Utc(head.LastModified), NullIfEmpty(head.Headers.ContentType));
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
                return null;
            }
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Opens the object for reading, or returns null when it is gone (deleted since it was listed). The stream reads the
    /// version the first response named: a read that breaks resumes where it stopped with a ranged GET that must match
    /// that ETag, so the bytes are never a mix of two versions.
    /// </summary>
    public async Task<(Stream Stream, BucketObjectHead Head)?> OpenReadAsync(string bucket, string key, CancellationToken cancellationToken)
    {
        var first = await GetAsync(bucket, key, 0, null, cancellationToken).ConfigureAwait(false);
        if (first is null)
        {
            return null;
        }
        var head = new BucketObjectHead(first.ContentLength, Etag(first.ETag), Utc(first.LastModified), NullIfEmpty(first.Headers.ContentType));
        return (new ResumingStream(this, bucket, key, head, first), head);
    }

    private async Task<GetObjectResponse?> GetAsync(string bucket, string key, long offset, string? etag, CancellationToken cancellationToken)
        => await _retry.RunAsync<GetObjectResponse?>($"GET {bucket}/{key}", async ct =>
        {
            var request = new GetObjectRequest { BucketName = bucket, Key = key, EtagToMatch = etag is null ? null : $"\"{etag}\"" };
            if (offset > 0)
            {
                request.ByteRange = new ByteRange($"bytes={offset}-");
            }
            try
            {
                return await _client.GetObjectAsync(request, ct).ConfigureAwait(false);
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound && e.ErrorCode != "NoSuchBucket")
            {
                return null;
            }
            catch (AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                throw new S3StorageException($"GET {bucket}/{key}: the object changed while it was read; run the backup again", false, e);
            }
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Writes <paramref name="size"/> bytes from <paramref name="content"/> under the key. With <paramref name="createOnly"/>
    /// the request carries <c>If-None-Match: *</c> and false means an object was already there (the caller checked with
    /// <see cref="HeadAsync"/> first: servers that ignore the header would otherwise replace it). At most one part
    /// (<see cref="S3Options.PartSize"/>) or one small object is in memory at a time.
    /// </summary>
    public async Task<bool> PutAsync(string bucket, string key, Stream content, long size, string? contentType, bool createOnly, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(content);
        if (size <= _options.MultipartThreshold)
        {
            var data = new byte[size];
            await content.ReadExactlyAsync(data, cancellationToken).ConfigureAwait(false);
            await ExpectEndAsync(content, bucket, key, size, cancellationToken).ConfigureAwait(false);
            var md5 = Convert.ToBase64String(MD5.HashData(data));
            return await _retry.RunAsync($"PUT {bucket}/{key}", async ct =>
            {
                using var body = new MemoryStream(data, writable: false);
                try
                {
                    await _client.PutObjectAsync(new PutObjectRequest
                    {
                        BucketName = bucket,
                        Key = key,
                        InputStream = body,
                        AutoCloseStream = false,
                        AutoResetStreamPosition = true,
                        MD5Digest = md5,
                        UseChunkEncoding = false,
                        ContentType = contentType ?? "application/octet-stream",
                        IfNoneMatch = createOnly ? "*" : null,
                    }, ct).ConfigureAwait(false);
                    return true;
                }
                catch (AmazonS3Exception e) when (createOnly && e.StatusCode == HttpStatusCode.PreconditionFailed)
                {
                    return false;
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        var uploadId = (await _retry.RunAsync($"START multipart PUT {bucket}/{key}", ct => _client.InitiateMultipartUploadAsync(
            new InitiateMultipartUploadRequest { BucketName = bucket, Key = key, ContentType = contentType ?? "application/octet-stream" }, ct), cancellationToken).ConfigureAwait(false)).UploadId;
        try
        {
            var parts = (int)((size + _options.PartSize - 1) / _options.PartSize);
            var etags = new List<PartETag>(parts);
            var buffer = new byte[_options.PartSize];
            for (var i = 0; i < parts; i++)
            {
                var length = (int)Math.Min(_options.PartSize, size - ((long)i * _options.PartSize));
                await content.ReadExactlyAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                var md5 = Convert.ToBase64String(MD5.HashData(buffer.AsSpan(0, length)));
                var number = i + 1;
                var etag = await _retry.RunAsync($"PUT {bucket}/{key} part {number}/{parts}", async ct =>
                {
                    using var body = new MemoryStream(buffer, 0, length, writable: false);
                    var r = await _client.UploadPartAsync(new UploadPartRequest
                    {
                        BucketName = bucket,
                        Key = key,
                        UploadId = uploadId,
                        PartNumber = number,
                        InputStream = body,
                        PartSize = length,
                        MD5Digest = md5,
                        UseChunkEncoding = false,
                        IsLastPart = number == parts,
                    }, ct).ConfigureAwait(false);
                    return r.ETag;
                }, cancellationToken).ConfigureAwait(false);
                etags.Add(new PartETag(number, etag));
            }
            await ExpectEndAsync(content, bucket, key, size, cancellationToken).ConfigureAwait(false);
            var created = await _retry.RunAsync($"COMPLETE multipart PUT {bucket}/{key}", async ct =>
            {
                try
                {
                    await _client.CompleteMultipartUploadAsync(new CompleteMultipartUploadRequest
                    {
                        BucketName = bucket,
                        Key = key,
                        UploadId = uploadId,
                        PartETags = etags,
                        IfNoneMatch = createOnly ? "*" : null,
                    }, ct).ConfigureAwait(false);
                    return true;
                }
                catch (AmazonS3Exception e) when (createOnly && e.StatusCode == HttpStatusCode.PreconditionFailed)
                {
                    return false;
                }
            }, cancellationToken).ConfigureAwait(false);
            if (!created)
            {
                await AbortAsync(bucket, key, uploadId).ConfigureAwait(false);
            }
            return created;
        }
        catch
        {
            await AbortAsync(bucket, key, uploadId).ConfigureAwait(false);
            throw;
        }
    }

    private static async Task ExpectEndAsync(Stream content, string bucket, string key, long size, CancellationToken cancellationToken)
    {
        var one = new byte[1];
        if (await content.ReadAsync(one, cancellationToken).ConfigureAwait(false) != 0)
        {
            throw new IOException($"{bucket}/{key}: the content is longer than the {size} bytes announced");
        }
    }

    private async Task AbortAsync(string bucket, string key, string uploadId)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30), _time);
        try
        {
            await _client.AbortMultipartUploadAsync(new AbortMultipartUploadRequest { BucketName = bucket, Key = key, UploadId = uploadId }, bound.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is AmazonServiceException or IOException or HttpRequestException or OperationCanceledException)
        {
            // Invisible parts; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes them.
        }
    }

    public void Dispose() => _client.Dispose();

    private Exception? Permanent(Exception e, string what)
    {
        var at = Endpoint.ServiceUrl is { } u ? $" at {u}" : "";
        if (e is AmazonS3Exception s)
        {
            return s.ErrorCode switch
            {
                "NoSuchBucket" => new S3StorageException($"{what}: the bucket does not exist{at}; check storage_buckets.buckets (or create the bucket first)", false, e),
                "AccessDenied" or "InvalidAccessKeyId" or "SignatureDoesNotMatch" or "ExpiredToken" or "InvalidToken" or "AllAccessDisabled" =>
                    new S3StorageException($"{what}: the S3 server refused the request ({s.ErrorCode}){at}; check the credentials ({Endpoint.CredentialSource}) and that they may list, read (and for a restore, write) the bucket", false, e),
                null or "" or "Forbidden" when s.StatusCode == HttpStatusCode.Forbidden =>
                    new S3StorageException($"{what}: the S3 server refused the request (403 Forbidden){at}; check the credentials ({Endpoint.CredentialSource}) and that they may list, read (and for a restore, write) the bucket", false, e),
                _ => null,
            };
        }
        if (e is AmazonClientException c && c.Message.Contains("credentials", StringComparison.OrdinalIgnoreCase))
        {
            return new S3StorageException($"{what}: no S3 credentials were found; set storage_buckets.credentials_file or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({c.Message})", false, e);
        }
        return Endpoint.Trust.Explain(e, what, Endpoint.ServiceUrl) is { } tls ? new S3StorageException(tls, false, e) : null;
    }

    private static string Etag(string? etag) => (etag ?? "").Trim('"');

    private static string? NullIfEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;

    private static DateTimeOffset Utc(DateTime? t) => t is { } v
        ? new DateTimeOffset(v.Kind == DateTimeKind.Unspecified ? DateTime.SpecifyKind(v, DateTimeKind.Utc) : v.ToUniversalTime(), TimeSpan.Zero)
        : DateTimeOffset.UnixEpoch;

    /// <summary>A GET's body that, when the connection breaks, asks again from the byte it reached (same ETag), a few times.</summary>
    private sealed class ResumingStream(S3Bucket owner, string bucket, string key, BucketObjectHead head, GetObjectResponse first) : Stream
    {
        private const int MaxResumes = 5;
        private GetObjectResponse? _response = first;
        private long _position;
        private int _resumes;

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => head.Size;
        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            while (true)
            {
                try
                {
                    _response ??= await owner.GetAsync(bucket, key, _position, head.ETag, cancellationToken).ConfigureAwait(false)
                        ?? throw new S3StorageException($"GET {bucket}/{key}: the object was deleted while it was read", false);
                    var n = await _response.ResponseStream.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
                    if (n == 0 && _position < head.Size && buffer.Length > 0)
                    {
                        throw new IOException($"GET {bucket}/{key}: the body ended after {_position} of {head.Size} bytes");
                    }
                    _position += n;
                    return n;
                }
                catch (Exception e) when (e is IOException or HttpRequestException && e is not S3StorageException && !cancellationToken.IsCancellationRequested && _resumes < MaxResumes)
                {
                    _resumes++;
                    _response?.Dispose();
                    _response = null;
                }
            }
        }

        // Asynchronous only: a synchronous read would block a thread on the network.
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("read this stream asynchronously");

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

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
                _response?.Dispose();
                _response = null;
            }
            base.Dispose(disposing);
        }
    }
}
