using System.Globalization;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A point-in-time restore whose target lies past a WAL segment missing from the archive (walk-through, 2026-12-06).</summary>
public class WalGapRestoreTests
{
    [Fact]
    public async Task Restore_to_a_time_past_a_missing_segment_fails_naming_the_gap_and_the_ways_out()
    {
        // Before: a warning named the gap, then the restore failed with only the server's "recovery ended before
        // configured recovery target was reached" (exit 10) and no fix.
        await using var c = await ArchivingCluster.StartAsync();
        var s = c.Server;
        await s.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)");
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "app", "--physical")).Code);
        await s.ExecuteAsync("INSERT INTO t VALUES (2)");
        var lost = await s.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_lsn())");
        await s.ExecuteAsync("SELECT pg_switch_wal()");
        await s.ExecuteAsync("INSERT INTO t VALUES (3)");
        await Task.Delay(1100);
        var target = (await s.ScalarAsync<DateTime>("SELECT clock_timestamp()")).ToUniversalTime();
        await Task.Delay(1100);
        await s.ExecuteAsync("INSERT INTO t VALUES (4)");
        await c.ArchiveAllAsync();
        var walObject = Assert.Single(Directory.EnumerateFiles(c.Dir.File("repo"), "*", SearchOption.AllDirectories), f => Path.GetFileName(f).EndsWith("@" + lost, StringComparison.Ordinal));
        File.Delete(walObject);

        var restored = c.Dir.File("restored");
        var port = 20000 + Random.Shared.Next(20000);
        var (code, output, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", restored, "--start", "--port", port.ToString(CultureInfo.InvariantCulture),
            "--target-time", target.ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");

        Assert.True(code == 10, output + err);
        Assert.Contains($"WAL segment {lost} is missing from the archive", err, StringComparison.Ordinal);
        Assert.Contains("restore to a target before it, or from a physical backup taken after it", err, StringComparison.Ordinal);
    }
}
