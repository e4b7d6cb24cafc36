using Microsoft.Win32.SafeHandles;

namespace Cairn.PostgreSql.Files;

/// <summary>
/// A write-only stream over a file handle that writes synchronously with pwrite at its own position, also when called
/// through WriteAsync. A FileStream over a handle opened without O_ASYNC hands every WriteAsync to another pool
/// thread and back; a restore writes a data directory in 256 KiB pieces into the page cache, where that hop (one per
/// piece, thousands per restore) costs more than the write, most of all on a loaded machine. Owns the handle.
/// </summary>
public sealed class PositionalWriteStream(SafeFileHandle handle) : Stream
{
    private long _position;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _position;

    public override long Position
    {
        get => _position;
        set => throw new NotSupportedException();
    }

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        RandomAccess.Write(handle, buffer, _position);
        _position += buffer.Length;
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        Write(buffer.Span);
        return ValueTask.CompletedTask;
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            handle.Dispose();
        }
        base.Dispose(disposing);
    }
}
