using System.Formats.Tar;
using System.Text;
using Cairn.Operations.Physical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository.Manifests;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// Physical restores of backups written by someone hostile (a forged manifest, a crafted tar) and into copies the
/// server's user tampered with (--delta): nothing outside the target is written, deleted, chmodded or chowned.
/// Cairn runs these restores as root, so each test plants what an attacker would and checks the outside afterwards.
/// </summary>
public class HostileRestoreTests
{
    private const UnixFileMode Dangerous = UnixFileMode.SetUser | UnixFileMode.SetGroup | UnixFileMode.StickyBit | UnixFileMode.GroupWrite | UnixFileMode.OtherWrite | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private sealed record Item(string Name, string Type, string? Content = null, Dictionary<string, string>? Meta = null);

    /// <summary>A manifest as a holder of the repository key could forge it, written through the normal repository API.</summary>
    private static async Task<(Repo Repo, Snapshot Snap)> ForgeAsync(params Item[] items)
    {
        var repo = await TestData.NewRepoAsync();
        await using var w = repo.BeginWrite();
        foreach (var i in items)
        {
            if (i.Type == "file")
            {
                await w.AddStreamAsync(i.Name, new MemoryStream(Encoding.UTF8.GetBytes(i.Content ?? "")), null, "file", i.Meta, default);
            }
            else
            {
                w.AddExistingItem(new ManifestItem { Name = i.Name, Type = i.Type, Meta = i.Meta });
            }
        }
        var snap = await w.CommitAsync("app", Cairn.Operations.Snapshots.BackupKinds.Physical, new() { ["format"] = PhysicalFiles.Format }, default);
        return (repo, snap);
    }

    private static Task<FileRestoreStats?> RestoreAsync(Repo repo, Snapshot snap, string target, bool delta = false)
        => PhysicalBackups.RestoreAsync(repo, snap, target, new FileRestoreOptions(Force: false, Delta: delta, Jobs: 2), null, default);

    private static Dictionary<string, string> Mode(string octal) => new() { ["mode"] = octal };

    /// <summary>Everything under a folder (not following links) with its type, mode, size and content, to prove nothing changed.</summary>
    private static string Fingerprint(string folder)
    {
        var sb = new StringBuilder();
        sb.Append(File.GetUnixFileMode(folder)).Append(' ').Append(Owner(folder)).Append('\n');
        foreach (var path in Directory.EnumerateFileSystemEntries(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, ReturnSpecialDirectories = false }).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(path);
            sb.Append(Path.GetRelativePath(folder, path)).Append(' ');
            if (info.LinkTarget is { } t)
            {
                sb.Append("-> ").Append(t);
            }
            else if (Directory.Exists(path))
            {
                sb.Append("dir ").Append(File.GetUnixFileMode(path));
            }
            else
            {
                sb.Append(File.GetUnixFileMode(path)).Append(' ').Append(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)))[..16]);
            }
            sb.Append(' ').Append(Owner(path)).Append('\n');
        }
        return sb.ToString();
    }

    private static string Owner(string path)
    {
        var r = Cairn.PostgreSql.Programs.PgProcess.RunAsync("stat", ["-c", "%u:%g:%h", path], null, default).GetAwaiter().GetResult();
        return r.StandardOutput.Trim();
    }

    [Fact]
    public async Task A_forged_link_followed_by_a_file_under_it_writes_nothing_outside_and_names_the_item()
    {
        using var dir = new TempDir();
        var outside = dir.File("outside");
        Directory.CreateDirectory(outside);
        var before = Fingerprint(outside);
        var (repo, snap) = await ForgeAsync(
            new Item("PG_VERSION", "file", "15\n", Mode("600")),
            new Item("evil", "link", Meta: new() { ["mode"] = "700", ["target"] = outside }),
            new Item("evil/x", "file", "written through the link", Mode("600")));

        var e = await Assert.ThrowsAnyAsync<Exception>(() => RestoreAsync(repo, snap, dir.File("target")));

        Assert.Contains("evil/x", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Fingerprint(outside));
    }

    [Theory]
    [InlineData("../../outside/x")]
    [InlineData("/outside-absolute")]
    [InlineData("base//x")]
    [InlineData("base/./x")]
    [InlineData("base/x\0y")]
    [InlineData("")]
    public async Task Item_names_that_are_not_plain_relative_paths_are_refused_before_anything_is_written(string name)
    {
        using var dir = new TempDir();
        var (repo, snap) = await ForgeAsync(new Item("base", "dir", Meta: Mode("700")), new Item(name, "file", "x", Mode("600")));
        var target = dir.File("a/target");

        var e = await Assert.ThrowsAnyAsync<Exception>(() => RestoreAsync(repo, snap, target));

        Assert.Contains("refus", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(dir.Path, "*", SearchOption.AllDirectories)); // nothing is written before the manifest is checked
        Assert.False(Path.Exists("/outside-absolute"));
    }

    [Theory]
    [InlineData("pg_wal")]
    [InlineData("postgresql.auto.conf")]
    [InlineData("pg_tblspc/not-an-oid")]
    public async Task Links_where_PostgreSQL_keeps_a_folder_or_the_restore_writes_a_file_are_refused(string name)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("outside"));
        var (repo, snap) = await ForgeAsync(
            new Item("PG_VERSION", "file", "15\n", Mode("600")),
            new Item("pg_tblspc", "dir", Meta: Mode("700")),
            new Item(name, "link", Meta: new() { ["mode"] = "700", ["target"] = dir.File("outside") }));

        var e = await Assert.ThrowsAnyAsync<Exception>(() => RestoreAsync(repo, snap, dir.File("target")));

        Assert.Contains(name, e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(dir.File("target/" + name)));
    }

    [Fact]
    public async Task Recovery_settings_are_not_appended_through_a_link_planted_in_the_copy()
    {
        using var dir = new TempDir();
        var (repo, snap) = await ForgeAsync(new Item("PG_VERSION", "file", "15\n", Mode("600")), new Item("postgresql.auto.conf", "file", "# auto\n", Mode("600")));
        var target = dir.File("target");
        await RestoreAsync(repo, snap, target);
        var victim = dir.File("victim.conf");
        File.WriteAllText(victim, "root's file\n");
        // Between the restore and the recovery settings, the server's user swaps the file for a link.
        File.Delete(Path.Combine(target, "postgresql.auto.conf"));
        File.CreateSymbolicLink(Path.Combine(target, "postgresql.auto.conf"), victim);

        await Assert.ThrowsAnyAsync<IOException>(() => PhysicalRestorer.ConfigureRecoveryAsync(target, "cairn wal-fetch %f %p", new RecoveryTarget(), null, null, keepArchiving: false, default));

        Assert.Equal("root's file\n", File.ReadAllText(victim));
    }

    [Fact]
    public async Task A_tablespace_link_with_dot_dot_is_refused_and_nothing_outside_is_deleted_or_chowned()
    {
        using var dir = new TempDir();
        // target = DIR/a/b/target: the forged name pg_tblspc/../../../victim points at DIR/a/victim, its mapped
        // folder (target-tablespaces/../../../victim) at DIR/victim.
        Directory.CreateDirectory(dir.File("a/b"));
        Directory.CreateDirectory(dir.File("a/victim"));
        File.WriteAllText(dir.File("a/victim/precious"), "must survive");
        Directory.CreateDirectory(dir.File("victim"));
        var before = (Fingerprint(dir.File("a/victim")), Fingerprint(dir.File("victim")));
        var (repo, snap) = await ForgeAsync(
            new Item("PG_VERSION", "file", "15\n", Mode("600")),
            new Item("pg_tblspc", "dir", Meta: Mode("700")),
            new Item("pg_tblspc/../../../victim", "link", Meta: new() { ["mode"] = "700", ["target"] = "/srv/original-tablespace" }));

        var e = await Assert.ThrowsAnyAsync<Exception>(() => RestoreAsync(repo, snap, dir.File("a/b/target")));

        Assert.Contains("pg_tblspc/../../../victim", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, (Fingerprint(dir.File("a/victim")), Fingerprint(dir.File("victim"))));
    }

    [Fact]
    public async Task Setuid_sticky_and_world_writable_modes_in_a_manifest_are_masked()
    {
        using var dir = new TempDir();
        var (repo, snap) = await ForgeAsync(
            new Item("base", "dir", Meta: Mode("7777")),
            new Item("base/1", "dir", Meta: Mode("777")),
            new Item("base/1/suid", "file", "#!/bin/sh\nid\n", Mode("4777")),
            new Item("PG_VERSION", "file", "15\n", Mode("2666")),
            new Item("group_readable", "file", "x", Mode("640")));
        var target = dir.File("target");

        await RestoreAsync(repo, snap, target);

        foreach (var p in new[] { "base", "base/1", "base/1/suid", "PG_VERSION" })
        {
            var mode = File.GetUnixFileMode(Path.Combine(target, p));
            Assert.True((mode & Dangerous) == 0, $"{p} is {mode}");
        }
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(target, "base/1/suid")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(Path.Combine(target, "group_readable")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(target));
    }

    [Fact]
    public async Task Delta_into_a_copy_with_planted_file_and_folder_links_changes_nothing_outside()
    {
        using var dir = new TempDir();
        var (repo, snap) = await ForgeAsync(
            new Item("PG_VERSION", "file", "15\n", Mode("600")),
            new Item("base", "dir", Meta: Mode("700")),
            new Item("base/1", "dir", Meta: Mode("700")),
            new Item("base/1/100", "file", "relation 100", Mode("600")),
            new Item("base/2", "dir", Meta: Mode("700")),
            new Item("base/2/200", "file", "relation 200", Mode("600")));
        var target = dir.File("target");
        await RestoreAsync(repo, snap, target);

        // The server's user owns the copy and plants links: a folder link (chmod, writes and removals would go
        // through it), a file link whose target already holds the backup's content (so it "matches" and would be
        // chmodded), and an extra link to a folder (its contents would be removed).
        var outside = dir.File("outside");
        Directory.CreateDirectory(Path.Combine(outside, "victim-dir"));
        File.WriteAllText(Path.Combine(outside, "victim-dir/100"), "outside content");
        File.WriteAllText(Path.Combine(outside, "victim-dir/keepme"), "outside content");
        File.SetUnixFileMode(Path.Combine(outside, "victim-dir"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        File.WriteAllText(Path.Combine(outside, "victim-file"), "relation 200");
        File.SetUnixFileMode(Path.Combine(outside, "victim-file"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        Directory.CreateDirectory(Path.Combine(outside, "victim-extra"));
        File.WriteAllText(Path.Combine(outside, "victim-extra/keepme"), "outside content");
        var before = Fingerprint(outside);

        Directory.Delete(Path.Combine(target, "base/1"), recursive: true);
        File.CreateSymbolicLink(Path.Combine(target, "base/1"), Path.Combine(outside, "victim-dir"));
        File.Delete(Path.Combine(target, "base/2/200"));
        File.CreateSymbolicLink(Path.Combine(target, "base/2/200"), Path.Combine(outside, "victim-file"));
        File.CreateSymbolicLink(Path.Combine(target, "extra"), Path.Combine(outside, "victim-extra"));

        await RestoreAsync(repo, snap, target, delta: true);

        Assert.Equal(before, Fingerprint(outside));
        // The copy is the backup again: real folders and files where the links were, the extra link gone.
        Assert.Null(new FileInfo(Path.Combine(target, "base/1")).LinkTarget);
        Assert.Equal("relation 100", File.ReadAllText(Path.Combine(target, "base/1/100")));
        Assert.Null(new FileInfo(Path.Combine(target, "base/2/200")).LinkTarget);
        Assert.Equal("relation 200", File.ReadAllText(Path.Combine(target, "base/2/200")));
        Assert.False(Path.Exists(Path.Combine(target, "extra")));
    }

    // ---- pg_basebackup tar ----------------------------------------------------------------------

    private static MemoryStream Tar(params TarEntry[] entries)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                w.WriteEntry(e);
            }
        }
        ms.Position = 0;
        return ms;
    }

    private static PaxTarEntry TarFile(string name, string content, UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite)
        => new(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(content)), Mode = mode };

    [Fact]
    public async Task A_tar_with_a_symlink_then_an_entry_under_it_writes_nothing_outside_and_names_the_entry()
    {
        using var dir = new TempDir();
        var outside = dir.File("outside");
        Directory.CreateDirectory(outside);
        var before = Fingerprint(outside);
        var tar = Tar(
            TarFile("PG_VERSION", "15\n"),
            new PaxTarEntry(TarEntryType.SymbolicLink, "evil") { LinkName = outside },
            TarFile("evil/x", "written through the link"));

        var e = await Assert.ThrowsAnyAsync<Exception>(() => PhysicalRestorer.ExtractAsync(tar, dir.File("target"), force: false, default));

        Assert.Contains("evil/x", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, Fingerprint(outside));
    }

    [Theory]
    [InlineData("../outside/secret")]
    [InlineData("/etc/hostname")]
    [InlineData("missing")]
    public async Task A_tar_hard_link_to_outside_or_to_nothing_it_extracted_is_refused(string linkName)
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("outside"));
        File.WriteAllText(dir.File("outside/secret"), "secret");
        var before = Fingerprint(dir.File("outside"));
        var tar = Tar(TarFile("PG_VERSION", "15\n"), new PaxTarEntry(TarEntryType.HardLink, "stolen") { LinkName = linkName });

        var e = await Assert.ThrowsAnyAsync<Exception>(() => PhysicalRestorer.ExtractAsync(tar, dir.File("target"), force: false, default));

        Assert.Contains("stolen", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(dir.File("target/stolen")));
        Assert.Equal(before, Fingerprint(dir.File("outside")));
    }

    [Fact]
    public async Task A_tar_hard_link_to_a_file_extracted_before_it_is_restored()
    {
        using var dir = new TempDir();
        var tar = Tar(
            new PaxTarEntry(TarEntryType.Directory, "global") { Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute },
            TarFile("global/pg_control", "control", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.SetUser | UnixFileMode.OtherWrite),
            new PaxTarEntry(TarEntryType.HardLink, "copy_of_control") { LinkName = "global/pg_control" });

        await PhysicalRestorer.ExtractAsync(tar, dir.File("target"), force: false, default);

        Assert.Equal("control", File.ReadAllText(dir.File("target/copy_of_control")));
        Assert.True((File.GetUnixFileMode(dir.File("target/global/pg_control")) & Dangerous) == 0);
    }

    [Fact]
    public async Task A_tar_device_or_fifo_entry_is_refused()
    {
        using var dir = new TempDir();
        var tar = Tar(TarFile("PG_VERSION", "15\n"), new PaxTarEntry(TarEntryType.CharacterDevice, "mem") { DeviceMajor = 1, DeviceMinor = 1 });

        var e = await Assert.ThrowsAnyAsync<Exception>(() => PhysicalRestorer.ExtractAsync(tar, dir.File("target"), force: false, default));

        Assert.Contains("mem", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(dir.File("target/mem")));
    }
}
