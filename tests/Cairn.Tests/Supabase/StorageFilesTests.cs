using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using Cairn.Operations.StorageFiles;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary>
/// storage_buckets: a Supabase-like project's Storage files (s3rver playing Supabase Storage) backed up with the database,
/// restored with <c>restore --storage</c>, and checked in drills by <c>storage_files</c>. The tests of this class run one
/// after another (xunit runs a class's tests in sequence), so they share s3rver's buckets avatars and invoices, which
/// each test empties first: those are the bucket ids the fixture's storage.objects rows name.
/// </summary>
public class StorageFilesTests(SupabaseFixture supa, S3rverFixture s3) : IClassFixture<SupabaseFixture>, IClassFixture<S3rverFixture>
{
    private static readonly string[] Buckets = ["avatars", "invoices"];

    /// <summary>The fixture's storage.objects rows, with the sizes their metadata records.</summary>
    private static readonly (string Bucket, string Key, int Size)[] RowFiles = [("avatars", "ada.png", 5), ("avatars", "grace.png", 7), ("invoices", "2026/11/0001.pdf", 11)];

    private AmazonS3Client Client() => new(new BasicAWSCredentials(S3rverFixture.AccessKey, S3rverFixture.AccessKey),
        new AmazonS3Config { ServiceURL = s3.Endpoint.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" });

    /// <summary>Both buckets exist and are empty.</summary>
    private async Task ResetBucketsAsync(AmazonS3Client client)
    {
        foreach (var b in Buckets)
        {
            try
            {
                await client.PutBucketAsync(b);
            }
            catch (AmazonS3Exception e) when (e.ErrorCode is "BucketAlreadyExists" or "BucketAlreadyOwnedByYou")
            {
            }
            foreach (var o in (await client.ListObjectsV2Async(new ListObjectsV2Request { BucketName = b })).S3Objects ?? [])
            {
                await client.DeleteObjectAsync(b, o.Key);
            }
        }
    }

    private static async Task PutAsync(AmazonS3Client client, string bucket, string key, byte[] data, string contentType = "application/octet-stream")
        => await client.PutObjectAsync(new PutObjectRequest { BucketName = bucket, Key = key, InputStream = new MemoryStream(data), ContentType = contentType, UseChunkEncoding = false });

    private static bool Same(byte[] expected, byte[]? actual) => actual is not null && expected.AsSpan().SequenceEqual(actual);

    private static async Task<byte[]?> GetAsync(AmazonS3Client client, string bucket, string key)
    {
        try
        {
            using var r = await client.GetObjectAsync(bucket, key);
            var ms = new MemoryStream();
            await r.ResponseStream.CopyToAsync(ms);
            return ms.ToArray();
        }
        catch (AmazonS3Exception e) when (e.StatusCode == System.Net.HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    /// <summary>A CLI with a repository and cairn.yaml: the project's database, its storage_buckets on s3rver (credentials in a 0600 file), and checks.</summary>
    private async Task<CliRunner> CliAsync(TempDir dir, string db, string checks = "")
    {
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var credentials = dir.File("storage-credentials");
        await File.WriteAllTextAsync(credentials, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{supa.Server.Url(db)}"
                storage_buckets:
                  endpoint: {s3.Endpoint}
                  credentials_file: {credentials}
                  buckets: [avatars, invoices]
                checks:
                  - restore_complete: {"{"} allow_skipped: [event trigger] {"}"}
            {checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return cli;
    }

    private static JsonObject CheckOf(string json, string name)
        => JsonNode.Parse(json)!["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    [Fact]
    public async Task Files_backed_up_then_deleted_from_the_bucket_are_restored_byte_for_byte_and_never_replaced_without_overwrite()
    {
        using var client = Client();
        await ResetBucketsAsync(client);
        var db = await supa.CreateProjectAsync("files");
        var files = new Dictionary<(string Bucket, string Key), byte[]>();
        foreach (var (bucket, key, size) in RowFiles)
        {
            files[(bucket, key)] = RandomNumberGenerator.GetBytes(size);
        }
        // Larger than one PUT (16 MiB): read as a stream on backup, written in parts on restore.
        files[("invoices", "scans/big.tiff")] = RandomNumberGenerator.GetBytes((17 * 1024 * 1024) + 123);
        foreach (var ((bucket, key), data) in files)
        {
            await PutAsync(client, bucket, key, data, key.EndsWith(".png", StringComparison.Ordinal) ? "image/png" : "application/octet-stream");
        }
        using var dir = new TempDir();
        var cli = await CliAsync(dir, db);

        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        Assert.True(code == 0, output + err);
        Assert.Contains("avatars: 2 files", output, StringComparison.Ordinal);
        Assert.Contains("invoices: 2 files", output, StringComparison.Ordinal);

        (code, output, err) = await cli.RunAsync("backup", "app", "--json");
        Assert.True(code == 0, output + err);
        var storage = JsonNode.Parse(output)!["storage"]!;
        Assert.Equal(4, storage["objects"]!.GetValue<long>());
        Assert.Equal(files.Values.Sum(f => (long)f.Length), storage["bytes"]!.GetValue<long>());

        // The evidence record carries the counts.
        (code, output, err) = await cli.RunAsync("evidence", "list", "--kind", "backup", "--json");
        Assert.True(code == 0, output + err);
        var details = JsonNode.Parse(output)!.AsArray().Single()!["details"]!;
        Assert.Equal(4, details["storage_objects"]!.GetValue<long>());
        Assert.Equal(files.Values.Sum(f => (long)f.Length), details["storage_bytes"]!.GetValue<long>());
        Assert.Equal(["avatars", "invoices"], details["storage_buckets"]!.AsArray().Select(b => b!.GetValue<string>()));

        foreach (var (bucket, key) in files.Keys)
        {
            await client.DeleteObjectAsync(bucket, key);
        }
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage");
        Assert.True(code == 0, output + err);
        Assert.Contains("4 written", output, StringComparison.Ordinal);
        foreach (var ((bucket, key), data) in files)
        {
            Assert.True(Same(data, await GetAsync(client, bucket, key)), $"{bucket}/{key} differs after the restore");
        }
        using (var head = await client.GetObjectAsync("avatars", "ada.png"))
        {
            Assert.Equal("image/png", head.Headers.ContentType);
        }

        // Again: everything is there with the same content, nothing is written.
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage", "--json");
        Assert.True(code == 0, output + err);
        Assert.Equal(0, JsonNode.Parse(output)!["written"]!.GetValue<int>());
        Assert.Equal(4, JsonNode.Parse(output)!["identical"]!.GetValue<int>());

        // Someone changed a file since: create-only leaves it, says so and exits 11; --overwrite puts the backup's bytes back.
        var changed = RandomNumberGenerator.GetBytes(5);
        await PutAsync(client, "avatars", "ada.png", changed);
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage");
        Assert.True(code == 11, output + err);
        Assert.Contains("NOT REPLACED avatars/ada.png", output, StringComparison.Ordinal);
        Assert.True(Same(changed, await GetAsync(client, "avatars", "ada.png")));
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage", "--overwrite", "--bucket", "avatars");
        Assert.True(code == 0, output + err);
        Assert.True(Same(files[("avatars", "ada.png")], await GetAsync(client, "avatars", "ada.png")));

        // Into another bucket, chosen by --to-bucket (one bucket of the backup at a time).
        await client.PutBucketAsync("avatars-copy");
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage", "--to-bucket", "avatars-copy");
        Assert.Equal(2, code);
        Assert.Contains("--bucket NAME", err, StringComparison.Ordinal);
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage", "--bucket", "avatars", "--to-bucket", "avatars-copy");
        Assert.True(code == 0, output + err);
        Assert.True(Same(files[("avatars", "grace.png")], await GetAsync(client, "avatars-copy", "grace.png")));
        (code, output, err) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.True(code == 0, output + err);
        var restores = JsonNode.Parse(output)!.AsArray().Select(r => r!["details"]!).Where(d => d["type"]!.GetValue<string>() == "storage").ToList();
        Assert.Equal(["avatars", "invoices"], restores[0]["buckets"]!.AsArray().Select(b => b!.GetValue<string>()));
        Assert.Equal(["avatars->avatars-copy"], restores[^1]["buckets"]!.AsArray().Select(b => b!.GetValue<string>()));
    }

    [Fact]
    public async Task Drill_storage_files_passes_then_fails_naming_a_file_whose_row_stayed_but_whose_file_was_not_backed_up()
    {
        using var client = Client();
        await ResetBucketsAsync(client);
        var db = await supa.CreateProjectAsync("drillfiles");
        foreach (var (bucket, key, size) in RowFiles)
        {
            await PutAsync(client, bucket, key, RandomNumberGenerator.GetBytes(size));
        }
        using var dir = new TempDir();
        var cli = await CliAsync(dir, db, "      - storage_files: {}");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, output + err);
        var check = CheckOf(output, "storage_files");
        Assert.Equal("pass", check["result"]!.GetValue<string>());
        Assert.Equal("3 of 3 rows have their file", check["actual"]!.GetValue<string>());

        // The file is gone from the bucket before the next backup; its storage.objects row stays.
        await client.DeleteObjectAsync("avatars", "grace.png");
        (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 12, output + err);
        check = CheckOf(output, "storage_files");
        Assert.Equal("fail", check["result"]!.GetValue<string>());
        Assert.Equal("2 of 3 rows have their file", check["actual"]!.GetValue<string>());
        Assert.Contains("1 file(s) missing from the backup: avatars/grace.png", check["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_drill_of_a_backup_without_storage_files_fails_the_check_rather_than_skipping_it()
    {
        var db = await supa.CreateProjectAsync("nofiles");
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{supa.Server.Url(db)}"
                checks:
                  - restore_complete: {"{"} allow_skipped: [event trigger] {"}"}
                  - storage_files: {"{"}{"}"}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 12, output + err);
        var check = CheckOf(output, "storage_files");
        Assert.Equal("fail", check["result"]!.GetValue<string>());
        Assert.Contains("the backup holds no Storage files", check["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("bucket avatars: 2 row(s)", check["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bucket_key_with_a_backslash_fails_the_backup_naming_bucket_and_key_and_nothing_is_committed()
    {
        using var client = Client();
        await ResetBucketsAsync(client);
        var db = await supa.CreateProjectAsync("evilkey");
        await PutAsync(client, "avatars", "ada.png", RandomNumberGenerator.GetBytes(5));
        await PutAsync(client, "invoices", @"..\..\etc\cron.d\x", RandomNumberGenerator.GetBytes(3));
        using var dir = new TempDir();
        var cli = await CliAsync(dir, db);
        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        Assert.True(code == 0, output + err);
        Assert.Contains("invoices: 0 files, 0 B; 1 key(s) REFUSED", output, StringComparison.Ordinal);
        (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 2, output + err);
        Assert.Contains(@"bucket invoices: object key '..\..\etc\cron.d\x' is refused: the key holds a backslash", err, StringComparison.Ordinal);
        (code, output, err) = await cli.RunAsync("snapshots", "app", "--json");
        Assert.True(code == 0, output + err);
        Assert.Empty(JsonNode.Parse(output)!.AsArray());
    }

    [Fact]
    public async Task A_restore_refuses_a_backup_whose_storage_part_names_a_hostile_key_before_writing_anything()
    {
        using var client = Client();
        await ResetBucketsAsync(client);
        var db = await supa.CreateProjectAsync("evilpart");
        await PutAsync(client, "avatars", "ada.png", RandomNumberGenerator.GetBytes(5));
        using var dir = new TempDir();
        var cli = await CliAsync(dir, db);
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        await client.DeleteObjectAsync("avatars", "ada.png");

        // A repository written by someone else: the same backup with one more file, keyed ../x (as a hostile writer could).
        var storage = new FileSystemStorage(dir.File("repo"));
        using (var repo = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, CancellationToken.None))
        {
            var snap = (await repo.ListSnapshotsAsync(CancellationToken.None)).Single();
            await using var writer = repo.BeginWrite();
            foreach (var item in snap.Manifest.Items)
            {
                writer.AddExistingItem(item);
            }
            var good = snap.Manifest.Items.Single(i => i.Name == "storage/avatars/ada.png");
            writer.AddExistingItem(good with { Name = "storage/avatars/../x", Meta = new Dictionary<string, string>(good.Meta!) { ["key"] = "../x" } });
            await repo.ForgetAsync(snap, CancellationToken.None);
            await writer.CommitAsync(snap.Manifest.Name, snap.Manifest.Kind, snap.Manifest.Meta, CancellationToken.None);
        }
        (code, output, err) = await cli.RunAsync("restore", "app", "--storage");
        Assert.True(code == 5, output + err);
        Assert.Contains("the key has a '..' path segment", err, StringComparison.Ordinal);
        Assert.Contains("nothing was written", err, StringComparison.Ordinal);
        Assert.Null(await GetAsync(client, "avatars", "ada.png"));
    }

    [Theory]
    [InlineData("../x", "the key has a '..' path segment")]
    [InlineData("a/../../x", "the key has a '..' path segment")]
    [InlineData("/etc/passwd", "the key is an absolute path (starts with /)")]
    [InlineData("a\0b", "the key holds a NUL byte")]
    [InlineData("a\u0001b", "the key holds a control character")]
    [InlineData("a\\b", "the key holds a backslash")]
    [InlineData("a//b", "the key has an empty path segment (// or a trailing /)")]
    [InlineData("./a", "the key has a '.' path segment")]
    [InlineData("", "the key is empty")]
    public void Hostile_keys_are_refused_with_the_reason(string key, string reason) => Assert.Equal(reason, StorageNames.KeyProblem(key));

    [Theory]
    [InlineData("ada.png")]
    [InlineData("2026/11/0001.pdf")]
    [InlineData("users/00000000-0000-0000-0000-000000000001/avatar (1).png")]
    [InlineData("ünïcode/файл.txt")]
    [InlineData("a..b/c.d")]
    public void Ordinary_keys_are_accepted(string key) => Assert.Null(StorageNames.KeyProblem(key));

    [Fact]
    public void A_key_that_is_not_valid_Unicode_is_refused() => Assert.Equal("the key is not valid Unicode", StorageNames.KeyProblem("a\ud800b"));

    [Fact]
    public void A_key_longer_than_S3_allows_is_refused() => Assert.Equal("the key is longer than 1024 bytes", StorageNames.KeyProblem(new string('é', 513)));

    [Fact]
    public void Storage_buckets_never_take_credentials_in_the_config_and_need_buckets()
    {
        var e = Assert.Throws<Cairn.Operations.Configuration.ConfigException>(() => Cairn.Operations.Configuration.CairnConfig.Parse("""
            databases:
              app:
                connection: postgresql://app@db/app
                storage_buckets: { endpoint: "https://ref.supabase.co/storage/v1/s3", secret_access_key: x, buckets: [avatars] }
            """, "cairn.yaml"));
        Assert.Contains("credentials never go in cairn.yaml", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<Cairn.Operations.Configuration.ConfigException>(() => Cairn.Operations.Configuration.CairnConfig.Parse("""
            databases:
              app:
                connection: postgresql://app@db/app
                storage_buckets: { endpoint: "https://ref.supabase.co/storage/v1/s3" }
            """, "cairn.yaml"));
        Assert.Contains("'buckets' is required", e.Message, StringComparison.Ordinal);
        var ok = Cairn.Operations.Configuration.CairnConfig.Parse("""
            databases:
              app:
                connection: postgresql://app@db/app
                storage_buckets: { endpoint: "https://ref.supabase.co/storage/v1/s3", region: eu-central-1, ca_file: internal-ca.pem, buckets: [avatars, invoices] }
            """, "/etc/cairn/cairn.yaml");
        var sb = ok.Databases["app"].StorageBuckets!;
        Assert.Equal(new[] { "avatars", "invoices" }, sb.Buckets);
        // Supabase's endpoint has a path: addressed path-style.
        Assert.True(sb.ToOptions().PathStyle);
        // A self-hosted Storage behind a private CA: resolved beside cairn.yaml and passed to the client.
        Assert.Equal("/etc/cairn/internal-ca.pem", sb.ToOptions().CaFile);
    }
}
