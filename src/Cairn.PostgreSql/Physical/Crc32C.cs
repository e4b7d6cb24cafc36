using System.Buffers.Binary;
using System.Runtime.Intrinsics.X86;

namespace Cairn.PostgreSql.Physical;

/// <summary>
/// CRC-32C (Castagnoli), the checksum PostgreSQL's backup manifests use by default. Hand-written because
/// System.IO.Hashing (10.0) has only CRC-32 and CRC-64; it uses the SSE 4.2 instruction (GB/s) and a
/// table elsewhere. Checked against the RFC 3720 B.4 test vectors (BackupManifestTests) and against pg_verifybackup
/// (PhysicalFileTests).
/// </summary>
public sealed class Crc32C
{
    private static readonly uint[] Table = BuildTable();
    private uint _state = 0xFFFFFFFF;

    public void Append(ReadOnlySpan<byte> data)
    {
        var crc = _state;
        if (Sse42.X64.IsSupported)
        {
            while (data.Length >= 8)
            {
                crc = (uint)Sse42.X64.Crc32(crc, BinaryPrimitives.ReadUInt64LittleEndian(data));
                data = data[8..];
            }
        }
        if (Sse42.IsSupported)
        {
            foreach (var b in data)
            {
                crc = Sse42.Crc32(crc, b);
            }
        }
        else
        {
            foreach (var b in data)
            {
                crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            }
        }
        _state = crc;
    }

    public uint Value => ~_state;

    /// <summary>As PostgreSQL prints it in backup_manifest: eight lower-case hex digits of the little-endian bytes.</summary>
    public string Hex
    {
        get
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(b, Value);
            return Convert.ToHexStringLower(b);
        }
    }

    public static string Of(ReadOnlySpan<byte> data)
    {
        var c = new Crc32C();
        c.Append(data);
        return c.Hex;
    }

    private static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            var c = i;
            for (var k = 0; k < 8; k++)
            {
                c = (c & 1) != 0 ? 0x82F63B78 ^ (c >> 1) : c >> 1;
            }
            t[i] = c;
        }
        return t;
    }
}

/// <summary>Passes a stream through while computing its CRC-32C and counting its bytes.</summary>
public sealed class Crc32CStream(Stream inner) : Stream
{
    public Crc32C Crc { get; } = new();

    public long BytesRead { get; private set; }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer);
        Crc.Append(buffer[..n]);
        BytesRead += n;
        return n;
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        Crc.Append(buffer.Span[..n]);
        BytesRead += n;
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
