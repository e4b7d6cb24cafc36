using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Evidence.Canonical;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Operations.Configuration;
using Cairn.Operations.Reports;

namespace Cairn.Tests.Reports;

/// <summary>The report's computation and renderers over records made here (no server, no log).</summary>
public class ReportRenderingTests
{
    private static readonly DateTimeOffset From = DateTimeOffset.Parse("2026-11-01T00:00:00Z", CultureInfo.InvariantCulture);

    private static LogEntry Entry(long seq, string time, string kind, string result, string? database, JsonObject details)
    {
        var record = new JsonObject { ["seq"] = seq, ["time"] = time, ["kind"] = kind, ["result"] = result, ["details"] = details };
        if (database is not null)
        {
            record["database"] = database;
        }
        var line = JsonCanonicalizer.CanonicalString(record);
        return new LogEntry(seq, MerkleTree.LeafHash(System.Text.Encoding.UTF8.GetBytes(line)), line, record, "test");
    }

    private static ComplianceReport Hostile()
    {
        const string name = "<script>alert(1)</script>";
        List<LogEntry> log =
        [
            Entry(0, "2026-11-02T00:30:00.000Z", "backup", "pass", name, new JsonObject { ["type"] = "logical", ["rows"] = 3 }),
            Entry(1, "2026-11-02T01:00:00.000Z", "alert", "pass", name, new JsonObject { ["check"] = "<img src=x onerror=alert(2)>", ["state"] = "critical", ["reminder"] = "no" }),
            Entry(2, "2026-11-03T01:00:00.000Z", "key-change", "pass", null, new JsonObject { ["action"] = "add", ["key"] = "</td></tr></table><script>alert(3)</script>" }),
            Entry(3, "2026-11-04T01:00:00.000Z", "drill", "fail", name, new JsonObject { ["type"] = "logical", ["rto_ms"] = 4000, ["data_age_s"] = 100 }),
        ];
        var inputs = new ReportInputs(From, From.AddMonths(1), From.AddMonths(1), null, log.Count, []);
        return ReportBuilder.Build(log, inputs, "cairn.evidence/<b>host</b>", From.AddMonths(1), ControlMapping.Load());
    }

    [Fact]
    public void Html_and_Markdown_escape_every_text_that_comes_from_a_record()
    {
        var report = Hostile();
        var html = ReportRenderer.Render(report, ReportFormat.Html);
        Assert.DoesNotContain("<script>alert", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<img", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>host", html, StringComparison.Ordinal);
        Assert.Contains("Database &lt;script&gt;alert(1)&lt;/script&gt;", html, StringComparison.Ordinal);
        Assert.Contains("&lt;img src=x onerror=alert(2)&gt;", html, StringComparison.Ordinal);
        // Only the report's own two script elements: the data block and the sorter.
        Assert.Equal(2, html.Split("<script", StringSplitOptions.None).Length - 1);
        var md = ReportRenderer.Render(report, ReportFormat.Md);
        Assert.DoesNotContain("<script>", md, StringComparison.Ordinal);
        Assert.DoesNotContain("<img", md, StringComparison.Ordinal);
        // The data each carries is the model, unchanged.
        Assert.Equal(ReportSerializer.ToJson(report), ReportSerializer.ToJson(ReportRenderer.Extract(html).Report));
        Assert.Equal(ReportSerializer.ToJson(report), ReportSerializer.ToJson(ReportRenderer.Extract(md).Report));
    }

    [Fact]
    public void The_control_mapping_covers_each_framework_the_report_maps_to()
    {
        var controls = ControlMapping.Load();
        foreach (var control in new[] { "A1.2", "A1.3", "CC7.4", "CC7.5", "A.8.13", "A.5.29", "A.5.30", "164.308(a)(7)(ii)(A)", "164.308(a)(7)(ii)(B)", "164.308(a)(7)(ii)(D)", "Art. 32(1)(c)", "Art. 32(1)(d)", "Art. 17", "12.10.1", "10.5" })
        {
            Assert.Contains(controls, c => c.Control == control);
        }
        var sections = new[] { "backups", "freshness", "wal", "drills", "checks", "verifications", "alerts", "changes", "cleanups", "erasures", "incidents", "proof" };
        Assert.All(controls, c => Assert.Contains(c.Section, sections));
        var html = ReportRenderer.Render(Hostile(), ReportFormat.Html);
        Assert.Contains("<td>164.308(a)(7)(ii)(D)</td>", html, StringComparison.Ordinal);
    }

    [Fact]
    public void Targets_and_the_reports_section_are_typed_config_and_bad_values_name_the_key()
    {
        var c = CairnConfig.Parse("reports: { dir: out, format: md }\ndatabases:\n  app:\n    connection: \"host=/tmp dbname=app\"\n    rto_target: 15m\n    rpo_target: 26h\n", "/etc/cairn/cairn.yaml");
        Assert.Equal(TimeSpan.FromMinutes(15), c.Databases["app"].RtoTarget);
        Assert.Equal(TimeSpan.FromHours(26), c.Databases["app"].RpoTarget);
        Assert.Equal("/etc/cairn/out", c.Reports.Directory);
        Assert.Equal("md", c.Reports.Format);
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/tmp dbname=app\"\n    rto_target: soon\n", "c.yaml"));
        Assert.Contains("databases.app.rto_target", e.Message, StringComparison.Ordinal);
        Assert.Throws<ConfigException>(() => CairnConfig.Parse("reports: { format: pdf }\n", "c.yaml"));
    }

    [Fact]
    public void The_report_job_writes_last_month_into_the_reports_folder_and_check_warns_only_when_that_report_is_missing()
    {
        var config = CairnConfig.Parse("reports: { dir: /srv/reports }\ndatabases:\n  app:\n    connection: \"host=/tmp dbname=app\"\n    schedule: { report: \"0 6 1 * *\" }\n  other:\n    connection: \"host=/tmp dbname=other\"\n", "/etc/cairn/cairn.yaml");
        var now = DateTimeOffset.Parse("2026-12-01T08:00:00Z", CultureInfo.InvariantCulture);
        var job = ReportSchedule.JobRequest(config, "app", now);
        Assert.Equal((From, From.AddMonths(1)), (job.From, job.Until));
        Assert.Equal("/srv/reports/cairn-report-app-2026-11.html", job.Out);
        Assert.Equal(ReportFormat.Html, job.Format);

        string[] both = ["app", "other"];
        var missing = Assert.Single(ReportSchedule.MissingReports([], config, both, now));
        Assert.Equal(("app", Cairn.Operations.Monitoring.HealthState.Warning), (missing.Database, missing.State));
        Assert.Empty(ReportSchedule.MissingReports([], config, both, DateTimeOffset.Parse("2026-12-01T06:30:00Z", CultureInfo.InvariantCulture)));
        var recorded = Entry(9, "2026-12-01T06:00:05.000Z", "report", "pass", "app", new JsonObject { ["from"] = "2026-11-01T00:00:00.0000000+00:00", ["until"] = "2026-12-01T00:00:00.0000000+00:00" });
        Assert.Equal(Cairn.Operations.Monitoring.HealthState.Ok, Assert.Single(ReportSchedule.MissingReports([recorded], config, both, now)).State);
        var october = Entry(9, "2026-11-01T06:00:05.000Z", "report", "pass", "app", new JsonObject { ["from"] = "2026-10-01T00:00:00.0000000+00:00" });
        Assert.Equal(Cairn.Operations.Monitoring.HealthState.Warning, Assert.Single(ReportSchedule.MissingReports([october], config, both, now)).State);

        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/tmp dbname=app\"\n    schedule: { report: \"0 6 1 * *\" }\n", "c.yaml"));
        Assert.Contains("reports.dir", e.Message, StringComparison.Ordinal);
    }
}
