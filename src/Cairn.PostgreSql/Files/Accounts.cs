using System.Runtime.InteropServices;

namespace Cairn.PostgreSql.Files;

/// <summary>A numeric owner (uid and gid) for fchown.</summary>
public readonly record struct FileOwner(uint Uid, uint Gid);

/// <summary>Users and groups by name (NSS, so LDAP or sssd accounts resolve too), and the process umask.</summary>
public static class Accounts
{
    private static readonly Lock Gate = new();

    /// <summary>The owner a restored data directory must have: the server's user when Cairn runs as root, else nobody to change to.</summary>
    public static FileOwner? ServerOwner()
    {
        if (!Native.Supported || Native.GetEuid() != 0)
        {
            return null;
        }
        return User(Programs.PgProcess.ServerUserName) ?? throw new PgToolException($"running as root, but there is no '{Programs.PgProcess.ServerUserName}' user to hand the restored files to; create it (Debian: apt-get install postgresql) or run Cairn as the server's user");
    }

    /// <summary>uid and primary gid of a user; null when there is no such user.</summary>
    public static FileOwner? User(string name)
    {
        // getpwnam returns static storage: one caller at a time. struct passwd: pw_name, pw_passwd (pointers), then pw_uid, pw_gid.
        lock (Gate)
        {
            var p = Native.GetPwNam(name);
            return p == 0 ? null : new FileOwner((uint)Marshal.ReadInt32(p, 2 * IntPtr.Size), (uint)Marshal.ReadInt32(p, (2 * IntPtr.Size) + 4));
        }
    }

    /// <summary>A group's gid; null when there is no such group.</summary>
    public static uint? Group(string name)
    {
        // struct group: gr_name, gr_passwd (pointers), then gr_gid.
        lock (Gate)
        {
            var g = Native.GetGrNam(name);
            return g == 0 ? null : (uint)Marshal.ReadInt32(g, 2 * IntPtr.Size);
        }
    }

    /// <summary>The user this process runs as (effective uid).</summary>
    public static uint EffectiveUid => Native.Supported ? Native.GetEuid() : uint.MaxValue;

    /// <summary>
    /// Sets the process umask to 077, so every file and folder Cairn (or a program it starts) creates without an
    /// explicit mode is private to its owner: restored data, dumps, exports, temp files.
    /// </summary>
    public static void RestrictUmask()
    {
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS())
        {
            _ = Native.Umask(0x3F);
        }
    }
}
