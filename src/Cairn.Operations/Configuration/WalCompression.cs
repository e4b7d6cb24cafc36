using Cairn.Repository.Compression;

namespace Cairn.Operations.Configuration;

/// <summary>
/// <c>wal: { compression: zstd:N }</c>: the zstd level wal-push stores segments at, in the form and range of the backups'
/// <c>compression:</c> setting (<see cref="CompressionSetting"/>): <c>zstd:1</c> (fastest, the default) to <c>zstd:19</c>
/// (smallest), or <c>zstd:auto</c>, which for WAL is level 1 (there is no per-file choice to make: a segment is one stream).
/// zstd's fast (negative) levels are not offered: measured on real WAL, <c>--fast=1</c> saved under 2 ms of the pusher's
/// ~15.6 ms per segment for 12 % more bytes (docs/benchmarks.md, "WAL compression levels").
/// </summary>
public static class WalCompression
{
    public const int MaxLevel = CompressionSetting.MaxLevel;

    /// <summary>The zstd level <paramref name="value"/> names; null when it is not <c>zstd:auto</c> or <c>zstd:1</c>..<c>zstd:19</c>.</summary>
    public static int? TryParseLevel(string value)
        => CompressionSetting.Parse(value) is { } setting ? (setting.IsAuto ? Cairn.Repository.NamedFiles.DefaultLevel : setting.Level) : null;
}
