using System.Buffers.Binary;

namespace Cairn.PostgreSql.Physical;

/// <summary>
/// PostgreSQL's data page checksum (storage/checksum_impl.h, <c>pg_checksum_page</c>): 32 parallel FNV-1a-like lanes over
/// the page read as 32-bit words, two extra rounds of zeros, the lanes xor-folded, the block number mixed in, reduced to
/// 1..65535. The stored checksum (<c>pd_checksum</c>, bytes 8-9 of the header) counts as zero while computing it.
/// Little-endian servers only (x86-64, arm64), as the rest of the page code here.
/// </summary>
public static class PageChecksum
{
    /// <summary>Blocks per 1 GB relation segment file with 8 kB pages (RELSEG_SIZE).</summary>
    public const uint BlocksPerSegment = 131072;

    private const uint FnvPrime = 16777619;
    private const int Lanes = 32;

    private static readonly uint[] BaseOffsets =
    [
        0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
        0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
        0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
        0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756,
    ];

    /// <summary>The checksum PostgreSQL would store for <paramref name="page"/> as block <paramref name="blockNumber"/> of its relation fork.</summary>
    public static ushort Compute(ReadOnlySpan<byte> page, uint blockNumber)
    {
        if (page.Length % (4 * Lanes) != 0)
        {
            throw new ArgumentException($"a page is a multiple of {4 * Lanes} bytes; got {page.Length}", nameof(page));
        }
        Span<uint> sums = stackalloc uint[Lanes];
        BaseOffsets.CopyTo(sums);
        var rows = page.Length / (4 * Lanes);
        for (var i = 0; i < rows; i++)
        {
            for (var j = 0; j < Lanes; j++)
            {
                var offset = ((i * Lanes) + j) * 4;
                // pd_checksum (bytes 8-9, in the third word) is taken as zero.
                var word = offset == 8 ? BinaryPrimitives.ReadUInt32LittleEndian(page[8..]) & 0xFFFF0000u : BinaryPrimitives.ReadUInt32LittleEndian(page[offset..]);
                sums[j] = Mix(sums[j], word);
            }
        }
        for (var round = 0; round < 2; round++)
        {
            for (var j = 0; j < Lanes; j++)
            {
                sums[j] = Mix(sums[j], 0);
            }
        }
        uint result = 0;
        foreach (var s in sums)
        {
            result ^= s;
        }
        result ^= blockNumber;
        return (ushort)((result % 65535) + 1);
    }

    /// <summary>The checksum stored in the page header.</summary>
    public static ushort Stored(ReadOnlySpan<byte> page) => BinaryPrimitives.ReadUInt16LittleEndian(page[8..]);

    /// <summary>A page PostgreSQL never initialised (pd_upper is 0): it carries no checksum.</summary>
    public static bool IsNew(ReadOnlySpan<byte> page) => BinaryPrimitives.ReadUInt16LittleEndian(page[14..]) == 0;

    /// <summary>
    /// The block numbers of the pages in <paramref name="block"/> whose checksum does not match, given the block number of its
    /// first page. Skipped, as pg_basebackup does: new pages, and pages whose LSN is at or after <paramref name="skipFromLsn"/>
    /// (written during an online backup, possibly torn while read; WAL replay rewrites them from full-page images).
    /// </summary>
    public static List<uint> BadPages(ReadOnlySpan<byte> block, int pageSize, uint firstBlockNumber, ulong skipFromLsn)
    {
        var bad = new List<uint>();
        for (var off = 0; off + pageSize <= block.Length; off += pageSize)
        {
            var page = block.Slice(off, pageSize);
            var lsn = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(page) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(page[4..]);
            var number = firstBlockNumber + (uint)(off / pageSize);
            if (IsNew(page) || lsn >= skipFromLsn)
            {
                continue;
            }
            if (Compute(page, number) != Stored(page))
            {
                bad.Add(number);
            }
        }
        return bad;
    }

    /// <summary>The segment number of a relation file path (<c>base/5/16384.2</c> → 2; no suffix → 0).</summary>
    public static uint SegmentOf(string path)
    {
        var name = path[(path.LastIndexOf('/') + 1)..];
        var dot = name.IndexOf('.', StringComparison.Ordinal);
        return dot < 0 ? 0 : uint.Parse(name[(dot + 1)..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static uint Mix(uint sum, uint value)
    {
        var t = sum ^ value;
        return (t * FnvPrime) ^ (t >> 17);
    }
}
