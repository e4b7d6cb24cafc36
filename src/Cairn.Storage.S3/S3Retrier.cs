using System.Net;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using Amazon.Runtime;
using Cairn.Repository.Storage;

namespace Cairn.Storage.S3;

/// <summary>
/// An S3 request failed for good: after the retries, or at once because retrying cannot help
/// (access denied, missing bucket). The message names what failed and what to do.
/// </summary>
public sealed class S3StorageException(string message, bool transient, Exception? inner = null) : IOException(message, inner)
{
    /// <summary>True when the last failure was one a later attempt might not see (the server was busy or unreachable).</summary>
    public bool Transient { get; } = transient;
}

/// <summary>
/// Runs one S3 request with a per-attempt timeout and retries transient failures with exponential
/// backoff and full jitter (AWS's recommended scheme), bounded by attempts and by total time. The SDK's
/// own retries are off, so every wait here is visible, counted and driven by the TimeProvider.
/// </summary>
internal sealed class S3Retrier(S3RetryOptions options, TimeProvider time, Func<Exception, string, Exception?> permanent)
{
    private long _retries;

    /// <summary>How many attempts failed transiently and were retried (for tests and diagnostics).</summary>
    public long Retries => Interlocked.Read(ref _retries);

    public async Task<T> RunAsync<T>(string what, Func<CancellationToken, Task<T>> action, CancellationToken cancellationToken)
    {
        var start = time.GetTimestamp();
        for (var attempt = 1; ; attempt++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var timeout = new CancellationTokenSource(options.RequestTimeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
            try
            {
                return await action(linked.Token).ConfigureAwait(false);
            }
            catch (Exception e) when (!cancellationToken.IsCancellationRequested && e is not (ObjectNotFoundException or S3StorageException))
            {
                var reason = TransientReason(e, timeout.IsCancellationRequested);
                if (reason is null)
                {
                    throw permanent(e, what) ?? new S3StorageException($"{what} failed: {Describe(e)}", false, e);
                }
                var elapsed = time.GetElapsedTime(start);
                if (attempt >= options.MaxAttempts || elapsed >= options.MaxTotal)
                {
                    throw new S3StorageException(
                        $"{what} failed after {attempt} attempts in {elapsed.TotalSeconds:0.#} s (last: {reason}); the S3 server is unreachable or overloaded: check the endpoint (s3.endpoint in cairn.yaml, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL) and the network, or try again later ('cairn doctor' checks the endpoint)", true, e);
                }
                Interlocked.Increment(ref _retries);
                var delay = Backoff(attempt);
                var left = options.MaxTotal - elapsed;
                await Task.Delay(delay < left ? delay : left, time, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    public async Task RunAsync(string what, Func<CancellationToken, Task> action, CancellationToken cancellationToken)
        => await RunAsync<bool>(what, async ct =>
        {
            await action(ct).ConfigureAwait(false);
            return true;
        }, cancellationToken).ConfigureAwait(false);

    /// <summary>Full jitter: a uniform wait in [0, min(max, base·2^(attempt-1))].</summary>
    internal TimeSpan Backoff(int attempt)
    {
        var cap = Math.Min(options.MaxDelay.TotalMilliseconds, options.BaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt - 1, 30)));
        return TimeSpan.FromMilliseconds(cap * RandomNumberGenerator.GetInt32(0, 1 << 20) / (1 << 20));
    }

    /// <summary>Why a failure is worth retrying, or null when it is not.</summary>
    internal static string? TransientReason(Exception e, bool timedOut)
    {
        if (timedOut && e is OperationCanceledException)
        {
            return "the request timed out";
        }
        if (e is AmazonServiceException s && s.StatusCode != 0)
        {
            var code = (int)s.StatusCode;
            // 501 Not Implemented is the server saying it will never do this (s3rver: listing multipart uploads).
            if ((code >= 500 && code != 501) || code == 429 || s.ErrorCode is "SlowDown" or "RequestTimeout" or "Throttling" or "ThrottlingException" or "InternalError" or "ServiceUnavailable"
                // The body arrived damaged or short: the bytes in memory are fine, so sending them again helps.
                or "BadDigest" or "IncompleteBody" or "XAmzContentSHA256Mismatch" or "InvalidDigest")
            {
                return $"{code} {s.ErrorCode}".TrimEnd();
            }
            return null;
        }
        for (var x = e; x is not null; x = x.InnerException)
        {
            // A refused certificate is refused again on every attempt (S3Trust.Explain names the fix).
            if (x is AuthenticationException)
            {
                return null;
            }
        }
        for (var x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case HttpRequestException or SocketException or TimeoutException:
                    return x.Message;
                case IOException when x is not S3StorageException:
                    return x.Message;
                case WebException:
                    return x.Message;
            }
        }
        return null;
    }

    internal static string Describe(Exception e) => e switch
    {
        AmazonServiceException s when s.StatusCode != 0 => $"{(int)s.StatusCode} {s.ErrorCode}: {s.Message}",
        _ => e.Message,
    };
}
