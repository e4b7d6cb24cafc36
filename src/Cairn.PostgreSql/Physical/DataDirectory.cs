using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Physical;

public enum DataEntryType
{
    File,
    Directory,
    Link,
}

/// <summary>One entry of a data directory as a backup sees it: <see cref="Path"/> is relative with '/' separators.</summary>
public sealed record DataEntry(string Path, string FullPath, DataEntryType Type, long Size, DateTimeOffset Modified, UnixFileMode Mode, string? LinkTarget = null);

/// <summary>
/// Lists what an online physical backup must copy from a data directory and its tablespaces, with the
/// same exclusions as PostgreSQL's own base backup (src/backend/backup/basebackup.c): WAL (archived
/// separately), temporary and runtime-only contents, the files of unlogged relations except their init
/// fork, and the files the backup API itself writes.
/// </summary>
public static partial class DataDirectory
{
    /// <summary>Directories whose contents are runtime-only; the directory itself is kept (empty).</summary>
    private static readonly HashSet<string> ContentsExcluded = new(StringComparer.Ordinal)
    {
        "pg_wal", "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans",
    };

    /// <summary>Files never copied, anywhere in the tree.</summary>
    private static readonly HashSet<string> FilesExcluded = new(StringComparer.Ordinal)
    {
        "postgresql.auto.conf.tmp", "current_logfiles.tmp", "pg_internal.init", "backup_label", "tablespace_map", "backup_manifest", "postmaster.pid", "postmaster.opts",
    };

    /// <summary>Lists the data directory; tablespaces are followed through pg_tblspc into their version folder (e.g. PG_15_202209061).</summary>
    public static List<DataEntry> List(string dataDirectory, string tablespaceVersionDirectory)
    {
        var result = new List<DataEntry>();
        var root = new DirectoryInfo(dataDirectory);
        if (!root.Exists)
        {
            throw new PgToolException($"the data directory {dataDirectory} does not exist or is not readable here; physical backups read it directly, so run cairn on the database host (or leave data_directory unset to stream through pg_basebackup)");
        }
        Walk(root, "", result);
        var tblspc = new DirectoryInfo(System.IO.Path.Combine(dataDirectory, "pg_tblspc"));
        if (tblspc.Exists)
        {
            foreach (var link in tblspc.EnumerateFileSystemInfos())
            {
                var rel = "pg_tblspc/" + link.Name;
                if (link.LinkTarget is not { } target)
                {
                    // An in-place tablespace (allow_in_place_tablespaces): an ordinary folder, walked as such.
                    if (link is DirectoryInfo d)
                    {
                        result.Add(Entry(d, rel, DataEntryType.Directory));
                        WalkVersion(d, rel, tablespaceVersionDirectory, result);
                    }
                    continue;
                }
                var resolved = System.IO.Path.GetFullPath(target, tblspc.FullName);
                result.Add(new DataEntry(rel, link.FullName, DataEntryType.Link, 0, link.LastWriteTimeUtc, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, resolved));
                WalkVersion(new DirectoryInfo(resolved), rel, tablespaceVersionDirectory, result);
            }
        }
        return result;
    }

    private static void WalkVersion(DirectoryInfo tablespace, string rel, string versionDirectory, List<DataEntry> result)
    {
        var version = new DirectoryInfo(System.IO.Path.Combine(tablespace.FullName, versionDirectory));
        if (version.Exists)
        {
            result.Add(Entry(version, rel + "/" + versionDirectory, DataEntryType.Directory));
            Walk(version, rel + "/" + versionDirectory, result);
        }
    }

    private static void Walk(DirectoryInfo dir, string rel, List<DataEntry> result)
    {
        List<FileSystemInfo> children;
        try
        {
            children = [.. dir.EnumerateFileSystemInfos()];
        }
        catch (DirectoryNotFoundException)
        {
            return; // dropped while we looked (a database or tablespace removed during the backup)
        }
        // Unlogged relations: only the init fork is copied; recovery recreates the main fork from it.
        var unlogged = new HashSet<string>(children.Where(c => c.Name.EndsWith("_init", StringComparison.Ordinal) && RelationFile().IsMatch(c.Name)).Select(c => c.Name[..^5]), StringComparer.Ordinal);
        foreach (var child in children)
        {
            var name = child.Name;
            var childRel = rel.Length == 0 ? name : rel + "/" + name;
            if (FilesExcluded.Contains(name) || name.StartsWith("pgsql_tmp", StringComparison.Ordinal) || TempRelation().IsMatch(name))
            {
                continue;
            }
            if (rel.Length == 0 && name == "pg_tblspc")
            {
                result.Add(Entry(child, childRel, DataEntryType.Directory));
                continue; // followed separately
            }
            if (child is DirectoryInfo di)
            {
                result.Add(Entry(di, childRel, DataEntryType.Directory));
                if (rel.Length == 0 && ContentsExcluded.Contains(name))
                {
                    if (name == "pg_wal")
                    {
                        result.Add(new DataEntry("pg_wal/archive_status", System.IO.Path.Combine(di.FullName, "archive_status"), DataEntryType.Directory, 0, di.LastWriteTimeUtc, DirMode));
                    }
                    continue;
                }
                Walk(di, childRel, result);
                continue;
            }
            if (child.LinkTarget is { } target)
            {
                result.Add(new DataEntry(childRel, child.FullName, DataEntryType.Link, 0, child.LastWriteTimeUtc, FileMode, target));
                continue;
            }
            if (child is FileInfo f)
            {
                var m = RelationFile().Match(name);
                if (m.Success && unlogged.Contains(m.Groups[1].Value) && m.Groups[2].Value != "_init")
                {
                    continue;
                }
                result.Add(Entry(f, childRel, DataEntryType.File));
            }
        }
    }

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static DataEntry Entry(FileSystemInfo info, string rel, DataEntryType type)
    {
        var mode = OperatingSystem.IsWindows() ? (type == DataEntryType.Directory ? DirMode : FileMode) : info.UnixFileMode;
        return new DataEntry(rel, info.FullName, type, info is FileInfo f ? f.Length : 0, info.LastWriteTimeUtc, mode);
    }

    /// <summary>relfilenode[_fork][.segment]: group 1 = relfilenode, group 2 = fork.</summary>
    [GeneratedRegex(@"^(\d+)(_fsm|_vm|_init)?(\.\d+)?$")]
    private static partial Regex RelationFile();

    /// <summary>Temporary relations (t&lt;backend&gt;_&lt;relfilenode&gt;), never backed up.</summary>
    [GeneratedRegex(@"^t\d+_\d+(_fsm|_vm|_init)?(\.\d+)?$")]
    private static partial Regex TempRelation();
}
