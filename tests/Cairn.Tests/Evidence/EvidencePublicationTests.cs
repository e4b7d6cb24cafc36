using System.Text.Json;
using Cairn.Evidence.Log;
using Cairn.Repository.Copying;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Evidence;

/// <summary>
/// The evidence log off the host: every backup publishes it into the repository (write-once objects); `evidence verify
/// --from-repo` checks it without the local folder, `evidence pull` rebuilds the folder, and `check` / `evidence verify`
/// find a local log that no longer extends what was published. On a folder repository and on s3rver.
/// </summary>
public sealed class EvidencePublicationTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static readonly string[] Init = ["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"];

    [Fact]
    public async Task A_local_log_rolled_back_or_rewritten_after_publishing_is_caught_and_the_published_log_verifies_without_the_folder()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var evidence = dir.File("repo-evidence");
        var key = dir.File("auditor.pub");
        File.Copy(Path.Combine(evidence, "evidence.pub"), key);
        await Put(cli, dir, "one", 1);

        // The log as it was after the first backup: what someone who restores the host's folder from a backup would bring back.
        var before = dir.File("evidence-then");
        CopyFolder(evidence, before);
        await Put(cli, dir, "two", 2);
        var published = Directory.EnumerateFiles(dir.File("repo/evidence")).Select(Path.GetFileName).Where(n => n!.StartsWith(EvidencePublication.Prefix, StringComparison.Ordinal)).ToList();
        Assert.Equal(2, published.Count);

        var (code, output, err) = await cli.RunAsync("evidence", "verify");
        Assert.True(code == 0, output + err);
        Assert.Contains("is a prefix of this log", output, StringComparison.Ordinal);
        var (state, message) = await Published(cli);
        Assert.True(state == "OK", message);
        Assert.Contains("is a prefix of the local log", message, StringComparison.Ordinal);

        // Without the local folder: a host that has only the passphrase and the auditor's key.
        var elsewhere = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase, ["CAIRN_EVIDENCE"] = dir.File("none") });
        (code, output, err) = await elsewhere.RunAsync("evidence", "verify", "--from-repo", "--public-key", key, "--json");
        Assert.True(code == 0, output + err);
        var json = JsonDocument.Parse(output).RootElement;
        Assert.True(json.GetProperty("ok").GetBoolean());
        Assert.True(json.GetProperty("from_repo").GetBoolean());
        var records = json.GetProperty("records").GetInt64();
        Assert.True(records >= 2, output);
        // No key, no verification: a key read from the repository would prove nothing.
        (code, _, err) = await elsewhere.RunAsync("evidence", "verify", "--from-repo");
        Assert.Equal(2, code);
        Assert.Contains("--public-key", err, StringComparison.Ordinal);

        // Rolled back: the folder of before is a log that verifies on its own, but the repository holds more.
        Directory.Delete(evidence, recursive: true);
        CopyFolder(before, evidence);
        Assert.True(LogVerifier.Verify(new EvidenceLog(evidence, null, TimeProvider.System), new EvidenceLog(evidence, null, TimeProvider.System).LoadPublicKey(key), null).Ok);
        (code, output, err) = await cli.RunAsync("evidence", "verify");
        Assert.True(code == 5, output + err);
        Assert.Contains("records were removed", output, StringComparison.Ordinal);
        (state, message) = await Published(cli);
        Assert.True(state == "CRITICAL", message);
        Assert.Contains("disagree", message, StringComparison.Ordinal);

        // Rewritten: new records over the rolled-back log are signed and published, but the earlier publication is no prefix of them.
        await Put(cli, dir, "three", 3);
        await Put(cli, dir, "four", 4);
        (code, output, err) = await elsewhere.RunAsync("evidence", "verify", "--from-repo", "--public-key", key);
        Assert.True(code == 5, output + err);
        Assert.Contains("the log was rewritten after it was signed", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_deleted_published_object_or_a_wrong_key_fails_and_pull_rebuilds_a_log_that_verifies()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var key = dir.File("auditor.pub");
        File.Copy(Path.Combine(dir.File("repo-evidence"), "evidence.pub"), key);
        await Put(cli, dir, "one", 1);
        await Put(cli, dir, "two", 2);

        // Pull into a new folder: the log as published, which verifies as any log folder does.
        var pulled = dir.File("pulled");
        var (code, output, err) = await cli.RunAsync("evidence", "pull", "--to", pulled, "--public-key", key);
        Assert.True(code == 0, output + err);
        Assert.Contains("OK:", output, StringComparison.Ordinal);
        Assert.Equal(await File.ReadAllTextAsync(Path.Combine(dir.File("repo-evidence"), "checkpoint")), await File.ReadAllTextAsync(Path.Combine(pulled, "checkpoint")));
        Assert.False(File.Exists(pulled + ".key"));
        (code, output, err) = await cli.RunAsync("--evidence", pulled, "evidence", "verify", "--public-key", key);
        Assert.True(code == 0, output + err);
        // A folder that is not empty is refused, and nothing in it changes.
        (code, _, err) = await cli.RunAsync("evidence", "pull", "--to", pulled);
        Assert.Equal(2, code);
        Assert.Contains("not empty", err, StringComparison.Ordinal);

        // Another log's key: nothing verifies.
        var other = new EvidenceLog(dir.File("other-evidence"), null, TimeProvider.System);
        other.Init();
        (code, output, err) = await cli.RunAsync("evidence", "verify", "--from-repo", "--public-key", other.PublicKeyPath);
        Assert.True(code == 5, output + err);
        Assert.Contains("FAIL: checkpoint", output, StringComparison.Ordinal);

        // A piece of the newest publication deleted (no Object Lock on a folder): named, exit 5.
        var storage = new FileSystemStorage(dir.File("repo"));
        var newest = (await EvidencePublication.ListAsync(storage, null, default))[^1];
        var manifest = await EvidencePublication.ReadAsync(storage, newest.Name, default);
        var segment = manifest.Files.Single(f => f.Key.StartsWith("log/", StringComparison.Ordinal));
        await storage.DeleteAsync(new StorageKey(ObjectKind.Evidence, segment.Value[^1].Name), default);
        (code, output, err) = await cli.RunAsync("evidence", "verify", "--from-repo", "--public-key", key);
        Assert.True(code == 5, output + err);
        Assert.Contains($"evidence/{segment.Value[^1].Name} of {segment.Key} is missing", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_publication_that_fails_is_a_warning_and_check_shows_the_backup_not_published()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        // evidence/ is a file: nothing can be created under it.
        Directory.CreateDirectory(dir.File("repo/evidence"));
        Directory.Delete(dir.File("repo/evidence"));
        await File.WriteAllTextAsync(dir.File("repo/evidence"), "in the way");
        await File.WriteAllBytesAsync(dir.File("one.bin"), TestData.Random(50_000, 1));
        var (code, output, err) = await cli.RunAsync("repo", "put", "one", dir.File("one.bin"));
        Assert.True(code == 0, output + err);
        Assert.Contains("the evidence log was not published", err, StringComparison.Ordinal);
        File.Delete(dir.File("repo/evidence"));
        var (state, message) = await Published(cli);
        Assert.True(state == "WARNING", message);
        Assert.Matches(@"^the backup record \d+ .*is not published", message);

        (code, output, err) = await cli.RunAsync("evidence", "publish");
        Assert.True(code == 0, output + err);
        Assert.Contains("published the evidence log", output, StringComparison.Ordinal);
        (state, message) = await Published(cli);
        Assert.True(state == "OK", message);
    }

    [Fact]
    public async Task On_s3_the_log_is_published_in_pieces_verifies_from_the_bucket_and_a_deleted_piece_is_found()
    {
        using var dir = new TempDir();
        var location = s3.NewLocation("evpub");
        var credentials = dir.File("s3.credentials");
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var config = dir.File("cairn.yaml");
        await File.WriteAllTextAsync(config, $$"""
            repository: s3://{{location.Bucket}}/{{location.Prefix}}
            s3: { endpoint: "{{s3.Endpoint}}", credentials_file: {{credentials}} }
            evidence: { path: {{dir.File("evidence")}} }
            """);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_CONFIG"] = config, ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        Assert.Equal(0, (await cli.RunAsync(Init)).Code);
        var key = dir.File("auditor.pub");
        File.Copy(Path.Combine(dir.File("evidence"), "evidence.pub"), key);
        await Put(cli, dir, "one", 1);
        await Put(cli, dir, "two", 2);

        using var storage = s3.NewStorage(location);
        var all = await EvidencePublication.ListAsync(storage, null, default);
        Assert.Equal(2, all.Count);
        // The month's segment grew: the second publication reuses the first one's piece and adds one holding the new lines.
        var first = await EvidencePublication.ReadAsync(storage, all[0].Name, default);
        var second = await EvidencePublication.ReadAsync(storage, all[1].Name, default);
        var path = second.Files.Keys.Single(k => k.StartsWith("log/", StringComparison.Ordinal));
        Assert.Equal(first.Files[path][0], second.Files[path][0]);
        Assert.Equal(first.Files[path].Count + 1, second.Files[path].Count);

        var (code, output, err) = await cli.RunAsync("evidence", "verify", "--from-repo", "--public-key", key);
        Assert.True(code == 0, output + err);
        Assert.Contains("1 earlier publication(s) checked to be prefixes of it", output, StringComparison.Ordinal);
        Assert.Contains("the local log", output, StringComparison.Ordinal);

        await storage.DeleteAsync(new StorageKey(ObjectKind.Evidence, second.Files[path][^1].Name), default);
        (code, output, err) = await cli.RunAsync("evidence", "verify", "--from-repo", "--public-key", key);
        Assert.True(code == 5, output + err);
        Assert.Contains("is missing from", output, StringComparison.Ordinal);
    }

    /// <summary>The state and message of check's evidence-published finding.</summary>
    private static async Task<(string State, string Message)> Published(CliRunner cli)
    {
        var (_, output, err) = await cli.RunAsync("check", "--json");
        var rows = JsonDocument.Parse(output).RootElement.GetProperty("findings").EnumerateArray().Where(f => f.GetProperty("check").GetString() == "evidence-published").ToList();
        Assert.True(rows.Count == 1, output + err);
        return (rows[0].GetProperty("state").GetString()!, rows[0].GetProperty("message").GetString()!);
    }

    private static async Task Put(CliRunner cli, TempDir dir, string name, int seed)
    {
        var file = dir.File(name + ".bin");
        await File.WriteAllBytesAsync(file, TestData.Random(40_000, seed));
        var (code, output, err) = await cli.RunAsync("repo", "put", name, file);
        Assert.True(code == 0, output + err);
        Assert.DoesNotContain("not published", err, StringComparison.Ordinal);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(f, target);
        }
    }
}
