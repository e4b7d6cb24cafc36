using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Physical;

/// <summary>PostgreSQL's WAL file names. Anything else is refused (no paths, no tricks).</summary>
public static partial class WalNames
{
    [GeneratedRegex("^[0-9A-F]{24}$")]
    private static partial Regex Segment();

    [GeneratedRegex("^[0-9A-F]{8}\\.history$")]
    private static partial Regex History();

    [GeneratedRegex("^[0-9A-F]{24}(\\.partial|\\.[0-9A-F]{8}\\.backup)$")]
    private static partial Regex Other();

    public static bool IsValid(string name) => Segment().IsMatch(name) || History().IsMatch(name) || Other().IsMatch(name);

    public static bool IsSegment(string name) => Segment().IsMatch(name);

    /// <summary>The segment file name holding <paramref name="lsn"/> on <paramref name="timeline"/> (16 MB segments).</summary>
    public static string SegmentOf(uint timeline, ulong lsn, long segmentSize = 16 * 1024 * 1024)
    {
        var segno = lsn / (ulong)segmentSize;
        var perId = 0x100000000UL / (ulong)segmentSize;
        return $"{timeline:X8}{segno / perId:X8}{segno % perId:X8}";
    }

    public static ulong ParseLsn(string text)
    {
        var parts = text.Split('/');
        return (Convert.ToUInt64(parts[0], 16) << 32) | Convert.ToUInt64(parts[1], 16);
    }
}
