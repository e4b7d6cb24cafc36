using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Cairn.Repository.Storage;

/// <summary>
/// A repository in a local folder. Crash-safe puts: write to a temp name in the same folder, fsync
/// the file, rename onto the final name, fsync the folder. Temp files start with <c>.tmp-</c> and are
/// never listed; <see cref="RemoveLeftoversAsync"/> deletes old ones.
/// </summary>
public sealed partial class FileSystemStorage : IStorage, ICleanableStorage
{
    private const string TempPrefix = ".tmp-";
    private readonly string _root;
    private readonly TimeProvider _time;

    public FileSystemStorage(string root, TimeProvider? time = null)
    {
        _root = System.IO.Path.GetFullPath(root);
        _time = time ?? TimeProvider.System;
    }

    public string Location => _root;

    public static bool Exists(string root) => File.Exists(System.IO.Path.Combine(root, "config"));

    public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var final = PathOf(key);
        var dir = System.IO.Path.GetDirectoryName(final)!;
        Directory.CreateDirectory(dir);
        var temp = System.IO.Path.Combine(dir, TempPrefix + Guid.NewGuid().ToString("N"));
        try
        {
            await using (var fs = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                Options = FileOptions.Asynchronous,
                PreallocationSize = data.Length,
            }))
            {
                await fs.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
                fs.Flush(flushToDisk: true);
            }
            File.Move(temp, final, overwrite: true);
            FsyncDirectory(dir);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    public async Task<byte[]> GetAsync(StorageKey key, long offset, long length, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (FileNotFoundException)
        {
            throw new ObjectNotFoundException(key);
        }
        catch (DirectoryNotFoundException)
        {
            throw new ObjectNotFoundException(key);
        }
        using (handle)
        {
            var size = RandomAccess.GetLength(handle);
            if (offset >= size)
            {
                return [];
            }
            var available = size - offset;
            var count = length < 0 ? available : Math.Min(length, available);
            var buffer = GC.AllocateUninitializedArray<byte>(checked((int)count));
            var done = 0;
            while (done < count)
            {
                var n = await RandomAccess.ReadAsync(handle, buffer.AsMemory(done), offset + done, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    return buffer[..done];
                }
                done += n;
            }
            return buffer;
        }
    }

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var info = new FileInfo(PathOf(key));
        return Task.FromResult<ObjectInfo?>(info.Exists ? new ObjectInfo(key, info.Length) : null);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (kind == ObjectKind.Config)
        {
            var c = await StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
            if (c is { } ci)
            {
                yield return ci;
            }
            yield break;
        }
        var dir = System.IO.Path.Combine(_root, FolderOf(kind));
        if (!Directory.Exists(dir))
        {
            yield break;
        }
        var option = kind == ObjectKind.Data ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        foreach (var file in new DirectoryInfo(dir).EnumerateFiles("*", option))
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (file.Name.StartsWith(TempPrefix, StringComparison.Ordinal))
            {
                continue;
            }
            FileInfo f = file;
            long size;
            try
            {
                size = f.Length;
            }
            catch (FileNotFoundException)
            {
                continue;
            }
            yield return new ObjectInfo(new StorageKey(kind, f.Name), size);
        }
    }

    public Task DeleteAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var path = PathOf(key);
        try
        {
            File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
        }
        return Task.CompletedTask;
    }

    public Task<int> RemoveLeftoversAsync(TimeSpan olderThan, bool dryRun, CancellationToken cancellationToken)
    {
        var removed = 0;
        if (!Directory.Exists(_root))
        {
            return Task.FromResult(0);
        }
        foreach (var file in new DirectoryInfo(_root).EnumerateFiles(TempPrefix + "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var age = _time.GetUtcNow().UtcDateTime - file.LastWriteTimeUtc;
            // WAL pushes take no repository lock (PostgreSQL calls them at any time): spare their fresh temp files.
            var walFolder = System.IO.Path.Combine(_root, "wal") + System.IO.Path.DirectorySeparatorChar;
            if (age < olderThan || (file.FullName.StartsWith(walFolder, StringComparison.Ordinal) && age < TimeSpan.FromHours(1)))
            {
                continue;
            }
            removed++;
            if (!dryRun)
            {
                TryDelete(file.FullName);
            }
        }
        return Task.FromResult(removed);
    }

    private string PathOf(StorageKey key)
    {
        if (key.Name.Length == 0 || key.Name.Contains('/', StringComparison.Ordinal) || key.Name.Contains("..", StringComparison.Ordinal) || key.Name.StartsWith('.'))
        {
            throw new ArgumentException($"invalid object name '{key.Name}'", nameof(key));
        }
        if (key.Kind == ObjectKind.Data && key.Name.Length < 3)
        {
            throw new ArgumentException($"invalid pack name '{key.Name}'", nameof(key));
        }
        return System.IO.Path.Combine(_root, key.Path);
    }

    private static string FolderOf(ObjectKind kind) => kind switch
    {
        ObjectKind.Key => "keys",
        ObjectKind.Data => "data",
        ObjectKind.Index => "index",
        ObjectKind.Snapshot => "snapshots",
        ObjectKind.Lock => "locks",
        ObjectKind.Named => "wal",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static void FsyncDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return;
        }
        var fd = Native.open(dir, 0 /* O_RDONLY */);
        if (fd < 0)
        {
            return;
        }
        try
        {
            if (Native.fsync(fd) != 0)
            {
                throw new IOException($"fsync of folder {dir} failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Native.close(fd);
        }
    }

    private static partial class Native
    {
        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int open(string path, int flags);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int fsync(int fd);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int close(int fd);
    }
}
