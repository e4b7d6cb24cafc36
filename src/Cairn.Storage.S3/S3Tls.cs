using System.Net;
using System.Net.Http;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Amazon.Runtime;

namespace Cairn.Storage.S3;

/// <summary>
/// Which certificate authorities an https endpoint's certificate is checked against.
/// <para>
/// In order: <c>s3.ca_file</c> (a PEM file of CA certificates; only those are trusted, like pgBackRest's
/// repo-storage-ca-file), else <c>AWS_CA_BUNDLE</c> (the AWS CLI's and SDKs' variable, same meaning), else the
/// system's trust store, which .NET on Linux reads from <c>SSL_CERT_FILE</c>/<c>SSL_CERT_DIR</c> when they are set.
/// </para>
/// <para>
/// Cairn decides this itself, with the environment it is given, and builds the HTTP handler: left to the SDK,
/// an <c>AWS_CA_BUNDLE</c> in the process environment silently replaced every other source, so a host whose
/// environment sets it to the public bundle (as some images do) could never trust a private CA through
/// <c>SSL_CERT_FILE</c>; "The SSL connection could not be established" was all it said, eight times.
/// </para>
/// </summary>
public sealed class S3Trust
{
    private S3Trust(X509Certificate2Collection? anchors, string description, string setting)
    {
        Anchors = anchors;
        Description = description;
        Setting = setting;
    }

    /// <summary>How the CA file is named in cairn.yaml (<c>s3.ca_file</c>, <c>storage_buckets.ca_file</c>), for messages.</summary>
    private string Setting { get; }

    /// <summary>The only trusted roots; null means the system's trust store.</summary>
    internal X509Certificate2Collection? Anchors { get; }

    /// <summary>Where the trusted roots come from, for messages (a path, never a secret).</summary>
    public string Description { get; }

    /// <summary>The trust for an endpoint; <see cref="S3ConfigurationException"/> (naming the fix) when a named CA file is unusable.</summary>
    internal static S3Trust For(Uri? endpoint, string? caFile, string setting, Func<string, string?> environment)
    {
        if (caFile is not null)
        {
            if (endpoint is not null && endpoint.Scheme != Uri.UriSchemeHttps)
            {
                throw new S3ConfigurationException($"{setting} is set but the endpoint {endpoint.GetLeftPart(UriPartial.Authority)} is plain http: use https:// (the CA file is for checking the server's certificate) or remove ca_file");
            }
            return new S3Trust(Load(caFile, setting), $"only the CA certificates in {setting} {caFile}", setting);
        }
        if (endpoint is not null && endpoint.Scheme != Uri.UriSchemeHttps)
        {
            // Plain http checks no certificate: a bundle named in the environment is not even read.
            return new S3Trust(null, "nothing (plain http)", setting);
        }
        if (environment("AWS_CA_BUNDLE") is { Length: > 0 } bundle)
        {
            return new S3Trust(Load(bundle, "AWS_CA_BUNDLE"), $"only the CA certificates in AWS_CA_BUNDLE {bundle}", setting);
        }
        return new S3Trust(null, "the system's trust store (SSL_CERT_FILE/SSL_CERT_DIR when set)", setting);
    }

    private static X509Certificate2Collection Load(string file, string where)
    {
        var certificates = new X509Certificate2Collection();
        try
        {
            certificates.ImportFromPemFile(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException)
        {
            throw new S3ConfigurationException($"{where}: cannot read the CA certificates in {file} ({e.Message}); name a readable PEM file holding the certificate of the CA that signed the S3 server's certificate");
        }
        if (certificates.Count == 0)
        {
            throw new S3ConfigurationException($"{where}: {file} holds no PEM certificate (-----BEGIN CERTIFICATE-----); name the PEM file of the CA that signed the S3 server's certificate");
        }
        return certificates;
    }

    /// <summary>A handler with the SDK's settings and this trust; also used by <c>cairn doctor</c>'s clock check.</summary>
    internal SocketsHttpHandler CreateHandler(IClientConfig? config)
    {
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = config?.AllowAutoRedirect ?? false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (config?.ConnectTimeout is { } connect)
        {
            handler.ConnectTimeout = connect;
        }
        if (config?.MaxConnectionsPerServer is { } max)
        {
            handler.MaxConnectionsPerServer = max;
        }
        if (Anchors is not null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                // A private CA rarely publishes a CRL or OCSP responder; the system-store path does not check revocation either.
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(Anchors);
            handler.SslOptions.CertificateChainPolicy = policy;
        }
        return handler;
    }

    /// <summary>
    /// When a request failed because the server's certificate was refused (not trusted, wrong name, expired), the
    /// message naming the fix; null for any other failure. No retry helps, so the retrier gives up at once.
    /// </summary>
    internal string? Explain(Exception e, string what, Uri? endpoint)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is AuthenticationException a)
            {
                var at = endpoint is null ? "" : " at " + endpoint.GetLeftPart(UriPartial.Authority);
                var name = endpoint?.Host ?? "the server";
                var fix = a.Message.Contains("RemoteCertificateNameMismatch", StringComparison.Ordinal)
                    ? $"the certificate must name {name} in its subjectAltName (DNS:{name}, or IP:{name} for an address); reissue it or use the name it was issued for in s3.endpoint"
                    : $"if the server's certificate comes from a private CA or is self-signed, give the CA certificate (PEM) with {Setting} in cairn.yaml (or AWS_CA_BUNDLE), or add it to the system's trust store; run 'cairn doctor' to check";
                return $"{what}: the TLS certificate of the S3 server{at} was refused ({a.Message}; trusted: {Description}); {fix}";
            }
        }
        return null;
    }
}

/// <summary>Gives the SDK Cairn's HTTP handler, so the trust decided in <see cref="S3Trust"/> is the one used.</summary>
internal sealed class S3HttpClientFactory(S3Trust trust) : HttpClientFactory
{
    public override HttpClient CreateHttpClient(IClientConfig clientConfig)
    {
        var client = new HttpClient(trust.CreateHandler(clientConfig));
        if (clientConfig.Timeout is { } timeout)
        {
            client.Timeout = timeout;
        }
        return client;
    }
}
