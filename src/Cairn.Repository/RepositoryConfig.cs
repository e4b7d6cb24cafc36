using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;

namespace Cairn.Repository;

/// <summary>The decrypted <c>config</c> object: settings fixed at init.</summary>
public sealed record RepositoryConfig
{
    /// <summary>The feature that lets physical backups store page patches (docs/repository-format.md, "Page patches").</summary>
    public const string PagePatches = "page-patches";

    /// <summary>The features this Cairn knows; a config naming any other is refused.</summary>
    public static readonly IReadOnlyList<string> KnownFeatures = [PagePatches];

    /// <summary>1, or 2 once <c>cairn repo upgrade</c> switched a feature on (a Cairn that reads only version 1 then refuses the repository).</summary>
    public int Version { get; init; } = 1;

    /// <summary>Format features switched on (version 2 only); null in a version-1 config.</summary>
    public List<string>? Features { get; init; }

    public bool Has(string feature) => Features?.Contains(feature, StringComparer.Ordinal) == true;
    public string Id { get; init; } = "";
    public ChunkerParameters Chunker { get; init; } = ChunkerParameters.Default;
    public int PackSize { get; init; } = RepositoryOptions.DefaultPackSize;
    public string Cipher { get; init; } = "AES-256-GCM";
    public string ChunkId { get; init; } = "HMAC-SHA256";
    public string Compression { get; init; } = "zstd";
    public string Kdf { get; init; } = "argon2id";
}

/// <summary>Choices made at <c>cairn init</c>.</summary>
public sealed record RepositoryOptions
{
    public const int DefaultPackSize = 32 * 1024 * 1024;

    public Crypto.KdfParameters Kdf { get; init; } = Crypto.KdfParameters.Default;
    public ChunkerParameters Chunker { get; init; } = ChunkerParameters.Default;
    public int PackSize { get; init; } = DefaultPackSize;

    /// <summary>How new blobs are compressed (cairn.yaml <c>compression:</c>); <c>zstd:auto</c> by default.</summary>
    public CompressionSetting Compression { get; init; } = CompressionSetting.Auto;

    /// <summary>Worker threads for hashing, compressing and encrypting; defaults to the core count.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;
}
