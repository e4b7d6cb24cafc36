using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;

namespace Cairn.Repository;

/// <summary>
/// Decodes the JSON of a stored object (index, manifest, config, key file) and checks its shape before anything
/// uses it. The JSON is authenticated, but every archiving host holds a key that can seal any object, so an
/// authentic object is still untrusted input: a null list, an ID that is not 64 hex digits or a length that would
/// size an allocation must be refused here, as damage naming the object, not found later as a crash.
/// </summary>
public static class StoredJson
{
    /// <summary>Largest raw (uncompressed) blob any reader allocates: the chunker's own upper bound.</summary>
    public const int MaxBlobRawLength = 64 * 1024 * 1024;

    /// <summary>Largest sealed blob: zstd's worst case for the largest raw blob plus the AEAD's nonce and tag, rounded up.</summary>
    public const int MaxBlobLength = MaxBlobRawLength + 1024 * 1024;

    /// <summary>Largest pack size a config may set (4 × the default): writers allocate a buffer of it per worker.</summary>
    public const int MaxPackSize = 128 * 1024 * 1024;

    public static T Decode<T>(ReadOnlySpan<byte> json, JsonTypeInfo<T> type, string what)
        where T : class
    {
        T? value;
        try
        {
            value = JsonSerializer.Deserialize(json, type);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or NotSupportedException or ArgumentException or FormatException or OverflowException)
        {
            // Invalid UTF-8 surfaces as InvalidOperationException, a bad date as FormatException inside the converter.
            throw new DataDamagedException($"{what} is not readable JSON ({e.Message}); run 'cairn verify'", e);
        }
        return value ?? throw new DataDamagedException($"{what} is empty (JSON null); run 'cairn verify'");
    }

    internal static IndexFile Checked(IndexFile f, string what)
    {
        // The source generator sets an absent init-only property to null (the initializer's default is not kept):
        // optional lists become empty, required ones are damage.
        f = f.Supersedes is null ? f with { Supersedes = [] } : f;
        if (f.Packs is null || f.Packs.Any(p => p is null))
        {
            throw Damaged(what, "has no packs list or a null pack entry");
        }
        if (f.Supersedes.Any(s => s is null || s.Length == 0 || s.Length > 128))
        {
            throw Damaged(what, "names an empty or overlong index in supersedes");
        }
        foreach (var p in f.Packs)
        {
            if (!ContentId.TryParse(p.Id, out _) || p.Blobs is null || p.Size < 0)
            {
                throw Damaged(what, $"has a pack entry '{ObjectNames.Short(p.Id)}' that is not a 64-digit hex ID with a blob list and a size");
            }
            foreach (var b in p.Blobs)
            {
                if (b is null || !ContentId.TryParse(b.Id, out _))
                {
                    throw Damaged(what, $"lists a blob of pack {ObjectNames.Short(p.Id)} whose ID is not 64 hex digits");
                }
                if (b.Offset < 0 || b.Length <= 0 || b.Length > MaxBlobLength || b.RawLength < 0 || b.RawLength > MaxBlobRawLength)
                {
                    throw Damaged(what, $"gives blob {ObjectNames.Short(b.Id)} in pack {ObjectNames.Short(p.Id)} an impossible range (offset {b.Offset}, length {b.Length}, raw length {b.RawLength}; a blob is at most {MaxBlobRawLength / 1024 / 1024} MiB)");
                }
            }
        }
        return f;
    }

    internal static Manifest Checked(Manifest m, string what)
    {
        m = m.Meta is null || m.Host is null ? m with { Meta = m.Meta ?? [], Host = m.Host ?? "" } : m;
        if (m.Items is null || m.Name is null || m.Kind is null)
        {
            throw Damaged(what, "has a null field (items, name or kind)");
        }
        if (m.Meta.Values.Any(v => v is null))
        {
            throw Damaged(what, "has a null value in its meta");
        }
        // A manifest without a version (0: older writers always wrote 1, readers never checked it) reads as version 1.
        if (m.Version < 0)
        {
            throw Damaged(what, $"has format version {m.Version}");
        }
        if (m.Version > Manifest.NewestVersion)
        {
            throw new RepositoryException(ErrorKind.General, $"{what} has format version {m.Version}, newer than this Cairn understands (it reads versions 1 to {Manifest.NewestVersion}); upgrade Cairn");
        }
        foreach (var i in m.Items)
        {
            if (i is null || i.Name is null || i.Type is null || i.Chunks is null || i.Size < 0)
            {
                throw Damaged(what, "has an item with a null name, type or chunk list, or a negative size");
            }
            if (i.Meta is not null && i.Meta.Values.Any(v => v is null))
            {
                throw Damaged(what, $"has a null value in the meta of item {Quote(i.Name)}");
            }
            foreach (var c in i.Chunks)
            {
                if (!ContentId.TryParse(c, out _))
                {
                    throw Damaged(what, $"lists a chunk of item {Quote(i.Name)} that is not a 64-digit hex ID");
                }
            }
            if (i.Bases is not null)
            {
                CheckBases(m, i, what);
            }
            // A restore reserves an item's size on disk before reading it: the claim must fit its chunks.
            if (i.Size > (long)i.Chunks.Count * MaxBlobRawLength)
            {
                throw Damaged(what, $"says item {Quote(i.Name)} holds {i.Size} bytes in {i.Chunks.Count} chunk(s) of at most {MaxBlobRawLength / 1024 / 1024} MiB each");
            }
        }
        return m;
    }

    /// <summary>Page patches (version 2 only): each key a block index of the item, each base a whole chunk's ID, never the patch itself.</summary>
    private static void CheckBases(Manifest m, ManifestItem i, string what)
    {
        if (m.Version < 2)
        {
            throw Damaged(what, $"is version {m.Version} but item {Quote(i.Name)} names page-patch bases (only version 2 manifests hold patches)");
        }
        foreach (var (k, v) in i.Bases!)
        {
            if (k is null || v is null || !int.TryParse(k, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var index)
                || index >= i.Chunks.Count || index.ToString(System.Globalization.CultureInfo.InvariantCulture) != k || !ContentId.TryParse(v, out _) || v == i.Chunks[index])
            {
                throw Damaged(what, $"gives item {Quote(i.Name)} a page-patch base that is not a 64-digit hex ID for one of its blocks");
            }
        }
    }

    internal static RepositoryConfig Checked(RepositoryConfig c, string what)
    {
        if (c.Chunker is null)
        {
            throw Damaged(what, "has no chunker parameters");
        }
        c = c with { Id = c.Id ?? "", Cipher = c.Cipher ?? "", ChunkId = c.ChunkId ?? "", Compression = c.Compression ?? "", Kdf = c.Kdf ?? "" };
        try
        {
            c.Chunker.Validate();
        }
        catch (InvalidDataException e)
        {
            throw Damaged(what, e.Message);
        }
        // Every writer (backup, prune) allocates a pack buffer of this size per worker: found by fuzzing at 1 GiB.
        if (c.PackSize is < 1024 or > MaxPackSize)
        {
            throw Damaged(what, $"has a pack size of {c.PackSize} bytes (1 KiB to {MaxPackSize / 1024 / 1024} MiB)");
        }
        return c;
    }

    /// <summary>A key file's fields must be present before the KDF bounds and base64 are looked at.</summary>
    internal static KeyFileData? Checked(KeyFileData k)
        => k.Kdf is null || k.Salt is null || k.Wrapped is null || k.Host is null ? null : k;

    private static DataDamagedException Damaged(string what, string problem) => new($"{what} {problem}; run 'cairn verify'");

    private static string Quote(string name) => name.Length <= 60 ? $"'{name}'" : $"'{name[..60]}…'";
}

/// <summary>Object names as messages show them.</summary>
public static class ObjectNames
{
    /// <summary>The first 8 characters of a name read from storage, or all of it when it is shorter (a forged listing may hold any name).</summary>
    public static string Short(string? name) => name is null ? "(null)" : name.Length > 8 ? name[..8] : name;
}
