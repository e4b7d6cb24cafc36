using System.Globalization;

namespace Cairn.Operations.Configuration;

/// <summary>
/// A <c>compression:</c> setting of cairn.yaml, written <c>zstd:N</c>: zstd at level N, from <c>zstd:-7</c> (zstd's
/// <c>--fast=7</c>: fastest, largest) through <c>zstd:-1</c> and <c>zstd:1</c> to <c>zstd:19</c> (slowest, smallest).
/// Level 0 is no level (zstd would take it as its default, 3): it is refused rather than guessed.
/// </summary>
public static class CompressionSetting
{
    public const int MinLevel = -7;
    public const int MaxLevel = 19;

    /// <summary>The zstd level <paramref name="value"/> names; null with <paramref name="error"/> saying what is accepted.</summary>
    public static int? TryParseZstd(string value, out string? error)
    {
        error = null;
        if (value.StartsWith("zstd:", StringComparison.Ordinal)
            && int.TryParse(value.AsSpan(5), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var level)
            && level is >= MinLevel and <= MaxLevel and not 0)
        {
            return level;
        }
        error = $"must be zstd:N with N from {MinLevel} to -1 (fast levels) or 1 to {MaxLevel}, not '{value}' (e.g. zstd:1, the default for WAL, or zstd:-1 for about half its CPU and ~10 % more bytes)";
        return null;
    }
}
