using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Physical;

/// <summary>PostgreSQL's WAL file names. Anything else is refused (no paths, no tricks).</summary>
public static partial class WalNames
{
    [GeneratedRegex("^[0-9A-F]{24}\\z")]
    private static partial Regex Segment();

    [GeneratedRegex("^[0-9A-F]{8}\\.history\\z")]
    private static partial Regex History();

    [GeneratedRegex("^[0-9A-F]{24}(\\.partial|\\.[0-9A-F]{8}\\.backup)\\z")]
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

    /// <summary>An LSN as PostgreSQL prints it (<c>16/B374D848</c>); anything else is a <see cref="FormatException"/> quoting it.</summary>
    public static ulong ParseLsn(string text)
        => TryParseLsn(text, out var lsn) ? lsn : throw new FormatException($"'{Shorten(text)}' is not a WAL location (two hex numbers of up to 8 digits, e.g. 0/3000028)");

    public static bool TryParseLsn(string text, out ulong lsn)
    {
        lsn = 0;
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        if (slash < 0)
        {
            return false;
        }
        // Hex digits only (no sign, no spaces, no 0x): Convert.ToUInt64(_, 16) accepts a minus sign and throws three kinds of exception.
        var hi = text.AsSpan(0, slash);
        var lo = text.AsSpan(slash + 1);
        if (hi.Length is < 1 or > 8 || lo.Length is < 1 or > 8 || !IsHex(hi) || !IsHex(lo))
        {
            return false;
        }
        lsn = (ulong.Parse(hi, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture) << 32)
            | ulong.Parse(lo, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture);
        return true;
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>At most 40 characters of untrusted text, for an error message.</summary>
    internal static string Shorten(string text) => text.Length <= 40 ? text : text[..40] + "…";
}
