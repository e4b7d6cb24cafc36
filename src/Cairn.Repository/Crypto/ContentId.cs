using System.Buffers.Binary;

namespace Cairn.Repository.Crypto;

/// <summary>A 256-bit identifier: a blob ID (HMAC-SHA256) or an object name (SHA-256).</summary>
public readonly record struct ContentId(ulong A, ulong B, ulong C, ulong D)
{
    public const int Size = 32;

    public static ContentId FromBytes(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length != Size)
        {
            throw new ArgumentException("a content ID is 32 bytes", nameof(bytes));
        }
        return new ContentId(
            BinaryPrimitives.ReadUInt64BigEndian(bytes),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[8..]),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[16..]),
            BinaryPrimitives.ReadUInt64BigEndian(bytes[24..]));
    }

    public static ContentId Parse(string hex)
    {
        if (!TryParse(hex, out var id))
        {
            throw new FormatException($"'{hex}' is not a 64-digit hex ID");
        }
        return id;
    }

    public static bool TryParse(string? hex, out ContentId id)
    {
        id = default;
        if (hex is null || hex.Length != 64)
        {
            return false;
        }
        Span<byte> b = stackalloc byte[Size];
        var status = Convert.FromHexString(hex, b, out _, out var written);
        if (status != System.Buffers.OperationStatus.Done || written != Size)
        {
            return false;
        }
        id = FromBytes(b);
        return true;
    }

    public void WriteTo(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt64BigEndian(destination, A);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], B);
        BinaryPrimitives.WriteUInt64BigEndian(destination[16..], C);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], D);
    }

    public byte[] ToBytes()
    {
        var b = new byte[Size];
        WriteTo(b);
        return b;
    }

    public string ToHex()
    {
        Span<byte> b = stackalloc byte[Size];
        WriteTo(b);
        return Convert.ToHexStringLower(b);
    }

    public string Short => ToHex()[..8];

    public override string ToString() => ToHex();

    public static ContentId Sha256(ReadOnlySpan<byte> data)
    {
        Span<byte> h = stackalloc byte[Size];
        System.Security.Cryptography.SHA256.HashData(data, h);
        return FromBytes(h);
    }
}
