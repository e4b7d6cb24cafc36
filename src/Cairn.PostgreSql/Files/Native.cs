using System.Runtime.InteropServices;

namespace Cairn.PostgreSql.Files;

/// <summary>
/// The libc calls .NET does not expose: the *at family (every path relative to an open directory), statx,
/// fchown and umask. Linux only (x86-64 and arm64, whose open flags differ); callers check <see cref="Supported"/>.
/// </summary>
internal static partial class Native
{
    public static bool Supported => OperatingSystem.IsLinux() && RuntimeInformation.ProcessArchitecture is Architecture.X64 or Architecture.Arm64;

    private static bool Arm => RuntimeInformation.ProcessArchitecture is Architecture.Arm64;

    public const int O_RDONLY = 0;
    public const int O_WRONLY = 1;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_NOCTTY = 0x100;
    public const int O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800;
    public const int O_CLOEXEC = 0x80000;
    public const int O_PATH = 0x200000;

    /// <summary>0200000 on x86-64 (asm-generic), 040000 on arm64.</summary>
    public static int O_DIRECTORY => Arm ? 0x4000 : 0x10000;

    /// <summary>0400000 on x86-64 (asm-generic), 0100000 on arm64.</summary>
    public static int O_NOFOLLOW => Arm ? 0x8000 : 0x20000;

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_REMOVEDIR = 0x200;
    public const int AT_EMPTY_PATH = 0x1000;

    public const int ENOENT = 2;
    public const int EINTR = 4;
    public const int EACCES = 13;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int EPERM = 1;
    public const int ENOTEMPTY = 39;
    public const int ELOOP = 40;
    public const int EMLINK = 31;

    public const uint S_IFMT = 0xF000;
    public const uint S_IFDIR = 0x4000;
    public const uint S_IFREG = 0x8000;
    public const uint S_IFLNK = 0xA000;

    private const uint STATX_BASIC_STATS = 0x7ff;

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenAt(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MkdirAt(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int UnlinkAt(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int RenameAt(int olddirfd, string oldpath, int newdirfd, string newpath);

    [LibraryImport("libc", EntryPoint = "symlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int SymlinkAt(string target, int newdirfd, string linkpath);

    [LibraryImport("libc", EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int LinkAt(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);

    [LibraryImport("libc", EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static unsafe partial nint ReadLinkAt(int dirfd, string path, byte* buffer, nuint size);

    [LibraryImport("libc", EntryPoint = "fchmod", SetLastError = true)]
    public static partial int FChmod(int fd, uint mode);

    [LibraryImport("libc", EntryPoint = "fchown", SetLastError = true)]
    public static partial int FChown(int fd, uint uid, uint gid);

    [LibraryImport("libc", EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FChownAt(int dirfd, string path, uint uid, uint gid, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int StatX(int dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "fdopendir", SetLastError = true)]
    public static partial nint FdOpenDir(int fd);

    [LibraryImport("libc", EntryPoint = "readdir", SetLastError = true)]
    public static partial nint ReadDir(nint dir);

    [LibraryImport("libc", EntryPoint = "closedir", SetLastError = true)]
    public static partial int CloseDir(nint dir);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    public const int F_GETFL = 3;
    public const int F_SETFL = 4;

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    public static partial int Flock(int fd, int operation);

    public const int LOCK_EX = 2;
    public const int LOCK_NB = 4;
    public const int EWOULDBLOCK = 11;

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "umask")]
    public static partial uint Umask(uint mask);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    public static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "posix_fallocate")]
    public static partial int PosixFallocate(int fd, long offset, long length);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    public static partial int PosixFadvise(int fd, long offset, long length, int advice);

    [LibraryImport("libc", EntryPoint = "getpwnam", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint GetPwNam(string name);

    [LibraryImport("libc", EntryPoint = "getgrnam", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial nint GetGrNam(string name);

    /// <summary>statx of <paramref name="path"/> relative to <paramref name="dirfd"/> (or of dirfd itself when path is empty); null with errno when it fails.</summary>
    public static unsafe EntryStat? Stat(int dirfd, string path, bool followLinks, out int errno)
    {
        var buffer = stackalloc byte[256];
        var flags = (followLinks ? 0 : AT_SYMLINK_NOFOLLOW) | (path.Length == 0 ? AT_EMPTY_PATH : 0);
        if (StatX(dirfd, path, flags, STATX_BASIC_STATS, buffer) != 0)
        {
            errno = Marshal.GetLastPInvokeError();
            return null;
        }
        errno = 0;
        // struct statx is the same on every architecture: nlink @16, uid @20, gid @24, mode @28, size @40, mtime @112 (sec) / @120 (nsec).
        var mode = *(ushort*)(buffer + 28);
        var mtime = DateTimeOffset.FromUnixTimeSeconds(*(long*)(buffer + 112)).AddTicks(*(uint*)(buffer + 120) / 100);
        // The entry's identity: inode @32, device major/minor @136/@140.
        var id = (*(ulong*)(buffer + 32), ((ulong)*(uint*)(buffer + 136) << 32) | *(uint*)(buffer + 140));
        return new EntryStat(mode & S_IFMT, (UnixFileMode)(mode & 0xFFF), *(uint*)(buffer + 20), *(uint*)(buffer + 24), *(uint*)(buffer + 16), *(long*)(buffer + 40), mtime) { Identity = id };
    }
}

/// <summary>What statx says about one entry, without following it when it is a link.</summary>
public sealed record EntryStat(uint Type, UnixFileMode Mode, uint Uid, uint Gid, uint Links, long Size, DateTimeOffset Modified)
{
    /// <summary>Inode and device: two stats with the same identity saw the same file.</summary>
    public (ulong Inode, ulong Device) Identity { get; init; }

    public bool IsDirectory => Type == Native.S_IFDIR;

    public bool IsFile => Type == Native.S_IFREG;

    public bool IsLink => Type == Native.S_IFLNK;
}
