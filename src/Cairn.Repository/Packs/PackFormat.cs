using System.Buffers.Binary;
using Cairn.Repository.Crypto;

namespace Cairn.Repository.Packs;

/// <summary>One blob as the pack header lists it.</summary>
public readonly record struct PackHeaderEntry(byte Type, ContentId Id, int Length, int RawLength);

/// <summary>Builds one pack in memory: blobs, then the encrypted header, then its length.</summary>
internal sealed class PackBuilder
{
    internal const int EntrySize = 1 + ContentId.Size + 4 + 4;
    private byte[] _buffer;
    private readonly List<PackHeaderEntry> _entries = [];

    public PackBuilder(int capacity)
        : this(GC.AllocateUninitializedArray<byte>(capacity))
    {
    }

    /// <summary>Builds into a caller-owned buffer (e.g. from a pool); it grows if a pack outgrows it.</summary>
    public PackBuilder(byte[] buffer)
    {
        _buffer = buffer;
    }

    public int Length { get; private set; }

    public int Count => _entries.Count;

    public void Add(ContentId id, ReadOnlySpan<byte> sealedBlob, int rawLength)
    {
        Ensure(Length + sealedBlob.Length);
        sealedBlob.CopyTo(_buffer.AsSpan(Length));
        Length += sealedBlob.Length;
        _entries.Add(new PackHeaderEntry(0, id, sealedBlob.Length, rawLength));
    }

    public (ContentId Id, ReadOnlyMemory<byte> Bytes, IndexPack Index) Finish(Aead aead)
    {
        var header = new byte[_entries.Count * EntrySize];
        for (var i = 0; i < _entries.Count; i++)
        {
            var e = _entries[i];
            var s = header.AsSpan(i * EntrySize, EntrySize);
            s[0] = e.Type;
            e.Id.WriteTo(s[1..]);
            BinaryPrimitives.WriteInt32LittleEndian(s[33..], e.Length);
            BinaryPrimitives.WriteInt32LittleEndian(s[37..], e.RawLength);
        }
        var sealedHeader = aead.Seal(header, Aead.PackHeaderContext);
        Ensure(Length + sealedHeader.Length + 4);
        sealedHeader.CopyTo(_buffer.AsSpan(Length));
        Length += sealedHeader.Length;
        BinaryPrimitives.WriteInt32LittleEndian(_buffer.AsSpan(Length), sealedHeader.Length);
        Length += 4;
        var bytes = _buffer.AsMemory(0, Length);
        var id = ContentId.Sha256(bytes.Span);
        var blobs = new List<IndexBlob>(_entries.Count);
        long offset = 0;
        foreach (var e in _entries)
        {
            blobs.Add(new IndexBlob { Id = e.Id.ToHex(), Offset = offset, Length = e.Length, RawLength = e.RawLength });
            offset += e.Length;
        }
        return (id, bytes, new IndexPack { Id = id.ToHex(), Size = Length, Blobs = blobs });
    }

    private void Ensure(int size)
    {
        if (size > _buffer.Length)
        {
            Array.Resize(ref _buffer, Math.Max(size, _buffer.Length * 2));
        }
    }
}

/// <summary>Reads and checks a whole pack: its name, header and blob layout.</summary>
internal static class PackReader
{
    /// <summary>Parses the header of a complete pack. Throws <see cref="DataDamagedException"/> when it is unreadable.</summary>
    public static List<PackHeaderEntry> ReadHeader(ReadOnlySpan<byte> pack, Aead aead, string name)
    {
        if (pack.Length < 4 + Aead.Overhead)
        {
            throw new DataDamagedException($"pack {name} is truncated ({pack.Length} bytes)");
        }
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(pack[^4..]);
        if (headerLength < Aead.Overhead || headerLength > pack.Length - 4)
        {
            throw new DataDamagedException($"pack {name} has a damaged header length ({headerLength})");
        }
        var header = aead.Open(pack.Slice(pack.Length - 4 - headerLength, headerLength), Aead.PackHeaderContext, $"header of pack {name}");
        if (header.Length % PackBuilder.EntrySize != 0)
        {
            throw new DataDamagedException($"pack {name} has a malformed header");
        }
        var entries = new List<PackHeaderEntry>(header.Length / PackBuilder.EntrySize);
        for (var i = 0; i < header.Length; i += PackBuilder.EntrySize)
        {
            var s = header.AsSpan(i, PackBuilder.EntrySize);
            entries.Add(new PackHeaderEntry(s[0], ContentId.FromBytes(s.Slice(1, 32)), BinaryPrimitives.ReadInt32LittleEndian(s[33..]), BinaryPrimitives.ReadInt32LittleEndian(s[37..])));
        }
        return entries;
    }
}
