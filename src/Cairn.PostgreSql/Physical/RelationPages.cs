using System.Buffers.Binary;
using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Physical;

/// <summary>
/// PostgreSQL relation data files: fixed pages, each starting with the LSN of the last WAL record that changed it.
/// A page whose LSN is older than the start of the previous backup has not been changed (through WAL) since before
/// that backup's checkpoint, so the previous backup already holds it (pg_probackup's DELTA rule); hint-bit-only
/// changes (not WAL-logged without data checksums) are caught by comparing a block checksum as well.
/// </summary>
public static partial class RelationPages
{
    /// <summary>Main-fork relation segments: global/N, base/DB/N[.S], pg_tblspc/OID/PG_x/DB/N[.S].</summary>
    public static bool IsRelationData(string path) => RelationPath().IsMatch(path);

    /// <summary>True when <paramref name="block"/> is whole pages and every page's LSN is below <paramref name="lsn"/>.</summary>
    public static bool AllOlderThan(ReadOnlySpan<byte> block, int pageSize, ulong lsn)
    {
        if (pageSize < 512 || block.Length % pageSize != 0)
        {
            return false;
        }
        for (var off = 0; off < block.Length; off += pageSize)
        {
            // PageHeaderData.pd_lsn: { uint32 xlogid; uint32 xrecoff; } in the server's byte order (little-endian here).
            var pageLsn = ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(block[off..]) << 32) | BinaryPrimitives.ReadUInt32LittleEndian(block[(off + 4)..]);
            if (pageLsn >= lsn)
            {
                return false;
            }
        }
        return true;
    }

    [GeneratedRegex(@"^(global/\d+|base/\d+/\d+|pg_tblspc/\d+/PG_[^/]+/\d+/\d+)(\.\d+)?\z")]
    private static partial Regex RelationPath();
}
