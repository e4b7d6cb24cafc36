namespace Cairn.PostgreSql.Physical;

/// <summary>
/// Gaps in an archive of WAL segments (16 MB segments), following timeline switches: recovery from a
/// backup on timeline T reads T's segments up to the point where a later timeline branched off (named in
/// that timeline's .history file), then the new timeline's, up to the newest archived segment.
/// </summary>
public static class WalContinuity
{
    /// <summary>Segments missing between <paramref name="from"/> and the newest archived segment of the same timeline.</summary>
    public static List<string> Missing(IEnumerable<string> archived, string from) => Missing(archived, from, null);

    /// <summary>
    /// Segments missing on the path recovery takes from <paramref name="from"/> to the newest archived segment,
    /// given the archived timeline history files (timeline → content). Without histories: one timeline.
    /// </summary>
    public static List<string> Missing(IEnumerable<string> archived, string from, IReadOnlyDictionary<uint, string>? histories)
    {
        // Segments as numbers, not names: an archive of years holds 100,000 of them and this runs once per backup checked.
        var have = new HashSet<(uint Timeline, uint Log, uint Seg)>();
        foreach (var n in archived)
        {
            if (WalNames.IsSegment(n))
            {
                have.Add((Hex(n.AsSpan(0, 8)), Hex(n.AsSpan(8, 8)), Hex(n.AsSpan(16, 8))));
            }
        }
        var missing = new List<string>();
        var fromKey = (Hex(from.AsSpan(0, 8)), Hex(from.AsSpan(8, 8)), Hex(from.AsSpan(16, 8)));
        var path = RecoveryPath(fromKey.Item1, histories);
        var onPath = path.Select(p => p.Timeline).ToHashSet();
        ulong newest = 0;
        foreach (var h in have)
        {
            if (onPath.Contains(h.Timeline))
            {
                newest = Math.Max(newest, (ulong)h.Log * 0x100 + h.Seg);
            }
        }
        var start = (ulong)fromKey.Item2 * 0x100 + fromKey.Item3;
        if (newest < start)
        {
            return have.Contains(fromKey) ? missing : [from];
        }
        for (var seg = start; seg <= newest && missing.Count < 1000; seg++)
        {
            // The segment holding a switch point is read from the new timeline (its first segment starts with a copy of the old one).
            var tli = path.First(p => p.EndSegment is null || seg < p.EndSegment).Timeline;
            if (!have.Contains((tli, (uint)(seg / 0x100), (uint)(seg % 0x100))))
            {
                missing.Add($"{tli:X8}{seg / 0x100:X8}{seg % 0x100:X8}");
            }
        }
        return missing;
    }

    /// <summary>
    /// The timelines recovery follows from <paramref name="timeline"/>: the newest timeline whose history
    /// contains it, as (timeline, first segment of the next timeline) pairs ending with (newest, null).
    /// </summary>
    public static List<(uint Timeline, ulong? EndSegment)> RecoveryPath(uint timeline, IReadOnlyDictionary<uint, string>? histories)
    {
        var best = new List<(uint, ulong?)> { (timeline, null) };
        if (histories is null)
        {
            return best;
        }
        foreach (var (tli, content) in histories.OrderByDescending(h => h.Key))
        {
            var entries = ParseHistory(content);
            var idx = entries.FindIndex(e => e.Parent == timeline);
            if (tli <= timeline || idx < 0)
            {
                continue;
            }
            var path = new List<(uint, ulong?)>();
            for (var i = idx; i < entries.Count; i++)
            {
                path.Add((entries[i].Parent, entries[i].SwitchLsn / (16UL * 1024 * 1024)));
            }
            path.Add((tli, null));
            return path;
        }
        return best;
    }

    /// <summary>Lines of a .history file: parent timeline, switch point LSN, reason.</summary>
    public static List<(uint Parent, ulong SwitchLsn)> ParseHistory(string content)
    {
        var result = new List<(uint, ulong)>();
        foreach (var line in content.Split('\n'))
        {
            var t = line.Trim();
            if (t.Length == 0 || t.StartsWith('#'))
            {
                continue;
            }
            var parts = t.Split('\t', ' ');
            if (parts.Length >= 2 && uint.TryParse(parts[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var parent) && WalNames.TryParseLsn(parts[1], out var switchLsn))
            {
                // Like a line whose parent is not a number, a switch point that is not an LSN is not an entry.
                result.Add((parent, switchLsn));
            }
        }
        return result;
    }

    private static uint Hex(ReadOnlySpan<char> digits) => uint.Parse(digits, System.Globalization.NumberStyles.AllowHexSpecifier, System.Globalization.CultureInfo.InvariantCulture);

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
