using Cairn.PostgreSql.Programs;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>
/// Key files can be attacked offline and objects hold (encrypted) database contents: no other local user may read
/// them. Folders are 0700 and files 0600 whatever the umask of the process that wrote them, and the CLI itself runs
/// with umask 077 so every file it writes (restored copies, exports, temp files) starts private.
/// </summary>
public class FileModeTests
{
    private const UnixFileMode Dir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode File600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private static IEnumerable<string> Everything(string root)
        => Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 });

    [Fact]
    public async Task Repository_folders_are_0700_and_objects_0600_whatever_the_umask()
    {
        using var dir = new TempDir();
        var root = dir.File("repo");
        using (var repo = await Repo.InitAsync(new FileSystemStorage(root), TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default))
        {
            await TestData.PutAsync(repo, "x", TestData.Rows(300_000, 1));
            await Cairn.Repository.NamedFiles.PutAsync(repo, "app@000000010000000000000001", new byte[1000], default);
        }

        Assert.Equal(Dir, File.GetUnixFileMode(root));
        foreach (var p in Everything(root))
        {
            Assert.True((Directory.Exists(p) ? Dir : File600) == File.GetUnixFileMode(p), $"{Path.GetRelativePath(root, p)} is {File.GetUnixFileMode(p)}");
        }
    }

    [Fact]
    public async Task Another_local_user_cannot_read_key_files_or_objects()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var key = Directory.EnumerateFiles(dir.File("repo/keys")).Single();

        var r = await PgProcess.RunAsync("runuser", ["-u", "nobody", "--", "cat", key], null, default);

        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("Permission denied", r.StandardError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_cli_process_runs_with_umask_077()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo") };
        var (code, _, err) = await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env);
        Assert.True(code == 0, err);
        await File.WriteAllTextAsync(dir.File("in"), "contents");
        (code, _, err) = await CairnProcess.RunAsync(["repo", "put", "n", dir.File("in")], env);
        Assert.True(code == 0, err);

        (code, _, err) = await CairnProcess.RunAsync(["repo", "get", "n", dir.File("out")], env);

        Assert.True(code == 0, err);
        Assert.Equal(File600, File.GetUnixFileMode(dir.File("out"))); // written with the default mode: only the umask makes it private
        var evidence = dir.File("repo-evidence");
        foreach (var p in Everything(evidence).Where(p => !p.EndsWith(".pub", StringComparison.Ordinal)))
        {
            Assert.True((File.GetUnixFileMode(p) & (UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) == 0, $"{p} is {File.GetUnixFileMode(p)}");
        }
    }
}
