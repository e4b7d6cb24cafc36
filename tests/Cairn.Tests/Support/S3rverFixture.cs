using System.Diagnostics;
using System.Text.RegularExpressions;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;

namespace Cairn.Tests.Support;

/// <summary>
/// A real S3-compatible server for the tests: s3rver (npm) on 127.0.0.1 with a free port and a temp
/// folder, one bucket. Installs s3rver from tests/s3rver's lock file when scripts/lib.sh has not.
/// A test that cannot start it fails rather than skipping.
/// </summary>
public sealed partial class S3rverFixture : IAsyncLifetime
{
    public const string Bucket = "cairn-test";

    /// <summary>s3rver's built-in account; not a secret.</summary>
    public const string AccessKey = "S3RVER";

    private readonly TempDir _dir = new("cairn-s3rver");
    private Process? _process;
    private int _counter;

    public Uri Endpoint { get; private set; } = null!;

    /// <summary>The environment an S3 client in the tests sees: credentials only, nothing from the real environment.</summary>
    public static string? Environment(string name) => name switch
    {
        "AWS_ACCESS_KEY_ID" => AccessKey,
        "AWS_SECRET_ACCESS_KEY" => AccessKey,
        _ => null,
    };

    public async Task InitializeAsync()
    {
        var script = await EnsureInstalledAsync();
        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // s3rver makes list-type=2 continuation tokens with DES, which Node 17+ (OpenSSL 3) only has in the legacy provider.
        foreach (var a in (string[])["--openssl-legacy-provider", script, "--directory", _dir.File("data"), "--address", "127.0.0.1", "--port", "0", "--silent", "--no-vhost-buckets", "--configure-bucket", Bucket])
        {
            psi.ArgumentList.Add(a);
        }
        _process = Process.Start(psi) ?? throw new InvalidOperationException("node did not start");
        var stderr = _process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            var line = await _process.StandardOutput.ReadLineAsync(timeout.Token)
                ?? throw new InvalidOperationException($"s3rver exited before listening: {await stderr}");
            var m = ListeningRegex().Match(line);
            if (m.Success)
            {
                Endpoint = new Uri($"http://127.0.0.1:{m.Groups[1].Value}");
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        _ = _process.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
    }

    public Task DisposeAsync()
    {
        if (_process is { HasExited: false })
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
        _process?.Dispose();
        _dir.Dispose();
        return Task.CompletedTask;
    }

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
