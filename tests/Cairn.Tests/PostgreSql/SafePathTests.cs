using Cairn.Operations.Physical;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.Repository.Manifests;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// The paths around a data directory belong partly to the server's user (/var/lib/postgresql/15 is postgres's):
/// a link it plants there must not redirect a root-run restore, backup or chown.
/// </summary>
public class SafePathTests
{
    private static string Stat(string path) => PgProcess.RunAsync("stat", ["-c", "%u:%g:%h", path], null, default).GetAwaiter().GetResult().StandardOutput.Trim();

    private static async Task<(Repo, Snapshot)> SmallBackupAsync()
    {
        var repo = await TestData.NewRepoAsync();
        await using var w = repo.BeginWrite();
        w.AddExistingItem(new ManifestItem { Name = "base", Type = "dir", Meta = new() { ["mode"] = "700" } });
        await w.AddStreamAsync("base/1", new MemoryStream("relation"u8.ToArray()), null, "file", new() { ["mode"] = "600" }, default);
        return (repo, await w.CommitAsync("app", Cairn.Operations.Snapshots.BackupKinds.Physical, new() { ["format"] = PhysicalFiles.Format }, default));
    }

    [Fact]
    public async Task A_restore_refuses_a_target_path_through_a_link_the_server_user_planted()
    {
        using var dir = new TempDir();
        var elsewhere = dir.File("elsewhere");
        Directory.CreateDirectory(elsewhere);
        // The server's user owns the folder above the data directory and swaps "15" for a link of its own.
        File.CreateSymbolicLink(dir.File("15"), elsewhere);
        await PgProcess.RunAsync("chown", ["-h", "postgres:postgres", dir.File("15")], null, default);
        var (repo, snap) = await SmallBackupAsync();

        var e = await Assert.ThrowsAnyAsync<IOException>(() => PhysicalBackups.RestoreAsync(repo, snap, dir.File("15/main"), new FileRestoreOptions(false, false, 2), null, default));

        Assert.Contains("symbolic link owned by uid", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
    }

    [Fact]
    public async Task A_restore_follows_a_link_root_made_above_the_target()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("data-disk"));
        File.CreateSymbolicLink(dir.File("srv"), dir.File("data-disk"));
        var (repo, snap) = await SmallBackupAsync();

        await PhysicalBackups.RestoreAsync(repo, snap, dir.File("srv/main"), new FileRestoreOptions(false, false, 2), null, default);

        Assert.Equal("relation", File.ReadAllText(dir.File("data-disk/main/base/1")));
    }

    [Fact]
    public async Task Handing_a_folder_to_the_server_user_never_chowns_through_a_link_or_a_hard_link()
    {
        using var dir = new TempDir();
        var outside = dir.File("outside");
        Directory.CreateDirectory(outside);
        File.WriteAllText(dir.File("outside/secret"), "root's");
        var tree = dir.File("tree");
        Directory.CreateDirectory(Path.Combine(tree, "sub"));
        File.WriteAllText(Path.Combine(tree, "sub/file"), "x");
        File.CreateSymbolicLink(Path.Combine(tree, "sub/to-outside"), outside);
        File.CreateSymbolicLink(Path.Combine(tree, "file-link"), dir.File("outside/secret"));
        var before = (Stat(outside), Stat(dir.File("outside/secret")));

        PgProcess.GiveToServerUser(tree);

        Assert.Equal(before, (Stat(outside), Stat(dir.File("outside/secret"))));
        Assert.StartsWith("101:", Stat(Path.Combine(tree, "sub/file")), StringComparison.Ordinal);

        // A hard link to a file outside (possible where fs.protected_hardlinks is off): refused, not chowned.
        File.Delete(Path.Combine(tree, "sub/file"));
        var ln = await PgProcess.RunAsync("ln", [dir.File("outside/secret"), Path.Combine(tree, "sub/file")], null, default);
        Assert.Equal(0, ln.ExitCode);
        Assert.ThrowsAny<IOException>(() => PgProcess.GiveToServerUser(tree));
        Assert.StartsWith("0:0:", Stat(dir.File("outside/secret")), StringComparison.Ordinal);
    }

    [Fact]
    public void A_tablespace_link_to_a_folder_the_server_user_does_not_own_is_refused_by_the_backup()
    {
        using var dir = new TempDir();
        var data = dir.File("data");
        Directory.CreateDirectory(Path.Combine(data, "pg_tblspc"));
        File.WriteAllText(Path.Combine(data, "PG_VERSION"), "15\n");
        // Root's folder that happens to hold a version folder, and a tablespace link to it planted by the server's user.
        var rootOnly = dir.File("root-only");
        Directory.CreateDirectory(Path.Combine(rootOnly, "PG_15_202209061"));
        File.WriteAllText(Path.Combine(rootOnly, "PG_15_202209061", "secret"), "root's");
        File.CreateSymbolicLink(Path.Combine(data, "pg_tblspc", "99999"), rootOnly);
        PgProcess.GiveToServerUser(data);

        var e = Assert.Throws<PgToolException>(() => DataDirectory.List(data, "PG_15_202209061").Dispose());

        Assert.Contains("pg_tblspc/99999", e.Message, StringComparison.Ordinal);
    }
}
