using System.Diagnostics;
using Cairn.Repository.Locks;
using Cairn.Repository.Verification;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

/// <summary>Kills a real 'cairn repo put' at random moments and checks the repository each time.</summary>
public class CrashTests
{
    [Fact]
    public async Task Put_killed_at_random_moments_never_leaves_a_visible_or_damaged_item()
    {
        using var dir = new TempDir();
        var repoPath = dir.File("repo");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repoPath };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        var input = dir.File("input.bin");
        // Incompressible data so the put takes long enough to be killed in the middle.
        await File.WriteAllBytesAsync(input, TestData.Random(96 * 1024 * 1024, 5));
        // The kill moments are fractions of how long one whole put takes on this machine now (a fixed 150-1500 ms range
        // let a quiet machine finish 8 of 10 puts before their kill, so the test stopped exercising crashes).
        var timing = Stopwatch.StartNew();
        Assert.Equal(0, (await CairnProcess.RunAsync(["repo", "put", "timing", input], env)).Code);
        var whole = Math.Max(100, (int)timing.ElapsedMilliseconds);
        const int seed = 42; // the kill moments: a failure names the seed, round and delay, so it can be replayed
        var rng = new Random(seed);
        var killedMidway = 0;
        for (var round = 0; round < 10; round++)
        {
            using var p = Process.Start(CairnProcess.StartInfo(["repo", "put", $"item{round}", input], env))!;
            var delay = rng.Next(whole / 20, whole * 19 / 20);
            var exited = p.WaitForExit(delay);
            if (!exited)
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
                killedMidway++;
            }
            using var repo = await Repo.OpenAsync(new FileSystemStorage(repoPath), TestData.Passphrase, TimeProvider.System, default);
            var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
            var moment = $"seed {seed}, round {round}, {(exited ? "finished within" : "killed after")} {delay} ms of a whole put's {whole} ms";
            Assert.False(report.HasDamage, moment + "\n" + string.Join("\n", report.Findings));
            foreach (var s in await repo.ListSnapshotsAsync(default))
            {
                // Any visible snapshot is complete.
                Assert.True(new FileInfo(input).Length == s.Size, $"{moment}: snapshot {s.ShortId} holds {s.Size} bytes");
            }
        }
        Assert.True(killedMidway >= 3, $"only {killedMidway} of 10 runs were killed midway (seed {seed}, a whole put took {whole} ms); the test did not exercise crashes");

        // The locks of killed processes are removed by the next command that takes a lock (no 'cairn unlock'); prune cleans up.
        var (code, _, err) = await CairnProcess.RunAsync(["repo", "put", "final", input], env);
        Assert.True(code == 0, err);
        Assert.Equal(0, (await CairnProcess.RunAsync(["prune"], env)).Code);
        using var final = await Repo.OpenAsync(new FileSystemStorage(repoPath), TestData.Passphrase, TimeProvider.System, default);
        var after = await new Verifier(final).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(after.Findings);
        Assert.Empty(Directory.EnumerateFiles(repoPath, ".tmp-*", SearchOption.AllDirectories));
        var (gcode, _, _) = await CairnProcess.RunAsync(["repo", "get", "final", dir.File("out.bin")], env);
        Assert.Equal(0, gcode);
        var expected = await File.ReadAllBytesAsync(input);
        var actual = await File.ReadAllBytesAsync(dir.File("out.bin"));
        Assert.True(expected.AsSpan().SequenceEqual(actual));
    }

    [Fact]
    public async Task After_a_kill_9_of_repo_put_the_next_prune_removes_the_dead_lock_itself_and_records_it()
    {
        using var dir = new TempDir();
        var repoPath = dir.File("repo");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repoPath };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        var input = dir.File("input.bin");
        await File.WriteAllBytesAsync(input, TestData.Random(64 * 1024 * 1024, 9));
        using var p = Process.Start(CairnProcess.StartInfo(["repo", "put", "big", input], env))!;
        var locks = Path.Combine(repoPath, "locks");
        var deadline = Stopwatch.StartNew();
        while (!Directory.Exists(locks) || !Directory.EnumerateFiles(locks).Any(f => !Path.GetFileName(f).StartsWith('.')))
        {
            Assert.True(deadline.Elapsed < TimeSpan.FromSeconds(30), "put never took its lock");
            await Task.Delay(10);
        }
        p.Kill(); // SIGKILL: no cleanup runs
        await p.WaitForExitAsync();
        var lockId = Path.GetFileName(Directory.EnumerateFiles(locks).Single(f => !Path.GetFileName(f).StartsWith('.')));

        var (code, output, err) = await CairnProcess.RunAsync(["prune"], env);
        Assert.True(code == 0, output + err);
        Assert.Contains($"removed the lock {lockId[..8]}", err, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(locks));
        Assert.Empty(Directory.EnumerateFiles(repoPath, ".tmp-*", SearchOption.AllDirectories));

        var (lcode, list, lerr) = await CairnProcess.RunAsync(["evidence", "list", "--kind", "lock-removed", "--json"], env);
        Assert.True(lcode == 0, lerr);
        var record = Assert.Single(System.Text.Json.Nodes.JsonNode.Parse(list)!.AsArray())!;
        Assert.Equal(lockId, record["details"]!["lock"]!.GetValue<string>());
        Assert.Equal(p.Id, record["details"]!["pid"]!.GetValue<int>());
        Assert.Equal("put", record["details"]!["operation"]!.GetValue<string>());
        Assert.Equal("prune", record["details"]!["removed_by"]!.GetValue<string>());
        Assert.Equal(0, (await CairnProcess.RunAsync(["evidence", "verify"], env)).Code);
    }

    [Fact]
    public async Task Prune_is_refused_while_a_put_holds_its_lock_and_put_is_refused_while_prune_holds_it()
    {
        // The locks are held here, in the test, for as long as the test says: no race with a real put's speed decides the outcome.
        using var dir = new TempDir();
        var repoPath = dir.File("repo");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = repoPath };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        var input = dir.File("input.bin");
        await File.WriteAllBytesAsync(input, TestData.Random(1024 * 1024, 6));
        var storage = new FileSystemStorage(repoPath);
        Assert.Equal(0, (await CairnProcess.RunAsync(["repo", "put", "before", input], env)).Code);
        using (var r = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default))
        {
            await r.ForgetAsync(Assert.Single(await r.ListSnapshotsAsync(default)), default); // so a prune that ran would delete packs
        }
        var tree = RepositoryTree(repoPath);

        await using (var put = await RepositoryLock.AcquireAsync(storage, TimeProvider.System, exclusive: false, "put", default))
        {
            var (code, output, err) = await CairnProcess.RunAsync(["prune"], env);
            Assert.True(code == Cairn.Cli.ExitCodes.Locked, $"exit {code}: {output}{err}");
            Assert.Contains("locked by put", err, StringComparison.Ordinal);
            Assert.Contains($"pid {Environment.ProcessId}", err, StringComparison.Ordinal);
            Assert.Equal(tree, RepositoryTree(repoPath)); // prune deleted nothing
        }

        await using (var prune = await RepositoryLock.AcquireAsync(storage, TimeProvider.System, exclusive: true, "prune", default))
        {
            var (code, output, err) = await CairnProcess.RunAsync(["repo", "put", "during", input], env);
            Assert.True(code == Cairn.Cli.ExitCodes.Locked, $"exit {code}: {output}{err}");
            Assert.Contains("locked exclusively by prune", err, StringComparison.Ordinal);
            Assert.Equal(tree, RepositoryTree(repoPath)); // put wrote nothing
        }

        // Both locks are gone: both commands now run, and the repository holds exactly the one put.
        Assert.Equal(0, (await CairnProcess.RunAsync(["prune"], env)).Code);
        Assert.Equal(0, (await CairnProcess.RunAsync(["repo", "put", "after", input], env)).Code);
        using var repo = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
        Assert.Empty(report.Findings);
        Assert.Equal("after", Assert.Single(await repo.ListSnapshotsAsync(default)).Manifest.Name);
    }

    /// <summary>Every file of the repository but its locks, with its size: what a command changed.</summary>
    private static List<string> RepositoryTree(string repoPath)
    {
        var r = Directory.EnumerateFiles(repoPath, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(repoPath, f))
            .Where(f => !f.StartsWith("locks", StringComparison.Ordinal))
            .Select(f => $"{f}:{new FileInfo(Path.Combine(repoPath, f)).Length}")
            .ToList();
        r.Sort(StringComparer.Ordinal);
        return r;
    }
}
