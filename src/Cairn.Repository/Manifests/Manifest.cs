namespace Cairn.Repository.Manifests;

/// <summary>One named stream or file inside a manifest, with its content as an ordered list of blob IDs.</summary>
public sealed record ManifestItem
{
    public string Name { get; init; } = "";
    public string Type { get; init; } = "stream";
    public long Size { get; init; }
    public List<string> Chunks { get; init; } = [];
    public Dictionary<string, string>? Meta { get; init; }

    /// <summary>
    /// Page patches (manifest version 2): for each patched block, by its index in <see cref="Chunks"/> (as a decimal
    /// string), the ID of the whole chunk the patch in <c>Chunks[i]</c> applies to. Null when no block is a patch.
    /// </summary>
    public Dictionary<string, string>? Bases { get; init; }

    /// <summary>
    /// Every blob this item needs: its chunks and the bases of its patches. The one answer to "is this blob used"
    /// (prune's mark, verify, pins and Object Lock, carrying an item over).
    /// </summary>
    public IEnumerable<string> ReferencedBlobs => Bases is { Count: > 0 } bases ? Chunks.Concat(bases.Values) : Chunks;

    /// <summary>The base of block <paramref name="index"/> when it is stored as a page patch.</summary>
    public string? BaseOf(int index) => Bases is { Count: > 0 } b && b.TryGetValue(index.ToString(System.Globalization.CultureInfo.InvariantCulture), out var id) ? id : null;
}

/// <summary>A backup: visible only once this object is stored. Written last, read first.</summary>
public sealed record Manifest
{
    /// <summary>1, or 2 when an item holds page patches (<see cref="ManifestItem.Bases"/>); readers refuse any other.</summary>
    public int Version { get; init; } = 1;

    /// <summary>The newest manifest version this Cairn reads.</summary>
    public const int NewestVersion = 2;
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

/// <summary>
/// A manifest with its storage ID. A <see cref="IsSummary"/> snapshot came from the snapshot index: its manifest has
/// no items (load the manifest with <c>LoadSnapshotAsync</c> before reading any), its size is the index's.
/// </summary>
public sealed record Snapshot(string Id, Manifest Manifest)
{
    public string ShortId => ObjectNames.Short(Id);

    public bool IsSummary { get; init; }

    /// <summary>The sum of the items' sizes, as the index recorded it (summaries only).</summary>
    public long? SummarySize { get; init; }

    /// <summary>The number of items, as the index recorded it (summaries only).</summary>
    public int? SummaryItems { get; init; }

    public long Size => SummarySize ?? Manifest.Items.Sum(i => i.Size);

    public int ItemCount => SummaryItems ?? Manifest.Items.Count;
}

/// <summary>One manifest in the snapshot index: the manifest without its items (docs/repository-format.md).</summary>
public sealed record SnapshotIndexEntry
{
    public string Id { get; init; } = "";
    public DateTimeOffset Time { get; init; }
    public string Host { get; init; } = "";
    public string Name { get; init; } = "";
    public string Kind { get; init; } = "";
    public Dictionary<string, string> Meta { get; init; } = [];
    public long DurationMs { get; init; }
    public long AddedBytes { get; init; }
    public long StoredBytes { get; init; }
    public long Size { get; init; }
    public int Items { get; init; }

    public static SnapshotIndexEntry Of(Snapshot s) => new()
    {
        Id = s.Id,
        Time = s.Manifest.Time,
        Host = s.Manifest.Host,
        Name = s.Manifest.Name,
        Kind = s.Manifest.Kind,
        Meta = s.Manifest.Meta,
        DurationMs = s.Manifest.DurationMs,
        AddedBytes = s.Manifest.AddedBytes,
        StoredBytes = s.Manifest.StoredBytes,
        Size = s.Size,
        Items = s.ItemCount,
    };

    public Snapshot ToSnapshot() => new(Id, new Manifest
    {
        Time = Time,
        Host = Host,
        Name = Name,
        Kind = Kind,
        Meta = Meta,
        DurationMs = DurationMs,
        AddedBytes = AddedBytes,
        StoredBytes = StoredBytes,
    })
    { IsSummary = true, SummarySize = Size, SummaryItems = Items };

    /// <summary>Whether a loaded manifest says what this entry says (time, name, kind, meta).</summary>
    public static bool Agrees(Snapshot summary, Snapshot loaded)
        => summary.Id == loaded.Id && summary.Manifest.Time == loaded.Manifest.Time && summary.Manifest.Name == loaded.Manifest.Name
            && summary.Manifest.Kind == loaded.Manifest.Kind && summary.Manifest.Meta.Count == loaded.Manifest.Meta.Count
            && summary.Manifest.Meta.All(kv => loaded.Manifest.Meta.TryGetValue(kv.Key, out var v) && v == kv.Value);
}

/// <summary>The stored snapshot index (<c>snapshot-index/&lt;sha256&gt;</c>).</summary>
public sealed record SnapshotIndexFile
{
    public int Version { get; init; } = 1;
    public List<SnapshotIndexEntry> Snapshots { get; init; } = [];
}
