using System.Diagnostics;
using System.Globalization;
using Cairn.Cli;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A physical drill stopped by SIGTERM (a daemon being stopped, a CI job cancelled) leaves no scratch folder and no server behind.</summary>
public class PhysicalDrillInterruptTests
{
    private const UnixFileMode Open = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <param name="during">"checks": the signal lands while the recovered server runs a command check; "recovery": while the
    /// server is recovering and its restore_command (cairn wal-fetch, held by a wrapper that sleeps first) runs.</param>
    [Theory]
    [InlineData("checks")]
    [InlineData("recovery")]
    public async Task Physical_drill_stopped_by_sigterm_exits_130_and_leaves_no_pdrill_folder_or_server(string during)
    {
        await using var c = await ArchivingCluster.StartAsync();
        var holdDir = Path.Combine(c.Dir.Tmp, "hold");
        Directory.CreateDirectory(holdDir);
        File.SetUnixFileMode(holdDir, Open); // the postgres user writes the marker of a held restore_command here
        var hold = Path.Combine(holdDir, "pid");
        await c.WriteConfigAsync(true, during == "checks" ? $"    checks:\n      - command: {{ name: hold, run: \"echo $$ > {hold}; exec sleep 60\", timeout: 5m }}\n" : "");
        await c.Server.ExecuteAsync("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1000) g");
        var (code, _, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        await c.ArchiveAllAsync();

        var tmp = c.Dir.Tmp;
        var env = new Dictionary<string, string>(c.Env) { ["TMPDIR"] = tmp };
        if (during == "recovery")
        {
            var wrapper = Path.Combine(holdDir, "slow-cairn.sh");
            await File.WriteAllTextAsync(wrapper, $"echo $$ > {hold}\nsleep 60\nexec {c.Env["CAIRN_BIN"]} \"$@\"\n");
            File.SetUnixFileMode(wrapper, Open);
            env["CAIRN_BIN"] = $"/bin/sh {wrapper}";
        }
        using var p = Process.Start(CairnProcess.StartInfo(["drill", "app", "--physical"], env))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await Eventually.UntilAsync(() => p.HasExited || (File.Exists(hold) && File.ReadAllText(hold).EndsWith('\n')), TimeSpan.FromMinutes(4), $"the physical drill reaching its hold ({during})");
        if (p.HasExited)
        {
            Assert.Fail($"the drill ended before it was interrupted: {await stdout}{await stderr}");
        }
        var root = Assert.Single(Directory.EnumerateDirectories(tmp, "cairn-pdrill-*"));
        var pidFile = Path.Combine(root, "data", "postmaster.pid");
        await Eventually.UntilAsync(() => File.Exists(pidFile), TimeSpan.FromSeconds(30), "the drill's server writing its pid file");
        var postmasterPid = int.Parse(File.ReadLines(pidFile).First(), CultureInfo.InvariantCulture);
        Assert.True(Eventually.IsRunning(postmasterPid), "the drill's server should be running");

        using (var kill = Process.Start("kill", ["-TERM", p.Id.ToString(CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }
        using (var limit = new CancellationTokenSource(TimeSpan.FromSeconds(50)))
        {
            await p.WaitForExitAsync(limit.Token);
        }
        Assert.True(p.ExitCode == ExitCodes.Interrupted, $"exit {p.ExitCode}: {await stdout}{await stderr}");
        Assert.False(Directory.Exists(root), $"{root} was left behind: {string.Join(", ", Directory.Exists(root) ? Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Take(20) : [])}\n{await stderr}");
        Assert.Empty(Directory.EnumerateDirectories(tmp, "cairn-pdrill-*"));
        await Eventually.UntilAsync(() => !Eventually.IsRunning(postmasterPid), TimeSpan.FromSeconds(10), $"the drill's server (pid {postmasterPid}) stopping");
    }
}
