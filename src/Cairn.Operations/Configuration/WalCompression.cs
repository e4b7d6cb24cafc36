using System.Globalization;

namespace Cairn.Operations.Configuration;

/// <summary>
/// <c>wal: { compression: zstd:N }</c>: the zstd level wal-push stores segments at, in the form and range of the backups'
/// <c>compression:</c> setting: <c>zstd:1</c> (fastest, the default) to <c>zstd:19</c> (smallest), or <c>zstd:auto</c>,
/// which for WAL is level 1 (there is no per-file choice to make: a segment is one stream). zstd's fast (negative)
/// levels are not offered: measured on real WAL, <c>--fast=1</c> saved under 2 ms of the pusher's ~15.6 ms per segment
/// for 12 % more bytes (docs/benchmarks.md, "WAL compression levels").
/// </summary>
public static class WalCompression
{
    public const int MaxLevel = 19;

    /// <summary>The zstd level <paramref name="value"/> names; null when it is not <c>zstd:auto</c> or <c>zstd:1</c>..<c>zstd:19</c>.</summary>
    public static int? TryParseLevel(string value)
    {
        if (value == "zstd:auto")
        {
            return Cairn.Repository.NamedFiles.DefaultLevel;
        }
        return value.StartsWith("zstd:", StringComparison.Ordinal) && value.Length is > 5 and <= 7 && value[5] != '0'
            && int.TryParse(value.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var level) && level is >= 1 and <= MaxLevel
            ? level : null;
    }
}
