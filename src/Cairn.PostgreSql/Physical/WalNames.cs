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

/// <summary>Gaps in an archive of WAL segments (16 MB segments), per timeline.</summary>
public static class WalContinuity
{
    /// <summary>Segments missing between <paramref name="from"/> and the newest archived segment of the same timeline.</summary>
    public static List<string> Missing(IEnumerable<string> archived, string from)
    {
        var timeline = from[..8];
        var have = archived.Where(n => WalNames.IsSegment(n) && n.StartsWith(timeline, StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
        var newest = have.Where(n => string.CompareOrdinal(n, from) >= 0).Order(StringComparer.Ordinal).LastOrDefault();
        var missing = new List<string>();
        if (newest is null)
        {
            return have.Contains(from) ? missing : [from];
        }
        for (var s = from; string.CompareOrdinal(s, newest) <= 0 && missing.Count < 1000; s = Next(s))
        {
            if (!have.Contains(s))
            {
                missing.Add(s);
            }
        }
        return missing;
    }

    public static string Next(string segment)
    {
        var log = Convert.ToUInt32(segment[8..16], 16);
        var seg = Convert.ToUInt32(segment[16..24], 16) + 1;
        if (seg > 0xFF)
        {
            seg = 0;
            log++;
        }
        return $"{segment[..8]}{log:X8}{seg:X8}";
    }
}
