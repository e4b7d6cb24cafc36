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
    public void Checks_are_written_per_check_with_their_result_and_duration()
    {
        using var h = new OperationsHarness();
        var checks = new[] { new CheckResult("rows", "row_counts", "= 5", "4", CheckStatus.Fail, TimeSpan.FromMilliseconds(12), "public.t differs") };
        var r = Written(h, new LiveVerifyEvent("u@h:5432/app", 0, 1) { Repository = "", Result = "fail", Database = "app", DurationMs = 20, Checks = checks });
        var expected = JsonNode.Parse("""
            {"checks":[{"actual":"4","detail":"public.t differs","duration_ms":12,"expected":"= 5","kind":"row_counts","name":"rows","result":"fail"}],
             "database":"app","details":{"checks_failed":1,"checks_passed":0,"scope":"live","source":"u@h:5432/app"},"duration_ms":20,"kind":"verify","repository":"","result":"fail"}
            """);
        Assert.True(JsonNode.DeepEquals(expected, r), r.ToJsonString());
    }
}
