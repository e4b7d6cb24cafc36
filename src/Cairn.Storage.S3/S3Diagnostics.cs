using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Amazon.S3;
using Amazon.S3.Model;
using Cairn.Repository.Storage;

namespace Cairn.Storage.S3;

/// <summary><c>cairn doctor</c> for a bucket: each check is one request with a short timeout and no retries, so a dead server is reported in seconds.</summary>
public sealed partial class S3Storage : IDiagnosableStorage
{
    private static readonly TimeSpan DoctorTimeout = TimeSpan.FromSeconds(20);

    /// <summary>AWS refuses a request signed more than 15 minutes off the server's clock (RequestTimeTooSkewed).</summary>
    private static readonly TimeSpan SkewRefused = TimeSpan.FromMinutes(15);

    public async Task<IReadOnlyList<StorageCheck>> DiagnoseAsync(bool appendOnly, CancellationToken cancellationToken)
    {
        var checks = new List<StorageCheck>
        {
            new("endpoint", StorageCheckState.Ok, $"{(Endpoint.ServiceUrl is { } u ? u.GetLeftPart(UriPartial.Authority) : "AWS S3")}, region {Endpoint.Region}, {(Endpoint.PathStyle ? "path-style" : "virtual-host")} addressing; credentials from {Endpoint.CredentialSource}{(Endpoint.ServiceUrl is { Scheme: "http" } ? "" : "; TLS trusts " + Endpoint.Trust.Description)}"),
        };

        // Reachable, credentials valid, bucket exists: one listing of the prefix.
        try
        {
            await BoundedAsync(ct => _client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = _location.Bucket, Prefix = _location.KeyOf(""), MaxKeys = 1 }, ct), cancellationToken).ConfigureAwait(false);
            checks.Add(new("bucket", StorageCheckState.Ok, $"s3://{_location.Bucket} exists and these credentials may list {_location}"));
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            checks.Add(new("bucket", StorageCheckState.Fail, Explain(e, "LIST")));
            return checks;
        }

        checks.Add(await ClockAsync(cancellationToken).ConfigureAwait(false));
        checks.Add(await ProbeAsync(appendOnly, cancellationToken).ConfigureAwait(false));

        try
        {
            var supported = await ProbeConditionalWritesAsync(cancellationToken).ConfigureAwait(false);
            await RememberConditionalWritesAsync(supported, cancellationToken).ConfigureAwait(false);
            _conditionalWrites = supported;
            checks.Add(supported
                ? new("conditional writes", StorageCheckState.Ok, "the server refuses a second If-None-Match: * put of one key (WAL is created atomically)")
                : new("conditional writes", StorageCheckState.Warning, "this server ignores conditional writes: two servers archiving into one prefix could overwrite each other's WAL; use AWS S3, a MinIO/Ceph version with conditional writes, or one prefix per server"));
        }
        catch (Exception e) when (e is S3StorageException or AmazonS3Exception)
        {
            checks.Add(new("conditional writes", StorageCheckState.Warning, "could not be probed: " + e.Message));
        }

        checks.Add(await VersioningAsync(appendOnly, cancellationToken).ConfigureAwait(false));
        checks.Add(await ObjectLockAsync(cancellationToken).ConfigureAwait(false));
        return checks;
    }

    /// <summary>The server's clock from its Date header (any answer has one, even a refusal) against ours.</summary>
    private async Task<StorageCheck> ClockAsync(CancellationToken cancellationToken)
    {
        var url = Endpoint.ServiceUrl ?? new Uri($"https://s3.{Endpoint.Region}.amazonaws.com/");
        try
        {
            using var http = new HttpClient(Endpoint.Trust.CreateHandler(null)) { Timeout = DoctorTimeout };
            using var response = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, url), cancellationToken).ConfigureAwait(false);
            if (response.Headers.Date is not { } serverTime)
            {
                return new("clock", StorageCheckState.Warning, $"{url.GetLeftPart(UriPartial.Authority)} sent no Date header; the clock could not be compared");
            }
            var skew = _time.GetUtcNow() - serverTime;
            var text = $"this host's clock is {Math.Abs(skew.TotalSeconds):0} s {(skew >= TimeSpan.Zero ? "ahead of" : "behind")} the server's";
            // The Date header has whole seconds: up to a second of difference is rounding.
            return skew.Duration() >= SkewRefused
                ? new("clock", StorageCheckState.Fail, text + "; S3 refuses requests signed 15 minutes off: fix the clock (timedatectl set-ntp true, chrony)")
                : skew.Duration() > TimeSpan.FromMinutes(1)
                    ? new("clock", StorageCheckState.Warning, text + "; lock staleness and WAL ages compare times across hosts: run NTP (timedatectl set-ntp true, chrony)")
                    : new("clock", StorageCheckState.Ok, text);
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return new("clock", StorageCheckState.Warning, $"the server's clock could not be read ({e.Message})");
        }
    }

    /// <summary>Write a probe object, read it back, delete it (an append-only client writes and reads only).</summary>
    private async Task<StorageCheck> ProbeAsync(bool appendOnly, CancellationToken cancellationToken)
    {
        var key = _location.KeyOf(".cairn-doctor-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        var body = "cairn doctor " + _time.GetUtcNow().ToString("O", CultureInfo.InvariantCulture);
        var step = "PUT";
        try
        {
            // If-None-Match: * so that the append-only policy (which demands it) allows the probe too.
            await BoundedAsync(ct => _client.PutObjectAsync(new PutObjectRequest { BucketName = _location.Bucket, Key = key, ContentBody = body, MD5Digest = Md5Of(body), UseChunkEncoding = false, IfNoneMatch = "*" }, ct), cancellationToken).ConfigureAwait(false);
            step = "GET";
            var back = await BoundedAsync(async ct =>
            {
                using var response = await _client.GetObjectAsync(new GetObjectRequest { BucketName = _location.Bucket, Key = key }, ct).ConfigureAwait(false);
                using var reader = new StreamReader(response.ResponseStream, Encoding.UTF8);
                return await reader.ReadToEndAsync(ct).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
            if (back != body)
            {
                return new("write-read-delete", StorageCheckState.Fail, $"the probe object {key} read back different bytes than were written; the server or a proxy in between changes data");
            }
            if (appendOnly)
            {
                return new("write-read", StorageCheckState.Ok, $"wrote and read back {key} (append-only: no delete tried; the probe's few bytes stay for prune's host to remove)");
            }
            step = "DELETE";
            await BoundedAsync(ct => _client.DeleteObjectAsync(new DeleteObjectRequest { BucketName = _location.Bucket, Key = key }, ct), cancellationToken).ConfigureAwait(false);
            return new("write-read-delete", StorageCheckState.Ok, $"wrote, read back and deleted {key}");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            var hint = step == "DELETE" ? " (a database host's credentials without s3:DeleteObject are right for an append-only client: set append_only: true in its cairn.yaml)" : "";
            return new(appendOnly ? "write-read" : "write-read-delete", StorageCheckState.Fail, Explain(e, step) + hint);
        }
    }

    private async Task<StorageCheck> VersioningAsync(bool appendOnly, CancellationToken cancellationToken)
    {
        try
        {
            var v = await BoundedAsync(ct => _client.GetBucketVersioningAsync(new GetBucketVersioningRequest { BucketName = _location.Bucket }, ct), cancellationToken).ConfigureAwait(false);
            var status = v.VersioningConfig?.Status?.Value is { Length: > 0 } s ? s : "Off";
            if (status == "Enabled")
            {
                return new("versioning", StorageCheckState.Ok, "Enabled: an overwritten or deleted object keeps its old versions (deleting those needs s3:DeleteObjectVersion)");
            }
            if (ObjectLock is not null)
            {
                return new("versioning", StorageCheckState.Fail, $"{status}: s3.object_lock needs a bucket with versioning and Object Lock enabled, which S3 allows only when the bucket is created: create a new bucket with --object-lock-enabled-for-bucket (aws s3api create-bucket) and move the repository there, or remove object_lock from cairn.yaml");
            }
            return new("versioning", appendOnly ? StorageCheckState.Warning : StorageCheckState.Ok,
                $"{status}{(appendOnly ? ": without versioning or Object Lock only the bucket policy protects objects from being overwritten; enable versioning (aws s3api put-bucket-versioning --versioning-configuration Status=Enabled) or require If-None-Match on PUT (docs/security.md)" : "")}");
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            return new("versioning", StorageCheckState.Warning, "unknown: " + Explain(e, "GET versioning"));
        }
    }

    private async Task<StorageCheck> ObjectLockAsync(CancellationToken cancellationToken)
    {
        try
        {
            var l = await BoundedAsync(ct => _client.GetObjectLockConfigurationAsync(new GetObjectLockConfigurationRequest { BucketName = _location.Bucket }, ct), cancellationToken).ConfigureAwait(false);
            var config = l.ObjectLockConfiguration;
            if (config?.ObjectLockEnabled?.Value != "Enabled")
            {
                return Off();
            }
            var rule = config.Rule?.DefaultRetention;
            var text = rule is null
                ? "enabled, no default retention"
                : $"enabled, default retention {rule.Mode?.Value} {(rule.Days is > 0 ? $"{rule.Days} days" : $"{rule.Years} years")}";
            return ObjectLock is { } policy
                ? new("object lock", StorageCheckState.Ok, $"{text}; Cairn locks every object it creates {policy.Mode.ToString().ToLowerInvariant()} for {policy.Period.TotalDays:0} day(s) (s3.object_lock{(policy.Source is { } from ? $": days: retention, {from}" : "")})")
                : new("object lock", StorageCheckState.Ok, text);
        }
        catch (AmazonS3Exception e) when (e.ErrorCode is "ObjectLockConfigurationNotFoundError")
        {
            return Off();
        }
        catch (Exception e) when (e is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            // Configured but not confirmed is a refusal: backups would be written believing they are locked.
            return new("object lock", ObjectLock is null ? StorageCheckState.Warning : StorageCheckState.Fail, "unknown: " + Explain(e, "GET object lock configuration")
                + (ObjectLock is null ? "" : "; s3.object_lock is set, so the bucket must confirm Object Lock (these credentials need s3:GetBucketObjectLockConfiguration), or remove object_lock from cairn.yaml"));
        }

        StorageCheck Off() => ObjectLock is null
            ? new("object lock", StorageCheckState.Ok, "off")
            : new("object lock", StorageCheckState.Fail, $"off, but s3.object_lock is set: the bucket '{_location.Bucket}' does not have Object Lock enabled, so nothing would be locked. S3 enables it only when a bucket is created: create one with 'aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket' and use it, or remove object_lock from cairn.yaml");
    }

    private async Task<T> BoundedAsync<T>(Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        using var bound = new CancellationTokenSource(DoctorTimeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, bound.Token);
        try
        {
            return await action(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (bound.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {DoctorTimeout.TotalSeconds:0} s");
        }
    }

    /// <summary>A failed doctor request in words that name the fix (the same words as a failed operation).</summary>
    private string Explain(Exception e, string what)
    {
        if (Permanent(e, what) is { } permanent)
        {
            return permanent.Message;
        }
        return e switch
        {
            AmazonS3Exception { StatusCode: HttpStatusCode.NotImplemented } => $"{what}: the server does not implement this request",
            AmazonS3Exception s => $"{what}: the server answered {(int)s.StatusCode} {s.ErrorCode}: {s.Message}",
            TimeoutException or HttpRequestException or IOException => $"{what}: the S3 server{At()} is unreachable ({e.Message}); check s3.endpoint / AWS_ENDPOINT_URL, the network and the firewall",
            _ => $"{what}: {e.Message}",
        };
    }
}
