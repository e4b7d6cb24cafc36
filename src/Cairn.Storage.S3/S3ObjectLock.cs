using System.Net;
using Amazon.S3.Model;
using Cairn.Repository.Storage;
using S3LockMode = Amazon.S3.ObjectLockMode;

namespace Cairn.Storage.S3;

/// <summary>
/// S3 Object Lock (<c>s3.object_lock</c>): every object of a locked kind (<see cref="ObjectLockPolicy.Applies"/>) is
/// created with <c>x-amz-object-lock-mode</c> and <c>x-amz-object-lock-retain-until-date</c> = now + the period; a
/// delete of a locked object is refused here before the server would (<see cref="ObjectLockedException"/>), an unlocked
/// one is deleted by version ID so its bytes really go; <see cref="ExtendLockAsync"/> moves a date later, never earlier.
/// </summary>
public sealed partial class S3Storage
{
    public ObjectLockPolicy? ObjectLock => _options.ObjectLock;

    /// <summary>What a new object of <paramref name="key"/>'s kind is locked with; null when nothing is locked.</summary>
    private (S3LockMode Mode, DateTime Until)? LockFor(StorageKey key)
        => _options.ObjectLock is { } policy && ObjectLockPolicy.Applies(key.Kind)
            ? (ModeOf(policy.Mode), RoundUp(_time.GetUtcNow() + policy.Period).UtcDateTime)
            : null;

    private static S3LockMode ModeOf(ObjectLockMode mode) => S3LockMode.FindValue(mode == ObjectLockMode.Compliance ? "COMPLIANCE" : "GOVERNANCE");

    /// <summary>S3 keeps whole seconds; rounding up never makes a lock shorter than asked.</summary>
    private static DateTimeOffset RoundUp(DateTimeOffset t) => t.Ticks % TimeSpan.TicksPerSecond == 0 ? t : new DateTimeOffset(t.Ticks - (t.Ticks % TimeSpan.TicksPerSecond) + TimeSpan.TicksPerSecond, TimeSpan.Zero);

    /// <summary>The current version of an object and the date it is held until (a legal hold counts as for ever); null when it does not exist.</summary>
    private async Task<(string? VersionId, DateTimeOffset? Until, S3LockMode? Mode)?> LockStateAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var objectKey = ObjectKeyOf(key);
        return await _retry.RunAsync<(string?, DateTimeOffset?, S3LockMode?)?>($"HEAD {key} (object lock)", async ct =>
        {
            GetObjectMetadataResponse head;
            try
            {
                head = await _client.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = _location.Bucket, Key = objectKey }, ct).ConfigureAwait(false);
            }
            catch (Amazon.S3.AmazonS3Exception e) when (e.StatusCode == HttpStatusCode.NotFound)
            {
                return null;
            }
            DateTimeOffset? until = head.ObjectLockRetainUntilDate is { } d ? Utc(d) : null;
            var mode = head.ObjectLockMode is { Value.Length: > 0 } m ? m : null;
            var version = head.VersionId is { Length: > 0 } v && v != "null" ? v : null;
            if (until is null)
            {
                // Not every server (nor every policy: AWS shows it only with s3:GetObjectRetention) puts the retention on HEAD.
                if (await RetentionAsync(objectKey, version, ct).ConfigureAwait(false) is { } retention)
                {
                    (until, mode) = retention;
                }
            }
            if (head.ObjectLockLegalHoldStatus?.Value == "ON")
            {
                until = DateTimeOffset.MaxValue;
            }
            return (version, until, mode);
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>GET ?retention of one version; null when the object has none.</summary>
    private async Task<(DateTimeOffset?, S3LockMode?)?> RetentionAsync(string objectKey, string? version, CancellationToken cancellationToken)
    {
        try
        {
            var r = await _client.GetObjectRetentionAsync(new GetObjectRetentionRequest { BucketName = _location.Bucket, Key = objectKey, VersionId = version }, cancellationToken).ConfigureAwait(false);
            return r.Retention is { RetainUntilDate: { } d } retention ? (Utc(d), retention.Mode is { Value.Length: > 0 } m ? S3LockMode.FindValue(m.Value) : null) : null;
        }
        catch (Amazon.S3.AmazonS3Exception e) when (e.ErrorCode is "NoSuchObjectLockConfiguration" or "ObjectLockConfigurationNotFoundError" or "InvalidRequest" || e.StatusCode == HttpStatusCode.NotImplemented)
        {
            return null;
        }
    }

    public async Task<DateTimeOffset?> LockedUntilAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var state = await LockStateAsync(key, cancellationToken).ConfigureAwait(false);
        return state?.Until is { } until && until > _time.GetUtcNow() ? until : null;
    }

    public async Task<bool> ExtendLockAsync(StorageKey key, DateTimeOffset until, CancellationToken cancellationToken)
    {
        if (_options.ObjectLock is not { } policy)
        {
            throw new InvalidOperationException("object lock is not configured (s3.object_lock)");
        }
        until = RoundUp(until);
        var state = await LockStateAsync(key, cancellationToken).ConfigureAwait(false) ?? throw new ObjectNotFoundException(key);
        if (state.Until is { } current && current >= until)
        {
            return false;
        }
        // An object keeps its mode: S3 never lets compliance become governance, and governance stays what the bucket's owner chose.
        var mode = state.Mode ?? ModeOf(policy.Mode);
        var objectKey = ObjectKeyOf(key);
        await _retry.RunAsync($"PUT retention {key}", ct => _client.PutObjectRetentionAsync(new PutObjectRetentionRequest
        {
            BucketName = _location.Bucket,
            Key = objectKey,
            VersionId = state.VersionId,
            Retention = new ObjectLockRetention { Mode = Amazon.S3.ObjectLockRetentionMode.FindValue(mode.Value), RetainUntilDate = until.UtcDateTime },
        }, ct), cancellationToken).ConfigureAwait(false);
        return true;
    }
}
