using System.Globalization;
using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Files;

/// <summary>
/// The rules for names and modes read from a backup (a manifest or a tar) before they touch the disk: every name is
/// a plain relative path, tablespace links are exactly <c>pg_tblspc/OID</c>, and modes lose setuid, setgid, sticky
/// and every write or world bit.
/// </summary>
public static partial class DataPaths
{
    private const int MaxPath = 4096;
    private const int MaxSegment = 255;

    /// <summary>Why <paramref name="name"/> is not a plain relative path (no empty, "." or ".." part, no NUL, not absolute); null when it is one.</summary>
    public static string? Problem(string name)
    {
        if (name.Length == 0)
        {
            return "is empty";
        }
        if (name.Contains('\0', StringComparison.Ordinal))
        {
            return "contains a NUL character";
        }
        if (name.StartsWith('/'))
        {
            return "is an absolute path";
        }
        if (name.Length > MaxPath)
        {
            return "is too long";
        }
        foreach (var part in name.Split('/'))
        {
            if (part.Length == 0 || part is "." or "..")
            {
                return "has an empty, '.' or '..' part";
            }
            if (System.Text.Encoding.UTF8.GetByteCount(part) > MaxSegment)
            {
                return "has a part longer than 255 bytes";
            }
        }
        return null;
    }

    /// <summary>The only place PostgreSQL keeps tablespace links: <c>pg_tblspc/</c> and an OID.</summary>
    public static bool IsTablespaceLink(string name) => TablespaceLink().IsMatch(name);

    /// <summary>The OID of a <c>pg_tblspc/OID</c> name.</summary>
    public static string TablespaceOid(string name) => name["pg_tblspc/".Length..];

    /// <summary>The folder part of a relative name ("" at the top).</summary>
    public static string Parent(string name) => name.LastIndexOf('/') is var i and >= 0 ? name[..i] : "";

    public static string Leaf(string name) => name[(name.LastIndexOf('/') + 1)..];

    /// <summary>Parses an octal mode ("600", "0750"); null when it is not one.</summary>
    public static UnixFileMode? ParseMode(string? octal)
        => octal is { Length: > 0 and <= 7 } && octal.All(c => c is >= '0' and <= '7') && int.TryParse(octal, NumberStyles.None, CultureInfo.InvariantCulture, out _)
            ? (UnixFileMode)Convert.ToInt32(octal, 8) & (UnixFileMode)0xFFF
            : null;

    /// <summary>A restored file: read/write for the owner, at most read for the group (PostgreSQL's group-access mode), nothing else.</summary>
    public static UnixFileMode FileMode(UnixFileMode fromBackup)
        => (fromBackup & (UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead)) | UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>A restored folder: everything for the owner, at most read and enter for the group, nothing else.</summary>
    public static UnixFileMode DirectoryMode(UnixFileMode fromBackup)
        => (fromBackup & (UnixFileMode.GroupRead | UnixFileMode.GroupExecute)) | UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    [GeneratedRegex(@"^pg_tblspc/[0-9]{1,10}\z")]
    private static partial Regex TablespaceLink();
}
