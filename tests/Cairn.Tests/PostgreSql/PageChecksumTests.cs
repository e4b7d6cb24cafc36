using System.Text.Json.Nodes;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>PostgreSQL's page checksum, checked against pages a real server wrote with data checksums on, and a physical backup that reads a bad page.</summary>
public class PageChecksumTests
{
    private const int PageSize = 8192;

    /// <summary>Stops the server, turns data checksums on (pg_checksums --enable writes every page's checksum) and returns the table's file.</summary>
    private static async Task<string> ChecksummedTableFileAsync(ScratchServer s, string table)
    {
        var rel = await s.ScalarAsync<string>($"SELECT pg_relation_filepath('{table}')");
        await s.StopAsync();
        var r = await PgProcess.RunAsServerUserAsync(s.Binaries["pg_checksums"], ["--enable", "-D", s.DataDirectory], null, default);
        Assert.True(r.ExitCode == 0, r.StandardError);
        return Path.Combine(s.DataDirectory, rel);
    }

    private static void FlipByte(string file, long offset)
    {
        using var f = new FileStream(file, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = f.ReadByte();
        f.Position = offset;
        f.WriteByte((byte)(b ^ 0x5A));
    }

    [Fact]
    public async Task Checksums_match_the_pages_postgresql_wrote_and_a_flipped_byte_is_found_by_block_number()
    {
        await using var s = await ScratchServer.StartAsync();
        await s.ExecuteAsync("CREATE TABLE t AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 5000) g; CHECKPOINT");
        var file = await ChecksummedTableFileAsync(s, "t");

        var bytes = await File.ReadAllBytesAsync(file);
        Assert.True(bytes.Length / PageSize >= 100, $"{bytes.Length} bytes");
        for (var n = 0; n < bytes.Length / PageSize; n++)
        {
            var page = bytes.AsSpan(n * PageSize, PageSize);
            Assert.False(PageChecksum.IsNew(page));
            Assert.Equal(PageChecksum.Stored(page), PageChecksum.Compute(page, (uint)n));
        }
        Assert.Empty(PageChecksum.BadPages(bytes, PageSize, 0, ulong.MaxValue));
        // The block number is part of the checksum: a page moved elsewhere does not verify.
        Assert.NotEqual(PageChecksum.Stored(bytes.AsSpan(PageSize, PageSize)), PageChecksum.Compute(bytes.AsSpan(PageSize, PageSize), 0));

        FlipByte(file, (7 * PageSize) + 5000);
        Assert.Equal([7u], PageChecksum.BadPages(await File.ReadAllBytesAsync(file), PageSize, 0, ulong.MaxValue));
        // PostgreSQL's own tool agrees on the block.
        var check = await PgProcess.RunAsServerUserAsync(s.Binaries["pg_checksums"], ["--check", "-D", s.DataDirectory], null, default);
        Assert.NotEqual(0, check.ExitCode);
        Assert.Contains("block 7", check.StandardError + check.StandardOutput, StringComparison.Ordinal);
        // Pages at or after the backup's start LSN are skipped (they may be torn while read; WAL replay rewrites them).
        Assert.Empty(PageChecksum.BadPages(await File.ReadAllBytesAsync(file), PageSize, 0, 0));
        Assert.Equal(2u, PageChecksum.SegmentOf("base/5/16384.2"));
        Assert.Equal(0u, PageChecksum.SegmentOf("base/5/16384"));
    }

    [Fact]
    public async Task A_physical_backup_reports_a_bad_page_by_file_and_block_completes_marked_as_damaged_and_check_warns()
    {
        await using var c = await ArchivingCluster.StartAsync();
        await c.Server.ExecuteAsync("CREATE TABLE t AS SELECT g AS id, repeat('y', 200) AS pad FROM generate_series(1, 3000) g; CHECKPOINT");
        var rel = await c.Server.ScalarAsync<string>("SELECT pg_relation_filepath('t')");
        var file = await ChecksummedTableFileAsync(c.Server, "t");
        FlipByte(file, (3 * PageSize) + 6000); // written with the server stopped, as a failing disk would
        await c.Server.RestartAsync();
        Assert.Equal("on", await c.Server.ScalarAsync<string>("SHOW data_checksums"));

        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");

        Assert.True(code == 0, json + err);
        Assert.Equal([$"{rel}:3"], JsonNode.Parse(json)!["bad_pages"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Contains($"bad page checksum in {rel} block 3", err, StringComparison.Ordinal);
        (code, json, _) = await c.Cli.RunAsync("snapshots", "app", "--json");
        Assert.Equal($"{rel}:3", JsonNode.Parse(json)!.AsArray().Single()!["meta"]!["bad_pages"]!.GetValue<string>());
        (code, json, _) = await c.Cli.RunAsync("evidence", "list", "--json");
        var record = JsonNode.Parse(json)!.AsArray().Last(r => r!["kind"]!.GetValue<string>() == "backup")!;
        Assert.Equal(1, record["details"]!["bad_pages"]!.GetValue<int>());
        var (checkCode, output, _) = await c.Cli.RunAsync("check", "app");
        Assert.Contains("page_checksums", output, StringComparison.Ordinal);
        Assert.Contains($"{rel}:3", output, StringComparison.Ordinal);
        Assert.True(checkCode >= 1, output);
    }
}
