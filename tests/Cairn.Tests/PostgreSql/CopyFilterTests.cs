using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// <c>cairn copy --database</c> (folder to folder) and a copy into a repository with its own keys (folder to s3rver),
/// with real backups of a real server: what the copy holds, that it verifies on its own, and that it restores (logical,
/// point in time, bit for bit).
/// </summary>
[Collection("physical drills")]
public sealed class CopyFilterTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private const string Passphrase = "archiver passphrase 5be1"; // ArchivingCluster's

    [Fact]
    public async Task A_copy_of_one_database_holds_exactly_its_snapshots_and_WAL_verifies_alone_and_restores_logically_and_to_a_point_in_time()
    {
        await using var c = await ArchivingCluster.StartAsync();
        await c.Server.ExecuteAsync("CREATE DATABASE crm");
        await c.WriteConfigAsync(true, $"  crm:\n    connection: \"{c.Server.Url("crm")}\"\n");
        await c.Server.ExecuteAsync("CREATE TABLE t (id int PRIMARY KEY, note text); INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 100) g");
        await c.Server.ExecuteAsync("CREATE TABLE customers (id int PRIMARY KEY, name text); INSERT INTO customers SELECT g, md5(g::text) FROM generate_series(1, 5000) g", "crm");
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "app")).Code);
        Assert.Equal(0, (await c.Cli.RunAsync("backup", "crm")).Code);
        await c.ArchiveAllAsync(); // the physical backup starts after the first archived segment: the copy must leave that one out
        var (code, output, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, output + err);
        await c.Server.ExecuteAsync("INSERT INTO t SELECT g, 'after the backup' FROM generate_series(101, 150) g");
        var timeA = await c.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()");
        await Task.Delay(1200);
        await c.Server.ExecuteAsync("INSERT INTO t SELECT g, 'later' FROM generate_series(151, 200) g");
        await c.ArchiveAllAsync();

        var copy = c.Dir.File("copy");
        (code, output, err) = await c.Cli.RunAsync("copy", "--to", copy, "--database", "app", "--json");
        Assert.True(code == 0, output + err);
        var row = JsonNode.Parse(output)!["targets"]![0]!;
        Assert.Equal("databases app", row["filter"]!.GetValue<string>());
        Assert.Equal(2, row["snapshots_copied"]!.GetValue<int>());

        // Exactly app's snapshots (same IDs: same keys), exactly the blobs they reference, app's WAL from the backup's start.
        using (var primary = await Repo.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default))
        using (var copied = await Repo.OpenAsync(new FileSystemStorage(copy), Passphrase, TimeProvider.System, default))
        {
            var all = await primary.ListSnapshotsAsync(default);
            Assert.Contains(all, s => s.Manifest.Name == "crm");
            var inCopy = await copied.ListSnapshotsAsync(default);
            Assert.Equal(all.Where(s => s.Manifest.Name == "app").Select(s => s.Id).Order(StringComparer.Ordinal), inCopy.Select(s => s.Id).Order(StringComparer.Ordinal));
            var referenced = inCopy.SelectMany(s => s.Manifest.Items).SelectMany(i => i.Chunks).Select(ContentId.Parse).ToHashSet();
            Assert.True(referenced.SetEquals(copied.Index.Keys), $"the copy's index lists {copied.Index.Count} blobs, its snapshots reference {referenced.Count}");
            var startWal = inCopy.Single(s => s.Manifest.Kind == "physical").Manifest.Meta["start_wal"];
            var primaryWal = Directory.EnumerateFiles(c.Dir.File("repo/wal")).Select(Path.GetFileName).OfType<string>().ToList();
            var copyWal = Directory.EnumerateFiles(Path.Combine(copy, "wal")).Select(Path.GetFileName).OfType<string>().Where(n => !n.StartsWith('.')).ToList();
            Assert.Contains(primaryWal, n => string.CompareOrdinal(n, "app@" + startWal) < 0); // there was something to leave out
            Assert.Contains("app@" + startWal, copyWal);
            Assert.All(copyWal, n => Assert.True(string.CompareOrdinal(n, "app@" + startWal) >= 0, n));
            Assert.Equal(primaryWal.Where(n => string.CompareOrdinal(n, "app@" + startWal) >= 0).Order(StringComparer.Ordinal), copyWal.Order(StringComparer.Ordinal));
        }

        // The copy on its own: verify reads every byte, a logical restore and a point-in-time restore come from it.
        var copyEnv = new Dictionary<string, string>(c.Env) { ["CAIRN_REPOSITORY"] = copy };
        var copyCli = new CliRunner(copyEnv);
        (code, output, err) = await copyCli.RunAsync("verify", "--read-data");
        Assert.True(code == 0, output + err);
        (code, output, err) = await copyCli.RunAsync("restore", "app", "--to-database", "app_from_copy");
        Assert.True(code == 0, output + err);
        Assert.Equal(100, await c.Server.ScalarAsync<long>("SELECT count(*) FROM t", "app_from_copy"));
        (code, output, err) = await copyCli.RunAsync("restore", "crm", "--to-database", "crm_from_copy");
        Assert.NotEqual(0, code);

        Assert.Equal(0, (await copyCli.RunAsync("archiver", "allow", "--group", "postgres")).Code); // restore_command runs as postgres
        var target = c.Dir.File("pitr");
        var port = ScratchServer.FreePort();
        (code, output, err) = await copyCli.RunAsync("restore", "app", "--physical", "--to", target, "--start", "--port", port.ToString(CultureInfo.InvariantCulture), "--json",
            "--target-time", timeA.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00");
        Assert.True(code == 0, output + err);
        try
        {
            var socket = JsonNode.Parse(output)!["socket"]!.GetValue<string>();
            Assert.Equal(150, await ArchivingCluster.ScalarAsync<long>(socket, port, "SELECT count(*) FROM t"));
            Assert.Contains(copy, await File.ReadAllTextAsync(Path.Combine(target, "postgresql.auto.conf")), StringComparison.Ordinal);
        }
        finally
        {
            await c.StopRestoredAsync(target);
        }
    }

    [Fact]
    public async Task A_copy_into_a_repository_with_its_own_keys_is_reencrypted_opens_only_with_its_passphrase_restores_bit_for_bit_and_copies_nothing_twice()
    {
        await using var c = await ArchivingCluster.StartAsync();
        var credentials = c.Dir.File("s3.credentials");
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await c.WriteConfigAsync(true, $"s3:\n  endpoint: \"{s3.Endpoint}\"\n  credentials_file: {credentials}\n");
        var location = "s3://" + S3rverFixture.Bucket + "/" + s3.NewLocation("reencrypt").Prefix;
        var targetPass = c.Dir.File("copy.pass");
        await File.WriteAllTextAsync(targetPass, "the copy's own passphrase 0c41\n");
        var wrongPass = c.Dir.File("wrong.pass");
        await File.WriteAllTextAsync(wrongPass, "not the copy's passphrase\n");
        var targetEnv = new Dictionary<string, string>(c.Env) { ["CAIRN_REPOSITORY"] = location, ["CAIRN_PASSPHRASE_FILE"] = targetPass, ["CAIRN_EVIDENCE"] = c.Dir.File("copy-evidence") };
        var targetCli = new CliRunner(targetEnv);
        var (code, output, err) = await targetCli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);

        await c.Server.ExecuteAsync("CREATE TABLE big (id int PRIMARY KEY, pad text); INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 30000) g; CHECKPOINT");
        (code, output, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, output + err);
        await c.ArchiveAllAsync();

        // A wrong passphrase for the copy: a clear error, and not one object more in the bucket.
        using var storage = s3.NewStorage(S3Location.Parse(location));
        var before = await ObjectsAsync(storage);
        (code, output, err) = await c.Cli.RunAsync("copy", "--to", location, "--to-passphrase-file", wrongPass);
        Assert.True(code == ExitCodes.Failure, output + err);
        Assert.Contains($"wrong passphrase for the copy at {location}: no key of it opens with the passphrase in {wrongPass}; nothing was written", output + err, StringComparison.Ordinal);
        Assert.Equal(before, await ObjectsAsync(storage));

        (code, output, err) = await c.Cli.RunAsync("copy", "--to", location, "--to-passphrase-file", targetPass, "--json");
        Assert.True(code == 0, output + err);
        var first = JsonNode.Parse(output)!["targets"]![0]!;
        Assert.True(first["reencrypted"]!.GetValue<bool>());
        Assert.Equal(1, first["snapshots_copied"]!.GetValue<int>());

        // Re-encrypted: no blob ID, pack or snapshot name of the primary is in the copy, and only its own passphrase opens it.
        using (var primary = await Repo.OpenAsync(new FileSystemStorage(c.Dir.File("repo")), Passphrase, TimeProvider.System, default))
        using (var copied = await Repo.OpenAsync(storage, "the copy's own passphrase 0c41", TimeProvider.System, default))
        {
            Assert.NotEqual(primary.Config.Id, copied.Config.Id);
            Assert.Empty(primary.Index.Keys.Intersect(copied.Index.Keys));
            var original = Assert.Single(await primary.ListSnapshotsAsync(default));
            var copySnapshot = Assert.Single(await copied.ListSnapshotsAsync(default));
            Assert.NotEqual(original.Id, copySnapshot.Id);
            Assert.Equal(original.Id, copySnapshot.Manifest.Meta["copied_from"]);
            Assert.Equal(original.Manifest.Items.Select(i => (i.Name, i.Size)), copySnapshot.Manifest.Items.Select(i => (i.Name, i.Size)));
        }
        await Assert.ThrowsAsync<Cairn.Repository.WrongPassphraseException>(() => Repo.OpenAsync(storage, Passphrase, TimeProvider.System, default));
        (code, output, err) = await new CliRunner(new Dictionary<string, string>(targetEnv) { ["CAIRN_PASSPHRASE_FILE"] = c.Dir.File("pass") }).RunAsync("snapshots");
        Assert.True(code == ExitCodes.WrongPassphrase, output + err);

        // The copy verifies on its own, and its restore is the primary's bit for bit (pg_verifybackup against the server's manifest).
        (code, output, err) = await targetCli.RunAsync("verify", "--read-data");
        Assert.True(code == 0, output + err);
        var fromCopy = c.Dir.File("from-copy");
        (code, output, err) = await targetCli.RunAsync("restore", "app", "--physical", "--to", fromCopy);
        Assert.True(code == 0, output + err);
        var verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", fromCopy], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        var fromPrimary = c.Dir.File("from-primary");
        (code, output, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--to", fromPrimary);
        Assert.True(code == 0, output + err);
        Assert.Equal(await TreeAsync(fromPrimary), await TreeAsync(fromCopy));

        // A second run copies nothing; after an incremental backup, only what changed is read and written.
        (code, output, err) = await c.Cli.RunAsync("copy", "--to", location, "--to-passphrase-file", targetPass, "--json");
        Assert.True(code == 0, output + err);
        var again = JsonNode.Parse(output)!["targets"]![0]!;
        // (The server may have archived a segment since: that WAL file is all that may go.)
        Assert.Equal((0, 0L, 0L), (again["snapshots_copied"]!.GetValue<int>(), again["blobs_copied"]!.GetValue<long>(), again["bytes_read"]!.GetValue<long>()));
        Assert.Equal(again["wal_copied"]!.GetValue<int>(), again["objects_copied"]!.GetValue<long>());
        await c.Server.ExecuteAsync("UPDATE big SET pad = 'changed' WHERE id <= 300; CHECKPOINT");
        (code, output, err) = await c.Cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, output + err);
        (code, output, err) = await c.Cli.RunAsync("copy", "--to", location, "--to-passphrase-file", targetPass, "--json");
        Assert.True(code == 0, output + err);
        var incremental = JsonNode.Parse(output)!["targets"]![0]!;
        Assert.Equal(1, incremental["snapshots_copied"]!.GetValue<int>());
        Assert.True(incremental["blobs_present"]!.GetValue<long>() > 0, output);
        // The blob map from the first copy spares reading what the target has: far less than the first copy read.
        Assert.True(incremental["bytes_read"]!.GetValue<long>() * 3 < first["bytes_read"]!.GetValue<long>(), $"first copy read {first["bytes_read"]}, the incremental {incremental["bytes_read"]}");
        (code, output, err) = await targetCli.RunAsync("verify", "--read-data");
        Assert.True(code == 0, output + err);
    }

    private static async Task<List<string>> ObjectsAsync(IStorage storage)
    {
        var names = new List<string>();
        foreach (var kind in Enum.GetValues<ObjectKind>().Where(k => k != ObjectKind.Config))
        {
            await foreach (var o in storage.ListAsync(kind, default))
            {
                names.Add(o.Key.Path);
            }
        }
        if (await storage.StatAsync(StorageKey.Config, default) is not null)
        {
            names.Add("config");
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    /// <summary>Every regular file of a restored data directory with its SHA-256 (postgresql.auto.conf names the repository it came from).</summary>
    private static async Task<List<string>> TreeAsync(string root)
    {
        var result = new List<string>();
        foreach (var f in Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(root, f);
            if (relative == "postgresql.auto.conf")
            {
                continue;
            }
            result.Add(relative + " " + Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(f))));
        }
        return result;
    }
}
