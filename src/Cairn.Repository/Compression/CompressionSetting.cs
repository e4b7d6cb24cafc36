using System.Globalization;

namespace Cairn.Repository.Compression;

/// <summary>
/// How new blobs are compressed: <c>zstd:N</c> (every blob at level N, 1 to <see cref="MaxLevel"/>, or one of zstd's fast
/// levels <c>zstd:-1</c> to <c>zstd:-5</c> (<see cref="MinLevel"/>), the command line's <c>--fast=N</c>) or <c>zstd:auto</c>
/// (the default: the level chosen per relation file of a physical backup by measured gain, see ItemWriter.LevelProbe;
/// level 1 for everything else). Only writing depends on it: a zstd frame carries no level, so any build reads blobs
/// stored at any level, and chunk IDs are of the plaintext, so dedup does not depend on it either.
/// </summary>
public readonly record struct CompressionSetting
{
    /// <summary>The strongest level accepted. zstd's levels 20–22 ("ultra") need hundreds of MB of memory per worker.</summary>
    public const int MaxLevel = 19;

    /// <summary>
    /// The fastest level accepted: zstd's negative ("fast") levels trade ratio for speed; on real WAL −1 stores ~12 % more
    /// bytes than level 1, −5 nearly twice as many (docs/benchmarks.md, "WAL compression levels"). Below −5 is not offered.
    /// </summary>
    public const int MinLevel = -5;

    /// <summary>The level of stream items (logical dumps, repo put, files that are not relation data) under <c>zstd:auto</c>.</summary>
    public const int AutoStreamLevel = 1;

    private CompressionSetting(int level) => Level = level;

    /// <summary>The fixed level, or 0 for <c>zstd:auto</c>.</summary>
    public int Level { get; }

    public bool IsAuto => Level == 0;

    public static CompressionSetting Auto => default;

    public static CompressionSetting Fixed(int level) => IsLevel(level)
        ? new(level)
        : throw new ArgumentOutOfRangeException(nameof(level), level, $"a zstd level is {MinLevel} to -1 or 1 to {MaxLevel}");

    /// <summary>Whether <paramref name="level"/> is one this setting accepts: <see cref="MinLevel"/>..−1 or 1..<see cref="MaxLevel"/>.</summary>
    public static bool IsLevel(int level) => level is (>= MinLevel and <= -1) or (>= 1 and <= MaxLevel);

    /// <summary>The level of items written as a stream (no probe): the fixed level, or <see cref="AutoStreamLevel"/>.</summary>
    public int StreamLevel => IsAuto ? AutoStreamLevel : Level;

    /// <summary>
    /// Parses <c>zstd:auto</c> or <c>zstd:N</c> (N from 1 to <see cref="MaxLevel"/>, or −1 to <see cref="MinLevel"/> written
    /// <c>zstd:-N</c>); null when the text is neither. No sign on positive levels, no leading zeros, no spaces.
    /// </summary>
    public static CompressionSetting? Parse(string text)
    {
        if (text == "zstd:auto")
        {
            return Auto;
        }
        if (!text.StartsWith("zstd:", StringComparison.Ordinal))
        {
            return null;
        }
        var number = text.AsSpan(5);
        var negative = number.StartsWith("-");
        var digits = negative ? number[1..] : number;
        return digits.Length is >= 1 and <= 2
            && digits[0] != '0'
            && int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var magnitude)
            && IsLevel(negative ? -magnitude : magnitude)
            ? new CompressionSetting(negative ? -magnitude : magnitude)
            : null;
    }

    public override string ToString() => IsAuto ? "zstd:auto" : $"zstd:{Level.ToString(CultureInfo.InvariantCulture)}";
}
