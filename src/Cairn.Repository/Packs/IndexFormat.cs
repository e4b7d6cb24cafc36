using Cairn.Repository.Crypto;

namespace Cairn.Repository.Packs;

/// <summary>Where a blob lives: pack, byte range, and its uncompressed size.</summary>
public readonly record struct BlobLocation(ContentId Pack, long Offset, int Length, int RawLength);

public sealed record IndexBlob
{
    public string Id { get; init; } = "";
    public long Offset { get; init; }
    public int Length { get; init; }
    public int RawLength { get; init; }
}

public sealed record IndexPack
{
    public string Id { get; init; } = "";
    public long Size { get; init; }
    public List<IndexBlob> Blobs { get; init; } = [];
}

/// <summary>The decrypted form of an <c>index/…</c> object.</summary>
public sealed record IndexFile
{
    public int Version { get; init; } = 1;
    public List<IndexPack> Packs { get; init; } = [];
    public List<string> Supersedes { get; init; } = [];
}
