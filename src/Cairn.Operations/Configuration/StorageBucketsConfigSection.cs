using System.Text.RegularExpressions;
using Cairn.Operations.StorageFiles;
using Cairn.Storage.S3;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Configuration;

/// <summary>
/// <c>databases.X.storage_buckets: { endpoint, region, path_style, credentials_file, profile, ca_file, buckets: [avatars, invoices] }</c>:
/// the application's Storage (Supabase Storage through its S3 protocol, or any S3 bucket) whose files a backup of the
/// database also holds. Credentials as for the repository's <c>s3:</c> block: a file or the standard environment, never here.
/// </summary>
public sealed record StorageBucketsConfig(Uri? Endpoint, string? Region, bool? PathStyle, string? CredentialsFile, string? Profile, IReadOnlyList<string> Buckets)
{
    /// <summary><c>ca_file</c>: the PEM file of the CA that signed an https endpoint's certificate (as <c>s3.ca_file</c>).</summary>
    public string? CaFile { get; init; }

    /// <summary>The client options; <paramref name="endpoint"/> replaces the configured endpoint (<c>restore --storage --endpoint</c>).</summary>
    public S3Options ToOptions(Uri? endpoint = null)
    {
        var e = endpoint ?? Endpoint;
        return new S3Options
        {
            Endpoint = e,
            Region = Region,
            // An endpoint with a path (Supabase's /storage/v1/s3) only works path-style.
            PathStyle = PathStyle ?? (e is not null && e.AbsolutePath.Length > 1 ? true : null),
            CredentialsFile = CredentialsFile,
            Profile = Profile,
            CaFile = CaFile,
        };
    }

    /// <summary>The endpoint as shown in plans, records and messages (it never holds credentials: refused at load).</summary>
    public string EndpointText => Endpoint?.ToString().TrimEnd('/') ?? "AWS S3 (or AWS_ENDPOINT_URL_S3)";
}

public static partial class StorageBucketsConfigSection
{
    private static readonly HashSet<string> Keys = ["endpoint", "region", "path_style", "credentials_file", "profile", "ca_file", "buckets"];

    private static readonly HashSet<string> SecretKeys = ["access_key", "access_key_id", "aws_access_key_id", "secret_key", "secret_access_key", "aws_secret_access_key", "session_token", "aws_session_token", "password", "secret", "service_role_key", "key"];

    internal static StorageBucketsConfig Parse(YamlNode node, string file, string baseDirectory, string database, CairnConfig.Ctx ctx)
    {
        var key = $"databases.{database}.storage_buckets";
        var map = ctx.Mapping(node, key);
        foreach (var k in map.Children.Keys)
        {
            if (k is YamlScalarNode { Value: { } name } && SecretKeys.Contains(name))
            {
                throw new ConfigException($"{file}:{k.Start.Line}: {key}.{name}: credentials never go in cairn.yaml; name a credentials file ({key}.credentials_file, mode 0600, AWS format: [default] aws_access_key_id = …, aws_secret_access_key = …) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
            }
        }
        ctx.CheckKeys(map, Keys, key + ".");
        Uri? endpoint = null;
        if (ctx.Get(map, "endpoint") is { } en)
        {
            if (!S3Bucket.TryParseEndpoint(ctx.Scalar(en, key + ".endpoint"), out endpoint, out var error))
            {
                throw new ConfigException($"{file}:{en.Start.Line}: {key}.endpoint: {error}");
            }
        }
        var region = ctx.OptString(map, "region", key);
        if (region is not null && !RegionRegex().IsMatch(region))
        {
            throw new ConfigException($"{file}:{ctx.Get(map, "region")!.Start.Line}: {key}.region '{region}' is not a region name (like us-east-1 or eu-central-1)");
        }
        var bucketsNode = ctx.Get(map, "buckets") ?? throw new ConfigException($"{file}:{node.Start.Line}: {key}: 'buckets' is required (the buckets whose files are backed up, e.g. buckets: [avatars, invoices])");
        var buckets = bucketsNode switch
        {
            YamlSequenceNode seq => seq.Children.Select(c => (Node: c, Name: ctx.Scalar(c, key + ".buckets"))).ToList(),
            _ => throw new ConfigException($"{file}:{bucketsNode.Start.Line}: {key}.buckets must be a list, e.g. buckets: [avatars, invoices]"),
        };
        if (buckets.Count == 0)
        {
            throw new ConfigException($"{file}:{bucketsNode.Start.Line}: {key}.buckets is empty; name at least one bucket, or remove storage_buckets");
        }
        foreach (var (n, name) in buckets)
        {
            if (StorageNames.BucketProblem(name) is { } problem)
            {
                throw new ConfigException($"{file}:{n.Start.Line}: {key}.buckets: '{name}': {problem}");
            }
        }
        if (buckets.GroupBy(b => b.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } twice)
        {
            throw new ConfigException($"{file}:{twice.Skip(1).First().Node.Start.Line}: {key}.buckets names '{twice.Key}' twice");
        }
        var credentials = ctx.OptString(map, "credentials_file", key);
        return new StorageBucketsConfig(endpoint, region, ctx.OptBool(map, "path_style", key), credentials is null ? null : Path.GetFullPath(credentials, baseDirectory),
            ctx.OptString(map, "profile", key), [.. buckets.Select(b => b.Name)])
        {
            CaFile = ctx.OptString(map, "ca_file", key) is { } ca ? Path.GetFullPath(ca, baseDirectory) : null,
        };
    }

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{0,62}\\z")]
    private static partial Regex RegionRegex();
}
