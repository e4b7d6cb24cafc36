using System.Diagnostics;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

/// <summary>Real cairn processes racing on one repository.</summary>
public class RacingProcessTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task Two_wal_push_processes_racing_with_different_content_never_both_win()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo") };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        for (var round = 0; round < 4; round++)
        {
            var name = $"0000000100000000000000{round + 1:X2}";
            var paths = new[] { dir.File($"a{round}"), dir.File($"b{round}") };
            foreach (var (p, i) in paths.Select((p, i) => (p, i)))
            {
                Directory.CreateDirectory(p);
                await File.WriteAllBytesAsync(Path.Combine(p, name), TestData.Random(16 << 20, (round * 2) + i + 1));
            }
            var results = await Task.WhenAll(paths.Select(p => CairnProcess.RunAsync(["wal-push", Path.Combine(p, name), "--database", "app"], env)));
            var codes = results.Select(r => r.Code).Order().ToArray();
            Assert.True(codes.SequenceEqual([ExitCodes.Ok, ExitCodes.AlreadyExists]), $"round {round}: exits {string.Join(", ", codes)}: {string.Join(" | ", results.Select(r => r.Err))}");
            // What is archived is the winner's file, whole.
            var winner = paths[Array.FindIndex(results, r => r.Code == 0)];
            var fetched = dir.File($"fetched{round}");
            var fetch = await CairnProcess.RunAsync(["wal-fetch", name, fetched, "--database", "app"], env);
            Assert.True(fetch.Code == 0, fetch.Err);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(winner, name)), await File.ReadAllBytesAsync(fetched));
        }
    }

    [Fact]
    public async Task Prune_started_while_a_backup_process_runs_never_runs_during_it()
    {
        var db = await pg.CreateDatabaseAsync("race", DemoSchema.Sql(50) + "; CREATE TABLE bulk AS SELECT i, md5(i::text) || repeat('x', 300) AS pad FROM generate_series(1, 250000) i");
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_CONFIG"] = dir.File("cairn.yaml") };
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{pg.Server.Url(db)}\"\n    retention: {{ keep_last: 1 }}\n");
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        Assert.Equal(0, (await CairnProcess.RunAsync(["backup", "app"], env, timeout: TimeSpan.FromMinutes(5))).Code);

        // The backup holds its shared lock from start to end; prune starts while it is held. A backup that ends
        // before the lock file was seen (a fast machine) is tried again; one that fails is reported as it failed.
        var locks = dir.File("repo/locks");
        Process? backup = null;
        Task<string>? backupErr = null;
        for (var attempt = 1; backup is null; attempt++)
        {
            var p = Process.Start(CairnProcess.StartInfo(["backup", "app"], env))!;
            p.StandardInput.Close();
            var err = p.StandardError.ReadToEndAsync();
            _ = p.StandardOutput.ReadToEndAsync();
            var deadline = Stopwatch.StartNew();
            while (!Directory.EnumerateFiles(locks).Any() && !p.HasExited)
            {
                Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(120), "the backup neither took its lock nor ended in 120 s");
                await Task.Delay(5);
            }
            if (!p.HasExited)
            {
                (backup, backupErr) = (p, err);
                break;
            }
            await p.WaitForExitAsync();
            Assert.True(p.ExitCode == 0, $"the racing backup failed before prune started (exit {p.ExitCode}): {await err}");
            Assert.True(attempt < 3, "three backups ended before their lock file was seen: the race was never exercised");
            p.Dispose();
        }
        using var _b = backup;
        var (pruneCode, _, pruneErr) = await CairnProcess.RunAsync(["prune"], env, timeout: TimeSpan.FromMinutes(5));
        var backupRunning = !backup.HasExited;
        await backup.WaitForExitAsync();
        Assert.True(backup.ExitCode == 0, await backupErr!);
        Assert.True(backupRunning || pruneCode == ExitCodes.Locked, "the backup ended before prune did: the race was not exercised");

        // The record says when each ran: a prune that ran (pass) started after the backup ended.
        var (_, list, _) = await CairnProcess.RunAsync(["evidence", "list", "--json"], env);
        var records = JsonNode.Parse(list)!.AsArray().Select(r => r!).ToList();
        var lastBackup = records.Last(r => r["kind"]!.GetValue<string>() == "backup");
        static (DateTimeOffset Start, DateTimeOffset End) Interval(JsonNode r)
        {
            var end = DateTimeOffset.Parse(r["time"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
            return (end - TimeSpan.FromMilliseconds(r["duration_ms"]?.GetValue<long>() ?? 0), end);
        }
        var b = Interval(lastBackup);
        if (pruneCode == ExitCodes.Locked)
        {
            Assert.Contains("lock", pruneErr, StringComparison.OrdinalIgnoreCase);
        }
        else
        {
            Assert.True(pruneCode == 0, pruneErr);
            var prune = records.Last(r => r["kind"]!.GetValue<string>() == "prune");
            Assert.True(Interval(prune).End >= b.End, $"prune ended {Interval(prune).End:O}, before the backup ended {b.End:O}");
        }
        // Whatever happened, the backup is whole.
        var verify = await CairnProcess.RunAsync(["verify", "--read-data"], env, timeout: TimeSpan.FromMinutes(5));
        Assert.True(verify.Code == 0, verify.Out + verify.Err);
    }
}
