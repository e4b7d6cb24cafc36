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
/// Files stored whole under a name (<c>wal/NAME</c>): for PostgreSQL WAL, which does not deduplicate
/// and must be fetched by name in one read. Each object is zstd-compressed and AES-256-GCM sealed
/// with the name as associated data; its plaintext starts with the SHA-256 of the file, so a second
/// put of the same name can tell identical content (success) from different content (refused).
/// </summary>
public static class NamedFiles
{
    private static readonly byte[] Context = Encoding.ASCII.GetBytes("cairn-named");

    public static async Task<NamedPutResult> PutAsync(Repository repo, string name, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        var key = new StorageKey(ObjectKind.Named, name);
        var exists = await repo.Storage.StatAsync(key, ct).ConfigureAwait(false) is not null;
        var (hash, sealedBytes) = Seal(repo, name, () => data.Span, !exists);
        return await StoreAsync(repo, name, key, exists, hash, sealedBytes, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Stores a file under a name, reading it through a read-only memory map: a 16 MiB WAL segment costs no
    /// copy into fresh (zero-filled) memory, which is most of the time a small archive_command takes.
    /// </summary>
    public static async Task<NamedPutResult> PutFileAsync(Repository repo, string name, string path, CancellationToken ct)
    {
        var key = new StorageKey(ObjectKind.Named, name);
        var exists = await repo.Storage.StatAsync(key, ct).ConfigureAwait(false) is not null;
        byte[] hash;
        byte[]? sealedBytes;
        using (var mapped = MappedFile.Open(path))
        {
            (hash, sealedBytes) = Seal(repo, name, () => mapped.Span, !exists);
        }
        return await StoreAsync(repo, name, key, exists, hash, sealedBytes, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Publishes with the storage's create-only put, so of two archivers racing on one name exactly one
    /// stores; the other (and any later put) compares content: identical is success, different is refused.
    /// </summary>
    private static async Task<NamedPutResult> StoreAsync(Repository repo, string name, StorageKey key, bool exists, byte[] hash, byte[]? sealedBytes, CancellationToken ct)
    {
        if (!exists)
        {
            bool created;
            try
            {
                created = await repo.Storage.PutIfAbsentAsync(key, sealedBytes!, ct).ConfigureAwait(false);
            }
            catch (NotSupportedException)
            {
                // A server that ignores conditional writes (s3rver, older MinIO and Ceph): the storage says so and never
                // pretends. Here, and only here, the fallback: the stat above found nothing, so put, then read back and
                // compare the hash. Two servers archiving one name at the same instant can still overwrite each other
                // in the window between stat and put; the later push or verify of a different file detects it
                // (docs/security.md; 'cairn doctor' warns about such a server).
                await repo.Storage.PutAsync(key, sealedBytes!, ct).ConfigureAwait(false);
                created = true;
                var back = await GetWithHashAsync(repo, name, ct).ConfigureAwait(false);
                if (!back.Hash.AsSpan().SequenceEqual(hash))
                {
                    throw new RepositoryException(ErrorKind.AlreadyExists, $"{name} was archived with different content by another writer at the same moment (this S3 server ignores conditional writes; archive each server into its own prefix)");
                }
            }
            if (created)
            {
                return NamedPutResult.Stored;
            }
        }
        var existing = await GetWithHashAsync(repo, name, ct).ConfigureAwait(false);
        if (existing.Hash.AsSpan().SequenceEqual(hash))
        {
            return NamedPutResult.AlreadyStoredIdentical;
        }
        throw new RepositoryException(ErrorKind.AlreadyExists, $"{name} is already archived with different content; refusing to overwrite it (PostgreSQL must not archive a different file under the same name: check for two servers archiving into the same place)");
    }

    private delegate ReadOnlySpan<byte> SpanSource();

    /// <summary>
    /// SHA-256 of the file, and (when it is to be stored) the sealed object: hash ‖ zstd(file), compressed in place
    /// into one buffer. Hashing and compressing run on two threads: archive_command waits for both.
    /// </summary>
    private static (byte[] Hash, byte[]? Sealed) Seal(Repository repo, string name, SpanSource data, bool seal)
    {
        if (!seal)
        {
            return (SHA256.HashData(data()), null);
        }
        // A pooled buffer: the background pusher seals segment after segment, and a fresh 16 MiB array each time costs
        // the kernel thousands of page faults (measured: about a seventh of the pusher's CPU per segment).
        var plain = ArrayPool<byte>.Shared.Rent(32 + Zstd.CompressBound(data().Length));
        try
        {
            byte[]? hash = null;
            var n = 0;
            Parallel.Invoke(() => hash = SHA256.HashData(data()), () => n = Zstd.Compress(data(), plain.AsSpan(32), 1));
            hash!.CopyTo(plain, 0);
            return (hash, repo.Aead.Seal(plain.AsSpan(0, 32 + n), Aead.Concat(Context, Encoding.UTF8.GetBytes(name))));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(plain);
        }
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

    public static async Task<byte[]> GetAsync(Repository repo, string name, CancellationToken ct) => (await GetWithHashAsync(repo, name, ct).ConfigureAwait(false)).Data;

    private static async Task<(byte[] Hash, byte[] Data)> GetWithHashAsync(Repository repo, string name, CancellationToken ct)
    {
        var plain = await OpenAsync(repo, name, ct).ConfigureAwait(false);
        byte[] data;
        try
        {
            data = Zstd.Decompress(plain.AsSpan(32));
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"archived file {name} does not decompress: {e.Message}", e);
        }
        CheckHash(name, plain, data);
        return (plain[..32], data);
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

    /// <summary>Decompresses through one 1 MiB window straight into the file, hashing as it goes.</summary>
    private static void WriteDecompressed(string name, byte[] plain, string temp)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using var file = FreshFile.Create(temp, bufferSize: 0);
        var handle = file.SafeFileHandle;
        var window = GC.AllocateUninitializedArray<byte>(1024 * 1024);
        long offset = 0;
        try
        {
            Zstd.DecompressStreaming(plain.AsSpan(32), window, piece =>
            {
                hash.AppendData(piece);
                RandomAccess.Write(handle, piece, offset);
                offset += piece.Length;
            });
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"archived file {name} does not decompress: {e.Message}", e);
        }
        if (!hash.GetHashAndReset().AsSpan().SequenceEqual(plain.AsSpan(0, 32)))
        {
            throw new DataDamagedException($"archived file {name} does not match its recorded hash (tampered)");
        }
    }

    /// <summary>Reads and authenticates the object: its plaintext is SHA-256(file) ‖ zstd(file).</summary>
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
            return plain.Length >= 32 ? plain : throw new DataDamagedException($"archived file {name} is too short to hold its hash");
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException(e.Message, e);
        }
    }

    private static void CheckHash(string name, byte[] plain, ReadOnlySpan<byte> data)
    {
        if (!SHA256.HashData(data).AsSpan().SequenceEqual(plain.AsSpan(0, 32)))
        {
            throw new DataDamagedException($"archived file {name} does not match its recorded hash (tampered)");
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
