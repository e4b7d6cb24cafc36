using System.Net;
using Cairn.Repository.Storage;

namespace Cairn.Storage.S3;

/// <summary>Server-side encryption the bucket applies on top of Cairn's own encryption.</summary>
public enum S3ServerSideEncryption
{
    /// <summary>Send no header: the bucket's default encryption applies (AWS encrypts with SSE-S3 by default).</summary>
    None,

    /// <summary><c>x-amz-server-side-encryption: AES256</c>.</summary>
    S3,

    /// <summary><c>x-amz-server-side-encryption: aws:kms</c>, with <see cref="S3Options.SseKmsKeyId"/> when given.</summary>
    Kms,
}

/// <summary>
/// How to reach and use the S3 server: the <c>s3:</c> block of cairn.yaml (every key optional) plus
/// tuning that has defaults. Secrets are never here: credentials come from the standard chain
/// (environment, shared credentials file and profile, web identity, instance metadata) or from
/// <see cref="CredentialsFile"/>.
/// </summary>
public sealed record S3Options
{
    /// <summary><c>endpoint</c>: e.g. <c>http://127.0.0.1:9000</c>; else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS S3.</summary>
    public Uri? Endpoint { get; init; }

    /// <summary><c>region</c>; else AWS_REGION/AWS_DEFAULT_REGION, the profile's region, else us-east-1 for a custom endpoint.</summary>
    public string? Region { get; init; }

    /// <summary><c>path_style</c>; null: path-style when the endpoint is an IP address or localhost, virtual-host otherwise.</summary>
    public bool? PathStyle { get; init; }

    /// <summary><c>credentials_file</c>: an AWS shared-credentials file (INI: <c>[profile]</c>, <c>aws_access_key_id</c>, …), mode 0600.</summary>
    public string? CredentialsFile { get; init; }

    /// <summary><c>profile</c>: the profile in <see cref="CredentialsFile"/> or in ~/.aws; else AWS_PROFILE, else <c>default</c>.</summary>
    public string? Profile { get; init; }

    /// <summary>
    /// <c>ca_file</c>: a PEM file of the CA certificates that sign an https endpoint's certificate (a private CA, MinIO or
    /// Ceph behind an internal CA, a self-signed server); only these are trusted. Null: AWS_CA_BUNDLE, else the system's store.
    /// </summary>
    public string? CaFile { get; init; }

    /// <summary><c>sse</c>: none, AES256 (SSE-S3) or aws:kms (SSE-KMS).</summary>
    public S3ServerSideEncryption Sse { get; init; }

    /// <summary><c>sse_kms_key_id</c>: the KMS key for SSE-KMS; null uses the account's default key.</summary>
    public string? SseKmsKeyId { get; init; }

    /// <summary><c>storage_class</c>, e.g. STANDARD_IA; null leaves the bucket's default.</summary>
    public string? StorageClass { get; init; }

    /// <summary>
    /// This client never deletes (append-only, see AppendOnlyStorage): the one delete S3Storage makes by itself, of
    /// its conditional-write probe object, is skipped (the probe runs once per prefix; its few bytes stay).
    /// </summary>
    public bool AppendOnly { get; init; }

    /// <summary>
    /// <c>object_lock: { mode, days }</c>: every object Cairn creates (but locks, pins and the snapshot-index cache) is
    /// retained that long (S3 Object Lock; the bucket must have it enabled); null locks nothing.
    /// </summary>
    public ObjectLockPolicy? ObjectLock { get; init; }

    /// <summary>Objects larger than this go up in parts (packs are about 32 MiB, WAL segments 16 MiB at most).</summary>
    public int MultipartThreshold { get; init; } = 16 * 1024 * 1024;

    /// <summary>Size of each part but the last (S3 needs at least 5 MiB).</summary>
    public int PartSize { get; init; } = 8 * 1024 * 1024;

    /// <summary>Parts of one object uploaded at once.</summary>
    public int PartConcurrency { get; init; } = 4;

    /// <summary>How failed requests are retried.</summary>
    public S3RetryOptions Retry { get; init; } = new();

    /// <summary>Parses an endpoint URL (scheme, host, port only); the error message names the fix.</summary>
    public static bool TryParseEndpoint(string text, out Uri? endpoint, out string error)
    {
        try
        {
            endpoint = S3ClientFactory.ParseEndpoint(text, "endpoint");
            error = "";
            return true;
        }
        catch (S3ConfigurationException e)
        {
            endpoint = null;
            error = e.Message["endpoint: ".Length..];
            return false;
        }
    }

    /// <summary>Whether the endpoint must be addressed path-style (<c>http://host/bucket/key</c>).</summary>
    public static bool ImpliesPathStyle(Uri endpoint)
        => endpoint.IsLoopback || IPAddress.TryParse(endpoint.Host.Trim('[', ']'), out _)
            || string.Equals(endpoint.Host, "localhost", StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// Retries of one S3 request: exponential backoff with full jitter, on 5xx, 429, SlowDown, timeouts and
/// broken connections, bounded both in attempts and in total time (so a dead server fails in minutes,
/// not hours).
/// </summary>
public sealed record S3RetryOptions
{
    public int MaxAttempts { get; init; } = 8;

    public TimeSpan BaseDelay { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxDelay { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>No new attempt starts after this much time since the first one.</summary>
    public TimeSpan MaxTotal { get; init; } = TimeSpan.FromMinutes(3);

    /// <summary>One request (connect, send, receive the whole body) may take this long before it counts as failed.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(2);
}
