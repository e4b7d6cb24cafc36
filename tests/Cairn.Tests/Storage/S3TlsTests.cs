using System.Text;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// An S3 server over https whose certificate a private CA signed (s3rver with a test CA): trusted through s3.ca_file
/// or AWS_CA_BUNDLE, and refused at once, naming the fix, when the CA is not trusted. The environment names the
/// public bundle in AWS_CA_BUNDLE where a host sets it for every tool (bench/s3.sh's machine did): ca_file still wins.
/// </summary>
public sealed class S3TlsTests(S3rverTlsFixture tls) : IClassFixture<S3rverTlsFixture>
{
    private const string PublicBundle = "/etc/ssl/certs/ca-certificates.crt";

    private S3rverFixture S3 => tls.Server;

    private S3Storage Storage(string name, S3Options options, Dictionary<string, string>? extraEnvironment = null)
    {
        var env = new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = S3rverFixture.AccessKey, ["AWS_SECRET_ACCESS_KEY"] = S3rverFixture.AccessKey };
        foreach (var (k, v) in extraEnvironment ?? [])
        {
            env[k] = v;
        }
        return new S3Storage(S3.NewLocation(name), options with { Endpoint = S3.Endpoint }, env.GetValueOrDefault, TimeProvider.System);
    }

    private static async Task RoundTripAsync(S3Storage storage)
    {
        var key = new StorageKey(ObjectKind.Snapshot, "tls-" + Guid.NewGuid().ToString("N"));
        var body = Encoding.UTF8.GetBytes("over https, checked against the private CA");
        await storage.PutAsync(key, body, default);
        Assert.Equal(body, await storage.GetAllAsync(key, default));
        var listed = new List<StorageKey>();
        await foreach (var o in storage.ListAsync(ObjectKind.Snapshot, default))
        {
            listed.Add(o.Key);
        }
        Assert.Contains(key, listed);
        await storage.DeleteAsync(key, default);
    }

    [Fact]
    public async Task S3Storage_with_ca_file_naming_the_servers_CA_works_over_https_even_when_AWS_CA_BUNDLE_names_the_public_bundle()
    {
        Assert.Equal("https", S3.Endpoint.Scheme);
        using var storage = Storage("tls-ca-file", new S3Options { CaFile = S3.CaFile }, new() { ["AWS_CA_BUNDLE"] = PublicBundle });
        await RoundTripAsync(storage);
        Assert.Contains(S3.CaFile!, storage.Endpoint.Trust.Description, StringComparison.Ordinal);
    }

    [Fact]
    public async Task S3Storage_trusts_the_CA_named_by_AWS_CA_BUNDLE_when_no_ca_file_is_set()
    {
        using var storage = Storage("tls-bundle", new S3Options(), new() { ["AWS_CA_BUNDLE"] = S3.CaFile! });
        await RoundTripAsync(storage);
    }

    [Fact]
    public async Task S3Storage_refuses_an_untrusted_certificate_at_once_with_an_error_naming_ca_file()
    {
        // The system's store (no AWS_CA_BUNDLE) does not hold the test CA.
        using var system = Storage("tls-untrusted", new S3Options());
        var e = await Assert.ThrowsAsync<S3StorageException>(() => system.StatAsync(new StorageKey(ObjectKind.Config, "config"), default));
        Assert.False(e.Transient);
        // A leaf whose CA is in no trusted store: .NET says PartialChain (UntrustedRoot for a self-signed one).
        Assert.Contains("TLS certificate of the S3 server at https://127.0.0.1:", e.Message, StringComparison.Ordinal);
        Assert.Contains("s3.ca_file", e.Message, StringComparison.Ordinal);
        Assert.Contains("system's trust store", e.Message, StringComparison.Ordinal);
        // A refused certificate is refused again on every attempt: no retry, no 18 s of backoff.
        Assert.Equal(0, system.Retries);

        // The same with the public bundle in AWS_CA_BUNDLE (bench/s3.sh's machine), and with a ca_file of another CA.
        using var bundle = Storage("tls-untrusted", new S3Options(), new() { ["AWS_CA_BUNDLE"] = PublicBundle });
        var b = await Assert.ThrowsAsync<S3StorageException>(() => bundle.StatAsync(new StorageKey(ObjectKind.Config, "config"), default));
        Assert.Contains("AWS_CA_BUNDLE " + PublicBundle, b.Message, StringComparison.Ordinal);
        Assert.Contains("s3.ca_file", b.Message, StringComparison.Ordinal);
        using var other = Storage("tls-untrusted", new S3Options { CaFile = S3.OtherCaFile });
        var o = await Assert.ThrowsAsync<S3StorageException>(() => other.StatAsync(new StorageKey(ObjectKind.Config, "config"), default));
        Assert.Contains("s3.ca_file " + S3.OtherCaFile, o.Message, StringComparison.Ordinal);
        Assert.Equal(0, other.Retries);
    }

    [Fact]
    public void S3Storage_refuses_a_ca_file_without_a_certificate_a_missing_one_and_one_for_plain_http()
    {
        using var dir = new TempDir();
        var empty = dir.File("empty.pem");
        File.WriteAllText(empty, "not a certificate\n");
        var e = Assert.Throws<S3ConfigurationException>(() => Storage("tls-bad", new S3Options { CaFile = empty }));
        Assert.Contains("holds no PEM certificate", e.Message, StringComparison.Ordinal);
        var missing = Assert.Throws<S3ConfigurationException>(() => Storage("tls-bad", new S3Options { CaFile = dir.File("missing.pem") }));
        Assert.Contains("cannot read the CA certificates", missing.Message, StringComparison.Ordinal);
        var http = Assert.Throws<S3ConfigurationException>(() => new S3Storage(S3.NewLocation("tls-bad"), new S3Options { Endpoint = new Uri("http://127.0.0.1:9000"), CaFile = S3.CaFile }, S3rverFixture.Environment, TimeProvider.System));
        Assert.Contains("plain http", http.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_init_and_doctor_work_over_https_with_s3_ca_file_in_cairn_yaml_and_doctor_names_the_fix_without_it()
    {
        using var setup = new S3CycleTests.S3Setup(S3, "tls-cli", $"  ca_file: {S3.CaFile}\n");
        setup.Env["AWS_CA_BUNDLE"] = PublicBundle;
        var (code, _, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, err);
        (code, var doctor, err) = await setup.Cli.RunAsync("doctor", "--json");
        Assert.True(code == 0, doctor + err);
        var checks = JsonNode.Parse(doctor)!["checks"]!.AsArray();
        Assert.Equal("ok", checks.Single(c => c!["name"]!.GetValue<string>() == "clock")!["state"]!.GetValue<string>());
        Assert.Contains("ca_file", checks.Single(c => c!["name"]!.GetValue<string>() == "endpoint")!["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // Without ca_file: doctor fails the bucket check with the fix in its words.
        File.WriteAllText(setup.Dir.File("no-ca.yaml"), $"s3:\n  endpoint: \"{S3.Endpoint}\"\n  credentials_file: {setup.Credentials}\n");
        setup.Env["CAIRN_CONFIG"] = setup.Dir.File("no-ca.yaml");
        (code, doctor, err) = await setup.Cli.RunAsync("doctor", "--json");
        Assert.Equal(ExitCodes.Failure, code);
        var bucket = JsonNode.Parse(doctor)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "bucket")!;
        Assert.Equal("fail", bucket["state"]!.GetValue<string>());
        Assert.Contains("s3.ca_file", bucket["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
