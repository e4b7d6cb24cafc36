using Cairn.Operations.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;
using Counting = Cairn.Tests.Repository.SnapshotIndexTests.CountingStorage;

namespace Cairn.Tests.PostgreSql;

/// <summary>A physical restore of a real server's backup reads its packs in few requests (coalesced ranges, small files many per request) and the copy passes pg_verifybackup.</summary>
public class PhysicalRestoreRequestTests
{
    [Fact]
    public async Task A_physical_restore_reads_far_fewer_ranges_than_files_or_blobs_and_passes_pg_verifybackup()
    {
        await using var c = await ArchivingCluster.StartAsync();
        await c.Server.ExecuteAsync("""
            CREATE TABLE big (id int PRIMARY KEY, pad text);
            INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 60000) g;
            CHECKPOINT;
            """);
        var (code, _, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);

        var counting = new Counting(new FileSystemStorage(c.Dir.File("repo")));
        using var repo = await Repo.OpenAsync(counting, "archiver passphrase 5be1", TimeProvider.System, default);
        var snap = (await repo.ListSnapshotsAsync(default)).Single(s => s.Manifest.Kind == "physical");
        var files = snap.Manifest.Items.Where(i => i.Type == "file").ToList();
        var blobs = snap.Manifest.Items.SelectMany(i => i.Chunks).Distinct().Count();
        Assert.True(files.Count > 500 && blobs > 300, $"{files.Count} files, {blobs} blobs");

        var before = counting.DataReads;
        var target = c.Dir.File("restored");
        await PhysicalFiles.RestoreAsync(repo, snap, target, new FileRestoreOptions(Force: false, Delta: false, Jobs: 2), null, default);
        var coalesced = counting.DataReads - before;
        var verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        Assert.True(coalesced * 20 < files.Count, $"{coalesced} reads for {files.Count} files ({blobs} blobs)");

        // The same restore one request per blob: what the count is compared with.
        repo.Coalescing = ReadCoalescing.PerBlob;
        before = counting.DataReads;
        var target2 = c.Dir.File("restored2");
        await PhysicalFiles.RestoreAsync(repo, snap, target2, new FileRestoreOptions(Force: false, Delta: false, Jobs: 2), null, default);
        Assert.True(counting.DataReads - before >= blobs, $"{counting.DataReads - before} reads per blob for {blobs} blobs");
        verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", target2], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
    }
}
