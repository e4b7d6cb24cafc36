using System.Text.Json.Nodes;
using Cairn.Operations.Checks;
using Cairn.Operations.Recording;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>Typed events write the log's documented shape (docs/evidence.md), which monitoring and auditors read.</summary>
public class EvidenceEventTests
{
    private static JsonObject Written(OperationsHarness h, EvidenceEvent e)
    {
        var seq = h.Context.Evidence.Record(e);
        var record = (JsonObject)JsonNode.Parse(h.Context.Evidence.Open().ReadEntries(out _)[(int)seq].Line!)!;
        foreach (var volatileField in new[] { "seq", "time", "tool", "host", "actor" })
        {
            Assert.True(record.Remove(volatileField), $"every record has '{volatileField}'");
        }
        return record;
    }

    [Fact]
    public void Record_writes_kind_result_repository_details_and_the_optional_fields_with_their_types()
    {
        using var h = new OperationsHarness();
        var r = Written(h, new PhysicalRestoreEvent("/srv/restored", "recovery_target_timeline = 'latest'", null, Started: true, Delta: false, FilesReused: null)
        {
            Repository = "/srv/repo",
            Database = "app",
            Snapshot = "ab12",
            DurationMs = 1234,
        });
        var expected = JsonNode.Parse("""
            {"database":"app","details":{"delta":"no","files_reused":"","reached_lsn":"","recovery_target":"recovery_target_timeline = 'latest'","started":"yes","target_dir":"/srv/restored","type":"physical"},
             "duration_ms":1234,"kind":"restore","repository":"/srv/repo","result":"pass","snapshot":"ab12"}
            """);
        Assert.True(JsonNode.DeepEquals(expected, r), r.ToJsonString());
    }

    [Fact]
    public void A_failure_is_recorded_under_the_kind_it_would_have_had_with_its_exit_code()
    {
        using var h = new OperationsHarness();
        var r = Written(h, new FailureEvent("backup", 10, "the database reported: no") { Repository = "/srv/repo", Result = "error", Database = "app" });
        var expected = JsonNode.Parse("""{"database":"app","details":{"error":"the database reported: no","exit_code":10},"kind":"backup","repository":"/srv/repo","result":"error"}""");
        Assert.True(JsonNode.DeepEquals(expected, r), r.ToJsonString());
    }

    [Fact]
    public void Checks_are_written_per_check_with_their_result_and_duration_and_a_skip_is_counted_as_skipped_not_passed()
    {
        using var h = new OperationsHarness();
        CheckResult[] checks =
        [
            new("rows", "row_counts", "= 5", "4", CheckStatus.Fail, TimeSpan.FromMilliseconds(12), "public.t differs"),
            new("fk", "foreign_keys", "no orphans", "0 orphan rows", CheckStatus.Pass, TimeSpan.FromMilliseconds(3)),
            new("total", "sql", "= fingerprint", "7", CheckStatus.Skip, TimeSpan.FromMilliseconds(1), "needs a backup's fingerprint") { Optional = true },
        ];
        var tally = CheckTally.Of(checks, allowSkipped: false);
        var r = Written(h, new LiveVerifyEvent("u@h:5432/app", tally, AllowSkipped: false) { Repository = "", Result = "fail", Database = "app", DurationMs = 20, Checks = checks });
        var expected = JsonNode.Parse("""
            {"checks":[{"actual":"4","detail":"public.t differs","duration_ms":12,"expected":"= 5","kind":"row_counts","name":"rows","optional":false,"result":"fail"},
                       {"actual":"0 orphan rows","detail":null,"duration_ms":3,"expected":"no orphans","kind":"foreign_keys","name":"fk","optional":false,"result":"pass"},
                       {"actual":"7","detail":"needs a backup's fingerprint","duration_ms":1,"expected":"= fingerprint","kind":"sql","name":"total","optional":true,"result":"skip"}],
             "database":"app","details":{"allow_skipped":"no","checks_failed":1,"checks_passed":1,"checks_skipped":1,"scope":"live","source":"u@h:5432/app"},"duration_ms":20,"kind":"verify","repository":"","result":"fail"}
            """);
        Assert.True(JsonNode.DeepEquals(expected, r), r.ToJsonString());
    }

    [Fact]
    public void A_skipped_check_fails_the_tally_unless_it_is_optional_or_skips_are_allowed()
    {
        var pass = new CheckResult("a", "sql", "> 0", "1", CheckStatus.Pass, default);
        var skip = new CheckResult("b", "sql", "= fingerprint", "1", CheckStatus.Skip, default, "needs a fingerprint");
        Assert.False(CheckTally.Of([pass, skip], allowSkipped: false).Ok);
        Assert.Equal("1 passed, 1 skipped (1 not optional)", CheckTally.Of([pass, skip], allowSkipped: false).ToString());
        Assert.True(CheckTally.Of([pass, skip], allowSkipped: true).Ok);
        Assert.True(CheckTally.Of([pass, skip with { Optional = true }], allowSkipped: false).Ok);
        Assert.Equal("1 passed, 1 skipped", CheckTally.Of([pass, skip with { Optional = true }], allowSkipped: false).ToString());
        Assert.False(skip.Passed);
        Assert.False(CheckTally.Of([pass, skip with { Status = CheckStatus.Error, Optional = true }], allowSkipped: true).Ok); // optional covers a skip, never an error
    }
}
