using Cairn.PostgreSql.Programs;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

/// <summary>
/// The documented way to let the server's user archive WAL (archive_command and restore_command run as postgres)
/// without handing it the repository: 'cairn archiver allow --group postgres' opens the WAL area, the config and
/// the archiver's own key file to that group, and nothing else.
/// </summary>
public class ArchiverAccessTests
{
    private static async Task<ProcessResult> AsPostgresAsync(Dictionary<string, string> env, params string[] args)
        => await PgProcess.RunAsServerUserAsync("dotnet", [CairnProcess.Dll, .. args], env, default);

    [Fact]
    public async Task The_server_user_can_push_and_fetch_wal_and_read_nothing_else()
    {
        using var dir = new TempDir();
        var repo = dir.File("repo");
        var adminPass = dir.File("admin.pass");
        var archiverPass = dir.File("archiver.pass");
        await File.WriteAllTextAsync(adminPass, "the administrator's passphrase 91c2\n");
        await File.WriteAllTextAsync(archiverPass, "a long random archiver passphrase 3e0d\n");
        var admin = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repo, ["CAIRN_PASSPHRASE_FILE"] = adminPass, ["CAIRN_NEW_PASSPHRASE_FILE"] = archiverPass });
        Assert.Equal(0, (await admin.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Code);
        Assert.Equal(0, (await admin.RunAsync("key", "add", "--label", "archiver", "--kdf-memory-mib", "1", "--kdf-iterations", "1")).Code);
        await admin.RunAsync("repo", "put", "notes", adminPass);
        var archiver = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repo, ["CAIRN_PASSPHRASE_FILE"] = archiverPass });

        var (code, output, err) = await archiver.RunAsync("archiver", "allow", "--group", "postgres");

        Assert.True(code == 0, err);
        Assert.Contains("postgres", output, StringComparison.Ordinal);
        // The archiver's passphrase file is the operator's to share (root:postgres 0640 in a folder postgres can enter).
        await PgProcess.RunAsync("chgrp", ["postgres", archiverPass], null, default);
        File.SetUnixFileMode(archiverPass, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        File.SetUnixFileMode(dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);

        var work = dir.File("pgwal");
        Directory.CreateDirectory(work);
        PgProcess.GiveToServerUser(work);
        var segment = Path.Combine(work, "000000010000000000000001");
        await File.WriteAllBytesAsync(segment, TestData.Random(64 * 1024, 7));
        PgProcess.GiveToServerUser(work);
        var env = new Dictionary<string, string> { ["CAIRN_PASSPHRASE_FILE"] = archiverPass };

        var push = await AsPostgresAsync(env, "--repo", repo, "wal-push", segment, "--database", "app");
        Assert.True(push.ExitCode == 0, push.StandardError);
        var fetch = await AsPostgresAsync(env, "--repo", repo, "wal-fetch", "000000010000000000000001", Path.Combine(work, "RECOVERYXLOG"), "--database", "app");
        Assert.True(fetch.ExitCode == 0, fetch.StandardError);
        Assert.Equal(await File.ReadAllBytesAsync(segment), await File.ReadAllBytesAsync(Path.Combine(work, "RECOVERYXLOG")));

        // A segment root pushed (e.g. by hand after an outage) is readable by restore_command too.
        await File.WriteAllBytesAsync(dir.File("000000010000000000000002"), TestData.Random(1000, 8));
        Assert.Equal(0, (await archiver.RunAsync("wal-push", dir.File("000000010000000000000002"), "--database", "app")).Code);
        fetch = await AsPostgresAsync(env, "--repo", repo, "wal-fetch", "000000010000000000000002", Path.Combine(work, "RECOVERYXLOG2"), "--database", "app");
        Assert.True(fetch.ExitCode == 0, fetch.StandardError);

        // Nothing else: not the snapshots, the index, the packs, the administrator's key file.
        var list = await AsPostgresAsync(env, "--repo", repo, "snapshots");
        Assert.NotEqual(0, list.ExitCode);
        foreach (var path in new[] { "index", "data", "snapshots", "locks" })
        {
            var ls = await PgProcess.RunAsServerUserAsync("ls", [Path.Combine(repo, path)], null, default);
            Assert.True(ls.ExitCode != 0, $"postgres could list {path}: {ls.StandardOutput}");
        }
        var others = Directory.EnumerateFiles(Path.Combine(repo, "keys")).Where(k => File.GetUnixFileMode(k) == (UnixFileMode.UserRead | UnixFileMode.UserWrite)).ToList();
        Assert.Single(others);
        var cat = await PgProcess.RunAsServerUserAsync("cat", [others[0]], null, default);
        Assert.NotEqual(0, cat.ExitCode);
        // And no other local user gets anything.
        foreach (var path in new[] { "config", "wal/app@000000010000000000000001" })
        {
            var r = await PgProcess.RunAsync("runuser", ["-u", "nobody", "--", "cat", Path.Combine(repo, path)], null, default);
            Assert.True(r.ExitCode != 0, $"nobody could read {path}");
        }
        // Root still does everything.
        Assert.Equal(0, (await admin.RunAsync("verify")).Code);
    }
}
