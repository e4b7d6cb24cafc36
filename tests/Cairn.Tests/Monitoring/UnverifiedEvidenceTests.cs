using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Monitoring;

/// <summary>Monitoring reads only records covered by a checkpoint that verifies with the log's key.</summary>
public class UnverifiedEvidenceTests
{
    /// <summary>A log whose signed records say: a backup two hours ago passed, a drill an hour ago failed (so CRITICAL).</summary>
    private static (EvidenceLog Log, TempDir Dir, CliRunner Cli) FailedDrillLog()
    {
        var dir = new TempDir();
        var clock = new FakeTimeProvider(TimeProvider.System.GetUtcNow().AddHours(-2));
        var log = new EvidenceLog(dir.File("evidence"), null, clock);
        log.Init("test.example/monitoring");
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app", ["details"] = new JsonObject { ["size_bytes"] = 100 } }, "t");
        clock.Advance(TimeSpan.FromHours(1));
        log.Append(new JsonObject { ["kind"] = "drill", ["result"] = "fail", ["database"] = "app", ["checks"] = new JsonArray(new JsonObject { ["name"] = "rows", ["result"] = "fail" }) }, "t");
        return (log, dir, new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder }));
    }

    private static string Line(long seq, string kind, string scope = "") =>
        $"{{\"database\":\"app\",\"details\":{{{(scope.Length > 0 ? $"\"scope\":\"{scope}\"" : "")}}},\"kind\":\"{kind}\",\"result\":\"pass\",\"seq\":{seq},\"time\":\"{TimeProvider.System.GetUtcNow().UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'}\"}}";

    [Fact]
    public async Task Check_of_a_signed_log_with_a_failed_drill_is_critical_and_the_evidence_finding_is_ok()
    {
        var (_, dir, cli) = FailedDrillLog();
        using var _d = dir;
        var (code, output, err) = await cli.RunAsync("check", "app", "--json");
        Assert.True(code == 2, output + err);
        var findings = JsonNode.Parse(output)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "drill" && f["state"]!.GetValue<string>() == "CRITICAL");
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "evidence" && f["state"]!.GetValue<string>() == "OK");
    }

    [Fact]
    public async Task Three_forged_pass_lines_without_a_checkpoint_leave_check_critical_and_are_not_counted()
    {
        var (log, dir, cli) = FailedDrillLog();
        using var _d = dir;
        var segment = Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();
        File.AppendAllText(segment, Line(2, "drill") + "\n" + Line(3, "backup") + "\n" + Line(4, "verify", "live") + "\n");

        var (code, output, err) = await cli.RunAsync("check", "app", "--json", "--prometheus-textfile", dir.File("cairn.prom"));
        Assert.True(code == 2, output + err);
        var findings = JsonNode.Parse(output)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "evidence" && f["state"]!.GetValue<string>() == "CRITICAL"
            && f["message"]!.GetValue<string>().Contains("not covered", StringComparison.Ordinal));
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "drill" && f["state"]!.GetValue<string>() == "CRITICAL");
        Assert.DoesNotContain(findings, f => f!["check"]!.GetValue<string>() == "verify_live");
        var prom = await File.ReadAllTextAsync(dir.File("cairn.prom"));
        Assert.Contains("cairn_backups_total{database=\"app\",result=\"pass\"} 1\n", prom, StringComparison.Ordinal);
        Assert.Contains("cairn_evidence_records_total 2\n", prom, StringComparison.Ordinal);
        Assert.Contains("cairn_evidence_verified 0\n", prom, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edited_record_makes_check_critical()
    {
        var (log, dir, cli) = FailedDrillLog();
        using var _d = dir;
        var segment = Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();
        File.WriteAllText(segment, File.ReadAllText(segment).Replace("\"result\":\"fail\"", "\"result\":\"pass\"", StringComparison.Ordinal));

        var (code, output, err) = await cli.RunAsync("check", "app", "--json");
        Assert.True(code == 2, output + err);
        var findings = JsonNode.Parse(output)!["findings"]!.AsArray();
        Assert.Contains(findings, f => f!["check"]!.GetValue<string>() == "evidence" && f["state"]!.GetValue<string>() == "CRITICAL");
        Assert.DoesNotContain(findings, f => f!["check"]!.GetValue<string>() == "drill" && f["state"]!.GetValue<string>() == "OK");
    }

    [Fact]
    public void Verified_read_returns_only_the_records_a_verifying_checkpoint_covers()
    {
        var (log, dir, _) = FailedDrillLog();
        using var _d = dir;
        var segment = Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();
        File.AppendAllText(segment, Line(2, "backup") + "\n");
        var v = LogVerifier.ReadVerified(log, log.LoadPublicKey());
        Assert.False(v.Ok);
        Assert.Equal(2, v.Entries.Count);
        Assert.Equal(3, v.TotalRecords);
    }
}
