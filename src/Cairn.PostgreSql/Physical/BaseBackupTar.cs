using System.Formats.Tar;
using Cairn.PostgreSql.Files;

namespace Cairn.PostgreSql.Physical;

/// <summary>
/// Extracts a pg_basebackup tar (restores of backups streamed through pg_basebackup) under the same rules as
/// file-level restores (<see cref="RestoreTree"/>): every name checked before it touches the disk, nothing written
/// through a link, modes masked, symbolic links created last and never beneath another entry, hard links only to a
/// file this extraction wrote, devices and FIFOs refused.
/// </summary>
public static class BaseBackupTar
{
    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    public static async Task ExtractAsync(Stream tar, string target, bool force, CancellationToken ct)
    {
        var root = SafeDirectory.Open(target, create: true);
        try
        {
            if (root.Names().Count > 0)
            {
                if (!force)
                {
                    throw new PgToolException($"{target} is not empty; choose an empty folder, or pass --force to replace its contents");
                }
                root.RemoveContents();
            }
        }
        catch
        {
            root.Dispose();
            throw;
        }
        using var tree = new RestoreTree(root, Accounts.ServerOwner());
        var links = new List<(string Name, string Target)>();
        var linkNames = new HashSet<string>(StringComparer.Ordinal);
        var files = new HashSet<string>(StringComparer.Ordinal);
        await using var reader = new TarReader(tar);
        var previous = "(the first entry)";
        while (await NextAsync(reader, previous, ct).ConfigureAwait(false) is { } entry)
        {
            if (entry.EntryType is TarEntryType.GlobalExtendedAttributes)
            {
                continue;
            }
            var name = entry.Name.StartsWith("./", StringComparison.Ordinal) ? entry.Name[2..] : entry.Name;
            previous = $"'{WalNames.Shorten(name)}'";
            name = name.TrimEnd('/');
            if (name.Length == 0 || name == ".")
            {
                continue; // the archive's own top folder
            }
            Check(name, DataPaths.Problem(name));
            for (var parent = DataPaths.Parent(name); parent.Length > 0; parent = DataPaths.Parent(parent))
            {
                if (linkNames.Contains(parent))
                {
                    throw Refused(name, $"lies under the symbolic link '{parent}'");
                }
            }
            if (linkNames.Contains(name))
            {
                throw Refused(name, "appears again after a symbolic link of that name");
            }
            switch (entry.EntryType)
            {
                case TarEntryType.Directory:
                    tree.Directory(name, DataPaths.DirectoryMode(entry.Mode), createParents: true);
                    break;
                case TarEntryType.RegularFile or TarEntryType.V7RegularFile or TarEntryType.ContiguousFile:
                    EnsureParent(tree, name);
                    await tree.WriteFileAsync(name, entry.Length, DataPaths.FileMode(entry.Mode), async (s, c) =>
                    {
                        if (entry.DataStream is { } data)
                        {
                            try
                            {
                                await data.CopyToAsync(s, 1 << 20, c).ConfigureAwait(false);
                            }
                            catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
                            {
                                throw Refused(name, $"ends before its {entry.Length} bytes of data ({e.Message}); the archive is truncated");
                            }
                        }
                    }, ct).ConfigureAwait(false);
                    files.Add(name);
                    break;
                case TarEntryType.SymbolicLink:
                    if (name.StartsWith("pg_tblspc/", StringComparison.Ordinal))
                    {
                        throw Refused(name, "is a tablespace link; a backup streamed through pg_basebackup -D - never holds one (it refuses tablespaces), and restoring it would point the copy at the original's folder");
                    }
                    if (entry.LinkName.Length == 0 || entry.LinkName.Contains('\0', StringComparison.Ordinal))
                    {
                        throw Refused(name, "is a link without a valid target");
                    }
                    links.Add((name, entry.LinkName));
                    linkNames.Add(name);
                    break;
                case TarEntryType.HardLink:
                    // Inside the archive, a hard link names an earlier entry: only a regular file this extraction wrote.
                    var source = entry.LinkName.StartsWith("./", StringComparison.Ordinal) ? entry.LinkName[2..] : entry.LinkName;
                    if (DataPaths.Problem(source) is { } problem)
                    {
                        throw Refused(name, $"is a hard link to '{source}', which {problem}");
                    }
                    if (!files.Contains(source))
                    {
                        throw Refused(name, $"is a hard link to '{source}', which is not a file this archive held before it");
                    }
                    EnsureParent(tree, name);
                    tree.HardLink(name, source);
                    files.Add(name);
                    break;
                default:
                    throw Refused(name, $"is a {entry.EntryType} entry; a PostgreSQL data directory holds only folders, files and links");
            }
        }
        // Links last: nothing extracted after this can land beneath one.
        foreach (var (name, linkTarget) in links)
        {
            if (tree.HasFolder(name) || files.Contains(name))
            {
                throw Refused(name, "is both a symbolic link and a folder or file");
            }
            EnsureParent(tree, name);
            tree.Link(name, linkTarget);
        }
    }

    private static void EnsureParent(RestoreTree tree, string name)
    {
        var parent = DataPaths.Parent(name);
        if (!tree.HasFolder(parent))
        {
            tree.Directory(parent, PrivateFolder, createParents: true);
        }
    }

    private static void Check(string name, string? problem)
    {
        if (problem is not null)
        {
            throw Refused(name, problem);
        }
    }

    /// <summary>The next entry; a header TarReader cannot parse (a bad checksum or number, a truncated stream) is damage named by where it came.</summary>
    private static async Task<TarEntry?> NextAsync(TarReader reader, string previous, CancellationToken ct)
    {
        try
        {
            return await reader.GetNextEntryAsync(copyData: false, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or FormatException or ArgumentException or OverflowException)
        {
            throw new PgToolException($"the backup's tar is damaged after entry {previous}: {e.Message}. Restore another backup, and run 'cairn verify'", e);
        }
    }

    private static PgToolException Refused(string name, string why)
    {
        var shown = string.Concat(name.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
        return new PgToolException($"the backup's tar holds an entry the restore refuses: '{shown}' {why}. pg_basebackup never writes such an entry, so the backup was forged or damaged: restore another backup, and check who can write to the repository");
    }
}
