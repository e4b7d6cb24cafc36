using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Evidence;

/// <summary>Attacks on the evidence log by someone who can write its folder but does not hold the signing key.</summary>
public class EvidenceTamperTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-12-01T00:00:00Z", CultureInfo.InvariantCulture);

    private static (EvidenceLog Log, TempDir Dir, FakeTimeProvider Clock) NewLog(int records, DateTimeOffset? start = null)
    {
        var dir = new TempDir();
        var clock = new FakeTimeProvider(start ?? Start);
        var log = new EvidenceLog(Path.Combine(dir.Path, "evidence"), null, clock);
        log.Init("test.example/tamper");
        for (var i = 0; i < records; i++)
        {
            log.Append(new JsonObject { ["kind"] = i == 2 ? "drill" : "backup", ["result"] = i == 2 ? "fail" : "pass", ["database"] = "app" }, "cairn test");
            clock.Advance(TimeSpan.FromHours(1));
        }
        return (log, dir, clock);
    }

    /// <summary>Moves record <paramref name="seq"/> of a one-segment log into its own <c>.leaves</c> file, as an attacker without the key can.</summary>
    private static void HideRecord(EvidenceLog log, int seq)
    {
        var entries = log.ReadEntries(out _);
        var segment = Path.Combine(log.LogFolder, entries[seq].Segment);
        var month = entries[seq].Segment[13..20];
        var first = entries.Where(e => e.Segment == entries[seq].Segment).Min(e => e.Seq);
        var lines = File.ReadAllLines(segment);
        var before = lines.Take(seq - (int)first).ToList();
        var after = lines.Skip(seq - (int)first + 1).ToList();
        File.Delete(segment);
        if (before.Count > 0)
        {
            File.WriteAllText(Path.Combine(log.LogFolder, $"{first:D12}-{month}.jsonl"), string.Concat(before.Select(l => l + "\n")));
        }
        File.WriteAllText(Path.Combine(log.LogFolder, $"{seq:D12}-{month}.leaves"), Convert.ToHexStringLower(entries[seq].LeafHash) + "\n");
        if (after.Count > 0)
        {
            File.WriteAllText(Path.Combine(log.LogFolder, $"{seq + 1:D12}-{month}.jsonl"), string.Concat(after.Select(l => l + "\n")));
        }
    }

    [Fact]
    public void A_record_hidden_as_a_leaves_file_fails_verify_naming_it_also_against_an_earlier_checkpoint()
    {
        var (log, dir, _) = NewLog(5);
        using var _d = dir;
        var saved = dir.File("saved-checkpoint");
        File.Copy(log.CheckpointPath, saved);
        HideRecord(log, 2);
        Assert.Null(log.ReadEntries(out _)[2].Record);

        var r = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("record 2 ", StringComparison.Ordinal) && p.Contains("prune", StringComparison.Ordinal));

        var against = LogVerifier.Verify(log, log.LoadPublicKey(), saved);
        Assert.False(against.Ok);
        Assert.Contains(against.Problems, p => p.Contains("record 2 ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Evidence_verify_against_exits_5_and_names_the_hidden_record()
    {
        var (log, dir, _) = NewLog(5);
        using var _d = dir;
        var saved = dir.File("saved-checkpoint");
        File.Copy(log.CheckpointPath, saved);
        HideRecord(log, 3);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var (code, output, err) = await cli.RunAsync("evidence", "verify", "--against", saved);
        Assert.True(code == Cairn.Cli.ExitCodes.Damaged, output + err);
        Assert.Contains("record 3 ", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_signed_prune_verifies_and_a_newer_record_turned_into_leaves_does_not()
    {
        var (log, dir, clock) = NewLog(3, DateTimeOffset.Parse("2025-01-10T00:00:00Z", CultureInfo.InvariantCulture));
        using var _d = dir;
        clock.Advance(TimeSpan.FromDays(420));
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app" }, "t");
        log.Append(new JsonObject { ["kind"] = "drill", ["result"] = "fail", ["database"] = "app" }, "t");
        var (segments, records) = log.Prune(DateTimeOffset.Parse("2025-02-01T00:00:00Z", CultureInfo.InvariantCulture), new JsonObject { ["actor"] = "test" }, "t");
        Assert.Equal((1, 3), (segments, records));

        var ok = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.True(ok.Ok, string.Join("; ", ok.Problems));
        Assert.Equal(3, ok.Pruned);
        // The statement is itself a signed record of the log.
        var statement = log.ReadEntries(out _).Single(e => e.Kind == "evidence-prune");
        Assert.Equal(3, statement.Record!["details"]!["pruned_below"]!.GetValue<long>());

        // A signed prune covers the records below it, not the failed drill at seq 4.
        HideRecord(log, 4);
        var bad = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.False(bad.Ok);
        Assert.Contains(bad.Problems, p => p.Contains("record 4 ", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Export_of_a_pruned_log_carries_the_signed_statement_and_verify_py_checks_it()
    {
        var (log, dir, clock) = NewLog(3, DateTimeOffset.Parse("2025-01-10T00:00:00Z", CultureInfo.InvariantCulture));
        using var _d = dir;
        clock.Advance(TimeSpan.FromDays(420));
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app" }, "t");
        log.Prune(DateTimeOffset.Parse("2025-02-01T00:00:00Z", CultureInfo.InvariantCulture), new JsonObject(), "t");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var export = dir.File("export");
        var (code, output, err) = await cli.RunAsync("evidence", "export", "--to", export);
        Assert.True(code == 0, output + err);
        Assert.True(File.Exists(Path.Combine(export, "pruning.json")));
        var (pcode, pout) = await PythonAsync(export);
        Assert.True(pcode == 0, pout);
        Assert.Contains("OK  pruning: records below 3 were pruned by signed record 4", pout, StringComparison.Ordinal);

        // A pruning.json that claims more than the signed record says is caught.
        File.WriteAllText(Path.Combine(export, "pruning.json"), "{\"pruned_below\": 4, \"statement_seq\": 4}");
        (pcode, pout) = await PythonAsync(export);
        Assert.True(pcode == 1, pout);
        Assert.Contains("BAD pruning", pout, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Output)> PythonAsync(string folder)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3", ["verify.py"])
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, output);
    }

    [Fact]
    public void Prune_only_removes_a_prefix_of_segments()
    {
        var (log, dir, clock) = NewLog(2, DateTimeOffset.Parse("2025-01-10T00:00:00Z", CultureInfo.InvariantCulture));
        using var _d = dir;
        clock.Advance(TimeSpan.FromDays(40));
        // A record whose time cannot be read stops the prune at its segment: nothing after it goes either.
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["time"] = "not a time" }, "t");
        clock.Advance(TimeSpan.FromDays(40));
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass" }, "t");
        clock.Advance(TimeSpan.FromDays(400));
        var (segments, records) = log.Prune(DateTimeOffset.Parse("2025-05-01T00:00:00Z", CultureInfo.InvariantCulture), new JsonObject(), "t");
        Assert.Equal((1, 2), (segments, records));
        var r = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.True(r.Ok, string.Join("; ", r.Problems));
        Assert.NotNull(log.ReadEntries(out _)[3].Record);
    }

    [Fact]
    public void Lines_appended_without_the_key_are_set_aside_by_the_next_append_not_signed()
    {
        var (log, dir, _) = NewLog(3);
        using var _d = dir;
        var segment = Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();
        var forged = "{\"database\":\"app\",\"kind\":\"drill\",\"result\":\"pass\",\"seq\":3,\"time\":\"2026-12-01T05:00:00.000Z\"}";
        File.AppendAllText(segment, forged + "\n");
        var before = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.Contains(before.Problems, p => p.Contains("record 3", StringComparison.Ordinal) && p.Contains("not covered", StringComparison.Ordinal));

        var (seq, _) = log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass" }, "t");
        var entries = log.ReadEntries(out _);
        Assert.DoesNotContain(entries, e => e.Line == forged);
        Assert.Equal("evidence-repair", entries[3].Kind);
        Assert.Equal(4, seq);
        var after = LogVerifier.Verify(log, log.LoadPublicKey(), null);
        Assert.True(after.Ok, string.Join("; ", after.Problems));
        var aside = Directory.EnumerateFiles(log.LogFolder, "*.unsigned-*").Single();
        Assert.Equal(forged + "\n", File.ReadAllText(aside));
    }

    [Fact]
    public void Append_refuses_to_sign_over_an_edited_record()
    {
        var (log, dir, _) = NewLog(3);
        using var _d = dir;
        var segment = Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();
        File.WriteAllText(segment, File.ReadAllText(segment).Replace("\"result\":\"fail\"", "\"result\":\"pass\"", StringComparison.Ordinal));
        var e = Assert.Throws<EvidenceException>(() => log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass" }, "t"));
        Assert.Contains("signed checkpoint", e.Message, StringComparison.Ordinal);
        Assert.False(LogVerifier.Verify(log, log.LoadPublicKey(), null).Ok);
    }
}

public class EvidenceQueryTests
{
    [Fact]
    public void Newer_backups_missing_are_successful_backups_of_that_database_newer_than_the_newest_present_snapshot()
    {
        using var dir = new TempDir();
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", CultureInfo.InvariantCulture));
        var log = new EvidenceLog(dir.File("evidence"), null, clock);
        log.Init("test/query");
        void Backup(string db, string snapshot, string result = "pass")
        {
            log.Append(new JsonObject { ["kind"] = "backup", ["result"] = result, ["database"] = db, ["snapshot"] = snapshot }, "t");
            clock.Advance(TimeSpan.FromHours(1));
        }
        Backup("app", "old-pruned");
        Backup("app", "kept");
        var keptTime = clock.GetUtcNow().AddMinutes(-61);
        Backup("app", "deleted-1");
        Backup("other", "other-db");
        Backup("app", "failed", "error");
        Backup("app", "deleted-2");
        var entries = LogVerifier.ReadVerified(log, log.LoadPublicKey()).Entries;
        var missing = EvidenceQueries.NewerBackupsMissing(entries, "app", new HashSet<string> { "kept" }, keptTime);
        Assert.Equal(["deleted-1", "deleted-2"], missing.Select(e => e.Record!["snapshot"]!.GetValue<string>()));
        Assert.Equal(4, EvidenceQueries.NewerBackupsMissing(entries, "app", new HashSet<string>(), null).Count);
    }
}
