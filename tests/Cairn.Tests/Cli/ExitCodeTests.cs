using System.Diagnostics;
using System.Globalization;
using Cairn.Cli;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

/// <summary>Documented exit codes (docs/exit-codes.md) seen from real processes.</summary>
public class ExitCodeTests
{
    private static async Task RunOkAsync(string program, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var err = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, $"{program} {string.Join(' ', args)}: {await err}");
    }

    [Fact]
    public async Task A_full_disk_exits_7_through_the_cli_and_commits_nothing()
    {
        // A real full file system: a 6 MiB tmpfs holds the repository; the evidence log lives elsewhere.
        using var dir = new TempDir();
        var mount = dir.File("small");
        Directory.CreateDirectory(mount);
        await RunOkAsync("mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "tmpfs", mount);
        try
        {
            var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = Path.Combine(mount, "repo"), ["CAIRN_EVIDENCE"] = dir.File("evidence") };
            Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
            await File.WriteAllBytesAsync(dir.File("big"), TestData.Random(24 << 20, 3));
            var (code, _, err) = await CairnProcess.RunAsync(["repo", "put", "big", dir.File("big")], env);
            Assert.True(code == ExitCodes.NoSpace, $"exit {code}: {err}");
            Assert.Contains("no space left", err, StringComparison.Ordinal);
            var (lcode, list, lerr) = await CairnProcess.RunAsync(["snapshots", "--json"], env);
            Assert.True(lcode == 0, lerr);
            Assert.DoesNotContain("\"big\"", list, StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(mount, "repo", "snapshots")) && Directory.EnumerateFiles(Path.Combine(mount, "repo", "snapshots")).Any());
        }
        finally
        {
            await RunOkAsync("umount", mount);
        }
    }

    [Fact]
    public async Task Ctrl_c_mid_backup_exits_130_commits_nothing_and_releases_the_lock()
    {
        using var dir = new TempDir();
        var repo = dir.File("repo");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repo };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        await File.WriteAllBytesAsync(dir.File("big"), TestData.Random(256 << 20, 4));
        using var put = Process.Start(CairnProcess.StartInfo(["repo", "put", "big", dir.File("big")], env))!;
        put.StandardInput.Close();
        var err = put.StandardError.ReadToEndAsync();
        _ = put.StandardOutput.ReadToEndAsync();
        var deadline = Stopwatch.StartNew();
        while (!Directory.Exists(Path.Combine(repo, "locks")) || !Directory.EnumerateFiles(Path.Combine(repo, "locks")).Any())
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(60) && !put.HasExited, "the put never took its lock");
            await Task.Delay(5);
        }
        await RunOkAsync("kill", "-INT", put.Id.ToString(CultureInfo.InvariantCulture));
        await put.WaitForExitAsync();
        Assert.True(put.ExitCode == ExitCodes.Interrupted, $"exit {put.ExitCode}: {await err}");
        Assert.False(Directory.Exists(Path.Combine(repo, "snapshots")) && Directory.EnumerateFiles(Path.Combine(repo, "snapshots")).Any());
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(repo, "locks")));
    }
}
