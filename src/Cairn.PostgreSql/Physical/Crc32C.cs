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

    /// <summary>
    /// Appends data of <paramref name="length"/> bytes whose own CRC-32C is <paramref name="crc"/>, without reading it
    /// again: the state is advanced over <paramref name="length"/> zero bytes (a linear map over GF(2), applied by
    /// squaring, as zlib's crc32_combine does) and the data's CRC is folded in. A physical backup checksums each block
    /// once and gets the whole file's CRC from the blocks' CRCs.
    /// </summary>
    public void AppendCrc(uint crc, long length)
    {
        if (length <= 0)
        {
            return;
        }
        // Value(A‖B) = shift(Value(A), |B|) ^ Value(B), where shift multiplies by x^(8|B|) mod P (reflected).
        _state = ~(Shift(~_state, length) ^ crc);
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<long, uint[]> Shifts = new();

    /// <summary>The CRC register advanced over <paramref name="length"/> zero bytes.</summary>
    private static uint Shift(uint crc, long length) => Times(Shifts.GetOrAdd(length, ShiftOperator), crc);

    /// <summary>The 32×32 GF(2) matrix (one column per bit) that advances a CRC register over <paramref name="length"/> zero bytes.</summary>
    private static uint[] ShiftOperator(long length)
    {
        // One zero bit: the register shifts right and the polynomial is folded in when the low bit falls out.
        var bit = new uint[32];
        bit[0] = 0x82F63B78;
        for (var n = 1; n < 32; n++)
        {
            bit[n] = 1u << (n - 1);
        }
        var power = Square(Square(Square(bit))); // 8 zero bits: one zero byte
        var result = new uint[32];
        for (var n = 0; n < 32; n++)
        {
            result[n] = 1u << n; // identity
        }
        for (var left = length; left > 0; left >>= 1)
        {
            if ((left & 1) != 0)
            {
                result = Multiply(power, result);
            }
            power = Square(power);
        }
        return result;
    }

    private static uint Times(uint[] matrix, uint vector)
    {
        uint sum = 0;
        for (var n = 0; vector != 0; n++, vector >>= 1)
        {
            if ((vector & 1) != 0)
            {
                sum ^= matrix[n];
            }
        }
        return sum;
    }

    private static uint[] Square(uint[] m) => Multiply(m, m);

    /// <summary>The matrix applying <paramref name="b"/> first, then <paramref name="a"/>.</summary>
    private static uint[] Multiply(uint[] a, uint[] b)
    {
        var r = new uint[32];
        for (var n = 0; n < 32; n++)
        {
            r[n] = Times(a, b[n]);
        }
        return r;
    }

    /// <summary>As PostgreSQL prints it in backup_manifest: eight lower-case hex digits of the little-endian bytes.</summary>
    public string Hex => HexOf(Value);

    public static string Of(ReadOnlySpan<byte> data) => HexOf(ValueOf(data));

    /// <summary>The CRC-32C of <paramref name="data"/> as a number.</summary>
    public static uint ValueOf(ReadOnlySpan<byte> data)
    {
        var c = new Crc32C();
        c.Append(data);
        return c.Value;
    }

    /// <summary>A CRC value as PostgreSQL prints it in backup_manifest (see <see cref="Hex"/>).</summary>
    public static string HexOf(uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, value);
        return Convert.ToHexStringLower(b);
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
