using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// Physical incrementals with page patches on a real server (docs/repository-format.md, "Page patches"): pgbench, a
/// full backup, 1 % random row updates, an incremental that stores XOR page deltas; restores checked by pg_verifybackup,
/// amcheck and row equality; a missing base, prune keeping bases, verify --read-data parsing patches.
/// </summary>
public class PagePatchTests
{
    private const string Passphrase = "archiver passphrase 5be1";

    [Fact]
    public async Task Incremental_after_random_updates_stores_page_patches_and_restores_bit_identical()
    {
        const int scale = 3;
        await using var c = await ArchivingCluster.StartAsync();
        var (full, incr) = await FullAndIncrementalAsync(c, scale);

        // The changed blocks went in as patches: a small fraction of what the full stored.
        Assert.True(incr["patched_blocks"]!.GetValue<long>() > 50, incr.ToJsonString());
        var fullAdded = full["added_bytes"]!.GetValue<long>();
        var incrAdded = incr["added_bytes"]!.GetValue<long>();
        Assert.True(incrAdded < fullAdded / 8, $"incremental added {incrAdded} bytes, the full {fullAdded}: {incr.ToJsonString()}");

        // A second incremental on top: its patches apply to the same whole chunks (depth one), never to a patch.
        await UpdateOnePercentAsync(c, scale);
        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var second = JsonNode.Parse(json)!;
        Assert.Equal(incr["snapshot_id"]!.GetValue<string>(), second["incremental_from"]!.GetValue<string>());
        Assert.True(second["patched_blocks"]!.GetValue<long>() > 50, second.ToJsonString());
        using (var repo = await Cairn.Repository.Repository.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default))
        {
            var s1 = await repo.LoadSnapshotAsync(full["snapshot_id"]!.GetValue<string>(), default);
            var s2 = await repo.LoadSnapshotAsync(incr["snapshot_id"]!.GetValue<string>(), default);
            var s3 = await repo.LoadSnapshotAsync(second["snapshot_id"]!.GetValue<string>(), default);
            Assert.Equal(1, s1.Manifest.Version);
            Assert.Equal(2, s2.Manifest.Version);
            var patches = new[] { s2, s3 }.SelectMany(s => s.Manifest.Items).SelectMany(i => (i.Bases ?? []).Keys.Select(k => i.Chunks[int.Parse(k, CultureInfo.InvariantCulture)])).ToHashSet();
            var wholeChunks = new[] { s1, s2 }.SelectMany(s => s.Manifest.Items).SelectMany(i => i.Chunks).Where(id => !patches.Contains(id)).ToHashSet();
            var earlier = s2.Manifest.Items.ToDictionary(i => i.Name);
            var sameBase = 0;
            foreach (var item in s3.Manifest.Items.Where(i => i.Bases is not null))
            {
                foreach (var (k, b) in item.Bases!)
                {
                    Assert.DoesNotContain(b, patches);
                    Assert.Contains(b, wholeChunks); // a block an earlier backup stored whole
                    if (earlier.GetValueOrDefault(item.Name)?.BaseOf(int.Parse(k, CultureInfo.InvariantCulture)) is { } before)
                    {
                        Assert.Equal(before, b);
                        sameBase++;
                    }
                }
            }
            Assert.True(sameBase > 10, $"blocks patched in both incrementals: {sameBase}");
        }
        await c.ArchiveAllAsync();

        // The first incremental restores bit-identically as far as PostgreSQL's own manifest can tell.
        var target = c.Dir.File("restored");
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        await VerifyBackupAsync(c, target);

        // The second, with --delta into the first's files (unchanged files and blocks kept, patched blocks matched by
        // their rebuilt ID), started: amcheck clean, every row equal to the source's.
        var port = ScratchServer.FreePort();
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", second["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--delta", "--json");
        Assert.True(code == 0, json + err);
        var delta = JsonNode.Parse(json)!;
        Assert.True(delta["files_reused"]!.GetValue<int>() > delta["files"]!.GetValue<int>() / 2, delta.ToJsonString());
        await VerifyBackupAsync(c, target);
        await StartAndCompareAsync(c, target, port, second["snapshot_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_patch_whose_base_is_gone_is_refused_naming_the_block_and_nothing_is_written()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var (full, incr) = await FullAndIncrementalAsync(c, 1);
        Assert.True(incr["patched_blocks"]!.GetValue<long>() > 0, incr.ToJsonString());
        Assert.Equal(0, (await c.Cli.RunAsync("repo", "rm", full["snapshot_id"]!.GetValue<string>()[..8])).Code);
        // What a prune that predates page patches does: it marks chunks only, so the bases (whole blocks only the
        // forgotten full held in its chunk list) go. Every pack with anything unused is repacked, so they are gone.
        await PruneAsync(c, marks: i => i.Chunks);

        var target = c.Dir.File("restored");
        var (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.Equal(ExitCodes.Damaged, code);
        Assert.Matches(@"block \d+ of (base|global)/[0-9/]+ is a page patch on chunk [0-9a-f]{8}, which is not in the repository; restore an older backup", err);
        Assert.False(Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any(), "nothing is written");

        // verify names the damage and the backup it belongs to.
        (code, json, _) = await c.Cli.RunAsync("verify", "--json");
        Assert.Equal(ExitCodes.Damaged, code);
        Assert.Contains(JsonNode.Parse(json)!["findings"]!.AsArray(), f => f!["kind"]!.GetValue<string>() == "missing" && f["object"]!.GetValue<string>() == "snapshots/" + incr["snapshot_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Prune_keeps_the_base_of_a_kept_patch_after_the_backup_that_stored_it_whole_is_gone()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var (full, incr) = await FullAndIncrementalAsync(c, 1);
        Assert.True(incr["patched_blocks"]!.GetValue<long>() > 0, incr.ToJsonString());
        Assert.Equal(0, (await c.Cli.RunAsync("repo", "rm", full["snapshot_id"]!.GetValue<string>()[..8])).Code);
        var pruned = await PruneAsync(c, marks: null);
        Assert.True(pruned.PacksRepacked > 0 || pruned.PacksDeleted > 0, $"prune had something to do: {pruned}");
        await c.ArchiveAllAsync();

        var (code, json, err) = await c.Cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, json + err);
        var target = c.Dir.File("restored");
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        await VerifyBackupAsync(c, target);
        await StartAndCompareAsync(c, target, ScratchServer.FreePort(), incr["snapshot_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Verify_read_data_parses_patches_and_reports_one_naming_another_base_as_damage()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var (_, incr) = await FullAndIncrementalAsync(c, 1);
        var (code, json, err) = await c.Cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, json + err);

        // A patch that authenticates (sealed with the repository's key) but names another base than its manifest: only
        // parsing the patch finds it.
        string forgedId;
        using (var repo = await Cairn.Repository.Repository.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default))
        {
            await using var l = await repo.LockAsync(exclusive: false, "test", default);
            var s2 = await repo.LoadSnapshotAsync(incr["snapshot_id"]!.GetValue<string>(), default);
            var item = s2.Manifest.Items.First(i => i.Bases is not null);
            var index = int.Parse(item.Bases!.Keys.First(), CultureInfo.InvariantCulture);
            var patch = await repo.LoadBlobAsync(Cairn.Repository.Crypto.ContentId.Parse(item.Chunks[index]), default);
            patch[4] ^= 0x01; // the base ID
            await using var writer = repo.BeginWrite();
            var stored = await writer.AddStreamAsync("forged", new MemoryStream(patch), null, default);
            forgedId = Assert.Single(stored.Chunks);
            var chunks = new List<string>(item.Chunks) { [index] = forgedId };
            writer.ReplaceItem(stored, item with { Chunks = chunks });
            await writer.CommitAsync("forged", "file", null, default);
        }
        (code, json, _) = await c.Cli.RunAsync("verify", "--read-data", "--json");
        Assert.Equal(ExitCodes.Damaged, code);
        var findings = JsonNode.Parse(json)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["kind"]!.GetValue<string>() == "tampered" && f["detail"]!.GetValue<string>().Contains($"page patch {forgedId[..8]} applies to chunk", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_filtered_copy_carries_patches_with_their_bases_and_a_copy_under_other_keys_refuses_them_writing_nothing()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var (full, incr) = await FullAndIncrementalAsync(c, 1);
        Assert.True(incr["patched_blocks"]!.GetValue<long>() > 0, incr.ToJsonString());
        await c.ArchiveAllAsync();

        // Under the same keys (an empty place), blob by blob (--since the incremental): only the incremental is copied, and
        // its patches' bases (whole blocks of the full, referenced by nothing else it holds) come along, so the copy alone
        // verifies and restores it.
        string since;
        using (var repo = await Cairn.Repository.Repository.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default))
        {
            since = (await repo.LoadSnapshotAsync(incr["snapshot_id"]!.GetValue<string>(), default)).Manifest.Time.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
        }
        var copy = c.Dir.File("copy");
        var (code, output, err) = await c.Cli.RunAsync("copy", "--to", copy, "--since", since, "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(1, JsonNode.Parse(output)!["targets"]![0]!["snapshots_copied"]!.GetValue<int>());
        var copyEnv = new Dictionary<string, string>(c.Env) { ["CAIRN_REPOSITORY"] = copy, ["CAIRN_EVIDENCE"] = c.Dir.File("copy-evidence") };
        var copyCli = new CliRunner(copyEnv);
        (code, output, err) = await copyCli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);
        var target = c.Dir.File("restored");
        (code, output, err) = await copyCli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, output + err);
        await VerifyBackupAsync(c, target);

        // Under other keys: refused before anything is written (a patch names its base by the primary's keyed ID).
        var other = c.Dir.File("other");
        var otherPass = c.Dir.File("other.pass");
        await File.WriteAllTextAsync(otherPass, "another passphrase 77d0\n");
        var otherCli = new CliRunner(new Dictionary<string, string>(c.Env) { ["CAIRN_REPOSITORY"] = other, ["CAIRN_PASSPHRASE_FILE"] = otherPass, ["CAIRN_EVIDENCE"] = c.Dir.File("other-evidence") });
        (code, output, err) = await otherCli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        var before = Directory.EnumerateFiles(other, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/locks/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        (code, output, err) = await c.Cli.RunAsync("copy", "--to", other, "--to-passphrase-file", otherPass);
        Assert.True(code == ExitCodes.Failure, output + err);
        Assert.Contains("stores page patches", output + err, StringComparison.Ordinal);
        Assert.Contains("nothing was copied", output + err, StringComparison.Ordinal);
        Assert.Equal(before, Directory.EnumerateFiles(other, "*", SearchOption.AllDirectories).Where(f => !f.Contains("/locks/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList());
    }

    private static async Task<(JsonNode Full, JsonNode Incremental)> FullAndIncrementalAsync(ArchivingCluster c, int scale)
    {
        var (code, json, err) = await c.Cli.RunAsync("repo", "upgrade", "--page-patches", "--json");
        Assert.True(code == 0, err);
        Assert.Equal(2, JsonNode.Parse(json)!["version"]!.GetValue<int>());
        var init = await PgProcess.RunAsync(c.Server.Binaries["pgbench"], ["-i", "-q", "-s", scale.ToString(CultureInfo.InvariantCulture)], c.PgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);
        await c.Server.ExecuteAsync("CHECKPOINT");
        (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var full = JsonNode.Parse(json)!;
        await UpdateOnePercentAsync(c, scale);
        (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);
        var incr = JsonNode.Parse(json)!;
        Assert.Equal(full["snapshot_id"]!.GetValue<string>(), incr["incremental_from"]!.GetValue<string>());
        return (full, incr);
    }

    /// <summary>1 % of pgbench_accounts' rows, chosen at random, get a new balance (scattered changes across every page).</summary>
    private static Task UpdateOnePercentAsync(ArchivingCluster c, int scale)
        => c.Server.ExecuteAsync($"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (SELECT 1 + (random() * {(scale * 100000) - 1})::int FROM generate_series(1, {scale * 1000})); CHECKPOINT");

    private static async Task<PruneReport> PruneAsync(ArchivingCluster c, Func<ManifestItem, IEnumerable<string>>? marks)
    {
        using var repo = await Cairn.Repository.Repository.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default);
        await using var l = await repo.LockAsync(exclusive: true, "prune", default);
        var pruner = marks is null ? new Pruner(repo) { RepackBelowUsedShare = 1.0 } : new Pruner(repo) { RepackBelowUsedShare = 1.0, Marks = marks };
        return await pruner.PruneAsync(dryRun: false, default);
    }

    private static async Task VerifyBackupAsync(ArchivingCluster c, string target)
    {
        var verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
    }

    /// <summary>Starts the restored copy (recovery to the backup's end) and compares it with the source: amcheck, balances, every row.</summary>
    private static async Task StartAndCompareAsync(ArchivingCluster c, string target, int port, string snapshotId)
    {
        var (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", snapshotId[..8], "--target", "immediate", "--to", target, "--delta", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, json + err);
        var socket = JsonNode.Parse(json)!["socket"]!.GetValue<string>();
        try
        {
            await ArchivingCluster.ScalarAsync<long>(socket, port, "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND c.relkind = 'i') x");
            const string rows = "SELECT md5(string_agg(aid || ':' || bid || ':' || abalance || ':' || filler, ',' ORDER BY aid)) FROM pgbench_accounts";
            Assert.Equal(await c.Server.ScalarAsync<string>(rows), await ArchivingCluster.ScalarAsync<string>(socket, port, rows));
            Assert.Equal(await c.Server.ScalarAsync<long>("SELECT sum(abalance) FROM pgbench_accounts"), await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT sum(abalance) FROM pgbench_accounts"));
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }
    }
}
