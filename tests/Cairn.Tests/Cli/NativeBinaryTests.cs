using System.Diagnostics;
using System.Globalization;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

/// <summary>
/// A smoke subset run against the NativeAOT binary itself (artifacts/cairn, built by scripts/publish), not cairn.dll:
/// the product's own archive_command and restore_command, with no CAIRN_BIN override. A missing binary fails.
/// </summary>
public class NativeBinaryTests
{
    private static string Binary()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Cairn.slnx")))
        {
            dir = dir.Parent;
        }
        var path = dir is null ? null : Path.Combine(dir.FullName, "artifacts", "cairn");
        Assert.True(path is not null && File.Exists(path), $"the NativeAOT binary {path ?? "artifacts/cairn"} is missing: run scripts/publish (scripts/test builds it when it is missing)");
        return path!;
    }

    private static async Task<(int Code, string Out, string Err)> RunAsync(string binary, Dictionary<string, string> env, params string[] args)
    {
        var psi = new ProcessStartInfo(binary, args) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        psi.Environment.Remove("CAIRN_BIN"); // the product must find itself
        foreach (var (k, v) in env)
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await o, await e);
    }

    [Fact]
    public async Task The_native_binary_inits_puts_and_gets_backs_up_and_restores_archives_wal_through_its_own_commands_and_verifies_evidence()
    {
        var cairn = Binary();
        using var dir = new TempDir();
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "native binary passphrase 91ac\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        async Task Ok(params string[] args)
        {
            var (code, o, e) = await RunAsync(cairn, env, args);
            Assert.True(code == 0, $"cairn {string.Join(' ', args)}: exit {code}\n{o}\n{e}");
        }

        var version = await RunAsync(cairn, env, "--version");
        Assert.True(version.Code == 0 && version.Out.Length > 0, version.Err);
        await Ok("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        var data = TestData.Rows(400_000, 7);
        await File.WriteAllBytesAsync(dir.File("in.bin"), data);
        await Ok("repo", "put", "in.bin", dir.File("in.bin"));
        await Ok("repo", "get", "in.bin", dir.File("out.bin"));
        Assert.Equal(data, await File.ReadAllBytesAsync(dir.File("out.bin")));

        await Ok("archiver", "allow", "--group", "postgres");
        Cairn.Operations.Physical.ArchiverAccess.ShareForReading(passFile, "postgres");
        // archive_command as the README writes it, with this binary: no CAIRN_BIN, no dotnet.
        var archive = $"CAIRN_PASSPHRASE_FILE={passFile} {cairn} --repo {dir.File("repo")} wal-push %p --database app";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive}'" });
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{server.Url()}\"\n    data_directory: {server.DataDirectory}\n");
        env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        await server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 100) i");

        await Ok("backup", "app");
        await Ok("restore", "app", "--to-database", "copy");
        Assert.Equal(100L, await server.ScalarAsync<long>("SELECT count(*) FROM t", "copy"));

        await Ok("backup", "app", "--physical");
        await server.ExecuteAsync("INSERT INTO t SELECT i, 'after' FROM generate_series(101, 150) i");
        var last = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())");
        await server.ExecuteAsync("SELECT pg_switch_wal()");
        for (var i = 0; i < 150 && string.CompareOrdinal(await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) < 0; i++)
        {
            await Task.Delay(200);
        }
        Assert.Equal(0L, await server.ScalarAsync<long>("SELECT failed_count FROM pg_stat_archiver"));

        var to = dir.File("restored");
        var port = ScratchServer.FreePort();
        try
        {
            await Ok("restore", "app", "--physical", "--to", to, "--start", "--port", port.ToString(CultureInfo.InvariantCulture));
            var recovery = await File.ReadAllTextAsync(Path.Combine(to, "postgresql.auto.conf"));
            var restoreCommand = recovery.Split('\n').Single(l => l.StartsWith("restore_command", StringComparison.Ordinal));
            Assert.Contains(cairn, restoreCommand, StringComparison.Ordinal); // restore_command runs this very binary, not dotnet
            Assert.DoesNotContain("dotnet", restoreCommand, StringComparison.Ordinal);
            Assert.Equal(150L, await ArchivingCluster.ScalarAsync<long>(to + ".sock", port, "SELECT count(*) FROM t"));
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", to, "-m", "immediate", "-w", "stop"], null, default);
        }
        await Ok("verify", "--read-data");
        await Ok("evidence", "verify");
    }

    /// <summary>
    /// The binary asks for transparent huge pages on the data NativeAOT rehydrates at every start (src/Cairn.Cli/Native/hugepages.c):
    /// a running cairn has a mapping of at least 8 MiB that the kernel lists with the <c>hg</c> (MADV_HUGEPAGE) flag. Whether
    /// the kernel then finds huge pages depends on the machine; the advice is what the binary controls.
    /// </summary>
    [Fact]
    public async Task The_native_binary_advises_huge_pages_for_the_data_it_writes_at_start()
    {
        var cairn = Binary();
        using var dir = new TempDir();
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "native binary passphrase 5e1f\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        var init = await RunAsync(cairn, env, "init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(init.Code == 0, init.Err);

        // repo put from stdin waits for its input: the process stays alive while its mappings are read.
        var psi = new ProcessStartInfo(cairn, ["repo", "put", "probe", "-"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var (k, v) in env)
        {
            psi.Environment[k] = v;
        }
        using var p = Process.Start(psi)!;
        var flagged = new List<(long Size, string Flags)>();
        try
        {
            for (var i = 0; i < 100 && flagged.Count == 0 && !p.HasExited; i++)
            {
                await Task.Delay(50);
                flagged = HugePageAdvised(await File.ReadAllTextAsync($"/proc/{p.Id}/smaps"));
            }
        }
        finally
        {
            p.StandardInput.Write("probe");
            p.StandardInput.Close();
            await p.WaitForExitAsync();
        }
        Assert.True(p.ExitCode == 0, await p.StandardError.ReadToEndAsync());
        Assert.Contains(flagged, m => m.Size >= 8L * 1024 * 1024);
    }

    /// <summary>The mappings of an smaps text whose VmFlags carry <c>hg</c>, with their sizes.</summary>
    private static List<(long Size, string Flags)> HugePageAdvised(string smaps)
    {
        var found = new List<(long, string)>();
        long size = 0;
        foreach (var line in smaps.Split('\n'))
        {
            var range = line.Split(' ', 2)[0].Split('-');
            if (range.Length == 2 && long.TryParse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var from) && long.TryParse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var to))
            {
                size = to - from;
            }
            else if (line.StartsWith("VmFlags:", StringComparison.Ordinal) && line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Contains("hg"))
            {
                found.Add((size, line));
            }
        }
        return found;
    }

    [Fact]
    public async Task The_native_binary_opens_a_repository_with_the_passphrase_typed_composed_or_decomposed()
    {
        // The binary runs with InvariantGlobalization, where string.Normalize is a no-op: Cairn normalises by itself.
        var cairn = Binary();
        using var dir = new TempDir();
        foreach (var (init, open) in new[] { ("cafe\u0301 \u1100\u1161 native", "caf\u00e9 \uAC00 native"), ("caf\u00e9 \uAC00 native", "cafe\u0301 \u1100\u1161 native") })
        {
            var repo = dir.File(init.Length.ToString(CultureInfo.InvariantCulture));
            var (code, o, e) = await RunAsync(cairn, new() { ["CAIRN_REPOSITORY"] = repo, ["CAIRN_PASSPHRASE"] = init }, "init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
            Assert.True(code == 0, o + e);
            (code, o, e) = await RunAsync(cairn, new() { ["CAIRN_REPOSITORY"] = repo, ["CAIRN_PASSPHRASE"] = open }, "snapshots");
            Assert.True(code == 0, $"init with {init.Length} chars, opened with {open.Length}: exit {code}\n{o}\n{e}");
            (code, o, e) = await RunAsync(cairn, new() { ["CAIRN_REPOSITORY"] = repo, ["CAIRN_PASSPHRASE"] = "cafe \uAC00 native" }, "snapshots");
            Assert.True(code == ExitCodes.WrongPassphrase, $"another passphrase: exit {code}\n{o}\n{e}");
        }
    }
}
