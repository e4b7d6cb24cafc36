using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// What a new user meets following README's "A repository in S3" on a real S3 server (s3rver), found by the acceptance
/// walk-through of 2026-12-06 (docs/bench-runs/2026-12-06-accept5/walkthrough.md): each mistake is a clear error naming
/// the fix, and nothing is left half done.
/// </summary>
public sealed class S3WalkthroughTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private sealed class Setup : IDisposable
    {
        public Setup(S3rverFixture s3, string name, string accessKey = S3rverFixture.AccessKey)
        {
            Location = s3.NewLocation(name);
            Credentials = Dir.File("s3.credentials");
            File.WriteAllText(Credentials, $"[default]\naws_access_key_id = {accessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
            File.SetUnixFileMode(Credentials, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            File.WriteAllText(Dir.File("pass"), "walkthrough passphrase 7c2e\n");
            S3Yaml = $"s3: {{ endpoint: \"{s3.Endpoint}\", credentials_file: {Credentials} }}\n";
            Cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_PASSPHRASE_FILE"] = Dir.File("pass"), ["CAIRN_CONFIG"] = Dir.File("cairn.yaml") });
        }

        public TempDir Dir { get; } = new();

        public S3Location Location { get; }

        public string Url => Location.Display;

        public string Credentials { get; }

        public string S3Yaml { get; }

        public CliRunner Cli { get; }

        public void Write(string yaml) => File.WriteAllText(Dir.File("cairn.yaml"), yaml);

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public async Task Init_in_S3_without_an_evidence_folder_creates_nothing_so_the_retry_with_one_succeeds()
    {
        // README's S3 example names evidence.path; a user who leaves it out was told to set it only after the
        // repository existed, and the retry then said "a repository already exists" (exit 8): no evidence log, ever.
        using var setup = new Setup(s3, "init-no-evidence");
        setup.Write($"repository: {setup.Url}\n{setup.S3Yaml}");

        var (code, output, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");

        Assert.True(code == 9, output + err);
        Assert.Contains("evidence.path", err, StringComparison.Ordinal);
        using (var storage = s3.NewStorage(setup.Location))
        {
            await foreach (var o in storage.ListAsync(ObjectKind.Key, default))
            {
                Assert.Fail($"init left {o.Key} behind after refusing");
            }
            Assert.False(await Cairn.Repository.Repository.ExistsAsync(storage, default));
        }

        setup.Write($"repository: {setup.Url}\n{setup.S3Yaml}evidence: {{ path: {setup.Dir.File("evidence")} }}\n");
        (code, output, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        Assert.True(File.Exists(Path.Combine(setup.Dir.File("evidence"), "evidence.pub")), "the evidence log was not created");
    }

    [Fact]
    public async Task Credentials_the_server_refuses_are_named_as_such_even_on_a_HEAD_without_an_error_code()
    {
        // A HEAD answer has no body: s3rver (and AWS) refuse an unknown access key there with a bare 403, which was
        // printed as "HEAD config failed: 403 Forbidden: Error making request with Error Code Forbidden …".
        using var setup = new Setup(s3, "refused", accessKey: "NOT-A-KEY");
        setup.Write($"repository: {setup.Url}\n{setup.S3Yaml}evidence: {{ path: {setup.Dir.File("evidence")} }}\n");

        foreach (var command in (string[][])[["snapshots"], ["wal-fetch", "000000010000000000000001", setup.Dir.File("x"), "--database", "app"]])
        {
            var (code, output, err) = await setup.Cli.RunAsync(command);
            Assert.True(code != 0, output + err);
            Assert.Contains("refused the request (403 Forbidden)", err, StringComparison.Ordinal);
            Assert.Contains("check the credentials (credentials file " + setup.Credentials, err, StringComparison.Ordinal);
            Assert.DoesNotContain("Error making request", err, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_bucket_that_does_not_exist_is_named_as_a_possible_cause_with_doctor()
    {
        using var setup = new Setup(s3, "no-bucket");
        setup.Write($"repository: s3://no-such-bucket-{Guid.NewGuid():N}/prod\n{setup.S3Yaml}evidence: {{ path: {setup.Dir.File("evidence")} }}\n");

        var (code, output, err) = await setup.Cli.RunAsync("snapshots");

        Assert.True(code == 6, output + err);
        Assert.Contains("no such bucket", err, StringComparison.Ordinal);
        Assert.Contains("cairn doctor", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Repo_naming_a_copy_reaches_it_with_the_copys_own_S3_settings()
    {
        // README: "cairn --repo s3://cairn-offsite/prod restore … and drill work on it as on the primary". With the copy's
        // endpoint and credentials only in its copies: entry, --repo went to the top-level s3: settings (none here: AWS
        // itself) and the copy could not be read.
        using var setup = new Setup(s3, "copy-repo");
        var primary = setup.Dir.File("primary");
        setup.Write($"repository: {primary}\nevidence: {{ path: {setup.Dir.File("evidence")} }}\ncopies:\n  - repository: {setup.Url}\n    {setup.S3Yaml}");
        var (code, output, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        var file = setup.Dir.File("notes.txt");
        await File.WriteAllTextAsync(file, "kept off-site\n");
        (code, output, err) = await setup.Cli.RunAsync("repo", "put", "notes", file);
        Assert.True(code == 0, output + err);
        (code, output, err) = await setup.Cli.RunAsync("copy");
        Assert.True(code == 0, output + err);

        (code, output, err) = await setup.Cli.RunAsync("--repo", setup.Url, "repo", "get", "notes", setup.Dir.File("back.txt"));

        Assert.True(code == 0, output + err);
        Assert.Equal("kept off-site\n", await File.ReadAllTextAsync(setup.Dir.File("back.txt")));
    }

    [Fact]
    public async Task A_copy_entry_that_parses_as_the_primary_never_takes_the_primarys_traffic()
    {
        // Review: S3 locations compare by bucket and prefix, not endpoint. A copies: entry written as the primary with a
        // trailing slash passes the config's text check; the primary's commands (and --repo naming the primary) must
        // still use the top-level s3: settings, never the copy's endpoint and credentials.
        using var setup = new Setup(s3, "copy-like-primary");
        setup.Write($"repository: {setup.Url}\nevidence: {{ path: {setup.Dir.File("evidence")} }}\n{setup.S3Yaml}copies:\n  - repository: {setup.Url}/\n    s3: {{ endpoint: \"http://127.0.0.1:1\", credentials_file: {setup.Credentials} }}\n");
        var (code, output, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        var file = setup.Dir.File("notes.txt");
        await File.WriteAllTextAsync(file, "kept on the primary\n");
        (code, output, err) = await setup.Cli.RunAsync("repo", "put", "notes", file);
        Assert.True(code == 0, output + err);
        (code, output, err) = await setup.Cli.RunAsync("--repo", setup.Url, "repo", "get", "notes", setup.Dir.File("back.txt"));
        Assert.True(code == 0, output + err);
        Assert.Equal("kept on the primary\n", await File.ReadAllTextAsync(setup.Dir.File("back.txt")));
    }

    [Fact]
    public async Task An_unreachable_endpoint_names_the_setting_to_check()
    {
        // Walk-through: a wrong port gave "… (last: Connection refused (127.0.0.1:19999)); the S3 server is unreachable
        // or overloaded, try again later": true of an overloaded server, but a wrong endpoint is the common cause.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop(); // nothing listens there now
        var fast = new Cairn.Storage.S3.S3Options { Retry = new Cairn.Storage.S3.S3RetryOptions { MaxAttempts = 2, BaseDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(10) } };
        using var storage = s3.NewStorage("unreachable", fast, endpoint: new Uri($"http://127.0.0.1:{port}"));

        var e = await Assert.ThrowsAsync<Cairn.Storage.S3.S3StorageException>(() => storage.StatAsync(StorageKey.Config, default));

        Assert.Contains("after 2 attempts", e.Message, StringComparison.Ordinal);
        Assert.Contains("check the endpoint (s3.endpoint in cairn.yaml", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_copy_made_before_the_primary_was_upgraded_is_brought_up_to_date_by_the_next_copy()
    {
        // Walk-through: after 'cairn repo upgrade --page-patches' on the primary, 'cairn copy' into its existing copy
        // said "holds another repository (id X, this one is X)" and wrote nothing: the configs' bytes differ, and that
        // was taken for other keys before the copy could carry the upgrade over.
        using var setup = new Setup(s3, "copy-upgrade");
        var primary = setup.Dir.File("primary");
        setup.Write($"repository: {primary}\nevidence: {{ path: {setup.Dir.File("evidence")} }}\ncopies:\n  - repository: {setup.Url}\n    {setup.S3Yaml}");
        var (code, output, err) = await setup.Cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);
        var file = setup.Dir.File("notes.txt");
        await File.WriteAllTextAsync(file, "before the upgrade\n");
        Assert.Equal(0, (await setup.Cli.RunAsync("repo", "put", "notes", file)).Code);
        (code, output, err) = await setup.Cli.RunAsync("copy");
        Assert.True(code == 0, output + err);
        (code, output, err) = await setup.Cli.RunAsync("repo", "upgrade", "--page-patches");
        Assert.True(code == 0, output + err);
        await File.WriteAllTextAsync(file, "after the upgrade\n");
        Assert.Equal(0, (await setup.Cli.RunAsync("repo", "put", "notes2", file)).Code);

        (code, output, err) = await setup.Cli.RunAsync("copy");

        Assert.True(code == 0, output + err);
        (code, output, err) = await setup.Cli.RunAsync("--repo", setup.Url, "repo", "upgrade", "--page-patches", "--json");
        Assert.True(code == 0, output + err);
        Assert.Contains("\"changed\": false", output, StringComparison.Ordinal);
        (code, output, err) = await setup.Cli.RunAsync("--repo", setup.Url, "repo", "get", "notes2", setup.Dir.File("back.txt"));
        Assert.True(code == 0, output + err);
        Assert.Equal("after the upgrade\n", await File.ReadAllTextAsync(setup.Dir.File("back.txt")));
    }

    [Fact]
    public async Task A_request_the_server_does_not_implement_is_asked_once_not_retried()
    {
        // Walk-through: 'prune --dry-run' on s3rver took 5-18 s with half a second of CPU on either side: the listing of
        // multipart uploads answered 501 NotImplemented, which was retried as a server error (8 attempts with backoff)
        // before prune went on without it.
        await using var proxy = new FaultProxy(s3.Endpoint);
        using var storage = s3.NewStorage("not-implemented", endpoint: proxy.Endpoint);

        Assert.Equal(0, await storage.RemoveLeftoversAsync(TimeSpan.FromDays(1), dryRun: true, default));

        Assert.Equal(1, proxy.Requests.Count(r => r.Query.Contains("uploads", StringComparison.Ordinal)));
    }
}
