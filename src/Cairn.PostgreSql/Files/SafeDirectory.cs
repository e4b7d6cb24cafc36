using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Cairn.PostgreSql.Files;

/// <summary>
/// A link Cairn refused to follow, or an entry that is not what it must be (a folder where a file belongs). Cairn
/// runs as root over folders the server's user can change, so these mean "someone tampered", not bad luck.
/// </summary>
public sealed class UnsafePathException(string message) : IOException(message);

/// <summary>
/// An open directory. Every operation is relative to its handle (openat, mkdirat, renameat, …) and never follows a
/// symbolic link: a name that turned into a link is refused (<see cref="UnsafePathException"/>) or, for removals,
/// the link itself is removed. Holding the handle means that renaming or replacing a folder above it (a race by
/// the server's user against a root-run restore) cannot redirect a write: the write lands in this very folder.
/// Names passed to instance methods are single path segments.
/// </summary>
/// <remarks>
/// Why handles and not path checks: a check ("is any parent a link?") followed by a path-based open is a race the
/// owner of the folder wins by swapping a folder for a link in between. With O_NOFOLLOW on every component opened
/// one by one, there is no window: the kernel refuses the link at the moment of use.
/// </remarks>
public sealed class SafeDirectory : IDisposable
{
    private const int MaxLinks = 40;
    private readonly SafeFileHandle _handle;

    private SafeDirectory(SafeFileHandle handle, string path)
    {
        _handle = handle;
        Path = path;
    }

    /// <summary>The path this folder had when it was opened, for messages only (it may have moved since).</summary>
    public string Path { get; }

    private int Fd => (int)_handle.DangerousGetHandle();

    public void Dispose() => _handle.Dispose();

    /// <summary>
    /// Opens an absolute path (creating missing folders when <paramref name="create"/>: the last one 0700, those above it
    /// 0711 so the server's user can pass through them), resolving it one component
    /// at a time. A symbolic link on the way is followed only when it belongs to root or to the user Cairn runs as:
    /// a link the server's user made (say, in /var/lib/postgresql) is refused, so it cannot redirect a root-run
    /// restore or backup to a folder of its choice. Links made by the administrator (/srv/pg → /data/pg) still work.
    /// </summary>
    public static SafeDirectory Open(string path, bool create = false)
    {
        EnsureSupported();
        var full = System.IO.Path.GetFullPath(path);
        var pending = new LinkedList<string>(full.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var fd = Check(Native.OpenAt(Native.AT_FDCWD, "/", Native.O_RDONLY | Native.O_DIRECTORY | Native.O_CLOEXEC, 0), "open", "/");
        var shown = "";
        var links = 0;
        var passThrough = false;
        var euid = Native.GetEuid();
        try
        {
            while (pending.First is { } node)
            {
                var name = node.Value;
                pending.RemoveFirst();
                if (name == ".")
                {
                    continue;
                }
                var next = Native.OpenAt(fd, name, Native.O_RDONLY | Native.O_DIRECTORY | Native.O_NOFOLLOW | Native.O_CLOEXEC, 0);
                if (next < 0 && Marshal.GetLastPInvokeError() == Native.EACCES && pending.Count > 0 && name != "..")
                {
                    // A folder on the way this user may enter but not list (0711): a path handle is enough to go through it.
                    next = Native.OpenAt(fd, name, Native.O_PATH | Native.O_DIRECTORY | Native.O_NOFOLLOW | Native.O_CLOEXEC, 0);
                    if (next < 0)
                    {
                        throw Error("open", shown + "/" + name, Marshal.GetLastPInvokeError());
                    }
                }
                if (next >= 0)
                {
                    _ = Native.Close(fd);
                    fd = next;
                    if (passThrough)
                    {
                        Check(Native.FChmod(fd, 0x1C9), "chmod", shown + "/" + name);
                        passThrough = false;
                    }
                    shown = name == ".." ? System.IO.Path.GetDirectoryName(shown) ?? "" : shown + "/" + name;
                    continue;
                }
                var errno = Marshal.GetLastPInvokeError();
                var here = shown + "/" + name;
                if (errno == Native.ENOENT && create && name != "..")
                {
                    if (Native.MkdirAt(fd, name, 0x1C0) != 0)
                    {
                        if (Marshal.GetLastPInvokeError() != Native.EEXIST)
                        {
                            throw Error("create the folder", here, Marshal.GetLastPInvokeError());
                        }
                    }
                    else
                    {
                        // A folder made on the way may be entered (not listed) by others: the server's user must reach
                        // the data directory or tablespace below it. Set once it is open (through the handle).
                        passThrough = pending.Count > 0;
                    }
                    pending.AddFirst(name);
                    continue;
                }
                if (errno is not (Native.ELOOP or Native.ENOTDIR))
                {
                    throw Error("open", here, errno);
                }
                var st = Native.Stat(fd, name, followLinks: false, out _);
                if (st is not { IsLink: true })
                {
                    throw new UnsafePathException($"{here} is not a folder");
                }
                if (st.Uid != 0 && st.Uid != euid)
                {
                    throw new UnsafePathException($"{here} is a symbolic link owned by uid {st.Uid}; Cairn follows only links owned by root or by itself, so that another user cannot redirect it. Give the real path ({ReadLink(fd, name, here)} is where it points now)");
                }
                if (++links > MaxLinks)
                {
                    throw new UnsafePathException($"too many symbolic links resolving {full}");
                }
                var target = ReadLink(fd, name, here);
                foreach (var part in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse())
                {
                    pending.AddFirst(part);
                }
                if (target.StartsWith('/'))
                {
                    _ = Native.Close(fd);
                    fd = Check(Native.OpenAt(Native.AT_FDCWD, "/", Native.O_RDONLY | Native.O_DIRECTORY | Native.O_CLOEXEC, 0), "open", "/");
                    shown = "";
                }
            }
            return new SafeDirectory(new SafeFileHandle(fd, ownsHandle: true), full);
        }
        catch
        {
            _ = Native.Close(fd);
            throw;
        }
    }

    /// <summary>Opens a sub-folder; null when it does not exist. A link or a non-folder under that name is refused.</summary>
    public SafeDirectory? OpenDirectory(string name)
    {
        Segment(name);
        var fd = Native.OpenAt(Fd, name, Native.O_RDONLY | Native.O_DIRECTORY | Native.O_NOFOLLOW | Native.O_CLOEXEC, 0);
        if (fd >= 0)
        {
            return new SafeDirectory(new SafeFileHandle(fd, ownsHandle: true), Child(name));
        }
        var errno = Marshal.GetLastPInvokeError();
        return errno == Native.ENOENT ? null : throw Error("open the folder", Child(name), errno);
    }

    /// <summary>Creates a sub-folder with <paramref name="mode"/> (or opens the folder already there); <paramref name="created"/> says which.</summary>
    public SafeDirectory CreateDirectory(string name, UnixFileMode mode, out bool created)
    {
        Segment(name);
        created = Native.MkdirAt(Fd, name, (uint)mode) == 0;
        if (!created && Marshal.GetLastPInvokeError() is var errno && errno != Native.EEXIST)
        {
            throw Error("create the folder", Child(name), errno);
        }
        return OpenDirectory(name) ?? throw new UnsafePathException($"{Child(name)} disappeared while it was being created");
    }

    /// <summary>statx of an entry, not following it; null when it does not exist.</summary>
    public EntryStat? Stat(string name)
    {
        Segment(name);
        var st = Native.Stat(Fd, name, followLinks: false, out var errno);
        return st is not null || errno is Native.ENOENT ? st : throw Error("stat", Child(name), errno);
    }

    public EntryStat StatSelf() => Native.Stat(Fd, "", followLinks: false, out var errno) ?? throw Error("stat", Path, errno);

    /// <summary>The names in this folder (not "." and "..").</summary>
    public List<string> Names()
    {
        // A fresh open file description of the same folder: reading it never moves this handle's position.
        var fd = Check(Native.OpenAt(Fd, ".", Native.O_RDONLY | Native.O_DIRECTORY | Native.O_CLOEXEC, 0), "list", Path);
        var dir = Native.FdOpenDir(fd);
        if (dir == 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            _ = Native.Close(fd);
            throw Error("list", Path, errno);
        }
        var names = new List<string>();
        try
        {
            while (true)
            {
                var entry = Native.ReadDir(dir);
                if (entry == 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    return errno == 0 ? names : throw Error("list", Path, errno);
                }
                // struct dirent64: d_ino 8, d_off 8, d_reclen 2, d_type 1, then d_name (glibc and musl, 64-bit).
                var name = Marshal.PtrToStringUTF8(entry + 19)!;
                if (name is not ("." or ".."))
                {
                    names.Add(name);
                }
            }
        }
        finally
        {
            _ = Native.CloseDir(dir);
        }
    }

    /// <summary>
    /// Opens a regular file for reading; null when it does not exist. A link, a FIFO (which would block the open),
    /// a device or a folder under that name is refused.
    /// </summary>
    public SafeFileHandle? OpenFile(string name)
    {
        Segment(name);
        var fd = Native.OpenAt(Fd, name, Native.O_RDONLY | Native.O_NOFOLLOW | Native.O_NONBLOCK | Native.O_NOCTTY | Native.O_CLOEXEC, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            return errno == Native.ENOENT ? null : throw Error("open", Child(name), errno);
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Stat(handle) is not { IsFile: true })
        {
            handle.Dispose();
            throw new UnsafePathException($"{Child(name)} is not a regular file");
        }
        // O_NONBLOCK only guarded the open against a FIFO; a regular file is read normally (and FileStream expects a blocking handle).
        _ = Native.Fcntl(fd, Native.F_SETFL, Native.Fcntl(fd, Native.F_GETFL, 0) & ~Native.O_NONBLOCK);
        return handle;
    }

    /// <summary>Creates a new file (O_CREAT|O_EXCL|O_NOFOLLOW): never opens anything already there, link or not.</summary>
    public SafeFileHandle CreateFile(string name, UnixFileMode mode)
    {
        Segment(name);
        return new SafeFileHandle(Check(Native.OpenAt(Fd, name, Native.O_WRONLY | Native.O_CREAT | Native.O_EXCL | Native.O_NOFOLLOW | Native.O_NOCTTY | Native.O_CLOEXEC, (uint)mode), "create", Child(name)), ownsHandle: true);
    }

    /// <summary>Like <see cref="CreateFile"/>, but null when something of that name already exists (EEXIST: a file, a folder, a link).</summary>
    public SafeFileHandle? TryCreateFile(string name, UnixFileMode mode)
    {
        Segment(name);
        var fd = Native.OpenAt(Fd, name, Native.O_WRONLY | Native.O_CREAT | Native.O_EXCL | Native.O_NOFOLLOW | Native.O_NOCTTY | Native.O_CLOEXEC, (uint)mode);
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }
        var errno = Marshal.GetLastPInvokeError();
        return errno == Native.EEXIST ? null : throw Error("create", Child(name), errno);
    }

    /// <summary>Opens an existing regular file with one link for appending, or creates it; never through a link.</summary>
    public SafeFileHandle OpenOrCreateForAppend(string name, UnixFileMode mode, out bool created)
    {
        Segment(name);
        const int flags = Native.O_WRONLY | Native.O_APPEND | Native.O_NONBLOCK | Native.O_NOCTTY | Native.O_CLOEXEC;
        var fd = Native.OpenAt(Fd, name, flags | Native.O_CREAT | Native.O_EXCL | Native.O_NOFOLLOW, (uint)mode);
        created = fd >= 0;
        if (!created)
        {
            var errno = Marshal.GetLastPInvokeError();
            fd = errno == Native.EEXIST ? Native.OpenAt(Fd, name, flags | Native.O_NOFOLLOW, 0) : throw Error("create", Child(name), errno);
            if (fd < 0)
            {
                throw Error("open", Child(name), Marshal.GetLastPInvokeError());
            }
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (Stat(handle) is not { IsFile: true, Links: 1 })
        {
            handle.Dispose();
            throw new UnsafePathException($"{Child(name)} is not a regular file with a single link; refusing to write to it");
        }
        _ = Native.Fcntl(fd, Native.F_SETFL, Native.Fcntl(fd, Native.F_GETFL, 0) & ~Native.O_NONBLOCK);
        return handle;
    }

    /// <summary>
    /// Takes an exclusive flock on a lock file of this folder (created 0600, never through a link); null when another
    /// process holds it. The kernel releases it when the holder dies, however it dies.
    /// </summary>
    public IDisposable? TryLock(string name)
    {
        var handle = OpenOrCreateForAppend(name, UnixFileMode.UserRead | UnixFileMode.UserWrite, out _);
        if (Native.Flock((int)handle.DangerousGetHandle(), Native.LOCK_EX | Native.LOCK_NB) == 0)
        {
            return handle;
        }
        var errno = Marshal.GetLastPInvokeError();
        handle.Dispose();
        return errno == Native.EWOULDBLOCK ? null : throw Error("lock", Child(name), errno);
    }

    /// <summary>Renames within this folder, replacing what <paramref name="to"/> names (a link is replaced, never followed).</summary>
    public void Rename(string from, string to)
    {
        Segment(from);
        Segment(to);
        if (Native.RenameAt(Fd, from, Fd, to) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            if (errno is Native.EISDIR or Native.ENOTEMPTY or Native.EEXIST)
            {
                // A folder stands where the file belongs: it is not part of what is being restored.
                Remove(to);
                Check(Native.RenameAt(Fd, from, Fd, to), "rename into", Child(to));
                return;
            }
            throw Error("rename into", Child(to), errno);
        }
    }

    public void Symlink(string name, string target)
    {
        Segment(name);
        Check(Native.SymlinkAt(target, Fd, name), "create the link", Child(name));
    }

    /// <summary>A hard link to a file of <paramref name="from"/> (linkat without AT_SYMLINK_FOLLOW: a link source is never followed).</summary>
    public void HardLink(SafeDirectory from, string fromName, string name)
    {
        Segment(fromName);
        Segment(name);
        Check(Native.LinkAt(from.Fd, fromName, Fd, name, 0), "create the hard link", Child(name));
    }

    public string ReadLink(string name)
    {
        Segment(name);
        return ReadLink(Fd, name, Child(name));
    }

    /// <summary>
    /// Removes an entry: a link or a file is unlinked (a link's target is never touched), a folder is emptied through
    /// handles and removed. False when there was nothing.
    /// </summary>
    public bool Remove(string name)
    {
        Segment(name);
        for (var attempt = 0; attempt < 4; attempt++)
        {
            var st = Stat(name);
            if (st is null)
            {
                return false;
            }
            if (st.IsDirectory)
            {
                using (var sub = OpenDirectory(name))
                {
                    sub?.RemoveContents();
                }
                if (Native.UnlinkAt(Fd, name, Native.AT_REMOVEDIR) == 0)
                {
                    return true;
                }
            }
            else if (Native.UnlinkAt(Fd, name, 0) == 0)
            {
                return true;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno == Native.ENOENT)
            {
                return false;
            }
            if (errno is not (Native.EISDIR or Native.ENOTDIR or Native.ENOTEMPTY or Native.ELOOP))
            {
                throw Error("remove", Child(name), errno);
            }
            // It changed type (or gained entries) between the look and the removal: look again.
        }
        throw new UnsafePathException($"{Child(name)} keeps changing while it is being removed");
    }

    /// <summary>Empties this folder (see <see cref="Remove"/>); returns how many entries it removed.</summary>
    public int RemoveContents()
    {
        var n = 0;
        foreach (var name in Names())
        {
            n += Remove(name) ? 1 : 0;
        }
        return n;
    }

    public void SetMode(UnixFileMode mode) => Check(Native.FChmod(Fd, (uint)mode), "chmod", Path);

    public void SetOwner(FileOwner owner) => Check(Native.FChown(Fd, owner.Uid, owner.Gid), "chown", Path);

    /// <summary>Changes the owner of an entry itself (a link, not its target).</summary>
    public void SetOwner(string name, FileOwner owner)
    {
        Segment(name);
        Check(Native.FChownAt(Fd, name, owner.Uid, owner.Gid, Native.AT_SYMLINK_NOFOLLOW), "chown", Child(name));
    }

    /// <summary>
    /// Hands this folder and everything in it to <paramref name="owner"/>, walking through handles: a link is chowned
    /// itself (never what it points to), and each entry is pinned with an O_PATH handle, checked and chowned through that
    /// same handle, so a swap in between cannot redirect the chown. A file with more than one hard link is refused: it
    /// may be another file of the system linked in (only possible where fs.protected_hardlinks is off).
    /// </summary>
    public void GiveTree(FileOwner owner)
    {
        SetOwner(owner);
        foreach (var name in Names())
        {
            var fd = Native.OpenAt(Fd, name, Native.O_PATH | Native.O_NOFOLLOW | Native.O_CLOEXEC, 0);
            if (fd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (errno == Native.ENOENT)
                {
                    continue;
                }
                throw Error("open", Child(name), errno);
            }
            using var pinned = new SafeFileHandle(fd, ownsHandle: true);
            var st = Native.Stat(fd, "", followLinks: false, out var e) ?? throw Error("stat", Child(name), e);
            if (st.IsDirectory)
            {
                using var sub = OpenDirectory(name);
                if (sub is null || sub.StatSelf() is not { } same || !SameEntry(st, same))
                {
                    throw new UnsafePathException($"{Child(name)} changed while it was being handed over");
                }
                sub.GiveTree(owner);
                continue;
            }
            if (!st.IsLink && st.Links > 1)
            {
                throw new UnsafePathException($"{Child(name)} has {st.Links} hard links; it may be another file of this system linked in, so it is not handed to uid {owner.Uid}");
            }
            Check(Native.FChownAt(fd, "", owner.Uid, owner.Gid, Native.AT_EMPTY_PATH), "chown", Child(name));
        }
    }

    private static bool SameEntry(EntryStat a, EntryStat b) => a.Type == b.Type && a.Identity == b.Identity;

    public static EntryStat? Stat(SafeFileHandle file) => Native.Stat((int)file.DangerousGetHandle(), "", followLinks: false, out _);

    public static void SetMode(SafeFileHandle file, UnixFileMode mode) => Check(Native.FChmod((int)file.DangerousGetHandle(), (uint)mode), "chmod", "a file");

    public static void SetOwner(SafeFileHandle file, FileOwner owner) => Check(Native.FChown((int)file.DangerousGetHandle(), owner.Uid, owner.Gid), "chown", "a file");

    /// <summary>Reserves the file's size up front (fewer fragments); a file system without fallocate is fine.</summary>
    public static void Preallocate(SafeFileHandle file, long size)
    {
        if (size > 0)
        {
            _ = Native.PosixFallocate((int)file.DangerousGetHandle(), 0, size);
        }
    }

    /// <summary>Tells the kernel the file is read once from start to end (read-ahead), as FileOptions.SequentialScan does.</summary>
    public static void SequentialScan(SafeFileHandle file) => _ = Native.PosixFadvise((int)file.DangerousGetHandle(), 0, 0, 2);

    private string Child(string name) => Path.EndsWith('/') ? Path + name : Path + "/" + name;

    private static void Segment(string name)
    {
        if (name.Length == 0 || name is "." or ".." || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a single file name", nameof(name));
        }
    }

    private static unsafe string ReadLink(int dirfd, string name, string shown)
    {
        var buffer = new byte[4096];
        fixed (byte* p = buffer)
        {
            var n = Native.ReadLinkAt(dirfd, name, p, (nuint)buffer.Length);
            if (n < 0)
            {
                throw Error("read the link", shown, Marshal.GetLastPInvokeError());
            }
            return System.Text.Encoding.UTF8.GetString(buffer, 0, (int)n);
        }
    }

    private static void EnsureSupported()
    {
        if (!Native.Supported)
        {
            throw new PlatformNotSupportedException("physical backups and restores need Linux on x86-64 or arm64 (they use openat/statx to never follow a link)");
        }
    }

    private static int Check(int result, string what, string path) => result >= 0 ? result : throw Error(what, path, Marshal.GetLastPInvokeError());

    private static IOException Error(string what, string path, int errno) => errno switch
    {
        Native.ELOOP => new UnsafePathException($"{path} is a symbolic link; Cairn does not {what} through links it did not create"),
        Native.ENOTDIR => new UnsafePathException($"cannot {what} {path}: a part of it is not a folder (a file or a link)"),
        Native.EACCES or Native.EPERM => new IOException($"cannot {what} {path}: permission denied", new UnauthorizedAccessException(Marshal.GetPInvokeErrorMessage(errno))),
        Native.ENOENT => new FileNotFoundException($"cannot {what} {path}: it does not exist", path),
        _ => new IOException($"cannot {what} {path}: {Marshal.GetPInvokeErrorMessage(errno)}"),
    };
}
