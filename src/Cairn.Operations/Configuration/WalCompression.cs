using Cairn.Repository.Compression;

namespace Cairn.Operations.Configuration;

/// <summary>
/// <c>wal: { compression: zstd:N }</c>: the zstd level wal-push stores segments at, in the form and range of the backups'
/// <c>compression:</c> setting (<see cref="CompressionSetting"/>): <c>zstd:1</c> (the default) to <c>zstd:19</c>
/// (smallest), zstd's fast levels <c>zstd:-1</c> to <c>zstd:-5</c>, or <c>zstd:auto</c>, which for WAL is level 1 (there is
/// no per-file choice to make: a segment is one stream). Measured on real WAL (docs/benchmarks.md, "WAL compression
/// levels"): <c>zstd:-1</c> saves ~2 ms of the background pusher's ~15.8 ms CPU per segment for 12.5 % more bytes; −2 to −5
/// save nothing more and store 36–86 % more; so the default stays level 1.
/// </summary>
public static class WalCompression
{
    public const int MaxLevel = CompressionSetting.MaxLevel;

    public const int MinLevel = CompressionSetting.MinLevel;

    /// <summary>The zstd level <paramref name="value"/> names; null when it is not <c>zstd:auto</c>, <c>zstd:1</c>..<c>zstd:19</c> or <c>zstd:-1</c>..<c>zstd:-5</c>.</summary>
    public static int? TryParseLevel(string value)
        => CompressionSetting.Parse(value) is { } setting ? (setting.IsAuto ? Cairn.Repository.NamedFiles.DefaultLevel : setting.Level) : null;
}
