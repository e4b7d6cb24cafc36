using System.Text;

namespace Cairn.PostgreSql.Physical;

/// <summary>
/// A read-only pass-through stream over a tar stream that keeps a copy of chosen small entries
/// (backup_label, backup_manifest) as they flow by, so the tar goes straight to the repository and
/// is never read twice.
/// </summary>
internal sealed class TarSniffer(Stream inner, IReadOnlySet<string> wanted, long maxEntry = 64 * 1024 * 1024) : Stream
{
    private readonly byte[] _header = new byte[512];
    private int _headerFill;
    private long _remaining;      // bytes of the current entry's data still to come
    private long _padding;        // padding after the data
    private MemoryStream? _capture;
    private string? _captureName;

    public Dictionary<string, byte[]> Captured { get; } = new(StringComparer.Ordinal);

    public override int Read(byte[] buffer, int offset, int count) => Observe(buffer.AsSpan(offset, inner.Read(buffer, offset, count)));

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Observe(buffer.Span[..n]);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    private int Observe(ReadOnlySpan<byte> data)
    {
        var n = data.Length;
        while (data.Length > 0)
        {
            if (_remaining > 0)
            {
                var take = (int)Math.Min(_remaining, data.Length);
                _capture?.Write(data[..take]);
                _remaining -= take;
                data = data[take..];
                if (_remaining == 0 && _capture is not null)
                {
                    Captured[_captureName!] = _capture.ToArray();
                    _capture = null;
                }
                continue;
            }
            if (_padding > 0)
            {
                var skip = (int)Math.Min(_padding, data.Length);
                _padding -= skip;
                data = data[skip..];
                continue;
            }
            var h = Math.Min(512 - _headerFill, data.Length);
            data[..h].CopyTo(_header.AsSpan(_headerFill));
            _headerFill += h;
            data = data[h..];
            if (_headerFill < 512)
            {
                continue;
            }
            _headerFill = 0;
            if (_header.All(b => b == 0))
            {
                continue; // end-of-archive blocks
            }
            var name = Encoding.ASCII.GetString(_header, 0, 100).TrimEnd('\0');
            var size = SizeOf(_header.AsSpan(124, 12), name);
            _remaining = size;
            _padding = (512 - (size % 512)) % 512;
            if (wanted.Contains(name) && size <= maxEntry)
            {
                _captureName = name;
                // Grown as the bytes arrive: a header's size is a claim, not a reason to allocate.
                _capture = new MemoryStream();
                if (size == 0)
                {
                    Captured[name] = [];
                    _capture = null;
                }
            }
        }
        return n;
    }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    internal static string? Field(string text, string key) => text.Split('\n').FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?[key.Length..].Trim();

    /// <summary>
    /// A tar header's size field: octal digits (NUL/space padded), or base-256 when the high bit of the first byte
    /// is set (GNU; PostgreSQL writes it for files of 8 GiB and more). Anything else is a damaged stream.
    /// </summary>
    internal static long SizeOf(ReadOnlySpan<byte> field, string entry)
    {
        if ((field[0] & 0x80) != 0)
        {
            if (field[0] != 0x80 || field[1..4].ContainsAnyExcept((byte)0))
            {
                throw Damaged(entry);
            }
            long v = 0;
            foreach (var b in field[4..])
            {
                v = (v << 8) | b;
            }
            return v >= 0 ? v : throw Damaged(entry);
        }
        var text = Encoding.ASCII.GetString(field).Trim('\0', ' ');
        if (text.Length == 0)
        {
            return 0;
        }
        if (text.Length > 11 || text.Any(c => c is < '0' or > '7'))
        {
            throw Damaged(entry);
        }
        return Convert.ToInt64(text, 8);
    }

    private static PgToolException Damaged(string entry)
        => new($"the tar stream from pg_basebackup has an unreadable size in the header of '{WalNames.Shorten(entry)}'; the stream is damaged and no backup was recorded");
}
