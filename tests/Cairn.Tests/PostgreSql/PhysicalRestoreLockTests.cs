using System.Globalization;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A physical restore keeps its repository lock while PostgreSQL replays WAL from the repository.</summary>
public class PhysicalRestoreLockTests
{
    [Fact]
    public async Task Restore_with_start_holds_its_lock_while_the_server_recovers()
    {
        await using var c = await ArchivingCluster.StartAsync();
        await c.Server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)");
        var (code, _, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        await c.Server.ExecuteAsync("INSERT INTO t SELECT generate_series(1001, 50000)");
        await c.ArchiveAllAsync();

        var target = c.Dir.File("restored");
        var locks = c.Dir.File("repo/locks");
        var port = ScratchServer.FreePort();
        var restore = c.Cli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture));
        // The first moment the server runs (postmaster.pid exists), recovery is fetching WAL: a lock must be held.
        bool? lockedWhenServerStarted = null;
        while (!restore.IsCompleted && lockedWhenServerStarted is null)
        {
            if (File.Exists(Path.Combine(target, "postmaster.pid")))
            {
                lockedWhenServerStarted = Directory.Exists(locks) && Directory.EnumerateFiles(locks).Any(f => !Path.GetFileName(f).StartsWith('.'));
            }
            await Task.Delay(5);
        }
        (code, var output, err) = await restore;
        try
        {
            Assert.True(code == 0, output + err);
            Assert.True(lockedWhenServerStarted == true, $"lock held when the server started: {lockedWhenServerStarted?.ToString() ?? "never observed"}");
            Assert.DoesNotContain(Directory.EnumerateFiles(locks), f => !Path.GetFileName(f).StartsWith('.'));
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }
    }
}
