using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// A real server archiving through wal-push with <c>wal: { compression: zstd:N }</c>: its segments are stored at that
/// level (objects whose zstd frame carries the checksum), come back byte for byte through wal-fetch, and a different
/// file under an archived segment's name is refused while the same file again succeeds.
/// </summary>
public sealed class WalFormatServerTests
{
    [Fact]
    public async Task Real_WAL_is_stored_at_the_configured_level_read_back_whole_and_a_different_file_under_its_name_is_refused()
    {
        await using var c = await ArchivingCluster.StartAsync(extraYaml: "    wal: { compression: zstd:3 }\n");
        await c.ArchiveWithConfigAsync();
        var init = await PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-i", "-q", "-s", "2"], c.PgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);
        await c.ArchiveAllAsync();
        Assert.Equal(0L, await c.Server.ScalarAsync<long>("SELECT failed_count FROM pg_stat_archiver"));

        // The archived segments PostgreSQL still keeps (.done, not yet recycled: no checkpoint was asked for).
        var walDir = Path.Combine(c.Server.DataDirectory, "pg_wal");
        var archived = Directory.EnumerateFiles(Path.Combine(walDir, "archive_status"), "*.done").Select(Path.GetFileNameWithoutExtension).OfType<string>()
            .Where(n => n.Length == 24 && File.Exists(Path.Combine(walDir, n))).Order(StringComparer.Ordinal).ToList();
        Assert.True(archived.Count >= 2, $"only {archived.Count} archived segments left in pg_wal");
        var copies = c.Dir.File("copies");
        Directory.CreateDirectory(copies);
        foreach (var name in archived)
        {
            // A copy first: the server may recycle the segment meanwhile; an archived segment never changes.
            File.Copy(Path.Combine(walDir, name), Path.Combine(copies, name));
        }
        using var reference = await TestData.NewRepoAsync();
        foreach (var name in archived)
        {
            var segment = await File.ReadAllBytesAsync(Path.Combine(copies, name));
            var (code, _, err) = await c.Cli.RunAsync("wal-fetch", name, c.Dir.File("fetched"), "--database", "app");
            Assert.True(code == 0, err);
            var fetched = await File.ReadAllBytesAsync(c.Dir.File("fetched"));
            Assert.True(segment.AsSpan().SequenceEqual(fetched), $"{name} came back different");
            File.Delete(c.Dir.File("fetched"));
            // Stored at level 3: the very size a level-3 object of this segment has (and not level 1's).
            var stored = new FileInfo(c.Dir.File($"repo/wal/app@{name}")).Length;
            Assert.Equal(await SealedSizeAsync(reference, name, segment, 3), stored);
            Assert.NotEqual(await SealedSizeAsync(reference, name, segment, 1), stored);
        }

        // The same segment again: success, the object untouched. Another segment's bytes under its name: refused.
        var victim = archived[0];
        var before = await File.ReadAllBytesAsync(c.Dir.File($"repo/wal/app@{victim}"));
        var again = await c.Cli.RunAsync("wal-push", Path.Combine(copies, victim), "--database", "app");
        Assert.True(again.Code == 0, again.Err);
        var impostor = c.Dir.File("impostor");
        Directory.CreateDirectory(impostor);
        File.Copy(Path.Combine(copies, archived[1]), Path.Combine(impostor, victim));
        var refused = await c.Cli.RunAsync("wal-push", Path.Combine(impostor, victim), "--database", "app");
        Assert.Equal(ExitCodes.AlreadyExists, refused.Code);
        Assert.Contains("different content", refused.Err, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(c.Dir.File($"repo/wal/app@{victim}")));
    }

    private static async Task<long> SealedSizeAsync(Repo reference, string name, byte[] segment, int level)
    {
        var key = $"app@{name}.{level}";
        await Cairn.Repository.NamedFiles.PutAsync(reference, key, segment, level, default);
        return (await reference.Storage.StatAsync(new StorageKey(ObjectKind.Named, key), default))!.Value.Size;
    }
}
