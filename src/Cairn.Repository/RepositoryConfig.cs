using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;

namespace Cairn.Repository;

/// <summary>The decrypted <c>config</c> object: settings fixed at init.</summary>
public sealed record RepositoryConfig
{
    public int Version { get; init; } = 1;
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
