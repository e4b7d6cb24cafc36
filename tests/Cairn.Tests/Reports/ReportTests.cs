using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Reports;

/// <summary>
/// A month of history made by real commands on a real server, driven by a fake clock; then the report of that month
/// is compared with what the evidence log holds, rendered in Chromium, verified, and verified again after an edit.
/// </summary>
public class ReportTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private static readonly DateTimeOffset November = DateTimeOffset.Parse("2026-11-01T00:00:00Z", CultureInfo.InvariantCulture);

    private static DateTimeOffset At(int day, int hour, int minute = 0) => November.AddDays(day - 1).AddHours(hour).AddMinutes(minute);

    [Fact]
    public async Task A_month_of_history_gives_a_report_whose_figures_equal_the_evidence_that_renders_in_Chromium_and_that_verify_rejects_after_an_edit()
    {
        var db = await pg.CreateDatabaseAsync("report", DemoSchema.Sql(50));
        using var dir = new TempDir();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-10-31T12:00:00Z", CultureInfo.InvariantCulture));
        var cli = await CliRunner.WithRepositoryAsync(dir, clock);
        var config = $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                schedule:
                  backup: "30 0 * * *"
                rto_target: 30s
                rpo_target: 3d
                checks:
                  - row_counts: {"{"} equal_to: fingerprint, optional: true {"}"}
                  - sql: {"{"} name: profile_rows, query: "SELECT count(*) FROM profiles", expect: ">= 1" {"}"}
            alerts:
              - {"{"} type: command, run: "cat > /dev/null" {"}"}
            """;
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), config);
        // The same, with a check that cannot pass: the drill of the 21st fails.
        await File.WriteAllTextAsync(dir.File("failing.yaml"), config.Replace("expect: \">= 1\"", "expect: \"= 0\"", StringComparison.Ordinal));
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        cli.Env["CAIRN_STATE_FILE"] = dir.File("alerts.json");

        async Task Run(DateTimeOffset at, int? expect, params string[] args)
        {
            clock.SetUtcNow(at);
            var (code, o, e) = await cli.RunAsync(args);
            Assert.True(expect is null || code == expect, $"{string.Join(' ', args)} at {at:O}: exit {code}\n{o}\n{e}");
        }

        await Run(clock.GetUtcNow(), 0, "backup", "app");
        for (var day = 1; day <= 30; day++)
        {
            if (day is not (10 or 20))
            {
                await Run(At(day, 0, 30), 0, "backup", "app");
            }
            switch (day)
            {
                case 3 or 12:
                    await Run(At(day, 6), 0, "drill", "app");
                    break;
                case 21:
                    await Run(At(day, 6), 12, "--config", dir.File("failing.yaml"), "drill", "app");
                    break;
                case 10:
                    // 35 h after the last backup: the backup alert is raised ...
                    await Run(At(day, 12), null, "check", "app");
                    break;
                case 11:
                    // ... and resolved once the next backup ran.
                    await Run(At(day, 1), null, "check", "app");
                    break;
                case 15:
                    await Run(At(day, 7), 0, "verify", "app", "--live");
                    break;
                case 25:
                    await Run(At(day, 8), 0, "verify", "--read-data-subset", "50%");
                    break;
            }
        }

        clock.SetUtcNow(DateTimeOffset.Parse("2026-12-01T08:00:00Z", CultureInfo.InvariantCulture));
        foreach (var format in new[] { "json", "md", "html" })
        {
            var (code, o, e) = await cli.RunAsync("report", "--month", "2026-11", "--format", format, "--out", dir.File($"report.{format}"));
            Assert.True(code == 0, o + e);
        }

        // The figures, against the records themselves.
        var records = ReadLog(dir.File("repo-evidence"));
        var nov = records.Where(r => Time(r) >= November && Time(r) < November.AddMonths(1)).ToList();
        var report = JsonNode.Parse(await File.ReadAllTextAsync(dir.File("report.json")))!.AsObject();
        var app = report["databases"]!.AsArray().Single(d => d!["name"]!.GetValue<string>() == "app")!;
        var backups = nov.Where(r => Kind(r) == "backup" && Result(r) == "pass").ToList();
        Assert.Equal(28, backups.Count);
        Assert.Equal(28, app["backups"]!["taken"]!.GetValue<long>());
        Assert.Equal(Seqs(backups), Longs(app["backups"]!["taken_seqs"]));
        Assert.Equal(30, app["backups"]!["expected"]!.GetValue<long>());
        Assert.Equal(0, app["backups"]!["failed"]!.GetValue<long>());
        Assert.Equal(["2026-11-10", "2026-11-20"], app["backups"]!["days_without"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal((long)TimeSpan.FromHours(48).TotalSeconds, app["backups"]!["longest_gap_seconds"]!.GetValue<long>());
        // Two stretches of 24 h over the 24 h threshold in a 30-day month.
        Assert.Equal(Math.Round(100 * (1 - 48.0 / 720), 2), app["freshness"]!["sla_percent"]!.GetValue<double>());

        var drills = nov.Where(r => Kind(r) == "drill").ToList();
        Assert.Equal(3, drills.Count);
        Assert.Equal(3, app["drills"]!["run"]!.GetValue<long>());
        Assert.Equal(1, app["drills"]!["failed"]!.GetValue<long>());
        Assert.Equal(drills.Count(r => Result(r) == "fail"), app["drills"]!["failed"]!.GetValue<long>());
        Assert.Equal(Seqs(drills), app["drills"]!["rows"]!.AsArray().Select(r => r!["seq"]!.GetValue<long>()).ToList());
        var rtos = drills.Select(r => r["details"]!["rto_ms"]!.GetValue<long>()).Order().ToList();
        Assert.Equal(rtos[1], app["drills"]!["rto"]!["median"]!.GetValue<long>());
        Assert.Equal(rtos[2], app["drills"]!["rto"]!["worst"]!.GetValue<long>());
        Assert.Equal(30, app["drills"]!["rto_target_seconds"]!.GetValue<long>());
        var sqlChecks = app["checks"]!.AsArray().Single(c => c!["source"]!.GetValue<string>() == "drill" && c["kind"]!.GetValue<string>() == "sql")!;
        Assert.Equal(2, sqlChecks["pass"]!.GetValue<long>());
        Assert.Equal(1, sqlChecks["fail"]!.GetValue<long>());
        Assert.Contains(app["checks"]!.AsArray(), c => c!["source"]!.GetValue<string>() == "verify --live");

        var alert = report["alerts"]!.AsArray().Single(a => a!["check"]!.GetValue<string>() == "backup")!;
        Assert.Equal("critical", alert["state"]!.GetValue<string>());
        Assert.Equal((long)(At(11, 1) - At(10, 12)).TotalSeconds, alert["seconds_to_resolve"]!.GetValue<long>());
        Assert.Equal(Seqs(nov.Where(r => Kind(r) == "alert" && r["details"]!["check"]!.GetValue<string>() == "backup")), Longs(alert["seqs"]));
        Assert.Equal(1, report["verifications"]!["runs"]!.GetValue<long>());
        Assert.Equal(50.0, report["verifications"]!["expected_read_coverage_percent"]!.GetValue<double>());
        Assert.Equal("critical", report["status"]!["level"]!.GetValue<string>()); // the last drill failed
        Assert.Contains(report["controls"]!.AsArray(), c => c!["control"]!.GetValue<string>() == "164.308(a)(7)(ii)(D)");

        // The report and the read are on the record; the second report chains to the first.
        var after = ReadLog(dir.File("repo-evidence"));
        var reportRecords = after.Where(r => Kind(r) == "report").ToList();
        Assert.Equal(3, reportRecords.Count);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(dir.File("report.json")))), reportRecords[0]["details"]!["sha256"]!.GetValue<string>());
        Assert.Equal(3, after.Count(r => Kind(r) == "evidence-read" && r["details"]!["command"]!.GetValue<string>() == "report"));
        var md = await File.ReadAllTextAsync(dir.File("report.md"));
        Assert.Contains($"Previous report: record {reportRecords[0]["seq"]}", md, StringComparison.Ordinal);

        // Every format verifies against the log.
        foreach (var format in new[] { "json", "md", "html" })
        {
            var (code, o, e) = await cli.RunAsync("report", "verify", dir.File($"report.{format}"));
            Assert.True(code == 0, $"{format}: {o}{e}");
            Assert.StartsWith("OK:", o, StringComparison.Ordinal);
        }

        // An auditor's export of the month: verify.py checks the JSON report against its records without Cairn.
        var (ec, eo, ee) = await cli.RunAsync("evidence", "export", "--from", "2026-11-01", "--until", "2026-12-01", "--to", dir.File("export"));
        Assert.True(ec == 0, eo + ee);
        Assert.Equal(0, (await Python(dir.File("export"), dir.File("report.json"))).Code);
        var tampered = JsonNode.Parse(await File.ReadAllTextAsync(dir.File("report.json")))!.AsObject();
        tampered["databases"]![0]!["drills"]!["failed"] = 0;
        await File.WriteAllTextAsync(dir.File("tampered.json"), tampered.ToJsonString());
        var (pc, po) = await Python(dir.File("export"), dir.File("tampered.json"));
        Assert.Equal(1, pc);
        Assert.Contains("BAD report: app: drills failed", po, StringComparison.Ordinal);

        await RendersInChromiumAsync(dir, dir.File("report.html"));

        // A figure edited in the HTML no longer matches its data.
        var html = await File.ReadAllTextAsync(dir.File("report.html"));
        var edited = dir.File("edited.html");
        await File.WriteAllTextAsync(edited, html.Replace("<div class=\"v\">28</div>", "<div class=\"v\">30</div>", StringComparison.Ordinal));
        Assert.NotEqual(html, await File.ReadAllTextAsync(edited));
        var (c1, o1, _) = await cli.RunAsync("report", "verify", edited);
        Assert.Equal(5, c1);
        Assert.Contains("edited after", o1, StringComparison.Ordinal);

        // One record of the period edited in the log: the report no longer verifies.
        static bool Victim(string l) => l.Contains("\"kind\":\"backup\"", StringComparison.Ordinal) && l.Contains("\"time\":\"2026-11-15", StringComparison.Ordinal);
        var segment = Directory.GetFiles(Path.Combine(dir.File("repo-evidence"), "log"), "*.jsonl").Single(f => File.ReadAllLines(f).Any(Victim));
        var lines = await File.ReadAllLinesAsync(segment);
        var victim = Array.FindIndex(lines, Victim);
        lines[victim] = Regex.Replace(lines[victim], "\"rows\":\\d+", "\"rows\":999999");
        await File.WriteAllLinesAsync(segment, lines);
        foreach (var format in new[] { "json", "html" })
        {
            var (code, o, _) = await cli.RunAsync("report", "verify", dir.File($"report.{format}"));
            Assert.Equal(5, code);
            Assert.Contains("FAIL:", o, StringComparison.Ordinal);
        }
    }

    /// <summary>The report in a real browser: no console message, every chart laid out with a size, a PNG and a PDF with pages.</summary>
    private static async Task RendersInChromiumAsync(TempDir dir, string html)
    {
        // The detector must see an error when there is one (else a silent browser would pass anything).
        var broken = dir.File("broken.html");
        await File.WriteAllTextAsync(broken, "<html><body><script>noSuchFunction();</script></body></html>");
        Assert.NotEmpty((await Chromium.RenderAsync(broken, "--dump-dom")).ConsoleMessages);

        var png = dir.File("report.png");
        var shot = await Chromium.RenderAsync(html, $"--screenshot={png}");
        Assert.True(shot.ExitCode == 0, shot.Stderr);
        Assert.Empty(shot.ConsoleMessages);
        var pngBytes = await File.ReadAllBytesAsync(png);
        Assert.True(pngBytes.Length > 10_000 && pngBytes[1] == (byte)'P' && pngBytes[2] == (byte)'N' && pngBytes[3] == (byte)'G', $"screenshot of {pngBytes.Length} bytes");

        var pdf = dir.File("report.pdf");
        var print = await Chromium.RenderAsync(html, $"--print-to-pdf={pdf}", "--no-pdf-header-footer");
        Assert.True(print.ExitCode == 0, print.Stderr);
        Assert.Empty(print.ConsoleMessages);
        Assert.True(Chromium.PdfPages(await File.ReadAllBytesAsync(pdf)) > 0);

        // The charts after layout: a probe appended to a copy measures every chart's box once the page ran.
        var probe = dir.File("probe.html");
        await File.WriteAllTextAsync(probe, (await File.ReadAllTextAsync(html)).Replace("</body>",
            "<script>document.body.setAttribute('data-charts',Array.prototype.map.call(document.querySelectorAll('svg.chart'),function(s){var r=s.getBoundingClientRect();return s.id+':'+Math.round(r.width)+'x'+Math.round(r.height)+':'+s.querySelectorAll('rect').length;}).join(';'));</script></body>",
            StringComparison.Ordinal));
        var dom = await Chromium.RenderAsync(probe, "--dump-dom");
        Assert.Empty(dom.ConsoleMessages);
        var charts = Regex.Match(dom.Stdout, "data-charts=\"([^\"]*)\"").Groups[1].Value.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(c => c.Split(':')).ToDictionary(p => p[0], p => (Size: p[1], Rects: int.Parse(p[2], CultureInfo.InvariantCulture)));
        Assert.True(charts.ContainsKey("calendar-1") && charts.ContainsKey("rto-1") && charts.ContainsKey("age-1"), string.Join(";", charts.Keys));
        foreach (var (id, (size, rects)) in charts)
        {
            var wh = size.Split('x').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            Assert.True(wh[0] > 100 && wh[1] > 50, $"{id} is {size}");
            Assert.True(rects > 0, $"{id} draws nothing");
        }
        // 30 days plus the legend's three keys.
        Assert.Equal(33, charts["calendar-1"].Rects);

        // The screenshot the README shows is this test's (artifacts/report; copied to docs/ by hand when the look changes).
        var artifacts = Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "report");
        Directory.CreateDirectory(artifacts);
        File.Copy(png, Path.Combine(artifacts, "report.png"), overwrite: true);
        File.Copy(pdf, Path.Combine(artifacts, "report.pdf"), overwrite: true);
        File.Copy(html, Path.Combine(artifacts, "report.html"), overwrite: true);
    }

    private static async Task<(int Code, string Out)> Python(string folder, string report)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3") { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("verify.py");
        psi.ArgumentList.Add(report);
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = await p.StandardOutput.ReadToEndAsync();
        var e = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, o + e);
    }

    internal static List<JsonObject> ReadLog(string folder)
        => [.. Directory.GetFiles(Path.Combine(folder, "log"), "*.jsonl").Order(StringComparer.Ordinal)
            .SelectMany(File.ReadAllLines).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject())];

    private static DateTimeOffset Time(JsonObject r) => DateTimeOffset.Parse(r["time"]!.GetValue<string>(), CultureInfo.InvariantCulture);

    private static string Kind(JsonObject r) => r["kind"]!.GetValue<string>();

    private static string Result(JsonObject r) => r["result"]!.GetValue<string>();

    private static List<long> Seqs(IEnumerable<JsonObject> records) => [.. records.Select(r => r["seq"]!.GetValue<long>()).Order()];

    private static List<long> Longs(JsonNode? array) => [.. array!.AsArray().Select(x => x!.GetValue<long>())];
}

/// <summary>The runbook's table, honest: a row per backup, in its own schema, closed to the application roles.</summary>
public class VerificationMirrorTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    // The runbook's queries, verbatim but for the schema name in front of the table.
    private const string FreshnessQuery = """
        SELECT
          CASE
            WHEN last_backup < NOW() - INTERVAL '25 hours' THEN 'ALERT: Backup overdue'
            WHEN last_backup < NOW() - INTERVAL '1 day' THEN 'WARNING: Backup aging'
            ELSE 'OK: Backup current'
          END as backup_status,
          last_backup
        FROM (
          SELECT MAX(created_at) as last_backup
          FROM cairn.backup_verification_log
        ) b;
        """;

    private const string VerifiedQuery = """
        SELECT table_name, backup_status, last_verified
        FROM cairn.backup_verification_log
        WHERE verified_at > NOW() - INTERVAL '24 hours';
        """;

    [Fact]
    public async Task The_mirror_gets_a_row_per_backup_in_its_own_schema_closed_to_anon_and_authenticated_and_the_runbook_queries_tell_the_truth()
    {
        var db = await pg.CreateDatabaseAsync("mirror", DemoSchema.Sql(20));
        foreach (var role in new[] { "anon", "authenticated" })
        {
            await pg.Server.ExecuteAsync($"DO $$ BEGIN CREATE ROLE {role} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        }
        // As on Supabase: whatever this role creates is granted to the application roles by default.
        await pg.Server.ExecuteAsync("ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO anon, authenticated", db);
        await pg.Server.ExecuteAsync("ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO anon, authenticated", db);
        var now = TimeProvider.System.GetUtcNow(); // the server's NOW() is real time
        var clock = new FakeTimeProvider(now.AddDays(-2));
        using var setup = await AppSetup.ForDatabaseAsync(pg, db, """
                checks:
                  - tables_present: [public.profiles]
                  - sql: { name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" }
            """, clock, topLevel: "evidence: { mirror_table: true }\n");
        var (cli, dir, _) = setup;

        // A backup two days ago, then only verifications: the runbook's freshness query must not read them as backups.
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        clock.SetUtcNow(now);
        (code, _, err) = await cli.RunAsync("verify", "app", "--live", "--evidence-file", dir.File("evidence"));
        Assert.True(code == 0, err);
        Assert.Equal("ALERT: Backup overdue", await pg.Server.ScalarAsync<string>(FreshnessQuery, db));
        Assert.Equal(2L, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM ({VerifiedQuery.TrimEnd().TrimEnd(';')}) v", db));

        (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        Assert.Equal("OK: Backup current", await pg.Server.ScalarAsync<string>(FreshnessQuery, db));

        // One row per backup, each naming its evidence record.
        var seqs = ReportTests.ReadLog(dir.File("repo-evidence")).Where(r => r["kind"]!.GetValue<string>() == "backup").Select(r => r["seq"]!.GetValue<long>()).ToList();
        Assert.Equal(2, seqs.Count);
        Assert.Equal(string.Join(",", seqs), await pg.Server.ScalarAsync<string>("SELECT string_agg(evidence_seq::text, ',' ORDER BY evidence_seq) FROM cairn.backup_verification_log WHERE kind = 'backup' AND database_name = 'app'", db));

        // The runbook's monthly report pipeline, verbatim, finds the evidence file; its hash is the verify record's leaf hash.
        var verifyLine = Directory.GetFiles(Path.Combine(dir.File("repo-evidence"), "log"), "*.jsonl").SelectMany(File.ReadLines).Single(l => l.Contains("\"scope\":\"live\"", StringComparison.Ordinal));
        var leaf = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData([0, .. System.Text.Encoding.UTF8.GetBytes(verifyLine)]));
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/bash") { WorkingDirectory = dir.Path, RedirectStandardError = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("""
            find evidence/ -name "backup_verify_*.log" -newermt "30 days ago" | \
              xargs grep "Verification Hash" | \
              awk '{print $1, $3}' > monthly_backup_report.txt
            """);
        using (var bash = System.Diagnostics.Process.Start(psi)!)
        {
            await bash.WaitForExitAsync();
            Assert.True(bash.ExitCode == 0, await bash.StandardError.ReadToEndAsync());
        }
        var monthly = (await File.ReadAllTextAsync(dir.File("monthly_backup_report.txt"))).Trim();
        // grep names the file only when xargs gives it more than one: the runbook's pipeline prints "Verification HASH" for a single file.
        Assert.Matches(@"^(evidence/backup_verify_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_UTC\.log:)?Verification [0-9a-f]{64}$", monthly);
        Assert.Single(Directory.GetFiles(dir.File("evidence"), "backup_verify_*_UTC.log"));
        Assert.EndsWith(" " + leaf, monthly, StringComparison.Ordinal);

        Assert.True(await pg.Server.ScalarAsync<bool>("SELECT relrowsecurity FROM pg_class WHERE oid = 'cairn.backup_verification_log'::regclass", db));
        Assert.False(await pg.Server.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = 'backup_verification_log' AND c.relnamespace = 'public'::regnamespace)", db));
        foreach (var role in new[] { "anon", "authenticated" })
        {
            Assert.False(await pg.Server.ScalarAsync<bool>($"SELECT has_table_privilege('{role}', 'cairn.backup_verification_log', 'SELECT')", db));
            Assert.False(await pg.Server.ScalarAsync<bool>($"SELECT has_schema_privilege('{role}', 'cairn', 'USAGE')", db));
            var denied = await Assert.ThrowsAnyAsync<Npgsql.PostgresException>(() => pg.Server.ExecuteAsync($"SET ROLE {role}; SELECT * FROM cairn.backup_verification_log", db));
            Assert.Equal("42501", denied.SqlState);
        }
    }
}
