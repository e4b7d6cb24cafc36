using System.Text.RegularExpressions;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Configuration;

/// <summary>
/// The <c>s3:</c> block of cairn.yaml (every key optional):
/// <c>s3: { endpoint, region, path_style, credentials_file, profile, ca_file, sse, sse_kms_key_id, storage_class, object_lock: { mode, days } }</c>.
/// Credentials never appear in it: keys that would hold them are refused with the way to do it instead.
/// </summary>
public static partial class S3ConfigSection
{
    private static readonly HashSet<string> Keys = ["endpoint", "region", "path_style", "credentials_file", "profile", "ca_file", "sse", "sse_kms_key_id", "storage_class", "object_lock"];

    private static readonly HashSet<string> SecretKeys = ["access_key", "access_key_id", "aws_access_key_id", "secret_key", "secret_access_key", "aws_secret_access_key", "session_token", "aws_session_token", "password", "secret"];

    /// <summary>Parses the block; relative paths are resolved against <paramref name="baseDirectory"/> (the config file's folder).</summary>
    public static S3Options Parse(YamlNode node, string file, string baseDirectory, string key = "s3", RetentionLock? retentionLock = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        var ctx = new CairnConfig.Ctx(file);
        var map = ctx.Mapping(node, key);
        foreach (var k in map.Children.Keys)
        {
            if (k is YamlScalarNode { Value: { } name } && SecretKeys.Contains(name))
            {
                throw new ConfigException($"{file}:{k.Start.Line}: {key}.{name}: credentials never go in cairn.yaml; name a credentials file (s3.credentials_file, mode 0600, AWS format) or use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or instance credentials");
            }
        }
        ctx.CheckKeys(map, Keys, key + ".");

        Uri? endpoint = null;
        if (ctx.Get(map, "endpoint") is { } en)
        {
            var text = ctx.Scalar(en, "s3.endpoint");
            if (!S3Options.TryParseEndpoint(text, out endpoint, out var error))
            {
                throw new ConfigException($"{file}:{en.Start.Line}: s3.endpoint: {error}");
            }
        }
        var region = ctx.OptString(map, "region", "s3");
        if (region is not null && !RegionRegex().IsMatch(region))
        {
            throw new ConfigException($"{file}:{ctx.Get(map, "region")!.Start.Line}: s3.region '{region}' is not a region name (like us-east-1 or eu-central-1)");
        }
        var sse = S3ServerSideEncryption.None;
        if (ctx.Get(map, "sse") is { } sn)
        {
            var text = ctx.Scalar(sn, "s3.sse");
            sse = text.ToLowerInvariant() switch
            {
                "none" or "false" or "off" => S3ServerSideEncryption.None,
                "aes256" or "sse-s3" => S3ServerSideEncryption.S3,
                "aws:kms" or "kms" or "sse-kms" => S3ServerSideEncryption.Kms,
                _ => throw new ConfigException($"{file}:{sn.Start.Line}: s3.sse must be none, AES256 (SSE-S3) or aws:kms (SSE-KMS), not '{text}'"),
            };
        }
        var kmsKey = ctx.OptString(map, "sse_kms_key_id", "s3");
        if (kmsKey is not null && sse != S3ServerSideEncryption.Kms)
        {
            throw new ConfigException($"{file}:{ctx.Get(map, "sse_kms_key_id")!.Start.Line}: s3.sse_kms_key_id needs sse: aws:kms");
        }
        var storageClass = ctx.OptString(map, "storage_class", "s3");
        if (storageClass is not null)
        {
            var line = ctx.Get(map, "storage_class")!.Start.Line;
            if (!StorageClassRegex().IsMatch(storageClass))
            {
                throw new ConfigException($"{file}:{line}: s3.storage_class '{storageClass}' is not a storage class (like STANDARD or STANDARD_IA)");
            }
            if (storageClass is "GLACIER" or "DEEP_ARCHIVE")
            {
                throw new ConfigException($"{file}:{line}: s3.storage_class {storageClass} cannot be read without a restore request first, so verify, drills and restores would fail; use STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR, and move old objects with a lifecycle rule if you must");
            }
        }
        var credentials = ctx.OptString(map, "credentials_file", "s3");
        var caFile = ctx.OptString(map, "ca_file", "s3");
        ObjectLockPolicy? objectLock = null;
        if (ctx.Get(map, "object_lock") is { } ln)
        {
            objectLock = ParseObjectLock(ctx, ln, file, key, retentionLock);
        }
        return new S3Options
        {
            Endpoint = endpoint,
            Region = region,
            PathStyle = ctx.OptBool(map, "path_style", "s3"),
            CredentialsFile = credentials is null ? null : Path.GetFullPath(credentials, baseDirectory),
            Profile = ctx.OptString(map, "profile", "s3"),
            CaFile = caFile is null ? null : Path.GetFullPath(caFile, baseDirectory),
            Sse = sse,
            SseKmsKeyId = kmsKey,
            StorageClass = storageClass,
            ObjectLock = objectLock,
        };
    }

    /// <summary>The longest retention accepted: 100 years (S3's own limit); anything longer is a typo.</summary>
    public const int MaxObjectLockDays = 36500;

    private static ObjectLockPolicy ParseObjectLock(CairnConfig.Ctx ctx, YamlNode node, string file, string key, RetentionLock? retentionLock)
    {
        var map = ctx.Mapping(node, key + ".object_lock");
        ctx.CheckKeys(map, ["mode", "days"], key + ".object_lock.");
        var modeNode = ctx.Get(map, "mode") ?? throw new ConfigException($"{file}:{node.Start.Line}: {key}.object_lock needs mode: governance or compliance (and days: N)");
        var modeText = ctx.Scalar(modeNode, key + ".object_lock.mode");
        var mode = modeText.ToLowerInvariant() switch
        {
            "governance" => ObjectLockMode.Governance,
            "compliance" => ObjectLockMode.Compliance,
            _ => throw new ConfigException($"{file}:{modeNode.Start.Line}: {key}.object_lock.mode must be governance or compliance, not '{modeText}'"),
        };
        var daysNode = ctx.Get(map, "days") ?? throw new ConfigException($"{file}:{node.Start.Line}: {key}.object_lock needs days: N (how long every new object stays undeletable; longer than the retention policy keeps a backup) or days: retention (as long as the retention policies keep a backup)");
        var daysText = ctx.Scalar(daysNode, key + ".object_lock.days");
        if (daysText == "retention")
        {
            var from = retentionLock ?? new RetentionLock(null, "no retention policy is known here");
            if (from.Days is not { } derived)
            {
                throw new ConfigException($"{file}:{daysNode.Start.Line}: {key}.object_lock.days: retention needs a calendar rule in every database's retention: {from.Why}; add keep_within or keep_daily/keep_weekly/keep_monthly, or give days: N");
            }
            if (derived > MaxObjectLockDays)
            {
                throw new ConfigException($"{file}:{daysNode.Start.Line}: {key}.object_lock.days: retention gives {derived} days ({from.Why}), more than S3's limit of {MaxObjectLockDays}; give days: N");
            }
            return new ObjectLockPolicy(mode, TimeSpan.FromDays((int)derived)) { Source = from.Why };
        }
        if (!int.TryParse(daysText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var days) || days is < 1 or > MaxObjectLockDays)
        {
            throw new ConfigException($"{file}:{daysNode.Start.Line}: {key}.object_lock.days must be a whole number of days from 1 to {MaxObjectLockDays}, not '{daysText}'");
        }
        return new ObjectLockPolicy(mode, TimeSpan.FromDays(days));
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}\\z")]
    private static partial Regex RegionRegex();

    [GeneratedRegex("^[A-Z][A-Z_]*\\z")]
    private static partial Regex StorageClassRegex();
}
