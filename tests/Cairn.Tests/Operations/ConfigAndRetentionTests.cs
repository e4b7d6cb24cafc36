using Cairn.Operations.Configuration;
using Cairn.Operations.Retention;

namespace Cairn.Tests.Operations;

public class ConfigTests
{
    [Fact]
    public void Parses_the_documented_shape()
    {
        var c = CairnConfig.Parse("""
            repository: /var/lib/cairn/repo
            evidence: { path: /var/lib/cairn/evidence, mirror_table: true }
            databases:
              app:
                connection: "postgresql://cairn_backup@db.internal:5432/app"
                password_file: /etc/cairn/app.pgpass-password
                retention: { keep_last: 7, keep_daily: 30, keep_weekly: 8, keep_monthly: 12, keep_within: 30d }
            """, "/etc/cairn/cairn.yaml");
        Assert.Equal("/var/lib/cairn/repo", c.Repository);
        Assert.True(c.Evidence.MirrorTable);
        var app = c.Databases["app"];
        Assert.Equal("/etc/cairn/app.pgpass-password", app.PasswordFile);
        Assert.Equal(TimeSpan.FromDays(30), app.Retention.KeepWithin);
        Assert.Equal(12, app.Retention.KeepMonthly);
    }

    [Fact]
    public void Compression_is_set_at_the_top_and_per_database_and_defaults_to_auto()
    {
        var c = CairnConfig.Parse("""
            compression: zstd:4
            databases:
              app:
                connection: "postgresql://cairn_backup@db.internal:5432/app"
                compression: zstd:9
              other:
                connection: "postgresql://cairn_backup@db.internal:5432/other"
            """, "/etc/cairn/cairn.yaml");
        Assert.Equal("zstd:9", c.CompressionOf("app").ToString());
        Assert.Equal("zstd:4", c.CompressionOf("other").ToString());
        Assert.Equal("zstd:4", c.CompressionOf(null).ToString()); // repo put
        Assert.Equal("zstd:4", c.CompressionOf("not-configured").ToString());
        var plain = CairnConfig.Parse("databases:\n  app:\n    connection: x\n", "cairn.yaml");
        Assert.True(plain.CompressionOf("app").IsAuto);
        Assert.True(CairnConfig.Empty.Compression.IsAuto);
        Assert.Equal("zstd:auto", CairnConfig.Parse("compression: zstd:auto\n", "cairn.yaml").Compression.ToString());
    }

    [Theory]
    [InlineData("compression: zstd:0\n", "cairn.yaml:1", "'zstd:0'")]
    [InlineData("compression: zstd:23\n", "cairn.yaml:1", "'zstd:23'")]
    [InlineData("compression: lz4\n", "cairn.yaml:1", "'lz4'")]
    [InlineData("compression: [zstd:3]\n", "cairn.yaml:1", "'compression' must be a single value")]
    [InlineData("databases:\n  app:\n    connection: x\n    compression: zstd:fast\n", "cairn.yaml:4", "databases.app.compression must be zstd:auto")]
    [InlineData("databases:\n  app:\n    connection: x\n    compression: \"zstd:3\\u0007\"\n", "cairn.yaml:4", "zstd:3\\x07")]
    public void A_bad_compression_is_refused_naming_the_line_and_the_choices(string yaml, string where, string what)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse(yaml, "cairn.yaml"));
        Assert.Contains(where, e.Message, StringComparison.Ordinal);
        Assert.Contains(what, e.Message, StringComparison.Ordinal);
        if (!what.Contains("single value", StringComparison.Ordinal))
        {
            Assert.Contains("zstd:auto (the default", e.Message, StringComparison.Ordinal);
            Assert.Contains("zstd:N with a level N from 1 to 19", e.Message, StringComparison.Ordinal);
            Assert.Contains("zstd:-1 to zstd:-5", e.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("databases:\n  app:\n    conection: x\n", "cairn.yaml:3", "databases.app.conection")]
    [InlineData("databases:\n  app:\n    connection: x\n    retention: { keep_last: seven }\n", "cairn.yaml:4", "keep_last")]
    [InlineData("databases:\n  app:\n    connection: x\n    retention: { keep_within: 30 days }\n", "cairn.yaml:4", "keep_within")]
    [InlineData("repositry: /x\n", "cairn.yaml:1", "repositry")]
    [InlineData("databases:\n  app: {}\n", "cairn.yaml:2", "connection")]
    [InlineData("databases: [\n", "cairn.yaml:", "invalid YAML")]
    public void Errors_name_the_file_line_and_key(string yaml, string where, string key)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse(yaml, "cairn.yaml"));
        Assert.Contains(where, e.Message, StringComparison.Ordinal);
        Assert.Contains(key, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_password_inside_the_connection_string_is_refused()
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: \"postgresql://u:hunter2@h/db\"\n", "c.yaml"));
        Assert.Contains("password_file", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", e.Message, StringComparison.Ordinal);
    }
}

public class RetentionPlannerTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-12-01T12:30:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static List<(string, DateTimeOffset)> Daily(int days, int perDay = 1) =>
        [.. Enumerable.Range(0, days).SelectMany(d => Enumerable.Range(0, perDay).Select(i => ($"s{d:000}-{i}", Now.AddDays(-d).AddHours(-i))))];

    [Fact]
    public void Keep_last_keeps_exactly_the_newest_n()
    {
        var plan = RetentionPlanner.Plan(Daily(10), new RetentionPolicy { KeepLast = 3 });
        Assert.Equal(["s000-0", "s001-0", "s002-0"], plan.Where(p => p.Keep).Select(p => p.Id));
    }

    [Fact]
    public void Keep_daily_keeps_the_newest_of_each_day()
    {
        var plan = RetentionPlanner.Plan(Daily(5, perDay: 3), new RetentionPolicy { KeepDaily = 3 });
        var kept = plan.Where(p => p.Keep).Select(p => p.Id).ToList();
        Assert.Equal(3, kept.Count);
        Assert.All(kept, k => Assert.EndsWith("-0", k, StringComparison.Ordinal));
    }

    [Fact]
    public void Keep_within_counts_back_from_the_newest_backup_not_from_now()
    {
        var old = Daily(40).Select(b => (b.Item1, b.Item2.AddDays(-100))).ToList();
        var plan = RetentionPlanner.Plan(old, new RetentionPolicy { KeepWithin = TimeSpan.FromDays(30) });
        // 31 days inside the window (both ends) and the base before it.
        Assert.Equal(32, plan.Count(p => p.Keep));
    }

    [Fact]
    public void Keep_within_with_every_backup_inside_the_window_keeps_them_all_and_names_no_base()
    {
        // The demo's case: three backups minutes apart and a window of days (this threw on a null key before).
        var backups = Enumerable.Range(0, 3).Select(i => ($"m{i}", Now.AddMinutes(-5 * i))).ToList();
        var plan = RetentionPlanner.Plan(backups, new RetentionPolicy { KeepWithin = TimeSpan.FromDays(7) });
        Assert.Equal(["m0", "m1", "m2"], plan.Where(p => p.Keep).Select(p => p.Id));
        Assert.DoesNotContain(plan.SelectMany(p => p.Reasons), r => r.StartsWith("base of", StringComparison.Ordinal));
    }

    [Fact]
    public void Keep_within_keeps_the_newest_backup_before_the_window_start_and_nothing_older()
    {
        // Backups every 10 days; a 25-day window from the newest starts between day 20 and day 30.
        var backups = Enumerable.Range(0, 6).Select(i => ($"b{i}", Now.AddDays(-10 * i))).ToList();
        var plan = RetentionPlanner.Plan(backups, new RetentionPolicy { KeepWithin = TimeSpan.FromDays(25) });
        Assert.Equal(["b0", "b1", "b2", "b3"], plan.Where(p => p.Keep).Select(p => p.Id));
        Assert.Contains(plan.Single(p => p.Id == "b3").Reasons, r => r.StartsWith("base of the 25d window", StringComparison.Ordinal));
    }

    [Fact]
    public void Weekly_and_monthly_buckets_and_reasons()
    {
        var plan = RetentionPlanner.Plan(Daily(120), new RetentionPolicy { KeepWeekly = 4, KeepMonthly = 3 });
        Assert.InRange(plan.Count(p => p.Keep), 4, 7);
        Assert.Contains(plan, p => p.Reasons.Any(r => r.StartsWith("monthly", StringComparison.Ordinal)));
        Assert.Contains(plan, p => p.Reasons.Any(r => r.StartsWith("weekly", StringComparison.Ordinal)));
    }

    [Fact]
    public void The_newest_backup_always_stays_and_no_policy_keeps_all()
    {
        var plan = RetentionPlanner.Plan(Daily(3), new RetentionPolicy { KeepMonthly = 0, KeepLast = 0, KeepWithin = TimeSpan.Zero });
        Assert.True(plan[0].Keep);
        Assert.All(RetentionPlanner.Plan(Daily(3), new RetentionPolicy()), p => Assert.True(p.Keep));
    }
}

public class ConfigRefusalTests
{
    [Fact]
    public void Physical_section_of_a_database_is_refused_naming_file_line_and_what_to_use()
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: x\n    physical: { jobs: 4 }\n", "c.yaml"));
        Assert.Contains("c.yaml:4", e.Message, StringComparison.Ordinal);
        Assert.Contains("'databases.app.physical' is not supported", e.Message, StringComparison.Ordinal);
        Assert.Contains("data_directory", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Daemon_section_holds_listen_and_tick_and_bad_values_name_file_line_and_key()
    {
        var c = CairnConfig.Parse("repository: /r\ndaemon:\n  listen: 0.0.0.0:9190\n  tick: 10s\n", "c.yaml");
        Assert.Equal("0.0.0.0:9190", c.Daemon.Listen);
        Assert.Equal(TimeSpan.FromSeconds(10), c.Daemon.TickOrDefault);
        Assert.Equal(TimeSpan.FromSeconds(5), CairnConfig.Parse("repository: /r\n", "c.yaml").Daemon.TickOrDefault);
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("repository: /r\ndaemon:\n  listen: nowhere\n", "c.yaml"));
        Assert.Contains("c.yaml:3: daemon.listen must be HOST:PORT", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("daemon:\n  port: 1\n", "c.yaml"));
        Assert.Contains("daemon.port", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Physical_jobs_verify_with_a_subset_and_refused_jobs_parse_or_fail_with_the_reason()
    {
        var c = CairnConfig.Parse("databases:\n  app:\n    connection: x\n    schedule:\n      backup_physical: \"0 1 * * *\"\n      drill_physical: \"0 2 * * 0\"\n      verify: { cron: \"0 4 * * *\", read_data_subset: 10% }\n", "c.yaml");
        var jobs = c.Databases["app"].Schedule;
        Assert.Equal(["backup_physical", "drill_physical", "verify"], jobs.Select(j => j.Job));
        Assert.Equal(0.10, jobs[2].ReadDataSubset, 6);
        Assert.Equal("backup", jobs[0].EvidenceKind);
        var physicalRecord = new System.Text.Json.Nodes.JsonObject { ["details"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "physical" } };
        Assert.True(jobs[0].IsRun(physicalRecord));
        Assert.False((jobs[0] with { Job = "backup" }).IsRun(physicalRecord)); // a physical backup is not a run of the logical backup job
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: x\n    schedule:\n      copy: \"0 5 * * *\"\n", "c.yaml"));
        Assert.Contains("c.yaml:5: databases.app.schedule.copy cannot be scheduled: a copy is of the whole repository, not of one database: schedule it under copies:", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: x\n    schedule:\n      verify: { cron: \"0 4 * * *\", read_data_subset: 0% }\n", "c.yaml"));
        Assert.Contains("read_data_subset must be a percentage", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Checks_schedules_thresholds_and_alerts_are_typed_at_load()
    {
        var c = CairnConfig.Parse("""
            databases:
              app:
                connection: x
                checks:
                  - tables_present: [public.t]
                  - sql: { name: n, query: "SELECT 1", expect: ">= 1" }
                schedule: { backup: "0 0 * * *" }
                monitoring: { backup_warn_after: 2h, backup_critical_after: 3h }
            alerts:
              - { type: slack, url_file: /etc/cairn/slack.url }
            """, "c.yaml");
        var app = c.Databases["app"];
        Assert.Equal(["tables_present", "n"], app.Checks.Select(x => x.Name));
        Assert.Equal("backup", Assert.Single(c.Schedules).Job);
        Assert.Equal(TimeSpan.FromHours(2), app.Monitoring.BackupWarn);
        Assert.Equal(Cairn.Operations.Monitoring.Thresholds.Default, c.ThresholdsOf("unknown"));
        Assert.Equal("slack", Assert.Single(c.Alerts).Type);
    }

    [Fact]
    public void A_repository_url_stays_as_written_so_its_scheme_can_be_judged()
    {
        Assert.Equal("gs://bucket/x", CairnConfig.Parse("repository: gs://bucket/x\n", "/etc/cairn/c.yaml").Repository);
        Assert.Equal("/etc/cairn/repo", CairnConfig.Parse("repository: repo\n", "/etc/cairn/c.yaml").Repository);
    }
}
