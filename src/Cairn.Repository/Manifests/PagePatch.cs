using System.Buffers.Binary;
using System.Numerics;
using Cairn.Repository.Crypto;

namespace Cairn.Repository.Manifests;

/// <summary>
/// A page patch (docs/repository-format.md, "Page patches"): a fixed block stored as the XOR of its changed pages with
/// the pages of a base chunk. Plaintext:
/// <c>"CPX1" ‖ base ID (32) ‖ rebuilt ID (32) ‖ rebuilt length (u32 LE) ‖ page size (u32 LE) ‖ n (u16 LE) ‖
/// n page numbers (u16 LE, strictly ascending) ‖ n deltas (page size bytes each)</c>.
/// </summary>
public sealed class PagePatch
{
    public static ReadOnlySpan<byte> Magic => "CPX1"u8;

    public const int HeaderSize = 4 + ContentId.Size + ContentId.Size + 4 + 4 + 2;

    /// <summary>The smallest and largest page size a patch may name (PostgreSQL's block sizes are 1 to 32 KiB).</summary>
    public const int MinPageSize = 1024;

    public const int MaxPageSize = 32 * 1024;

    private PagePatch(ContentId baseId, ContentId rebuiltId, int rebuiltLength, int pageSize, ushort[] pages, ReadOnlyMemory<byte> deltas)
    {
        BaseId = baseId;
        RebuiltId = rebuiltId;
        RebuiltLength = rebuiltLength;
        PageSize = pageSize;
        Pages = pages;
        Deltas = deltas;
    }

    public ContentId BaseId { get; }

    public ContentId RebuiltId { get; }

    public int RebuiltLength { get; }

    public int PageSize { get; }

    public IReadOnlyList<ushort> Pages { get; }

    private ReadOnlyMemory<byte> Deltas { get; }

    /// <summary>
    /// The patch that turns <paramref name="baseBlock"/> into <paramref name="block"/> (same length, a multiple of
    /// <paramref name="pageSize"/>), or null when no page differs (the block is the base).
    /// </summary>
    public static byte[]? Build(ReadOnlySpan<byte> baseBlock, ReadOnlySpan<byte> block, int pageSize, ContentId baseId, ContentId rebuiltId)
    {
        if (baseBlock.Length != block.Length || !ValidPageSize(pageSize) || block.Length % pageSize != 0 || block.Length / pageSize > ushort.MaxValue)
        {
            throw new ArgumentException("a patch needs a base of the block's length, in whole pages");
        }
        var count = block.Length / pageSize;
        Span<ushort> changed = count <= 1024 ? stackalloc ushort[count] : new ushort[count];
        var n = 0;
        for (var p = 0; p < count; p++)
        {
            if (!block.Slice(p * pageSize, pageSize).SequenceEqual(baseBlock.Slice(p * pageSize, pageSize)))
            {
                changed[n++] = (ushort)p;
            }
        }
        if (n == 0)
        {
            return null;
        }
        var patch = new byte[HeaderSize + (n * 2) + (n * pageSize)];
        var s = patch.AsSpan();
        Magic.CopyTo(s);
        baseId.WriteTo(s[4..]);
        rebuiltId.WriteTo(s[(4 + ContentId.Size)..]);
        BinaryPrimitives.WriteUInt32LittleEndian(s[68..], (uint)block.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(s[72..], (uint)pageSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[76..], (ushort)n);
        var deltas = HeaderSize + (n * 2);
        for (var k = 0; k < n; k++)
        {
            var p = changed[k];
            BinaryPrimitives.WriteUInt16LittleEndian(s[(HeaderSize + (k * 2))..], p);
            Xor(block.Slice(p * pageSize, pageSize), baseBlock.Slice(p * pageSize, pageSize), s.Slice(deltas + (k * pageSize), pageSize));
        }
        return patch;
    }

    /// <summary>
    /// Parses a patch, refusing (as damage) any other magic, a page size out of range or not <paramref name="expectedPageSize"/>
    /// (when given), a length that is not whole pages, a page number out of range or not strictly ascending, a short
    /// patch or a trailing byte.
    /// </summary>
    public static PagePatch Parse(ReadOnlyMemory<byte> patch, string what, int? expectedPageSize = null)
    {
        var s = patch.Span;
        if (s.Length < HeaderSize || !s[..4].SequenceEqual(Magic))
        {
            throw new DataDamagedException($"{what} is not a page patch (no CPX1 header)");
        }
        var baseId = ContentId.FromBytes(s.Slice(4, ContentId.Size));
        var rebuiltId = ContentId.FromBytes(s.Slice(4 + ContentId.Size, ContentId.Size));
        var length = BinaryPrimitives.ReadUInt32LittleEndian(s[68..]);
        var pageSize = BinaryPrimitives.ReadUInt32LittleEndian(s[72..]);
        var n = BinaryPrimitives.ReadUInt16LittleEndian(s[76..]);
        if (pageSize > MaxPageSize || !ValidPageSize((int)pageSize) || (expectedPageSize is { } e && pageSize != e))
        {
            throw new DataDamagedException($"{what} names a page size of {pageSize} bytes{(expectedPageSize is { } x ? $" (the backup's is {x})" : "")}");
        }
        if (length == 0 || length > StoredJson.MaxBlobRawLength || length % pageSize != 0)
        {
            throw new DataDamagedException($"{what} rebuilds {length} bytes, not whole pages of {pageSize}");
        }
        var pagesInBlock = length / pageSize;
        if (n == 0 || n > pagesInBlock || s.Length != HeaderSize + (n * 2) + ((long)n * pageSize))
        {
            throw new DataDamagedException($"{what} is {s.Length} bytes for {n} page(s) of {pageSize}: short, or with trailing bytes");
        }
        var pages = new ushort[n];
        for (var k = 0; k < n; k++)
        {
            pages[k] = BinaryPrimitives.ReadUInt16LittleEndian(s[(HeaderSize + (k * 2))..]);
            if (pages[k] >= pagesInBlock || (k > 0 && pages[k] <= pages[k - 1]))
            {
                throw new DataDamagedException($"{what} names page {pages[k]} out of order or past the block's {pagesInBlock} pages");
            }
        }
        return new PagePatch(baseId, rebuiltId, (int)length, (int)pageSize, pages, patch[(HeaderSize + (n * 2))..]);
    }

    /// <summary>Writes the rebuilt block (exactly <see cref="RebuiltLength"/> bytes) into <paramref name="destination"/>; the caller checks <see cref="RebuiltId"/>.</summary>
    public void Apply(ReadOnlySpan<byte> baseBlock, Span<byte> destination)
    {
        if (baseBlock.Length != RebuiltLength || destination.Length != RebuiltLength)
        {
            throw new DataDamagedException($"a page patch rebuilds {RebuiltLength} bytes, its base has {baseBlock.Length}");
        }
        baseBlock.CopyTo(destination);
        var deltas = Deltas.Span;
        for (var k = 0; k < Pages.Count; k++)
        {
            var at = Pages[k] * PageSize;
            Xor(baseBlock.Slice(at, PageSize), deltas.Slice(k * PageSize, PageSize), destination.Slice(at, PageSize));
        }
    }

    private static bool ValidPageSize(int pageSize) => pageSize is >= MinPageSize and <= MaxPageSize && BitOperations.IsPow2(pageSize);

    private static void Xor(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b, Span<byte> into)
    {
        var i = 0;
        var width = Vector<byte>.Count;
        for (; i + width <= a.Length; i += width)
        {
            (new Vector<byte>(a[i..]) ^ new Vector<byte>(b[i..])).CopyTo(into[i..]);
        }
        for (; i < a.Length; i++)
        {
            into[i] = (byte)(a[i] ^ b[i]);
        }
    }
}
