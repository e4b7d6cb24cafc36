using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.StorageFiles;

/// <summary>One file of a backup's storage part, read back from its manifest item and checked (docs/repository-format.md, "Storage files").</summary>
public sealed record StoredObject(string Bucket, string Key, long Size, string? ContentType, string ETag, string Sha256, DateTimeOffset LastModified, ManifestItem Item);

/// <summary>One bucket of <c>storage.json</c>: its objects and bytes, and the keys listed but deleted before they could be read.</summary>
public sealed record StoragePartBucket(string Name, long Objects, long Bytes, List<string> Vanished);

/// <summary><c>storage.json</c>: which buckets the backup holds, from where (no credentials), and what it counted.</summary>
public sealed record StoragePartFile(int Version, string Endpoint, List<StoragePartBucket> Buckets);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(StoragePartFile))]
internal sealed partial class StoragePartJson : JsonSerializerContext;

/// <summary>What a logical backup holds of the application's Storage: <c>storage.json</c> and one item per file.</summary>
public sealed record StoragePart(StoragePartFile File, IReadOnlyList<StoredObject> Objects)
{
    public const string SummaryItem = "storage.json";
    public const string ItemPrefix = "storage/";
    public const string ObjectType = "object";

    /// <summary>Manifest meta: the buckets (comma-separated), objects and bytes the part holds.</summary>
    public const string MetaBuckets = "storage_buckets";
    public const string MetaObjects = "storage_objects";
    public const string MetaBytes = "storage_bytes";

    public static string ItemName(string bucket, string key) => ItemPrefix + bucket + "/" + key;

    public bool Holds(string bucket) => File.Buckets.Any(b => b.Name == bucket);

    /// <summary>
    /// The snapshot's storage part, or null when it has none. Every item is checked before anything is used (names, hash,
    /// times); a part that breaks a rule a writer keeps refuses the backup as damaged, naming the item.
    /// </summary>
    public static async Task<StoragePart?> ReadAsync(Repository.Repository repo, Snapshot snapshot, CancellationToken ct)
    {
        var summary = snapshot.Manifest.Items.FirstOrDefault(i => i.Name == SummaryItem);
        if (summary is null)
        {
            return snapshot.Manifest.Items.Any(i => i.Name.StartsWith(ItemPrefix, StringComparison.Ordinal))
                ? throw new DataDamagedException($"snapshot {snapshot.ShortId} holds storage files but no {SummaryItem}; run 'cairn verify'")
                : null;
        }
        var ms = new MemoryStream();
        await repo.ReadItemAsync(summary, ms, null, ct).ConfigureAwait(false);
        var file = StoredJson.Decode(ms.ToArray(), StoragePartJson.Default.StoragePartFile, $"{SummaryItem} of snapshot {snapshot.ShortId}");
        // Authentic is not trusted: every archiving host holds a key that can seal any object.
        if (file.Buckets is null || file.Endpoint is null || file.Buckets.Any(b => b is null || b.Name is null || b.Vanished is null || b.Objects < 0 || b.Bytes < 0))
        {
            throw Damaged(snapshot, $"{SummaryItem} lacks its buckets, a bucket's name or its lists");
        }
        if (file.Version != 1)
        {
            throw new DataDamagedException($"{SummaryItem} of snapshot {snapshot.ShortId} has version {file.Version}; this Cairn reads version 1 (upgrade Cairn)");
        }
        foreach (var b in file.Buckets)
        {
            if (StorageNames.BucketProblem(b.Name) is { } bp)
            {
                throw Damaged(snapshot, $"bucket '{StorageNames.Display(b.Name)}': {bp}");
            }
        }
        var objects = new List<StoredObject>();
        var seen = new HashSet<(string, string)>();
        foreach (var item in snapshot.Manifest.Items.Where(i => i.Name.StartsWith(ItemPrefix, StringComparison.Ordinal)))
        {
            var o = Parse(snapshot, item);
            if (!file.Buckets.Any(b => b.Name == o.Bucket))
            {
                throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)} is in bucket {o.Bucket}, which {SummaryItem} does not name");
            }
            if (!seen.Add((o.Bucket, o.Key)))
            {
                throw Damaged(snapshot, $"{o.Bucket}/{StorageNames.Display(o.Key)} appears twice");
            }
            objects.Add(o);
        }
        foreach (var b in file.Buckets)
        {
            var n = objects.Count(o => o.Bucket == b.Name);
            if (n != b.Objects)
            {
                throw Damaged(snapshot, $"{SummaryItem} says bucket {b.Name} holds {b.Objects} objects, the manifest has {n}");
            }
        }
        return new StoragePart(file, objects);
    }

    private static StoredObject Parse(Snapshot snapshot, ManifestItem item)
    {
        var m = item.Meta ?? [];
        string Need(string key) => m.TryGetValue(key, out var v) ? v : throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)} has no {key}");
        if (item.Type != ObjectType)
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)} has type {item.Type}, not {ObjectType}");
        }
        var bucket = Need("bucket");
        var key = Need("key");
        if (StorageNames.BucketProblem(bucket) is { } bp)
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)}: bucket: {bp}");
        }
        if (StorageNames.KeyProblem(key) is { } kp)
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)}: {kp}");
        }
        if (item.Name != ItemName(bucket, key))
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)} does not match its bucket and key ({bucket}/{StorageNames.Display(key)})");
        }
        var sha = Need("sha256");
        if (sha.Length != 64 || !sha.All(Uri.IsHexDigit) || sha.Any(char.IsUpper))
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)}: sha256 is not 64 lowercase hex digits");
        }
        if (!DateTimeOffset.TryParse(Need("last_modified"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var lastModified))
        {
            throw Damaged(snapshot, $"item {StorageNames.Display(item.Name)}: last_modified is not a time");
        }
        return new StoredObject(bucket, key, item.Size, m.GetValueOrDefault("content_type"), m.GetValueOrDefault("etag") ?? "", sha, lastModified, item);
    }

    private static DataDamagedException Damaged(Snapshot s, string what) => new($"the storage part of snapshot {s.ShortId} is unusable: {what}; run 'cairn verify' (nothing was written)");
}
