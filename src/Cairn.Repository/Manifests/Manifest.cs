namespace Cairn.Repository.Manifests;

/// <summary>One named stream or file inside a manifest, with its content as an ordered list of blob IDs.</summary>
public sealed record ManifestItem
{
    public string Name { get; init; } = "";
    public string Type { get; init; } = "stream";
    public long Size { get; init; }
    public List<string> Chunks { get; init; } = [];
    public Dictionary<string, string>? Meta { get; init; }
}

/// <summary>A backup: visible only once this object is stored. Written last, read first.</summary>
public sealed record Manifest
{
    public int Version { get; init; } = 1;
    public DateTimeOffset Time { get; init; }
    public string Host { get; init; } = "";
    public string Name { get; init; } = "";
    public string Kind { get; init; } = "file";
    public List<ManifestItem> Items { get; init; } = [];
    public Dictionary<string, string> Meta { get; init; } = [];
    public long DurationMs { get; init; }
    public long AddedBytes { get; init; }
    public long StoredBytes { get; init; }
}

/// <summary>A manifest with its storage ID.</summary>
public sealed record Snapshot(string Id, Manifest Manifest)
{
    public string ShortId => ObjectNames.Short(Id);

    public long Size => Manifest.Items.Sum(i => i.Size);
}
