using Cairn.PostgreSql.Physical;

namespace Cairn.Tests.PostgreSql;

/// <summary>The WAL path recovery follows, across timeline switches, and the gaps on it (pure logic).</summary>
public class WalContinuityTests
{
    private static string Seg(uint tli, ulong n) => $"{tli:X8}{n / 0x100:X8}{n % 0x100:X8}";

    [Fact]
    public void One_timeline_reports_the_hole_and_nothing_else()
    {
        var archived = new[] { Seg(1, 3), Seg(1, 4), Seg(1, 6), Seg(1, 7) };
        Assert.Equal([Seg(1, 5)], WalContinuity.Missing(archived, Seg(1, 3), null));
        Assert.Empty(WalContinuity.Missing(archived, Seg(1, 6), null));
    }

    [Fact]
    public void After_a_promotion_the_path_switches_timeline_at_the_segment_holding_the_switch_point()
    {
        // Timeline 2 branched off timeline 1 at 0/5800000 (inside segment 5): segments 3-4 on TL1, 5 onwards on TL2.
        var histories = new Dictionary<uint, string> { [2] = "1\t0/5800000\tno recovery target specified\n" };
        var archived = new[] { Seg(1, 3), Seg(1, 4), Seg(1, 5) + ".partial", Seg(2, 5), Seg(2, 6), Seg(2, 7) };
        Assert.Empty(WalContinuity.Missing(archived, Seg(1, 3), histories));
        Assert.Equal([(1u, (ulong?)5), (2u, null)], WalContinuity.RecoveryPath(1, histories));

        // A hole on the new timeline is found, though timeline 1 alone looks complete.
        var holed = archived.Where(a => a != Seg(2, 6)).ToArray();
        Assert.Equal([Seg(2, 6)], WalContinuity.Missing(holed, Seg(1, 3), histories));
        Assert.Empty(WalContinuity.Missing(holed, Seg(1, 3), null)); // timeline 1 alone: no hole up to its newest segment
    }

    [Fact]
    public void Two_switches_follow_the_newest_history_that_contains_the_backup_timeline()
    {
        var histories = new Dictionary<uint, string>
        {
            [2] = "1\t0/5000000\tfirst promotion\n",
            [3] = "1\t0/5000000\tfirst promotion\n2\t0/7000028\tsecond promotion\n",
        };
        Assert.Equal([(1u, (ulong?)5), (2u, (ulong?)7), (3u, null)], WalContinuity.RecoveryPath(1, histories));
        Assert.Equal([(2u, (ulong?)7), (3u, null)], WalContinuity.RecoveryPath(2, histories));
        var archived = new[] { Seg(1, 4), Seg(2, 5), Seg(2, 6), Seg(3, 7), Seg(3, 8) };
        Assert.Empty(WalContinuity.Missing(archived, Seg(1, 4), histories));
        Assert.Equal([Seg(2, 6)], WalContinuity.Missing(archived.Where(a => a != Seg(2, 6)), Seg(1, 4), histories));
    }

    [Fact]
    public void History_lines_parse_and_comments_are_ignored()
    {
        var h = WalContinuity.ParseHistory("# comment\n1\t0/3000000\tbefore 2026-12-01\n\n2\t1/A0000000\tat restore point x\n");
        Assert.Equal([(1u, 0x3000000UL), (2u, 0x1A0000000UL)], h);
    }
}
