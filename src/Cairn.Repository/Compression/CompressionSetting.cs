using System.Globalization;

namespace Cairn.Repository.Compression;

/// <summary>
/// How new blobs are compressed: <c>zstd:N</c> (every blob at level N, 1 to <see cref="MaxLevel"/>) or <c>zstd:auto</c>
/// (the default: the level chosen per relation file of a physical backup by measured gain, see ItemWriter.LevelProbe;
/// level 1 for everything else). Only writing depends on it: a zstd frame carries no level, so any build reads blobs
/// stored at any level, and chunk IDs are of the plaintext, so dedup does not depend on it either.
/// </summary>
public readonly record struct CompressionSetting
{
    /// <summary>The strongest level accepted. zstd's levels 20–22 ("ultra") need hundreds of MB of memory per worker.</summary>
    public const int MaxLevel = 19;

    /// <summary>The level of stream items (logical dumps, repo put, files that are not relation data) under <c>zstd:auto</c>.</summary>
    public const int AutoStreamLevel = 1;

    private CompressionSetting(int level) => Level = level;

    /// <summary>The fixed level, or 0 for <c>zstd:auto</c>.</summary>
    public int Level { get; }

    public bool IsAuto => Level == 0;

    public static CompressionSetting Auto => default;

    public static CompressionSetting Fixed(int level) => level is >= 1 and <= MaxLevel
        ? new(level)
        : throw new ArgumentOutOfRangeException(nameof(level), level, $"a zstd level is 1 to {MaxLevel}");

    /// <summary>The level of items written as a stream (no probe): the fixed level, or <see cref="AutoStreamLevel"/>.</summary>
    public int StreamLevel => IsAuto ? AutoStreamLevel : Level;

    /// <summary>Parses <c>zstd:auto</c> or <c>zstd:N</c> (N from 1 to <see cref="MaxLevel"/>); null when the text is neither.</summary>
    public static CompressionSetting? Parse(string text)
    {
        if (text == "zstd:auto")
        {
            return Auto;
        }
        return text.StartsWith("zstd:", StringComparison.Ordinal)
            && text.Length is > 5 and <= 7
            && int.TryParse(text.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var level)
            && level is >= 1 and <= MaxLevel
            && text[5] != '0'
            ? new CompressionSetting(level)
            : null;
    }

    public override string ToString() => IsAuto ? "zstd:auto" : $"zstd:{Level.ToString(CultureInfo.InvariantCulture)}";
}
