using System.Text.Json.Nodes;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// File-level physical backups run as root and read a data directory the server's user controls: a link it plants
/// must be recorded as a link, never followed (or a root-only folder such as /root/.ssh would be copied into the
/// repository and handed back on restore), and a link loop must not break the backup.
/// </summary>
public class HostileBackupTests
{
    [Fact]
    public async Task Backup_records_links_in_the_data_directory_as_links_copies_nothing_behind_them_and_survives_a_link_loop()
    {
        await using var c = await ArchivingCluster.StartAsync();
        // A root-only folder standing for /root/.ssh, and the links the server's user plants in its data directory.
        var secret = c.Dir.File("root-ssh");
        Directory.CreateDirectory(secret);
        await File.WriteAllTextAsync(Path.Combine(secret, "id_ed25519"), "PRIVATE KEY MATERIAL");
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var data = c.Server.DataDirectory;
        File.CreateSymbolicLink(Path.Combine(data, "pg_stolen"), secret);
        File.CreateSymbolicLink(Path.Combine(data, "base", "stolen_key"), Path.Combine(secret, "id_ed25519"));
        File.CreateSymbolicLink(Path.Combine(data, "loop"), ".");
        File.CreateSymbolicLink(Path.Combine(data, "base", "loop_up"), "..");
        await c.Server.ExecuteAsync("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g; CHECKPOINT;");

        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var snapshotId = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();

        using (var repo = await Repo.OpenAsync(new Cairn.Repository.Storage.FileSystemStorage(c.Dir.File("repo")), "archiver passphrase 5be1", TimeProvider.System, default))
        {
            var snap = (await repo.ListSnapshotsAsync(default)).Single(s => s.Id == snapshotId);
            var names = snap.Manifest.Items.ToDictionary(i => i.Name, i => i.Type, StringComparer.Ordinal);
            Assert.Equal("link", names["pg_stolen"]);
            Assert.Equal("link", names["base/stolen_key"]);
            Assert.Equal("link", names["loop"]);
            Assert.Equal("link", names["base/loop_up"]);
            Assert.DoesNotContain(names.Keys, n => n.StartsWith("pg_stolen/", StringComparison.Ordinal) || n.StartsWith("loop/", StringComparison.Ordinal) || n.StartsWith("base/loop_up/", StringComparison.Ordinal));
        }

        await c.ArchiveAllAsync();
        var target = c.Dir.File("restored");
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        // No regular file in the copy holds the secret: links come back as links at most.
        foreach (var f in Directory.EnumerateFiles(target, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            if (new FileInfo(f).LinkTarget is null && new FileInfo(f).Length < 1024)
            {
                Assert.DoesNotContain("PRIVATE KEY MATERIAL", await File.ReadAllTextAsync(f), StringComparison.Ordinal);
            }
        }
        Assert.NotNull(new FileInfo(Path.Combine(target, "pg_stolen")).LinkTarget);
    }
}
