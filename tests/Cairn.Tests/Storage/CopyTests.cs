using System.Diagnostics;
using System.Text;
using Cairn.Cli;
using Cairn.Repository.Copying;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// <c>cairn copy</c> (3-2-1): a local repository copied to s3rver with the copy's own S3 settings, incrementally; a copy
/// killed midway and resumed; a tampered object in the copy found; the daemon's copy job.
/// </summary>
public sealed class CopyTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static readonly string[] Init = ["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"];

    [Fact]
    public async Task Copy_to_s3_with_its_own_settings_copies_only_what_is_missing_and_the_copy_opens_as_the_same_repository()
    {
        using var dir = new TempDir();
        var target = "s3://" + S3rverFixture.Bucket + "/" + s3.NewLocation("copy").Prefix;
        var credentials = dir.File("copy.credentials");
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        // The top-level s3: block points at a closed port: the copy reaches the bucket only through its own block.
        var config = dir.File("cairn.yaml");
        await File.WriteAllTextAsync(config, $"""
            repository: {dir.File("repo")}
            s3: {"{"} endpoint: "http://127.0.0.1:1", credentials_file: {dir.File("nowhere.credentials")} {"}"}
            copies:
              - repository: {target}
                max_age: 1d
                s3: {"{"} endpoint: "{s3.Endpoint}", credentials_file: {credentials} {"}"}
            """);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        var data = dir.File("data.bin");
        await File.WriteAllBytesAsync(data, TestData.Random(3_000_000, 21));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "one", data)).Code);
        var segment = dir.File("000000010000000000000004");
        await File.WriteAllBytesAsync(segment, TestData.Random(1_000_000, 22));
        var (code, output, err) = await cli.RunAsync("wal-push", segment, "--database", "app");
        Assert.True(code == 0, output + err);

        (code, output, err) = await cli.RunAsync("copy");
        Assert.True(code == 0, output + err);
        Assert.Contains("(new copy)", output, StringComparison.Ordinal);
        Assert.Contains("the copy holds 1 snapshot(s)", output, StringComparison.Ordinal);

        // Nothing new: nothing copied. A second backup: only its objects go.
        (code, output, err) = await cli.RunAsync("copy", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(0, System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0].GetProperty("objects_copied").GetInt64());
        await File.WriteAllBytesAsync(dir.File("two.bin"), TestData.Random(500_000, 23));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "two", dir.File("two.bin"))).Code);
        using var targetStorage = s3.NewStorage(S3Location.Parse(target));
        var beforeBackup = await CountAsync(targetStorage);
        (code, output, err) = await cli.RunAsync("copy", "--json", "--read-data");
        Assert.True(code == 0, output + err);
        var copied = System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0];
        // One pack, one index, one snapshot (and no WAL); the rest are the primary's new evidence publication (the put published it).
        var backupObjects = await CountAsync(targetStorage) - beforeBackup;
        Assert.InRange(backupObjects, 3, 4);
        Assert.True(copied.GetProperty("objects_copied").GetInt64() >= backupObjects, output);
        Assert.Equal(2, copied.GetProperty("snapshots_in_copy").GetInt32());

        // The copy is the repository: the same passphrase opens it, and it gives back the same bytes.
        var copyCli = new CliRunner(new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_PASSPHRASE"] = TestData.Passphrase, ["CAIRN_REPOSITORY"] = target, ["CAIRN_EVIDENCE"] = dir.File("reader-evidence") });
        await File.WriteAllTextAsync(config, (await File.ReadAllTextAsync(config)).Replace("\"http://127.0.0.1:1\"", $"\"{s3.Endpoint}\"", StringComparison.Ordinal).Replace(dir.File("nowhere.credentials"), credentials, StringComparison.Ordinal));
        (code, output, err) = await copyCli.RunAsync("repo", "get", "one", dir.File("back.bin"));
        Assert.True(code == 0, output + err);
        Assert.Equal(await File.ReadAllBytesAsync(data), await File.ReadAllBytesAsync(dir.File("back.bin")));
        (code, output, err) = await copyCli.RunAsync("wal-fetch", "000000010000000000000004", dir.File("seg"), "--database", "app");
        Assert.True(code == 0, output + err);
        Assert.Equal(await File.ReadAllBytesAsync(segment), await File.ReadAllBytesAsync(dir.File("seg")));

        // The evidence log went along (its signing key did not), and reads back as the primary's log was then.
        using var storage = s3.NewStorage(S3Location.Parse(target));
        using var repo = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var newest = (await EvidencePublication.ListAsync(storage, null, default))[^1];
        var problems = new List<string>();
        var latest = await EvidencePublication.ReadFilesAsync(repo, storage, await EvidencePublication.ReadAsync(storage, newest.Name, default), problems, default);
        Assert.Empty(problems);
        Assert.Contains("origin", latest.Keys);
        Assert.Contains("evidence.pub", latest.Keys);
        Assert.DoesNotContain(latest.Keys, k => k.EndsWith(".key", StringComparison.Ordinal));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(dir.File("repo-evidence"), "origin")), latest["origin"]);
        var segmentName = Assert.Single(latest.Keys, k => k.StartsWith("log/", StringComparison.Ordinal));
        Assert.Contains("\"kind\":\"copy\"", Encoding.UTF8.GetString(latest[segmentName]), StringComparison.Ordinal);

        // Each run is on the record with its target; check finds the copy current.
        Assert.Equal(3, (await CopyRecordsAsync(cli)).Count);
        (code, output, err) = await cli.RunAsync("check");
        Assert.Contains("copy to " + target + " holds every backup on record", output + err, StringComparison.Ordinal);
    }

    /// <summary>The copy's objects of a backup: packs, indexes, snapshots and WAL.</summary>
    private static async Task<int> CountAsync(IStorage storage)
    {
        var n = 0;
        foreach (var kind in (ObjectKind[])[ObjectKind.Data, ObjectKind.Index, ObjectKind.Snapshot, ObjectKind.Named])
        {
            await foreach (var o in storage.ListAsync(kind, default))
            {
                n++;
            }
        }
        return n;
    }

    [Fact]
    public async Task Copy_killed_midway_leaves_a_smaller_copy_and_the_next_run_completes_it()
    {
        using var dir = new TempDir();
        var primary = dir.File("repo");
        var copy = dir.File("copy");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = primary, ["CAIRN_PASSPHRASE"] = TestData.Passphrase };
        var cli = new CliRunner(env);
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        var data = dir.File("data.bin");
        await File.WriteAllBytesAsync(data, TestData.Random(100 * 1024 * 1024, 31)); // incompressible: about four packs
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "big", data)).Code);

        // Killed as soon as its first pack is there. The packs are copied four at a time and the rest is small, so on a busy
        // machine the kill can land after the copy finished: then the attempt is thrown away and made again (at most 3).
        bool Finished() => Directory.Exists(Path.Combine(copy, "snapshots")) && Directory.EnumerateFiles(Path.Combine(copy, "snapshots")).Any();
        for (var attempt = 0; attempt < 3; attempt++)
        {
            if (Directory.Exists(copy))
            {
                Directory.Delete(copy, recursive: true);
            }
            using var p = Process.Start(CairnProcess.StartInfo(["copy", "--to", copy], env))!;
            var sw = Stopwatch.StartNew();
            while (!(Directory.Exists(Path.Combine(copy, "data")) && Directory.EnumerateFiles(Path.Combine(copy, "data"), "*", SearchOption.AllDirectories).Any(f => !Path.GetFileName(f).StartsWith('.'))))
            {
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60) && !p.HasExited, "the copy never wrote a pack: " + (p.HasExited ? await p.StandardError.ReadToEndAsync() : "still running"));
                await Task.Delay(5);
            }
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            if (!Finished())
            {
                break;
            }
        }
        // Killed after its first pack: no index or snapshot is there yet, and what is there is not damage.
        Assert.False(Finished(), "three copies finished before the kill landed: the test did not interrupt one");
        using (var partial = await Cairn.Repository.Repository.OpenAsync(new FileSystemStorage(copy), TestData.Passphrase, TimeProvider.System, default))
        {
            var report = await new Verifier(partial).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
            Assert.False(report.HasDamage, string.Join("\n", report.Findings));
            Assert.Equal(0, report.Snapshots);
        }
        var packsBefore = Directory.EnumerateFiles(Path.Combine(copy, "data"), "*", SearchOption.AllDirectories).Count(f => !Path.GetFileName(f).StartsWith('.'));

        // The next run (the dead process's locks are removed by the stale-lock rules) copies the rest only.
        var (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--json", "--read-data");
        Assert.True(code == 0, output + err);
        var t = System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0];
        Assert.True(t.GetProperty("objects_present").GetInt64() >= packsBefore + 2, output); // the packs, the key and the config were there
        Assert.Equal(1, t.GetProperty("snapshots_in_copy").GetInt32());
        var copyCli = new CliRunner(new Dictionary<string, string>(env) { ["CAIRN_REPOSITORY"] = copy });
        (code, output, err) = await copyCli.RunAsync("repo", "get", "big", dir.File("back.bin"));
        Assert.True(code == 0, output + err);
        var expected = await File.ReadAllBytesAsync(data);
        var actual = await File.ReadAllBytesAsync(dir.File("back.bin"));
        Assert.True(expected.AsSpan().SequenceEqual(actual));
    }

    [Fact]
    public async Task Copy_finds_a_tampered_pack_with_read_data_and_a_cut_WAL_object_always_and_never_copies_over_them()
    {
        using var dir = new TempDir();
        var primary = dir.File("repo");
        var copy = dir.File("copy");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = primary, ["CAIRN_PASSPHRASE"] = TestData.Passphrase };
        var cli = new CliRunner(env);
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        await File.WriteAllBytesAsync(dir.File("data.bin"), TestData.Random(2_000_000, 41));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "one", dir.File("data.bin"))).Code);
        var segment = dir.File("000000010000000000000007");
        await File.WriteAllBytesAsync(segment, TestData.Random(300_000, 42));
        Assert.Equal(0, (await cli.RunAsync("wal-push", segment, "--database", "app")).Code);
        var (code, output, err) = await cli.RunAsync("copy", "--to", copy);
        Assert.True(code == 0, output + err);

        // One byte of a pack in the copy changed (same size): sizes agree, so only reading finds it.
        var pack = Directory.EnumerateFiles(Path.Combine(copy, "data"), "*", SearchOption.AllDirectories).Single(f => !Path.GetFileName(f).StartsWith('.'));
        var bytes = await File.ReadAllBytesAsync(pack);
        bytes[bytes.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(pack, bytes);
        (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--read-data");
        Assert.True(code == ExitCodes.Damaged, output + err);
        Assert.Contains("DAMAGE  " + copy + ": data/", output, StringComparison.Ordinal);
        Assert.Contains(Path.GetFileName(pack) + ": differs from the primary in the copy (same size, other bytes)", output, StringComparison.Ordinal);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(pack)); // reported, not overwritten

        // A WAL object in the copy cut short: found on every run, by its size.
        var wal = Path.Combine(copy, "wal", "app@000000010000000000000007");
        await File.WriteAllBytesAsync(wal, (await File.ReadAllBytesAsync(wal))[..1000]);
        (code, output, err) = await cli.RunAsync("copy", "--to", copy);
        Assert.True(code == ExitCodes.Damaged, output + err);
        Assert.Contains("wal/app@000000010000000000000007: differs from the primary in the copy (1000 bytes", output, StringComparison.Ordinal);

        // The run failed on the record; the primary itself is intact.
        var last = (await CopyRecordsAsync(cli))[^1];
        Assert.Equal("fail", last["result"]!.GetValue<string>());
        Assert.Equal(1, last["details"]!["damage_findings"]!.GetValue<long>());
        Assert.Equal(0, (await cli.RunAsync("verify", "--read-data")).Code);
    }

    [Fact]
    public async Task Copy_refuses_a_location_holding_another_repository_and_writes_nothing_there()
    {
        using var dir = new TempDir();
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        var other = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("other"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await other.RunAsync(Init)).Code);
        var before = Directory.EnumerateFiles(dir.File("other"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
        var (code, output, err) = await cli.RunAsync("copy", "--to", dir.File("other"));
        Assert.True(code == ExitCodes.Failure, output + err);
        Assert.Contains("holds another repository", output + err, StringComparison.Ordinal);
        Assert.Equal(before, Directory.EnumerateFiles(dir.File("other"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList());
    }

    [Fact]
    public async Task A_copy_that_takes_the_primarys_upgraded_config_puts_the_format_change_on_the_record_once()
    {
        using var dir = new TempDir();
        var copy = dir.File("copy");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        await File.WriteAllBytesAsync(dir.File("data.bin"), TestData.Random(300_000, 71));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "one", dir.File("data.bin"))).Code);
        var (code, output, err) = await cli.RunAsync("copy", "--to", copy);
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("repo", "upgrade", "--page-patches");
        Assert.True(code == 0, output + err);
        var before = await File.ReadAllBytesAsync(Path.Combine(copy, "config"));
        (code, output, err) = await cli.RunAsync("copy", "--to", copy);
        Assert.True(code == 0, output + err);
        Assert.NotEqual(before, await File.ReadAllBytesAsync(Path.Combine(copy, "config"))); // the copy's format did change
        (code, output, err) = await cli.RunAsync("copy", "--to", copy); // nothing left to change: no second record
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("evidence", "list", "--json");
        Assert.True(code == 0, output + err);
        var upgrades = System.Text.Json.Nodes.JsonNode.Parse(output)!.AsArray().OfType<System.Text.Json.Nodes.JsonNode>().Where(r => r["kind"]?.GetValue<string>() == "repository-upgrade").ToList();
        Assert.Equal(2, upgrades.Count); // the primary's ('cairn repo upgrade') and the copy's
        Assert.Equal(dir.File("repo"), upgrades[0]["repository"]!.GetValue<string>());
        Assert.Null(upgrades[0]["details"]!["carried_from"]);
        var carried = upgrades[1];
        Assert.Equal(copy, carried["repository"]!.GetValue<string>());
        Assert.Equal(dir.File("repo"), carried["details"]!["carried_from"]!.GetValue<string>());
        Assert.Equal("copy", carried["details"]!["action"]!.GetValue<string>());
        Assert.Equal(2, carried["details"]!["version"]!.GetValue<long>());
        Assert.Equal("page-patches", carried["details"]!["features"]!.GetValue<string>());
        Assert.Equal(upgrades[0]["details"]!["repository_id"]!.GetValue<string>(), carried["details"]!["repository_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Daemon_runs_the_copy_job_of_a_copies_entry_and_records_it_with_its_target()
    {
        using var dir = new TempDir();
        var copy = dir.File("copy");
        var config = dir.File("cairn.yaml");
        // Every second (six fields put seconds first): the first tick runs it.
        await File.WriteAllTextAsync(config, $"repository: {dir.File("repo")}\ncopies:\n  - repository: {copy}\n    schedule: \"* * * * * *\"\n");
        var env = new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_PASSPHRASE"] = TestData.Passphrase };
        var cli = new CliRunner(env);
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        await File.WriteAllBytesAsync(dir.File("data.bin"), TestData.Random(400_000, 51));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "one", dir.File("data.bin"))).Code);
        var l = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        l.Start();
        var port = ((System.Net.IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        using var daemon = Process.Start(CairnProcess.StartInfo(["daemon", "--listen", $"127.0.0.1:{port}", "--tick-seconds", "1"], env))!;
        var log = new StringBuilder();
        daemon.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        daemon.BeginErrorReadLine();
        _ = daemon.StandardOutput.ReadToEndAsync();
        try
        {
            var sw = Stopwatch.StartNew();
            while (!Snapshot(log).Contains("job=copy exit=0", StringComparison.Ordinal))
            {
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(90) && !daemon.HasExited, "no successful copy job in the daemon's log:\n" + Snapshot(log));
                Assert.DoesNotMatch("job=copy exit=[1-9]", Snapshot(log));
                await Task.Delay(100);
            }
        }
        finally
        {
            daemon.Kill(entireProcessTree: true);
            await daemon.WaitForExitAsync();
        }
        Assert.Single(Directory.EnumerateFiles(Path.Combine(copy, "snapshots")));
        var record = (await CopyRecordsAsync(cli))[0];
        Assert.Equal(copy, record["details"]!["target"]!.GetValue<string>());
        Assert.Equal("pass", record["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Copy_since_a_time_takes_only_the_snapshots_from_then_and_a_bad_filter_is_refused_with_nothing_written()
    {
        using var dir = new TempDir();
        var copy = dir.File("copy");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        await File.WriteAllBytesAsync(dir.File("old.bin"), TestData.Random(600_000, 61));
        await File.WriteAllBytesAsync(dir.File("new.bin"), TestData.Random(700_000, 62));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "old", dir.File("old.bin"))).Code);
        await Task.Delay(1100);
        var between = TimeProvider.System.GetUtcNow().ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture);
        await Task.Delay(1100);
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "new", dir.File("new.bin"))).Code);

        // Bad filters: a clear error each, and the copy's location is never created.
        var (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--since", "last week");
        Assert.True(code == ExitCodes.Usage, $"{code}: {output}{err}");
        Assert.Contains("since 'last week' is neither a date/time (2026-11-01, 2026-11-01T12:00:00Z) nor a duration back from now (7d, 12h, 30m)", output + err, StringComparison.Ordinal);
        (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--database", "nosuch");
        Assert.True(code == ExitCodes.Failure, output + err);
        Assert.Contains("--database nosuch: the primary holds no snapshot of it", output + err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(copy, "snapshots")) && Directory.EnumerateFiles(Path.Combine(copy, "snapshots")).Any());

        (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--since", between, "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(1, System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0].GetProperty("snapshots_copied").GetInt32());
        var copyCli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = copy, ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        (code, output, err) = await copyCli.RunAsync("repo", "get", "new", dir.File("back.bin"));
        Assert.True(code == 0, output + err);
        Assert.Equal(await File.ReadAllBytesAsync(dir.File("new.bin")), await File.ReadAllBytesAsync(dir.File("back.bin")));
        (code, output, err) = await copyCli.RunAsync("repo", "get", "old", dir.File("old-back.bin"));
        Assert.NotEqual(0, code);
        (code, output, err) = await copyCli.RunAsync("verify", "--read-data");
        Assert.True(code == 0, output + err);
        // Then everything: the older snapshot joins, the newer is already there.
        (code, output, err) = await cli.RunAsync("copy", "--to", copy, "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(2, System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0].GetProperty("snapshots_in_copy").GetInt32());
    }

    [Fact]
    public async Task Copy_from_one_bucket_to_another_takes_one_database_reencrypted_under_the_copys_own_passphrase()
    {
        using var dir = new TempDir();
        var primary = "s3://" + S3rverFixture.Bucket + "/" + s3.NewLocation("s3-primary").Prefix;
        var target = "s3://" + S3rverFixture.Bucket + "/" + s3.NewLocation("s3-copy").Prefix;
        var credentials = dir.File("s3.credentials");
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var config = dir.File("cairn.yaml");
        await File.WriteAllTextAsync(config, $"s3: {{ endpoint: \"{s3.Endpoint}\", credentials_file: {credentials} }}\nevidence:\n  path: {dir.File("evidence")}\n");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_REPOSITORY"] = primary, ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        await File.WriteAllBytesAsync(dir.File("one.bin"), TestData.Random(800_000, 81));
        await File.WriteAllBytesAsync(dir.File("two.bin"), TestData.Random(500_000, 82));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "one", dir.File("one.bin"))).Code);
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "two", dir.File("two.bin"))).Code);
        var copyCli = new CliRunner(new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_REPOSITORY"] = target, ["CAIRN_PASSPHRASE"] = "the copy's passphrase 33aa", ["CAIRN_EVIDENCE"] = dir.File("copy-evidence") });
        Assert.Equal(0, (await copyCli.RunAsync(Init)).Code);
        await File.WriteAllTextAsync(dir.File("copy.pass"), "the copy's passphrase 33aa\n");

        var (code, output, err) = await cli.RunAsync("copy", "--to", target, "--database", "one", "--to-passphrase-file", dir.File("copy.pass"), "--json");
        Assert.True(code == 0, output + err);
        var row = System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("targets")[0];
        Assert.True(row.GetProperty("reencrypted").GetBoolean());
        Assert.Equal(1, row.GetProperty("snapshots_copied").GetInt32());
        (code, output, err) = await copyCli.RunAsync("repo", "get", "one", dir.File("back.bin"));
        Assert.True(code == 0, output + err);
        Assert.Equal(await File.ReadAllBytesAsync(dir.File("one.bin")), await File.ReadAllBytesAsync(dir.File("back.bin")));
        Assert.NotEqual(0, (await copyCli.RunAsync("repo", "get", "two", dir.File("two-back.bin"))).Code);
        (code, output, err) = await copyCli.RunAsync("verify", "--read-data");
        Assert.True(code == 0, output + err);
    }

    private static string Snapshot(StringBuilder log)
    {
        lock (log)
        {
            return log.ToString();
        }
    }

    private static async Task<List<System.Text.Json.Nodes.JsonNode>> CopyRecordsAsync(CliRunner cli)
    {
        var (code, output, err) = await cli.RunAsync("evidence", "list", "--json");
        Assert.True(code == 0, output + err);
        return [.. System.Text.Json.Nodes.JsonNode.Parse(output)!.AsArray().OfType<System.Text.Json.Nodes.JsonNode>().Where(r => r["kind"]?.GetValue<string>() == "copy")];
    }
}
