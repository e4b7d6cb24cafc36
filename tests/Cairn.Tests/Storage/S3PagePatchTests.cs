using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Pruning;
using Cairn.Tests.Support;
using Xunit.Abstractions;

namespace Cairn.Tests.Storage;

/// <summary>
/// Page patches (docs/repository-format.md, "Page patches") with the repository in S3 (s3rver, through a recording
/// proxy): a full backup, 1 % random row updates, an incremental storing XOR page deltas whose bases are read back
/// from the bucket in coalesced ranged GETs (not one per changed block); the incremental restored and checked by
/// pg_verifybackup, amcheck and row equality; verify --read-data; a prune that keeps the bases after the full is gone.
/// </summary>
public sealed class S3PagePatchTests(S3rverFixture s3, ITestOutputHelper log) : IClassFixture<S3rverFixture>
{
    private const int Scale = 3;

    [Fact]
    public async Task Page_patch_cycle_on_S3_reads_bases_in_coalesced_requests_and_restores_bit_identical()
    {
        await using var proxy = new FaultProxy(s3.Endpoint) { EmulateConditionalWrites = true };
        using var setup = new S3CycleTests.S3Setup(s3, "patches", endpoint: proxy.Endpoint);
        var cli = setup.Cli;
        var (code, output, err) = await cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("repo", "upgrade", "--page-patches", "--json");
        Assert.True(code == 0, output + err);

        var self = S3CycleTests.S3Setup.Self();
        setup.Env["CAIRN_BIN"] = self;
        var archive = $"CAIRN_PASSPHRASE_FILE={setup.PassFile} CAIRN_CONFIG={setup.Dir.File("cairn.yaml")} {self} --repo {setup.Location} wal-push %p --database app";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive.Replace("'", "''", StringComparison.Ordinal)}'", ["wal_level"] = "replica" });
        setup.WriteConfig($"databases:\n  app:\n    connection: \"{server.Url()}\"\n    data_directory: {server.DataDirectory}\n");
        setup.ShareWithServer();
        var pgEnv = new Dictionary<string, string> { ["PGHOST"] = server.SocketDirectory, ["PGPORT"] = server.Port.ToString(CultureInfo.InvariantCulture), ["PGUSER"] = "postgres", ["PGDATABASE"] = "postgres" };
        var init = await PgProcess.RunAsync(server.Binaries["pgbench"], ["-i", "-q", "-s", Scale.ToString(CultureInfo.InvariantCulture)], pgEnv, default);
        Assert.True(init.ExitCode == 0, init.StandardError);
        await server.ExecuteAsync("CHECKPOINT");

        (code, output, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, output + err);
        var full = JsonNode.Parse(output)!;
        await server.ExecuteAsync($"UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid IN (SELECT 1 + (random() * {(Scale * 100000) - 1})::int FROM generate_series(1, {Scale * 1000})); CHECKPOINT");

        // The incremental: every changed block's base is read back from the bucket. Read in batches, neighbouring
        // bases of a pack in one ranged GET: a few requests for the whole backup, not one per patched block.
        proxy.Requests.Clear();
        (code, output, err) = await cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, output + err);
        var incr = JsonNode.Parse(output)!;
        Assert.Equal(full["snapshot_id"]!.GetValue<string>(), incr["incremental_from"]!.GetValue<string>());
        var patched = incr["patched_blocks"]!.GetValue<long>();
        Assert.True(patched > 50, incr.ToJsonString());
        Assert.True(incr["added_bytes"]!.GetValue<long>() < full["added_bytes"]!.GetValue<long>() / 8, $"full {full.ToJsonString()}, incremental {incr.ToJsonString()}");
        var packGets = proxy.Requests.Count(r => r.Method == "GET" && r.Path.Contains("/data/", StringComparison.Ordinal));
        log.WriteLine($"incremental: {patched} patched blocks, {packGets} GETs of packs, {proxy.Requests.Count} requests in all");
        Assert.True(packGets > 0 && packGets * 8 <= patched, $"the incremental read the bases of {patched} patched blocks in {packGets} GETs of packs (at most {patched / 8} expected)");

        await ArchiveAllAsync(server);
        var target = setup.Dir.File("restored");
        (code, output, err) = await cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, output + err);
        await VerifyBackupAsync(server, target);
        await StartAndCompareAsync(cli, server, target, incr["snapshot_id"]!.GetValue<string>());

        (code, output, err) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);

        // The full is forgotten; a prune that repacks every pack with anything unused keeps the bases the kept patches need.
        (code, output, err) = await cli.RunAsync("repo", "rm", full["snapshot_id"]!.GetValue<string>()[..8]);
        Assert.True(code == 0, output + err);
        using (var storage = s3.NewStorage(setup.S3Location, endpoint: proxy.Endpoint))
        using (var repo = await Cairn.Repository.Repository.OpenAsync(storage, "s3 cycle passphrase 51c0", TimeProvider.System, default))
        {
            await using var l = await repo.LockAsync(exclusive: true, "prune", default);
            var pruned = await new Pruner(repo) { RepackBelowUsedShare = 1.0 }.PruneAsync(dryRun: false, default);
            Assert.True(pruned.PacksRepacked > 0 || pruned.PacksDeleted > 0, $"prune had something to do: {pruned}");
        }
        (code, output, err) = await cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);
        var again = setup.Dir.File("restored-after-prune");
        (code, output, err) = await cli.RunAsync("restore", "app", "--physical", "--snapshot", incr["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", again, "--json");
        Assert.True(code == 0, output + err);
        await VerifyBackupAsync(server, again);
        await StartAndCompareAsync(cli, server, again, incr["snapshot_id"]!.GetValue<string>());
    }

    private static async Task ArchiveAllAsync(ScratchServer server)
    {
        var last = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_switch_wal())");
        await Eventually.UntilAsync(async () => string.CompareOrdinal(await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) >= 0,
            TimeSpan.FromMinutes(2), $"WAL segment {last} being archived into the bucket");
    }

    private static async Task VerifyBackupAsync(ScratchServer server, string target)
    {
        var verify = await PgProcess.RunAsServerUserAsync(server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
    }

    /// <summary>Starts the restored copy (recovery to the backup's end, WAL fetched from the bucket): amcheck clean, every row equal.</summary>
    private static async Task StartAndCompareAsync(CliRunner cli, ScratchServer server, string target, string snapshotId)
    {
        var port = ScratchServer.FreePort();
        var (code, output, err) = await cli.RunAsync("restore", "app", "--physical", "--snapshot", snapshotId[..8], "--target", "immediate", "--to", target, "--delta", "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json");
        Assert.True(code == 0, output + err);
        var socket = JsonNode.Parse(output)!["socket"]!.GetValue<string>();
        try
        {
            await ArchivingCluster.ScalarAsync<long>(socket, port, "CREATE EXTENSION IF NOT EXISTS amcheck; SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relpersistence = 'p' AND c.relkind = 'i') x");
            const string rows = "SELECT md5(string_agg(aid || ':' || bid || ':' || abalance || ':' || filler, ',' ORDER BY aid)) FROM pgbench_accounts";
            Assert.Equal(await server.ScalarAsync<string>(rows), await ArchivingCluster.ScalarAsync<string>(socket, port, rows));
        }
        finally
        {
            await PgProcess.RunAsServerUserAsync(server.Binaries["pg_ctl"], ["-D", target, "-m", "immediate", "-w", "stop"], null, default);
        }
    }
}
