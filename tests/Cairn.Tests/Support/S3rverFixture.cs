using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.RegularExpressions;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;

namespace Cairn.Tests.Support;

/// <summary>
/// A real S3-compatible server for the tests: s3rver (npm) on 127.0.0.1 with a free port and a temp
/// folder, one bucket. Installs s3rver from tests/s3rver's lock file when scripts/lib.sh has not.
/// A test that cannot start it fails rather than skipping. With TLS (<see cref="S3rverTlsFixture"/>) it serves https
/// with a leaf certificate for 127.0.0.1 signed by a test CA made here (<see cref="CaFile"/>).
/// </summary>
public sealed partial class S3rverFixture : IAsyncLifetime
{
    private readonly bool _tls;
    private (string Cert, string Key)? _certificate;

    public S3rverFixture()
        : this(tls: false)
    {
    }

    internal S3rverFixture(bool tls) => _tls = tls;

    public const string Bucket = "cairn-test";

    /// <summary>s3rver's built-in account; not a secret.</summary>
    public const string AccessKey = "S3RVER";

    private readonly TempDir _dir = new("cairn-s3rver");
    private Process? _process;
    private int _counter;

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>With TLS: the PEM certificate of the CA that signed the server's certificate; else null.</summary>
    public string? CaFile { get; private set; }

    /// <summary>With TLS: the PEM certificate of another CA, which signed nothing the server sends; else null.</summary>
    public string? OtherCaFile { get; private set; }

    /// <summary>The environment an S3 client in the tests sees: credentials only, nothing from the real environment.</summary>
    public static string? Environment(string name) => name switch
    {
        "AWS_ACCESS_KEY_ID" => AccessKey,
        "AWS_SECRET_ACCESS_KEY" => AccessKey,
        _ => null,
    };

    public async Task InitializeAsync()
    {
        _script = await EnsureInstalledAsync();
        // Made once: a restarted server serves the same certificate.
        _certificate = _tls ? MakeCertificates() : null;
        var port = await StartAsync(0);
        Endpoint = new Uri($"{(_tls ? "https" : "http")}://127.0.0.1:{port}");
        Servers[Endpoint.Authority] = this;
    }

    private string _script = "";
    private readonly System.Text.StringBuilder _stderr = new();
    private volatile bool _disposing;
    private int _restarts;
    private string? _lastDeath;

    /// <summary>The fixtures by endpoint authority, so a <see cref="FaultProxy"/> in front of one can say whether it is alive.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, S3rverFixture> Servers = new();

    /// <summary>For a proxy's error text: whether the s3rver at this authority died (and why), or "".</summary>
    public static string HealthOf(string authority)
        => Servers.TryGetValue(authority, out var f) && f._lastDeath is { } death ? $"; {death}" : "";

    /// <summary>
    /// Starts s3rver on the given port (0: a free one) and returns the port. When it exits while the tests still
    /// need it, it is started again on the same port and the death is reported (stderr of the test run and
    /// artifacts/test-results/s3rver-deaths.log, which scripts/test prints): s3rver is a test server, and a crash
    /// of it must not read as a failure of every test after it, nor go unnoticed.
    /// </summary>
    private async Task<int> StartAsync(int port)
    {
        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // s3rver makes list-type=2 continuation tokens with DES, which Node 17+ (OpenSSL 3) only has in the legacy provider.
        foreach (var a in (string[])["--openssl-legacy-provider", _script, "--directory", _dir.File("data"), "--address", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--silent", "--no-vhost-buckets", "--configure-bucket", Bucket])
        {
            psi.ArgumentList.Add(a);
        }
        if (_certificate is { } tls)
        {
            foreach (var a in (string[])["--cert", tls.Cert, "--key", tls.Key])
            {
                psi.ArgumentList.Add(a);
            }
        }
        var process = Process.Start(psi) ?? throw new InvalidOperationException("node did not start");
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                lock (_stderr)
                {
                    _stderr.AppendLine(line);
                    if (_stderr.Length > 8192)
                    {
                        _stderr.Remove(0, _stderr.Length - 8192);
                    }
                }
            }
        };
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await process.StandardOutput.ReadLineAsync(timeout.Token);
            if (line is null)
            {
                await process.WaitForExitAsync(timeout.Token);
                throw new InvalidOperationException($"s3rver exited ({process.ExitCode}) before listening: {StderrTail()}");
            }
            var m = ListeningRegex().Match(line);
            if (m.Success)
            {
                port = int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        _ = process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
        _process = process;
        process.EnableRaisingEvents = true;
        process.Exited += (_, _) => _ = OnExitedAsync(process, port);
        return port;
    }

    private async Task OnExitedAsync(Process process, int port)
    {
        if (_disposing || !ReferenceEquals(process, _process))
        {
            return;
        }
        var death = $"s3rver on port {port} (pid {process.Id}) exited with code {process.ExitCode} at {TimeProvider.System.GetUtcNow():HH:mm:ss.fff} while tests needed it; its stderr: {StderrTail()}";
        _lastDeath = death;
        var onPurpose = _killedOnPurpose;
        if (onPurpose)
        {
            // S3rverHarnessTests' own kill: restarted like any death, but not a finding of the run.
            _killedOnPurpose = false;
        }
        else
        {
            Report(death);
        }
        if (Interlocked.Increment(ref _restarts) > 3)
        {
            Report($"s3rver on port {port} died more than 3 times; not restarted again");
            return;
        }
        try
        {
            await StartAsync(port);
            if (!onPurpose)
            {
                Report($"s3rver restarted on port {port}");
            }
        }
        catch (Exception e)
        {
            Report($"s3rver could not be restarted on port {port}: {e.Message}");
        }
    }

    /// <summary>Kills the server as a crash would (SIGKILL), for the harness's own test.</summary>
    public void KillServerForTest()
    {
        _killedOnPurpose = true;
        _process?.Kill();
    }

    private volatile bool _killedOnPurpose;

    private string StderrTail()
    {
        lock (_stderr)
        {
            return _stderr.Length == 0 ? "(empty)" : _stderr.ToString().Trim();
        }
    }

    private static void Report(string text)
    {
        Console.Error.WriteLine("S3rverFixture: " + text);
        try
        {
            var results = Path.Combine(RepositoryRoot(), "artifacts", "test-results");
            Directory.CreateDirectory(results);
            lock (Servers)
            {
                File.AppendAllText(Path.Combine(results, "s3rver-deaths.log"), text + "\n");
            }
        }
        catch (IOException)
        {
        }
    }

    public Task DisposeAsync()
    {
        _disposing = true;
        if (Endpoint is { } endpoint)
        {
            Servers.TryRemove(endpoint.Authority, out _);
        }
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process?.Dispose();
        _dir.Dispose();
        return Task.CompletedTask;
    }

    /// <summary>
    /// A CA (basicConstraints CA:TRUE, keyCertSign) and a leaf it signs for IP 127.0.0.1 (serverAuth), the shape a
    /// private CA issues: the server sends the leaf, the client trusts the CA. A second CA signs nothing.
    /// </summary>
    private (string Cert, string Key) MakeCertificates()
    {
        var now = TimeProvider.System.GetUtcNow();
        using var caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var caRequest = new CertificateRequest("CN=Cairn test CA", caKey, HashAlgorithmName.SHA256);
        caRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        caRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        caRequest.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(caRequest.PublicKey, false));
        using var ca = caRequest.CreateSelfSigned(now.AddHours(-1), now.AddDays(2));

        using var leafKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var leafRequest = new CertificateRequest("CN=127.0.0.1", leafKey, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        leafRequest.CertificateExtensions.Add(san.Build());
        leafRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        leafRequest.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        leafRequest.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        leafRequest.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        using var leaf = leafRequest.Create(ca, now.AddMinutes(-30), now.AddDays(1), RandomNumberGenerator.GetBytes(12));

        using var otherKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var otherRequest = new CertificateRequest("CN=Cairn test CA", otherKey, HashAlgorithmName.SHA256);
        otherRequest.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        using var other = otherRequest.CreateSelfSigned(now.AddHours(-1), now.AddDays(2));

        CaFile = _dir.File("ca.pem");
        File.WriteAllText(CaFile, ca.ExportCertificatePem() + "\n");
        OtherCaFile = _dir.File("other-ca.pem");
        File.WriteAllText(OtherCaFile, other.ExportCertificatePem() + "\n");
        var cert = _dir.File("server.pem");
        File.WriteAllText(cert, leaf.ExportCertificatePem() + "\n");
        var key = _dir.File("server.key");
        File.WriteAllText(key, leafKey.ExportPkcs8PrivateKeyPem() + "\n");
        return (cert, key);
    }

    /// <summary>
    /// The file in which s3rver keeps an object's bytes (its MD5, the ETag, lives beside it and is not changed by
    /// writing this file): flipping a byte there is damage at rest, which the server does not notice.
    /// </summary>
    public string StoredObjectFile(S3Location location, StorageKey key) => Path.Combine(_dir.File("data"), location.Bucket, location.Prefix, key.Path + "._S3rver_object");

    /// <summary>A unique prefix per call, so tests sharing the bucket never see each other's objects.</summary>
    public S3Location NewLocation(string name) => new(Bucket, $"{name}-{Interlocked.Increment(ref _counter)}-{Guid.NewGuid().ToString("N")[..8]}");

    public S3Storage NewStorage(string name, S3Options? options = null, Uri? endpoint = null, TimeProvider? time = null)
        => NewStorage(NewLocation(name), options, endpoint, time);

    public S3Storage NewStorage(S3Location location, S3Options? options = null, Uri? endpoint = null, TimeProvider? time = null)
        => new(location, (options ?? new S3Options()) with { Endpoint = endpoint ?? Endpoint }, Environment, time ?? TimeProvider.System);

    private static string RepositoryRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Cairn.slnx")))
            {
                return d.FullName;
            }
        }
        throw new InvalidOperationException("cannot find the repository root (Cairn.slnx) above " + AppContext.BaseDirectory);
    }

    private static readonly SemaphoreSlim InstallGate = new(1, 1);

    /// <summary>The same steps as need_s3rver in scripts/lib.sh.</summary>
    private static async Task<string> EnsureInstalledAsync()
    {
        var root = RepositoryRoot();
        var dest = Path.Combine(root, "artifacts", "node");
        var script = Path.Combine(dest, "node_modules", "s3rver", "bin", "s3rver.js");
        var lockSource = Path.Combine(root, "tests", "s3rver", "package-lock.json");
        var lockInstalled = Path.Combine(dest, "package-lock.json");
        await InstallGate.WaitAsync();
        try
        {
            if (File.Exists(script) && File.Exists(lockInstalled) && (await File.ReadAllTextAsync(lockSource)) == (await File.ReadAllTextAsync(lockInstalled)))
            {
                return script;
            }
            Directory.CreateDirectory(dest);
            File.Copy(Path.Combine(root, "tests", "s3rver", "package.json"), Path.Combine(dest, "package.json"), overwrite: true);
            File.Copy(lockSource, lockInstalled, overwrite: true);
            var psi = new ProcessStartInfo("npm") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in (string[])["ci", "--prefix", dest, "--no-audit", "--no-fund", "--loglevel=error"])
            {
                psi.ArgumentList.Add(a);
            }
            using var npm = Process.Start(psi) ?? throw new InvalidOperationException("npm did not start; install node and npm (apt-get install nodejs npm)");
            var err = npm.StandardError.ReadToEndAsync();
            await npm.StandardOutput.ReadToEndAsync();
            await npm.WaitForExitAsync();
            if (npm.ExitCode != 0)
            {
                throw new InvalidOperationException($"npm ci for s3rver failed ({npm.ExitCode}): {await err}");
            }
            return script;
        }
        finally
        {
            InstallGate.Release();
        }
    }

    [GeneratedRegex(@"S3rver listening on [^:]+:(\d+)")]
    private static partial Regex ListeningRegex();
}

/// <summary>An s3rver serving https (<see cref="S3rverFixture.CaFile"/> holds the CA that signed its certificate).</summary>
public sealed class S3rverTlsFixture : IAsyncLifetime
{
    public S3rverFixture Server { get; } = new(tls: true);

    public Task InitializeAsync() => Server.InitializeAsync();

    public Task DisposeAsync() => Server.DisposeAsync();
}
