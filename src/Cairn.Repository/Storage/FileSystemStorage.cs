using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Cairn.Repository.Locks;
using Microsoft.Win32.SafeHandles;

namespace Cairn.Repository.Storage;

/// <summary>
/// A repository in a local folder. Crash-safe puts: write to a temp name in the same folder, fsync
/// the file, rename onto the final name, fsync the folder. Temp files start with <c>.tmp-</c>, name
/// their writer, and are never listed; <see cref="RemoveLeftoversAsync"/> deletes those of dead writers.
/// </summary>
public sealed partial class FileSystemStorage : IStorage, ICleanableStorage, IRangeReadStorage
{
    private const string TempPrefix = ".tmp-";
    private readonly string _root;
    private readonly TimeProvider _time;
    private readonly IProcessTable _processes;

    public FileSystemStorage(string root, TimeProvider? time = null, IProcessTable? processes = null)
    {
        _root = System.IO.Path.GetFullPath(root);
        _time = time ?? TimeProvider.System;
        _processes = processes ?? ProcessLiveness.Linux;
    }

    public string Location => _root;

    public static bool Exists(string root) => File.Exists(System.IO.Path.Combine(root, "config"));

    public async Task PutAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var final = PathOf(key);
        var dir = System.IO.Path.GetDirectoryName(final)!;
        var temp = await WriteTempAsync(dir, data, cancellationToken).ConfigureAwait(false);
        try
        {
            var replacing = key.Kind == ObjectKind.Config && !OperatingSystem.IsWindows() && File.Exists(final);
            if (replacing)
            {
                // A new config for a repository (cairn repo upgrade): it keeps the old one's group and mode, which
                // 'cairn archiver allow' may have shared with the server's user (wal-push reads the config).
                if (GroupOf(final) is { } gid && Native.lchown(temp, uint.MaxValue, gid) != 0)
                {
                    throw new IOException($"cannot give the new config the group of the old one (errno {Marshal.GetLastPInvokeError()}); run as the repository's owner");
                }
                File.SetUnixFileMode(temp, File.GetUnixFileMode(final));
            }
            File.Move(temp, final, overwrite: true);
            FsyncDirectory(dir);
            if (key.Kind == ObjectKind.Config && !OperatingSystem.IsWindows() && !replacing)
            {
                // Written by init: the repository folder itself becomes private too, even if it existed before.
                File.SetUnixFileMode(_root, PrivateFolder);
            }
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Writes the whole object under a temp name, then gives it its final name with link(2), which fails
    /// with EEXIST instead of replacing; where the file system has no hard links, renameat2 with
    /// RENAME_NOREPLACE. Neither available: <see cref="NotSupportedException"/> (never a stat-then-put).
    /// </summary>
    public async Task<bool> PutIfAbsentAsync(StorageKey key, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var final = PathOf(key);
        var dir = System.IO.Path.GetDirectoryName(final)!;
        if (File.Exists(final))
        {
            return false;
        }
        var temp = await WriteTempAsync(dir, data, cancellationToken).ConfigureAwait(false);
        try
        {
            var created = CreateExclusive(temp, final);
            if (created)
            {
                FsyncDirectory(dir);
            }
            return created;
        }
        finally
        {
            TryDelete(temp);
        }
    }

    private static bool CreateExclusive(string temp, string final)
    {
        if (Native.link(temp, final) == 0)
        {
            return true;
        }
        var errno = Marshal.GetLastPInvokeError();
        if (errno == Native.EEXIST)
        {
            return false;
        }
        if (errno is not (Native.EPERM or Native.ENOTSUP or Native.EMLINK or Native.ENOSYS))
        {
            throw new IOException($"cannot create {final}: link(2) failed (errno {errno})", errno);
        }
        // No hard links here (e.g. some FUSE or SMB mounts): rename that refuses to replace.
        if (Native.renameat2(Native.AT_FDCWD, temp, Native.AT_FDCWD, final, Native.RENAME_NOREPLACE) == 0)
        {
            return true;
        }
        errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            Native.EEXIST => false,
            Native.EINVAL or Native.ENOSYS or Native.ENOTSUP => throw new NotSupportedException(
                $"the file system of {final} supports neither hard links nor rename without replace, so a file cannot be created only-if-absent; WAL archiving needs one of them (use a local file system such as ext4 or xfs)"),
            _ => throw new IOException($"cannot create {final}: renameat2 failed (errno {errno})", errno),
        };
    }

    /// <summary>Writes <paramref name="data"/> to a new temp file in <paramref name="dir"/>, fsynced; returns its path.</summary>
    private async Task<string> WriteTempAsync(string dir, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        CreatePrivateDirectory(dir);
        var temp = System.IO.Path.Combine(dir, TempName());
        try
        {
            await using var fs = new FileStream(temp, new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                Options = FileOptions.Asynchronous,
                PreallocationSize = data.Length,
                UnixCreateMode = OperatingSystem.IsWindows() ? null : PrivateFile,
            });
            if (!OperatingSystem.IsWindows() && dir == System.IO.Path.Combine(_root, "wal") && IsSharedWalArea(dir))
            {
                // The archiver's group reads WAL objects too (restore_command runs as the server's user).
                File.SetUnixFileMode(fs.SafeFileHandle, SharedFile);
            }
            await fs.WriteAsync(data, cancellationToken).ConfigureAwait(false);
            await fs.FlushAsync(cancellationToken).ConfigureAwait(false);
            fs.Flush(flushToDisk: true);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
        return temp;
    }

    /// <summary>
    /// <c>.tmp-&lt;host&gt;-&lt;pid&gt;-&lt;start&gt;-&lt;random&gt;</c>: the writer's host (8 hex of SHA-256 of its name),
    /// pid and start time, so cleanup can tell a live writer's file from a dead one's.
    /// </summary>
    internal static string TempName() => $"{TempPrefix}{HostTag}-{Environment.ProcessId}-{ProcessLiveness.OwnStartTicks ?? "0"}-{Guid.NewGuid():N}";

    private static readonly string HostTag = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Environment.MachineName)))[..8];

    /// <summary>The writer a temp file name records, or null for names without one (written by an older Cairn).</summary>
    internal static (string Host, int Pid, string? Start)? TempOwner(string fileName)
    {
        var parts = fileName[TempPrefix.Length..].Split('-');
        if (parts.Length != 4 || parts[0].Length != 8 || !int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var pid))
        {
            return null;
        }
        return (parts[0], pid, parts[2] == "0" ? null : parts[2]);
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

    public async Task<int> ReadRangeAsync(StorageKey key, long offset, Memory<byte> destination, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(PathOf(key), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.Asynchronous);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ObjectNotFoundException(key);
        }
        using (handle)
        {
            var done = 0;
            while (done < destination.Length)
            {
                var n = await RandomAccess.ReadAsync(handle, destination[done..], offset + done, cancellationToken).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }
                done += n;
            }
            return done;
        }
    }

    public Task<ObjectInfo?> StatAsync(StorageKey key, CancellationToken cancellationToken)
    {
        var info = new FileInfo(PathOf(key));
        return Task.FromResult<ObjectInfo?>(info.Exists ? new ObjectInfo(key, info.Length, new DateTimeOffset(info.LastWriteTimeUtc, TimeSpan.Zero)) : null);
    }

    public async IAsyncEnumerable<ObjectInfo> ListAsync(ObjectKind kind, string? startAfter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (kind == ObjectKind.Config)
        {
            var c = await StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
            if (c is { } ci && (startAfter is null || StorageKey.CompareNames(ci.Key.Name, startAfter) > 0))
            {
                yield return ci;
            }
            yield break;
        }
        var dir = System.IO.Path.Combine(_root, StorageKey.FolderOf(kind));
        if (!Directory.Exists(dir))
        {
            yield break;
        }
        var option = kind == ObjectKind.Data ? SearchOption.AllDirectories : SearchOption.TopDirectoryOnly;
        if (startAfter is null)
        {
            foreach (var file in new DirectoryInfo(dir).EnumerateFiles("*", option))
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (!file.Name.StartsWith(TempPrefix, StringComparison.Ordinal) && Described(kind, file) is { } info)
                {
                    yield return info;
                }
            }
            yield break;
        }
        // A folder cannot be read from a name on, but its names cost little (no stat each): take those after the start and
        // hand them out in order from a heap (no full sort), with a stat only for what the caller reads (a caller that wants
        // one prefix stops at its end, however many names follow it).
        var names = new List<(string, string)>();
        var enumeration = new System.IO.Enumeration.FileSystemEnumerable<string>(dir, (ref System.IO.Enumeration.FileSystemEntry e) => e.FileName.ToString(),
            new EnumerationOptions { RecurseSubdirectories = option == SearchOption.AllDirectories, AttributesToSkip = 0, IgnoreInaccessible = false })
        {
            ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry e) => !e.IsDirectory,
        };
        foreach (var name in enumeration)
        {
            if (!name.StartsWith(TempPrefix, StringComparison.Ordinal) && StorageKey.CompareNames(name, startAfter) > 0)
            {
                names.Add((name, name));
            }
        }
        var ordered = new PriorityQueue<string, string>(names, NameOrder);
        while (ordered.TryDequeue(out var name, out _))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var key = new StorageKey(kind, name);
            if (!IsValidName(key) || Described(kind, new FileInfo(System.IO.Path.Combine(_root, key.Path))) is not { } info)
            {
                continue;
            }
            yield return info;
        }
    }

    /// <summary>
    /// One pass over the folder's names for every range (a folder cannot be read from a name on, so a listing per range
    /// would read every name once per range), then a stat only for the names in a range, in name order.
    /// </summary>
    public async IAsyncEnumerable<ObjectInfo> ListRangesAsync(ObjectKind kind, IReadOnlyList<NameRange> ranges, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.Yield();
        if (kind is ObjectKind.Config or ObjectKind.Data || ranges.Count <= 1)
        {
            // config is one file; data/ is sharded into folders: a listing per range is what there is.
            await foreach (var o in StorageExtensions.ListRangesOneByOneAsync(this, kind, ranges, cancellationToken).ConfigureAwait(false))
            {
                yield return o;
            }
            yield break;
        }
        var dir = System.IO.Path.Combine(_root, StorageKey.FolderOf(kind));
        if (!Directory.Exists(dir))
        {
            yield break;
        }
        var names = new List<string>();
        var enumeration = new System.IO.Enumeration.FileSystemEnumerable<string>(dir, (ref System.IO.Enumeration.FileSystemEntry e) => e.FileName.ToString(),
            new EnumerationOptions { RecurseSubdirectories = false, AttributesToSkip = 0, IgnoreInaccessible = false })
        {
            ShouldIncludePredicate = (ref System.IO.Enumeration.FileSystemEntry e) => !e.IsDirectory,
        };
        foreach (var name in enumeration)
        {
            if (!name.StartsWith(TempPrefix, StringComparison.Ordinal) && InAnyRange(ranges, name))
            {
                names.Add(name);
            }
        }
        names.Sort(NameOrder);
        foreach (var name in names)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var key = new StorageKey(kind, name);
            if (!IsValidName(key) || Described(kind, new FileInfo(System.IO.Path.Combine(_root, key.Path))) is not { } info)
            {
                continue;
            }
            yield return info;
        }
    }

    private static bool InAnyRange(IReadOnlyList<NameRange> ranges, string name)
    {
        for (var i = 0; i < ranges.Count; i++)
        {
            if (ranges[i].Contains(name))
            {
                return true;
            }
        }
        return false;
    }

    private static readonly Comparer<string> NameOrder = Comparer<string>.Create(StorageKey.CompareNames);

    /// <summary>A listed file as an object, or null when it went away since it was listed.</summary>
    private static ObjectInfo? Described(ObjectKind kind, FileInfo file)
    {
        try
        {
            return new ObjectInfo(new StorageKey(kind, file.Name), file.Length, new DateTimeOffset(file.LastWriteTimeUtc, TimeSpan.Zero));
        }
        catch (FileNotFoundException)
        {
            return null;
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

    /// <summary>
    /// Removes temp files of writers that are gone. A temp file of a live (or not provably dead) process on
    /// this host is never removed, whatever its age: processes write in <c>locks/</c>, <c>keys/</c> and
    /// the named objects' folder (WAL) without holding the repository lock, so even an exclusive prune meets their files. A temp
    /// file of another host, or from before writers were named, goes once it is <paramref name="olderThan"/>
    /// old, and in those three folders not before <see cref="UnlockedWriterGrace"/>.
    /// </summary>
    public Task<int> RemoveLeftoversAsync(TimeSpan olderThan, bool dryRun, CancellationToken cancellationToken)
    {
        var removed = 0;
        if (!Directory.Exists(_root))
        {
            return Task.FromResult(0);
        }
        // Writers in these folders hold no repository lock (see above).
        var unlocked = new[] { ObjectKind.Lock, ObjectKind.Key, ObjectKind.Named }.Select(k => System.IO.Path.Combine(_root, StorageKey.FolderOf(k)) + System.IO.Path.DirectorySeparatorChar).ToArray();
        foreach (var file in new DirectoryInfo(_root).EnumerateFiles(TempPrefix + "*", SearchOption.AllDirectories))
        {
            cancellationToken.ThrowIfCancellationRequested();
            var age = _time.GetUtcNow().UtcDateTime - file.LastWriteTimeUtc;
            if (age < olderThan)
            {
                continue;
            }
            if (TempOwner(file.Name) is { } owner && owner.Host == HostTag)
            {
                if (!ProcessLiveness.Judge(owner.Pid, owner.Start, _processes).ProvablyDead)
                {
                    continue;
                }
            }
            else if (age < UnlockedWriterGrace && unlocked.Any(u => file.FullName.StartsWith(u, StringComparison.Ordinal)))
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

    /// <summary>How long a temp file of a writer Cairn cannot check (another host) is spared in the folders written without a lock.</summary>
    public static readonly TimeSpan UnlockedWriterGrace = TimeSpan.FromHours(1);

    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode SharedFile = PrivateFile | UnixFileMode.GroupRead;

    /// <summary>wal/ shared with the archiver's group: group-writable and setgid (see <see cref="ShareWalArea"/>).</summary>
    private static bool IsSharedWalArea(string dir)
        => (File.GetUnixFileMode(dir) & (UnixFileMode.SetGroup | UnixFileMode.GroupWrite)) == (UnixFileMode.SetGroup | UnixFileMode.GroupWrite);

    /// <summary>Creates the repository's folders 0700 (whatever the umask); an existing folder keeps its mode.</summary>
    private void CreatePrivateDirectory(string dir)
    {
        if (Directory.Exists(dir))
        {
            return;
        }
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dir);
            return;
        }
        var parent = System.IO.Path.GetDirectoryName(dir);
        if (parent is not null && dir != _root && !Directory.Exists(parent))
        {
            CreatePrivateDirectory(parent);
        }
        Directory.CreateDirectory(dir, PrivateFolder);
        File.SetUnixFileMode(dir, PrivateFolder); // the umask may have taken bits away, never added; make it exact
    }

    /// <summary>
    /// Lets the members of group <paramref name="gid"/> (the server's user: archive_command and restore_command run as
    /// it) push and fetch WAL, and nothing else: the repository folder becomes 0710 (enter, not list), the config and
    /// the key file <paramref name="keyName"/> 0640, keys/ 0750, wal/ 3770 (setgid: new objects belong to the group;
    /// sticky: a member cannot delete or replace an object it did not write) and its objects 0640. Every other folder
    /// and file is made 0700 / 0600 (also tightening a repository made by an older version).
    /// </summary>
    public SharedWalArea ShareWalArea(uint gid, string keyName)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("file modes are a Unix matter");
        }
        _ = PathOf(new StorageKey(ObjectKind.Key, keyName));
        var keyPath = System.IO.Path.Combine(_root, "keys", keyName);
        if (!File.Exists(keyPath))
        {
            throw new FileNotFoundException($"key file {keyName} does not exist", keyPath);
        }
        CreatePrivateDirectory(System.IO.Path.Combine(_root, "wal"));
        var tightened = 0;
        foreach (var entry in new DirectoryInfo(_root).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            var want = entry is DirectoryInfo ? PrivateFolder : PrivateFile;
            if (entry.UnixFileMode != want)
            {
                entry.UnixFileMode = want;
                tightened++;
            }
        }
        Share(_root, gid, PrivateFolder | UnixFileMode.GroupExecute);
        Share(System.IO.Path.Combine(_root, "config"), gid, SharedFile);
        Share(System.IO.Path.Combine(_root, "keys"), gid, PrivateFolder | UnixFileMode.GroupRead | UnixFileMode.GroupExecute);
        Share(keyPath, gid, SharedFile);
        var wal = System.IO.Path.Combine(_root, "wal");
        Share(wal, gid, PrivateFolder | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute | UnixFileMode.SetGroup | UnixFileMode.StickyBit);
        var objects = 0;
        foreach (var file in new DirectoryInfo(wal).EnumerateFiles())
        {
            Share(file.FullName, gid, SharedFile);
            objects++;
        }
        return new SharedWalArea(_root, gid, keyName, objects, tightened);
    }

    /// <summary>Group and mode of one entry of our own repository, never through a link (lchown).</summary>
    private static void Share(string path, uint gid, UnixFileMode mode)
    {
        if (new FileInfo(path).LinkTarget is not null)
        {
            throw new IOException($"{path} is a symbolic link; a repository holds none, so it is not shared");
        }
        if (Native.lchown(path, uint.MaxValue, gid) != 0)
        {
            throw new IOException($"cannot give {path} to group {gid} (errno {Marshal.GetLastPInvokeError()}); run as the repository's owner (root)");
        }
        File.SetUnixFileMode(path, mode);
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

    private static bool IsValidName(StorageKey key)
        => key.Name.Length > 0 && !key.Name.Contains('/', StringComparison.Ordinal) && !key.Name.Contains("..", StringComparison.Ordinal) && !key.Name.StartsWith('.')
            && (key.Kind != ObjectKind.Data || key.Name.Length >= 3);

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
        internal const int EPERM = 1;
        internal const int EEXIST = 17;
        internal const int EINVAL = 22;
        internal const int EMLINK = 31;
        internal const int ENOSYS = 38;
        internal const int ENOTSUP = 95;
        internal const int AT_FDCWD = -100;
        internal const uint RENAME_NOREPLACE = 1;

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int link(string oldPath, string newPath);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int renameat2(int oldDirFd, string oldPath, int newDirFd, string newPath, uint flags);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int open(string path, int flags);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int fsync(int fd);

        [LibraryImport("libc", SetLastError = true)]
        internal static partial int close(int fd);

        [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int lchown(string path, uint owner, uint group);

        [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int statx(int dirfd, string path, int flags, uint mask, [In, Out] byte[] buffer);
    }

    /// <summary>The group of <paramref name="path"/> (not followed when a link), or null when statx cannot tell.</summary>
    private static uint? GroupOf(string path)
    {
        const int AT_SYMLINK_NOFOLLOW = 0x100;
        const uint STATX_GID = 0x10;
        var buffer = new byte[256];
        // struct statx is the same on every architecture: gid at offset 24.
        return Native.statx(Native.AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_GID, buffer) == 0 ? BitConverter.ToUInt32(buffer, 24) : null;
    }
}

/// <summary>What <see cref="FileSystemStorage.ShareWalArea"/> did.</summary>
public sealed record SharedWalArea(string Repository, uint Gid, string KeyName, int WalObjects, int Tightened);
