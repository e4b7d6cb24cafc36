using Amazon;
using Amazon.Runtime;
using Amazon.Runtime.CredentialManagement;
using Amazon.RuntimeDependencies;
using Amazon.S3;
using Amazon.SecurityToken;

namespace Cairn.Storage.S3;

/// <summary>A problem with how S3 is configured (credentials file, region, endpoint); the message names the fix.</summary>
public sealed class S3ConfigurationException(string message) : Exception(message);

/// <summary>What the client was built from, for messages and tests (never holds a secret).</summary>
public sealed record S3Endpoint(Uri? ServiceUrl, string Region, bool PathStyle, string CredentialSource, S3Trust Trust);

/// <summary>
/// Builds the SDK client: endpoint, region and addressing from <see cref="S3Options"/> and the standard
/// environment variables; credentials from a named file, the environment, a profile, or the SDK's chain
/// (web identity, container, instance metadata) — never from config text or arguments.
/// </summary>
internal static class S3ClientFactory
{
    private static int _registered;

    /// <param name="caFileSetting">How the user names <see cref="S3Options.CaFile"/> in cairn.yaml, for messages.</param>
    public static (AmazonS3Client Client, S3Endpoint Endpoint) Create(S3Options options, Func<string, string?> environment, string caFileSetting = "s3.ca_file")
    {
        RegisterRuntimeDependencies();
        var endpoint = options.Endpoint ?? EndpointFromEnvironment(environment);
        var region = options.Region ?? Env(environment, "AWS_REGION") ?? Env(environment, "AWS_DEFAULT_REGION");
        var config = new AmazonS3Config
        {
            // Cairn retries itself (S3Retrier): one place decides, counts and bounds the waits.
            MaxErrorRetry = 0,
            // Also its silent immediate re-sends after a reset connection (10 by default, not counted in MaxErrorRetry).
            MaxStaleConnectionRetries = 0,
            // Content-MD5 is what every S3-compatible server checks; the SDK's default CRC trailers
            // (aws-chunked with x-amz-trailer) are refused by several of them.
            RequestChecksumCalculation = RequestChecksumCalculation.WHEN_REQUIRED,
            ResponseChecksumValidation = ResponseChecksumValidation.WHEN_REQUIRED,
            Timeout = options.Retry.RequestTimeout + TimeSpan.FromSeconds(5),
            ConnectTimeout = TimeSpan.FromSeconds(15),
            // The endpoint is decided here from S3Options and the environment passed in, not by the SDK from the process.
            IgnoreConfiguredEndpointUrls = true,
            DisableLogging = true,
        };
        bool pathStyle;
        if (endpoint is not null)
        {
            config.ServiceURL = endpoint.ToString();
            region ??= "us-east-1";
            config.AuthenticationRegion = region;
            pathStyle = options.PathStyle ?? S3Options.ImpliesPathStyle(endpoint);
        }
        else
        {
            region ??= FallbackRegionFactory.GetRegionEndpoint()?.SystemName
                ?? throw new S3ConfigurationException("the S3 region is unknown: set s3.region in cairn.yaml or AWS_REGION (or s3.endpoint for a server that is not AWS)");
            config.RegionEndpoint = RegionEndpoint.GetBySystemName(region);
            pathStyle = options.PathStyle ?? false;
        }
        config.ForcePathStyle = pathStyle;
        var trust = S3Trust.For(endpoint, options.CaFile, caFileSetting, environment);
        config.HttpClientFactory = new S3HttpClientFactory(trust);
        var (credentials, source) = Credentials(options, environment);
        var client = credentials is null ? new AmazonS3Client(config) : new AmazonS3Client(credentials, config);
        return (client, new S3Endpoint(endpoint, region, pathStyle, source, trust));
    }

    internal static Uri? EndpointFromEnvironment(Func<string, string?> environment)
    {
        foreach (var name in (string[])["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])
        {
            if (Env(environment, name) is { } text)
            {
                return ParseEndpoint(text, name);
            }
        }
        return null;
    }

    /// <summary>An endpoint must be an absolute http(s) URL without credentials or a path.</summary>
    internal static Uri ParseEndpoint(string text, string where)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
        {
            throw new S3ConfigurationException($"{where}: '{text}' is not an endpoint URL; write it like https://s3.example.com or http://127.0.0.1:9000");
        }
        if (uri.UserInfo.Length > 0)
        {
            throw new S3ConfigurationException($"{where}: the endpoint URL must not hold credentials; put them in a credentials file (s3.credentials_file) or the environment");
        }
        if (uri.AbsolutePath != "/" || uri.Query.Length > 0)
        {
            throw new S3ConfigurationException($"{where}: '{text}' has a path or query; give only scheme, host and port (the bucket goes in s3://BUCKET/PREFIX)");
        }
        return uri;
    }

    private static (AWSCredentials? Credentials, string Source) Credentials(S3Options options, Func<string, string?> environment)
    {
        var profileName = options.Profile ?? Env(environment, "AWS_PROFILE");
        if (options.CredentialsFile is { } file)
        {
            CheckCredentialsFile(file);
            var store = new SharedCredentialsFile(file);
            var name = profileName ?? "default";
            if (!store.TryGetProfile(name, out var profile))
            {
                throw new S3ConfigurationException($"the credentials file {file} has no [{name}] profile; add one with aws_access_key_id and aws_secret_access_key, or set s3.profile");
            }
            if (!AWSCredentialsFactory.TryGetAWSCredentials(profile, store, out var fromFile))
            {
                throw new S3ConfigurationException($"the [{name}] profile in {file} holds no usable credentials (aws_access_key_id and aws_secret_access_key, optionally aws_session_token)");
            }
            return (fromFile, $"credentials file {file} [{name}]");
        }
        var key = Env(environment, "AWS_ACCESS_KEY_ID");
        var secret = Env(environment, "AWS_SECRET_ACCESS_KEY");
        if (key is not null && secret is not null)
        {
            return Env(environment, "AWS_SESSION_TOKEN") is { } token
                ? (new SessionAWSCredentials(key, secret, token), "environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)")
                : (new BasicAWSCredentials(key, secret), "environment (AWS_ACCESS_KEY_ID)");
        }
        if ((key is null) != (secret is null))
        {
            throw new S3ConfigurationException("only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both (or neither, to use a profile or instance credentials)");
        }
        if (profileName is not null)
        {
            var chain = new CredentialProfileStoreChain();
            if (!chain.TryGetAWSCredentials(profileName, out var fromProfile))
            {
                throw new S3ConfigurationException($"the AWS profile '{profileName}' was not found in ~/.aws/credentials or ~/.aws/config (or holds no credentials)");
            }
            return (fromProfile, $"profile {profileName}");
        }
        // The SDK's chain: web identity (AWS_WEB_IDENTITY_TOKEN_FILE), the default profile, container and instance metadata.
        return (null, "the AWS default chain (web identity, default profile, container or instance metadata)");
    }

    /// <summary>Like libpq with ~/.pgpass: a credentials file others can read is refused, not used.</summary>
    private static void CheckCredentialsFile(string file)
    {
        if (!File.Exists(file))
        {
            throw new S3ConfigurationException($"the S3 credentials file {file} does not exist (s3.credentials_file)");
        }
        if (!OperatingSystem.IsWindows())
        {
            var mode = File.GetUnixFileMode(file);
            // 0640 is allowed (as libpq allows for a root-owned key): the server's user reads it through its group for
            // archive_command and restore_command; anything others can read, or a group can write, is refused.
            if ((mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute)) != 0)
            {
                throw new S3ConfigurationException($"the S3 credentials file {file} can be read or written by other users; run: chmod 600 {file} (or 640 with a group only the server's user is in)");
            }
        }
    }

    private static string? Env(Func<string, string?> environment, string name) => environment(name) is { Length: > 0 } v ? v : null;

    /// <summary>
    /// Under NativeAOT the SDK cannot load AWSSDK.SecurityToken by reflection, so the STS client that
    /// web identity (EKS IRSA) and assume-role profiles need is registered explicitly.
    /// </summary>
    private static void RegisterRuntimeDependencies()
    {
        if (Interlocked.Exchange(ref _registered, 1) == 0)
        {
            GlobalRuntimeDependencyRegistry.Instance.RegisterSecurityTokenServiceClient(context =>
                new AmazonSecurityTokenServiceClient(context.SecurityTokenServiceClientContextData.Region));
        }
    }
}
