using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

public enum NamedPutResult
{
    Stored,
    AlreadyStoredIdentical,
}

/// <summary>
/// Files stored whole under a name (<c>wal/NAME</c>): for PostgreSQL WAL, which does not deduplicate and must be
/// fetched by name in one read. Each object is AES-256-GCM sealed with the name as associated data; its plaintext is a
/// 32-byte field followed by one zstd frame of the file. Written now, the field is <see cref="ChecksumInFrame"/> and
/// the frame records zstd's content checksum of the file (checked by the decoder on every read); objects written
/// before hold the file's SHA-256 there (still read and checked). A second put of the same name compares the stored
/// file with the new one byte for byte: identical is success, different is refused (docs/repository-format.md).
/// </summary>
public static class NamedFiles
{
    private static readonly byte[] Context = Encoding.ASCII.GetBytes("cairn-named");

    /// <summary>The zstd level WAL is stored at unless the configuration says otherwise (<c>wal: { compression: zstd:N }</c>).</summary>
    public const int DefaultLevel = 1;

    private const int FieldSize = 32;

    /// <summary>
    /// The field of an object whose zstd frame carries the file's checksum (format 2 of named files): ASCII
    /// <c>cairn-named-v2</c> and zeros. No SHA-256 is known to start with 14 chosen bytes, so it never reads as one.
    /// </summary>
    private static readonly byte[] ChecksumInFrame = [.. "cairn-named-v2"u8, .. new byte[FieldSize - 14]];

    /// <summary>What every format's field starts with when it is no SHA-256 (a newer Cairn's objects start so too).</summary>
    private static ReadOnlySpan<byte> FormatPrefix => "cairn-named-v"u8;

    public static Task<NamedPutResult> PutAsync(Repository repo, string name, ReadOnlyMemory<byte> data, CancellationToken ct)
        => PutAsync(repo, name, data, DefaultLevel, ct);

    public static Task<NamedPutResult> PutAsync(Repository repo, string name, ReadOnlyMemory<byte> data, int level, CancellationToken ct)
        => PutCoreAsync(repo, name, () => data.Span, level, ct);

    public static Task<NamedPutResult> PutFileAsync(Repository repo, string name, string path, CancellationToken ct)
        => PutFileAsync(repo, name, path, DefaultLevel, ct);

    /// <summary>
    /// Stores a file under a name, reading it through a read-only memory map: a 16 MiB WAL segment costs no
    /// copy into fresh (zero-filled) memory, which is most of the time a small archive_command takes.
    /// </summary>
    public static async Task<NamedPutResult> PutFileAsync(Repository repo, string name, string path, int level, CancellationToken ct)
    {
        using var mapped = MappedFile.Open(path);
        return await PutCoreAsync(repo, name, () => mapped.Span, level, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Publishes with the storage's create-only put, so of two archivers racing on one name exactly one
    /// stores; the other (and any later put) compares content: identical is success, different is refused.
    /// </summary>
    private static async Task<NamedPutResult> PutCoreAsync(Repository repo, string name, SpanSource data, int level, CancellationToken ct)
    {
        var key = new StorageKey(ObjectKind.Named, name);
        if (await repo.Storage.StatAsync(key, ct).ConfigureAwait(false) is null)
        {
            // A pooled buffer sealed in place: the background pusher seals segment after segment, and fresh arrays each
            // time cost the kernel thousands of page faults (measured: about a seventh of the pusher's CPU per segment).
            var buffer = ArrayPool<byte>.Shared.Rent(SealedBound(data().Length));
            try
            {
                var sealedBytes = buffer.AsMemory(0, Seal(repo, name, data(), level, buffer));
                bool created;
                try
                {
                    created = await repo.Storage.PutIfAbsentAsync(key, sealedBytes, ct).ConfigureAwait(false);
                }
                catch (NotSupportedException)
                {
                    // A server that ignores conditional writes (s3rver, older MinIO and Ceph): the storage says so and never
                    // pretends. Here, and only here, the fallback: the stat above found nothing, so put, then read back and
                    // compare. Two servers archiving one name at the same instant can still overwrite each other in the
                    // window between stat and put; the later push or verify of a different file detects it
                    // (docs/security.md; 'cairn doctor' warns about such a server).
                    await repo.Storage.PutAsync(key, sealedBytes, ct).ConfigureAwait(false);
                    created = true;
                    var back = await GetAsync(repo, name, ct).ConfigureAwait(false);
                    if (!back.AsSpan().SequenceEqual(data()))
                    {
                        throw new RepositoryException(ErrorKind.AlreadyExists, $"{name} was archived with different content by another writer at the same moment (this S3 server ignores conditional writes; archive each server into its own prefix)");
                    }
                }
                if (created)
                {
                    return NamedPutResult.Stored;
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        // Already there: the stored file (authenticated, and checked against its checksum or hash) byte for byte.
        var existing = await GetAsync(repo, name, ct).ConfigureAwait(false);
        if (existing.AsSpan().SequenceEqual(data()))
        {
            return NamedPutResult.AlreadyStoredIdentical;
        }
        throw new RepositoryException(ErrorKind.AlreadyExists, $"{name} is already archived with different content; refusing to overwrite it (PostgreSQL must not archive a different file under the same name: check for two servers archiving into the same place)");
    }

    private delegate ReadOnlySpan<byte> SpanSource();

    private static int SealedBound(int length) => Aead.NonceSize + FieldSize + Zstd.CompressBound(length) + Aead.TagSize;

    /// <summary>
    /// Seals <c>field ‖ zstd(file)</c> in place in <paramref name="buffer"/> (nonce ‖ ciphertext ‖ tag, no copy):
    /// the frame records the file's checksum, so no hash of the file is computed here.
    /// </summary>
    private static int Seal(Repository repo, string name, ReadOnlySpan<byte> data, int level, byte[] buffer)
    {
        ChecksumInFrame.CopyTo(buffer, Aead.NonceSize);
        var n = Zstd.CompressChecksummed(data, buffer.AsSpan(Aead.NonceSize + FieldSize, Zstd.CompressBound(data.Length)), level);
        var plain = buffer.AsSpan(Aead.NonceSize, FieldSize + n);
        return repo.Aead.Seal(plain, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)), buffer.AsSpan(0, plain.Length + Aead.Overhead));
    }

    /// <summary>A whole file mapped read-only (an empty file is an empty span).</summary>
    private sealed unsafe class MappedFile : IDisposable
    {
        private readonly System.IO.MemoryMappedFiles.MemoryMappedFile? _file;
        private readonly System.IO.MemoryMappedFiles.MemoryMappedViewAccessor? _view;
        private readonly byte* _pointer;
        private readonly int _length;

        private MappedFile(System.IO.MemoryMappedFiles.MemoryMappedFile? file, System.IO.MemoryMappedFiles.MemoryMappedViewAccessor? view, int length)
        {
            _file = file;
            _view = view;
            _length = length;
            if (view is not null)
            {
                byte* p = null;
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
                _pointer = p + view.PointerOffset;
            }
        }

        public ReadOnlySpan<byte> Span => _length == 0 ? [] : new(_pointer, _length);

        public static MappedFile Open(string path)
        {
            var length = new FileInfo(path).Length; // FileNotFoundException when it is not there
            if (length == 0)
            {
                return new MappedFile(null, null, 0);
            }
            var file = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
            try
            {
                return new MappedFile(file, file.CreateViewAccessor(0, length, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read), checked((int)length));
            }
            catch
            {
                file.Dispose();
                throw;
            }
        }

        public void Dispose()
        {
            if (_view is not null)
            {
                _view.SafeMemoryMappedViewHandle.ReleasePointer();
                _view.Dispose();
            }
            _file?.Dispose();
        }
    }

    /// <summary>The content of a named file, authenticated and checked against its checksum (or, in older objects, its SHA-256).</summary>
    public static async Task<byte[]> GetAsync(Repository repo, string name, CancellationToken ct)
    {
        var plain = await OpenAsync(repo, name, ct).ConfigureAwait(false);
        var recordedHash = RecordedHash(name, plain);
        byte[] data;
        try
        {
            data = Zstd.Decompress(plain.AsSpan(FieldSize));
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"archived file {name} does not decompress or does not match its checksum: {e.Message}", e);
        }
        if (recordedHash is not null && !SHA256.HashData(data).AsSpan().SequenceEqual(recordedHash))
        {
            throw new DataDamagedException($"archived file {name} does not match its recorded hash (tampered)");
        }
        return data;
    }

    /// <summary>
    /// The SHA-256 an object of the first format records, or null for an object whose zstd frame carries the checksum
    /// (then the frame must say it does: an object without one is refused, never read unchecked).
    /// </summary>
    private static byte[]? RecordedHash(string name, byte[] plain)
    {
        var field = plain.AsSpan(0, FieldSize);
        if (field.SequenceEqual(ChecksumInFrame))
        {
            return Zstd.HasContentChecksum(plain.AsSpan(FieldSize))
                ? null
                : throw new DataDamagedException($"archived file {name} says its zstd frame records a checksum, and it does not (damaged or not written by Cairn)");
        }
        if (field.StartsWith(FormatPrefix))
        {
            throw new DataDamagedException($"archived file {name} is in a format this Cairn does not know ({Encoding.ASCII.GetString(field.TrimEnd((byte)0))}): it was written by a newer Cairn; upgrade Cairn to read it");
        }
        return field.ToArray();
    }

    /// <summary>
    /// Writes a named file to <paramref name="path"/> (through a temporary file and a rename, so a reader never
    /// sees half of it), decompressing straight into a memory map of the new file. Nothing unauthenticated or
    /// not matching its recorded hash is ever left under <paramref name="path"/>.
    /// </summary>
    public static async Task GetToFileAsync(Repository repo, string name, string path, CancellationToken ct)
    {
        var plain = await OpenAsync(repo, name, ct).ConfigureAwait(false);
        var temp = path + ".cairn-partial";
        try
        {
            WriteDecompressed(name, plain, temp);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>Decompresses through one 1 MiB window straight into the file (the decoder checks the frame's checksum; an older object's SHA-256 is checked as it goes).</summary>
    private static void WriteDecompressed(string name, byte[] plain, string temp)
    {
        var recordedHash = RecordedHash(name, plain);
        using var hash = recordedHash is null ? null : IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var file = FreshFile.Create(temp, bufferSize: 0);
        var handle = file.SafeFileHandle;
        var window = ArrayPool<byte>.Shared.Rent(1024 * 1024);
        long offset = 0;
        try
        {
            Zstd.DecompressStreaming(plain.AsSpan(FieldSize), window.AsSpan(0, 1024 * 1024), piece =>
            {
                hash?.AppendData(piece);
                RandomAccess.Write(handle, piece, offset);
                offset += piece.Length;
            });
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"archived file {name} does not decompress or does not match its checksum: {e.Message}", e);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(window);
        }
        if (hash is not null && !hash.GetHashAndReset().AsSpan().SequenceEqual(recordedHash))
        {
            throw new DataDamagedException($"archived file {name} does not match its recorded hash (tampered)");
        }
    }

    /// <summary>Reads and authenticates the object: its plaintext is field (32 bytes) ‖ zstd(file).</summary>
    private static async Task<byte[]> OpenAsync(Repository repo, string name, CancellationToken ct)
    {
        byte[] stored;
        try
        {
            stored = await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Named, name), ct).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"{name} is not in the repository");
        }
        try
        {
            var plain = repo.Aead.Open(stored, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)), $"archived file {name}");
            return plain.Length >= FieldSize ? plain : throw new DataDamagedException($"archived file {name} is too short to hold its format field");
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException(e.Message, e);
        }
    }

    public static async Task<List<(string Name, long Size)>> ListAsync(Repository repo, string prefix, CancellationToken ct)
    {
        var result = new List<(string, long)>();
        await foreach (var o in repo.Storage.ListAsync(ObjectKind.Named, ct).ConfigureAwait(false))
        {
            if (o.Key.Name.StartsWith(prefix, StringComparison.Ordinal))
            {
                result.Add((o.Key.Name, o.Size));
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return result;
    }
}
