using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;

namespace Cairn.Tests.Operations;

/// <summary>The <c>copies:</c> section (typed at load, errors with file and line) and how <c>check</c> judges a copy's lag.</summary>
public class CopyConfigTests
{
    [Fact]
    public void Copies_parse_into_typed_entries_with_their_own_s3_block_and_a_daemon_job_each()
    {
        var c = CairnConfig.Parse("repository: /srv/cairn\ncopies:\n  - repository: s3://other-region/cairn\n    schedule: \"30 1 * * *\"\n    max_age: 36h\n    s3: { endpoint: \"http://127.0.0.1:9000\", credentials_file: /etc/cairn/copy.credentials, region: eu-west-1 }\n  - { repository: /mnt/usb/cairn, read_data: true }\n", "/etc/cairn/c.yaml");
        Assert.Equal(2, c.Copies.Count);
        var s3 = c.Copies[0];
        Assert.Equal("s3://other-region/cairn", s3.Repository);
        Assert.Equal(TimeSpan.FromHours(36), s3.MaxAge);
        Assert.Equal("eu-west-1", s3.S3!.Region);
        Assert.Equal("/etc/cairn/copy.credentials", s3.S3.CredentialsFile);
        Assert.False(s3.ReadData);
        var usb = c.Copies[1];
        Assert.Null(usb.S3);
        Assert.Null(usb.Job);
        Assert.True(usb.ReadData);
        Assert.Equal(CopyConfig.DefaultMaxAge, usb.MaxAge);
        var job = Assert.Single(c.Schedules);
        Assert.Equal(("copy", "s3://other-region/cairn", "copy/s3://other-region/cairn"), (job.Job, job.CopyTarget, job.Key));
        Assert.True(job.IsRun(new JsonObject { ["details"] = new JsonObject { ["target"] = "s3://other-region/cairn" } }));
        Assert.False(job.IsRun(new JsonObject { ["details"] = new JsonObject { ["target"] = "/mnt/usb/cairn" } }));
    }

    [Theory]
    [InlineData("copies: { repository: /x }\n", "c.yaml:1: 'copies' must be a list")]
    [InlineData("copies:\n  - schedule: \"0 1 * * *\"\n", "copies[0]: 'repository' is required")]
    [InlineData("repository: /srv/cairn\ncopies:\n  - repository: /srv/cairn\n", "copies[0].repository is the primary repository itself")]
    [InlineData("copies:\n  - repository: /a\n  - repository: /a\n", "copies[1].repository /a is listed twice")]
    [InlineData("copies:\n  - repository: /a\n    schedule: \"every night\"\n", "c.yaml:3: copies[0].schedule: 'every night' is not a cron expression")]
    [InlineData("copies:\n  - repository: /a\n    max_age: soon\n", "'copies[0].max_age' must be a duration")]
    [InlineData("copies:\n  - repository: /a\n    keep: 3\n", "unknown key 'copies[0].keep'")]
    [InlineData("copies:\n  - repository: /a\n    s3: { secret_access_key: x }\n", "copies[0].s3.secret_access_key: credentials never go in cairn.yaml")]
    [InlineData("copies:\n  - repository: ftp://host/x\n", "copies[0].repository: repository location ftp://host/x: the scheme 'ftp://' is not supported")]
    [InlineData("databases:\n  app: { connection: \"host=/tmp\" }\ncopies:\n  - repository: /a\n    databases: [billing]\n", "c.yaml:5: copies[0].databases: 'billing' is not a database of this file (databases: app); name one of them or remove it")]
    [InlineData("databases:\n  app: { connection: \"host=/tmp\" }\ncopies:\n  - repository: /a\n    databases: [app, app]\n", "copies[0].databases names a database twice")]
    [InlineData("copies:\n  - repository: /a\n    databases: app\n", "c.yaml:3: copies[0].databases must be a non-empty list of databases named under databases:")]
    [InlineData("copies:\n  - repository: /a\n    since: last tuesday\n", "c.yaml:3: copies[0].since: since 'last tuesday' is neither a date/time (2026-11-01, 2026-11-01T12:00:00Z) nor a duration back from now (7d, 12h, 30m)")]
    public void A_bad_copies_entry_is_refused_at_load_naming_the_line_and_the_fix(string yaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse(yaml, "c.yaml"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_copies_entry_takes_databases_since_and_a_passphrase_file_for_a_copy_with_keys_of_its_own()
    {
        var c = CairnConfig.Parse("databases:\n  app: { connection: \"host=/tmp\" }\n  crm: { connection: \"host=/tmp\" }\ncopies:\n  - repository: s3://offsite/cairn\n    databases: [app]\n    since: 30d\n    passphrase_file: offsite.pass\n  - repository: /mnt/usb\n    since: 2026-11-01\n", "/etc/cairn/c.yaml");
        Assert.Equal(["app"], c.Copies[0].Databases);
        Assert.Equal("30d", c.Copies[0].Since);
        Assert.Equal("/etc/cairn/offsite.pass", c.Copies[0].PassphraseFile);
        Assert.Empty(c.Copies[1].Databases);
        Assert.Null(c.Copies[1].PassphraseFile);
        Assert.Equal(DateTimeOffset.Parse("2026-11-01T00:00:00Z", CultureInfo.InvariantCulture), Cairn.Operations.Copying.CopyFilter.SinceTime(c.Copies[1].Since!, Now));
        Assert.Equal(Now - TimeSpan.FromDays(30), Cairn.Operations.Copying.CopyFilter.SinceTime(c.Copies[0].Since!, Now));
    }

    [Fact]
    public void A_copy_of_some_databases_lags_only_behind_their_backups()
    {
        var copies = CairnConfig.Parse("databases:\n  app: { connection: \"host=/tmp\" }\n  crm: { connection: \"host=/tmp\" }\ncopies:\n  - { repository: /mnt/usb, max_age: 1d, databases: [app] }\n", "c.yaml").Copies;
        var crm = Entry(2, "backup", "pass", TimeSpan.FromDays(3));
        crm.Record!["database"] = "crm";
        var app = Entry(1, "backup", "pass", TimeSpan.FromDays(4));
        app.Record!["database"] = "app";
        // Copied after app's backup; crm's later backup is not this copy's business.
        List<LogEntry> entries = [app, Entry(3, "copy", "pass", TimeSpan.FromDays(3.5), "/mnt/usb"), crm];
        Assert.Equal(HealthState.Ok, Assert.Single(CopyHealth.Evaluate(entries, copies, Now)).State);
        var later = Entry(4, "backup", "pass", TimeSpan.FromDays(2));
        later.Record!["database"] = "app";
        entries.Add(later);
        Assert.Equal(HealthState.Critical, Assert.Single(CopyHealth.Evaluate(entries, copies, Now)).State);
    }

    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-12-05T12:00:00Z", CultureInfo.InvariantCulture);

    private static LogEntry Entry(long seq, string kind, string result, TimeSpan ago, string? target = null, string? error = null)
    {
        var details = new JsonObject();
        if (target is not null)
        {
            details["target"] = target;
        }
        if (error is not null)
        {
            details["error"] = error;
        }
        return new LogEntry(seq, new byte[32], null, new JsonObject { ["kind"] = kind, ["result"] = result, ["time"] = (Now - ago).ToString("O", CultureInfo.InvariantCulture), ["details"] = details }, "t");
    }

    [Fact]
    public void Check_finds_a_copy_critical_when_a_backup_older_than_max_age_is_not_in_it()
    {
        var copies = CairnConfig.Parse("copies:\n  - { repository: s3://b2-copy/cairn, max_age: 1d }\n", "c.yaml").Copies;
        // Copied after the backup of 30 h ago; a backup of 26 h ago is not copied: the copy lags 26 h, above 1 d.
        List<LogEntry> entries = [Entry(1, "backup", "pass", TimeSpan.FromHours(30)), Entry(2, "copy", "pass", TimeSpan.FromHours(29), "s3://b2-copy/cairn"), Entry(3, "backup", "pass", TimeSpan.FromHours(26)),
            Entry(4, "copy", "error", TimeSpan.FromHours(2), "s3://b2-copy/cairn", "AccessDenied")];
        var f = Assert.Single(CopyHealth.Evaluate(entries, copies, Now));
        Assert.Equal(HealthState.Critical, f.State);
        Assert.Contains("lags 26h behind the primary", f.Message, StringComparison.Ordinal);
        Assert.Contains("did not pass: AccessDenied", f.Message, StringComparison.Ordinal);

        // Within max_age the failed run is a warning; copied since, it is OK; never copied, the oldest backup counts.
        entries[2] = Entry(3, "backup", "pass", TimeSpan.FromHours(20));
        Assert.Equal(HealthState.Warning, Assert.Single(CopyHealth.Evaluate(entries, copies, Now)).State);
        entries.Add(Entry(5, "copy", "pass", TimeSpan.FromHours(1), "s3://b2-copy/cairn"));
        Assert.Equal(HealthState.Ok, Assert.Single(CopyHealth.Evaluate(entries, copies, Now)).State);
        var never = Assert.Single(CopyHealth.Evaluate([Entry(1, "backup", "pass", TimeSpan.FromDays(3)), Entry(2, "copy", "pass", TimeSpan.FromHours(1), "/elsewhere")], copies, Now));
        Assert.Equal(HealthState.Critical, never.State);
        Assert.Contains("never copied", never.Message, StringComparison.Ordinal);
    }
}
