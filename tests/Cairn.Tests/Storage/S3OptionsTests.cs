using Cairn.Operations.Configuration;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>The s3: block of cairn.yaml, locations, addressing and where credentials come from.</summary>
public sealed class S3OptionsTests
{
    private static CairnConfig Parse(string yaml) => CairnConfig.Parse(yaml, "/etc/cairn/cairn.yaml");

    [Fact]
    public void S3_block_with_every_key_is_read()
    {
        var cfg = Parse("""
            repository: s3://cairn-backups/prod
            s3:
              endpoint: "http://127.0.0.1:9000"
              region: eu-central-1
              path_style: false
              credentials_file: s3.credentials
              profile: backup
              ca_file: private-ca.pem
              sse: aws:kms
              sse_kms_key_id: alias/cairn
              storage_class: STANDARD_IA
              object_lock: { mode: compliance, days: 45 }
            """);

        Assert.Equal("s3://cairn-backups/prod", cfg.Repository);
        var s3 = cfg.S3!;
        Assert.Equal(new Uri("http://127.0.0.1:9000"), s3.Endpoint);
        Assert.Equal("eu-central-1", s3.Region);
        Assert.False(s3.PathStyle);
        Assert.Equal("/etc/cairn/s3.credentials", s3.CredentialsFile);
        Assert.Equal("backup", s3.Profile);
        Assert.Equal("/etc/cairn/private-ca.pem", s3.CaFile);
        Assert.Equal(S3ServerSideEncryption.Kms, s3.Sse);
        Assert.Equal("alias/cairn", s3.SseKmsKeyId);
        Assert.Equal("STANDARD_IA", s3.StorageClass);
        Assert.Equal(new Cairn.Repository.Storage.ObjectLockPolicy(Cairn.Repository.Storage.ObjectLockMode.Compliance, TimeSpan.FromDays(45)), s3.ObjectLock);
    }

    [Fact]
    public void Object_lock_days_retention_is_the_longest_time_a_retention_policy_keeps_a_backup_plus_a_day()
    {
        var cfg = Parse("""
            repository: s3://cairn-backups/prod
            s3:
              object_lock: { mode: governance, days: retention }
            copies:
              - repository: s3://cairn-copy/prod
                s3: { object_lock: { mode: compliance, days: retention } }
            databases:
              app:
                connection: "host=/tmp dbname=app"
                retention: { keep_last: 3, keep_within: 30d, keep_daily: 7 }
              logs:
                connection: "host=/tmp dbname=logs"
                retention: { keep_weekly: 4, keep_monthly: 2 }
            """);

        // logs: keep_monthly 2 = 62 days, longer than app's 30 days and logs' 4 weeks; one day more.
        Assert.Equal(ObjectLockMode.Governance, cfg.S3!.ObjectLock!.Mode);
        Assert.Equal(TimeSpan.FromDays(63), cfg.S3.ObjectLock.Period);
        Assert.Contains("databases.logs.retention keeps a backup 62 day(s)", cfg.S3.ObjectLock.Source, StringComparison.Ordinal);
        Assert.Equal(TimeSpan.FromDays(63), Assert.Single(cfg.Copies).S3!.ObjectLock!.Period);
        Assert.Equal(ObjectLockMode.Compliance, cfg.Copies[0].S3!.ObjectLock!.Mode);
        Assert.Null(Parse("s3:\n  object_lock: { mode: governance, days: 45 }\n").S3!.ObjectLock!.Source);
    }

    [Theory]
    [InlineData("databases:\n  app:\n    connection: \"host=/tmp\"\n    retention: { keep_last: 7 }\n", "databases.app.retention has no calendar rule")]
    [InlineData("databases:\n  app:\n    connection: \"host=/tmp\"\n", "databases.app.retention has no calendar rule")]
    [InlineData("", "no database is configured")]
    public void Object_lock_days_retention_without_a_calendar_rule_is_refused_with_the_fix(string databases, string why)
    {
        var e = Assert.Throws<ConfigException>(() => Parse("s3:\n  object_lock: { mode: governance, days: retention }\n" + databases));
        Assert.Contains("cairn.yaml:2", e.Message, StringComparison.Ordinal);
        Assert.Contains(why, e.Message, StringComparison.Ordinal);
        Assert.Contains("give days: N", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_retention_too_long_for_a_lock_is_refused_and_parses_without_one()
    {
        const string Db = "databases:\n  app:\n    connection: \"host=/tmp\"\n    retention: { keep_daily: 2000000000 }\n";
        // Found by the config fuzzer: a number of days no TimeSpan holds must not crash the parser.
        Assert.Equal(2000000000, Parse(Db).Databases["app"].Retention.KeepDaily);
        var e = Assert.Throws<ConfigException>(() => Parse("s3:\n  object_lock: { mode: governance, days: retention }\n" + Db));
        Assert.Contains("more than S3's limit of 36500", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void No_S3_block_leaves_the_environment_in_charge()
    {
        var cfg = Parse("repository: s3://cairn-backups/prod\n");
        Assert.Null(cfg.S3);
    }

    [Theory]
    [InlineData("s3:\n  secret_access_key: abc\n", "cairn.yaml:2", "credentials never go in cairn.yaml")]
    [InlineData("s3:\n  region: us-east-1\n  endpiont: http://x\n", "cairn.yaml:3", "unknown key 's3.endpiont'")]
    [InlineData("s3:\n  endpoint: 127.0.0.1:9000\n", "cairn.yaml:2", "not an endpoint URL")]
    [InlineData("s3:\n  endpoint: http://key:secret@127.0.0.1:9000\n", "cairn.yaml:2", "must not hold credentials")]
    [InlineData("s3:\n  endpoint: http://127.0.0.1:9000/bucket\n", "cairn.yaml:2", "has a path")]
    [InlineData("s3:\n  sse: yes-please\n", "cairn.yaml:2", "s3.sse must be none, AES256")]
    [InlineData("s3:\n  sse: AES256\n  sse_kms_key_id: k\n", "cairn.yaml:3", "needs sse: aws:kms")]
    [InlineData("s3:\n  storage_class: DEEP_ARCHIVE\n", "cairn.yaml:2", "cannot be read without a restore request")]
    [InlineData("s3:\n  path_style: maybe\n", "cairn.yaml:2", "must be true or false")]
    [InlineData("s3:\n  region: Europe/Berlin\n", "cairn.yaml:2", "is not a region name")]
    [InlineData("s3: http://127.0.0.1\n", "cairn.yaml:1", "'s3' must be a mapping")]
    [InlineData("s3:\n  object_lock: { days: 30 }\n", "cairn.yaml:2", "needs mode: governance or compliance")]
    [InlineData("s3:\n  object_lock: { mode: legal, days: 30 }\n", "cairn.yaml:2", "must be governance or compliance, not 'legal'")]
    [InlineData("s3:\n  object_lock: { mode: governance }\n", "cairn.yaml:2", "needs days: N")]
    [InlineData("s3:\n  object_lock: { mode: governance, days: 0 }\n", "cairn.yaml:2", "from 1 to 36500, not '0'")]
    [InlineData("s3:\n  object_lock: { mode: governance, days: 30d }\n", "cairn.yaml:2", "not '30d'")]
    [InlineData("s3:\n  object_lock: { mode: governance, days: 30, years: 1 }\n", "cairn.yaml:2", "unknown key 's3.object_lock.years'")]
    public void Bad_S3_block_names_file_line_and_key(string yaml, string where, string message)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(yaml));
        Assert.Contains(where, e.Message, StringComparison.Ordinal);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s3://cairn-backups/prod", "cairn-backups", "prod")]
    [InlineData("s3://cairn-backups", "cairn-backups", "")]
    [InlineData("s3://cairn-backups/a/b/", "cairn-backups", "a/b")]
    public void Location_parses_bucket_and_prefix(string text, string bucket, string prefix)
    {
        var l = S3Location.Parse(text);
        Assert.Equal(new S3Location(bucket, prefix), l);
        Assert.Equal(prefix.Length == 0 ? "config" : prefix + "/config", l.KeyOf("config"));
    }

    [Theory]
    [InlineData("/var/lib/cairn", "write it as s3://")]
    [InlineData("s3://Cairn_Backups/x", "not a valid bucket name")]
    [InlineData("s3://cairn/a/../b", "'..'")]
    [InlineData("s3://cairn/a//b", "empty")]
    public void Bad_location_is_refused_with_the_fix(string text, string message)
    {
        Assert.False(S3Location.TryParse(text, out _, out var error));
        Assert.Contains(message, error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("http://127.0.0.1:9000", true)]
    [InlineData("http://localhost:9000", true)]
    [InlineData("http://[::1]:9000", true)]
    [InlineData("https://10.1.2.3", true)]
    [InlineData("https://s3.eu-central-1.amazonaws.com", false)]
    [InlineData("https://minio.example.com", false)]
    public void An_IP_or_localhost_endpoint_implies_path_style(string endpoint, bool pathStyle)
        => Assert.Equal(pathStyle, S3Options.ImpliesPathStyle(new Uri(endpoint)));

    [Fact]
    public void Endpoint_and_region_come_from_the_standard_environment_variables()
    {
        var env = new Dictionary<string, string>
        {
            ["AWS_ENDPOINT_URL"] = "https://generic.example.com",
            ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:9000",
            ["AWS_REGION"] = "eu-west-3",
            ["AWS_ACCESS_KEY_ID"] = "k",
            ["AWS_SECRET_ACCESS_KEY"] = "s",
            ["AWS_SESSION_TOKEN"] = "t",
        };
        using var storage = new S3Storage(S3Location.Parse("s3://bucket/p"), new S3Options(), env.GetValueOrDefault, TimeProvider.System);

        Assert.Equal(new Uri("http://127.0.0.1:9000"), storage.Endpoint.ServiceUrl);
        Assert.Equal("eu-west-3", storage.Endpoint.Region);
        Assert.True(storage.Endpoint.PathStyle);
        Assert.Contains("AWS_SESSION_TOKEN", storage.Endpoint.CredentialSource, StringComparison.Ordinal);

        env.Remove("AWS_ENDPOINT_URL_S3");
        using var generic = new S3Storage(S3Location.Parse("s3://bucket/p"), new S3Options(), env.GetValueOrDefault, TimeProvider.System);
        Assert.Equal(new Uri("https://generic.example.com"), generic.Endpoint.ServiceUrl);
        Assert.False(generic.Endpoint.PathStyle);

        using var configured = new S3Storage(S3Location.Parse("s3://bucket/p"), new S3Options { Endpoint = new Uri("https://minio.example.com"), PathStyle = true, Region = "garage" }, env.GetValueOrDefault, TimeProvider.System);
        Assert.Equal(new Uri("https://minio.example.com"), configured.Endpoint.ServiceUrl);
        Assert.True(configured.Endpoint.PathStyle);
        Assert.Equal("garage", configured.Endpoint.Region);
    }

    [Fact]
    public void Only_half_of_the_key_pair_in_the_environment_is_refused()
    {
        var env = new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = "k", ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1" };
        var e = Assert.Throws<S3ConfigurationException>(() => new S3Storage(S3Location.Parse("s3://bucket"), new S3Options(), env.GetValueOrDefault, TimeProvider.System));
        Assert.Contains("AWS_SECRET_ACCESS_KEY", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Credentials_file_others_can_read_is_refused_and_a_private_one_is_used()
    {
        using var dir = new TempDir();
        var file = dir.File("s3.credentials");
        File.WriteAllText(file, "[backup]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI\n");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);
        var options = new S3Options { Endpoint = new Uri("http://127.0.0.1:1"), CredentialsFile = file, Profile = "backup" };
        var env = new Dictionary<string, string>();

        var e = Assert.Throws<S3ConfigurationException>(() => new S3Storage(S3Location.Parse("s3://bucket"), options, env.GetValueOrDefault, TimeProvider.System));
        Assert.Contains($"chmod 600 {file}", e.Message, StringComparison.Ordinal);

        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupWrite);
        Assert.Throws<S3ConfigurationException>(() => new S3Storage(S3Location.Parse("s3://bucket"), options, env.GetValueOrDefault, TimeProvider.System));

        // 0640: the server's user reads it through its group (archive_command, restore_command).
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        using (new S3Storage(S3Location.Parse("s3://bucket"), options, env.GetValueOrDefault, TimeProvider.System))
        {
        }
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        using var storage = new S3Storage(S3Location.Parse("s3://bucket"), options, env.GetValueOrDefault, TimeProvider.System);
        Assert.Contains("[backup]", storage.Endpoint.CredentialSource, StringComparison.Ordinal);

        var missing = Assert.Throws<S3ConfigurationException>(() => new S3Storage(S3Location.Parse("s3://bucket"), options with { Profile = "prod" }, env.GetValueOrDefault, TimeProvider.System));
        Assert.Contains("has no [prod] profile", missing.Message, StringComparison.Ordinal);
    }
}

/// <summary>What the server says about credentials and buckets, turned into errors that name the fix.</summary>
public sealed class S3CredentialTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    [Fact]
    public async Task Credentials_from_a_file_sign_requests_the_server_accepts_and_wrong_ones_get_a_clear_error()
    {
        using var dir = new TempDir();
        var file = dir.File("s3.credentials");
        File.WriteAllText(file, $"[default]\naws_access_key_id = {S3rverFixture.AccessKey}\naws_secret_access_key = {S3rverFixture.AccessKey}\n[wrong]\naws_access_key_id = AKIDNOTKNOWN\naws_secret_access_key = {S3rverFixture.AccessKey}\n");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var env = new Dictionary<string, string>();
        var location = s3.NewLocation("credfile");
        using var good = new S3Storage(location, new S3Options { Endpoint = s3.Endpoint, CredentialsFile = file }, env.GetValueOrDefault, TimeProvider.System);
        var key = new Cairn.Repository.Storage.StorageKey(Cairn.Repository.Storage.ObjectKind.Index, "i1");
        await good.PutAsync(key, new byte[] { 1, 2 }, default);
        Assert.Equal(new byte[] { 1, 2 }, await good.GetAllAsync(key, default));

        using var wrong = new S3Storage(location, new S3Options { Endpoint = s3.Endpoint, CredentialsFile = file, Profile = "wrong" }, env.GetValueOrDefault, TimeProvider.System);
        var e = await Assert.ThrowsAsync<S3StorageException>(() => wrong.GetAllAsync(key, default));
        Assert.False(e.Transient);
        // s3rver checks the access key id but not SigV4 signatures, so the wrong key is an unknown id here.
        Assert.Contains("InvalidAccessKeyId", e.Message, StringComparison.Ordinal);
        Assert.Contains("check the credentials", e.Message, StringComparison.Ordinal);

        using var noBucket = new S3Storage(new S3Location("no-such-bucket", "x"), new S3Options { Endpoint = s3.Endpoint, CredentialsFile = file }, env.GetValueOrDefault, TimeProvider.System);
        var nb = await Assert.ThrowsAsync<S3StorageException>(() => noBucket.PutAsync(key, new byte[] { 1 }, default));
        Assert.Contains("the bucket 'no-such-bucket' does not exist", nb.Message, StringComparison.Ordinal);
    }
}
