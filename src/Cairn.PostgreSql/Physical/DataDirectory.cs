using System.Text.RegularExpressions;
using Cairn.PostgreSql.Files;
using Microsoft.Win32.SafeHandles;

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

    /// <summary>
    /// Lists the data directory through handles, never following a link: a link inside it is recorded as a link (a
    /// link to /root/.ssh planted by the server's user is not copied; a link loop is just two links), except
    /// <c>pg_tblspc/OID</c>, whose tablespace folder is opened (when it belongs to the data directory's owner) and
    /// walked into its version folder (e.g. PG_15_202209061), and a linked <c>pg_wal</c>, recorded as a folder (its
    /// contents are not copied anyway). The listing keeps the data directory and each tablespace open, and
    /// <see cref="DataDirectoryListing.OpenRead"/> opens files from those handles, one component at a time, with O_NOFOLLOW.
    /// </summary>
    public static DataDirectoryListing List(string dataDirectory, string tablespaceVersionDirectory)
    {
        SafeDirectory root;
        try
        {
            root = SafeDirectory.Open(dataDirectory);
        }
        catch (FileNotFoundException)
        {
            throw new PgToolException($"the data directory {dataDirectory} does not exist or is not readable here; physical backups read it directly, so run cairn on the database host (or leave data_directory unset to stream through pg_basebackup)");
        }
        var listing = new DataDirectoryListing(root, System.IO.Path.GetFullPath(dataDirectory));
        try
        {
            Walk(root, listing.Root, "", listing.Entries);
            using var tblspc = root.OpenDirectory("pg_tblspc");
            if (tblspc is not null)
            {
                var owner = root.StatSelf().Uid;
                foreach (var name in tblspc.Names())
                {
                    var rel = "pg_tblspc/" + name;
                    var st = tblspc.Stat(name);
                    if (st is { IsDirectory: true })
                    {
                        // An in-place tablespace (allow_in_place_tablespaces): an ordinary folder, walked as such.
                        using var d = tblspc.OpenDirectory(name);
                        if (d is not null)
                        {
                            listing.Entries.Add(Entry(st, rel, listing.Root + "/" + rel, DataEntryType.Directory));
                            WalkVersion(d, listing.Root + "/" + rel, rel, tablespaceVersionDirectory, listing.Entries);
                        }
                        continue;
                    }
                    if (st is not { IsLink: true })
                    {
                        continue;
                    }
                    var target = System.IO.Path.GetFullPath(tblspc.ReadLink(name), tblspc.Path);
                    if (!DataPaths.IsTablespaceLink(rel))
                    {
                        listing.Entries.Add(new DataEntry(rel, listing.Root + "/" + rel, DataEntryType.Link, 0, st.Modified, FileMode, target));
                        continue;
                    }
                    var tablespace = SafeDirectory.Open(target);
                    if (tablespace.StatSelf().Uid != owner)
                    {
                        var uid = tablespace.StatSelf().Uid;
                        tablespace.Dispose();
                        throw new PgToolException($"tablespace link {rel} points to {target}, which belongs to uid {uid}, not to the owner of the data directory (uid {owner}); a tablespace is always the server's own folder, so the link was planted: refusing to back it up");
                    }
                    listing.AddTablespace(rel, tablespace);
                    listing.Entries.Add(new DataEntry(rel, listing.Root + "/" + rel, DataEntryType.Link, 0, st.Modified, DirMode, target));
                    WalkVersion(tablespace, target, rel, tablespaceVersionDirectory, listing.Entries);
                }
            }
            return listing;
        }
        catch
        {
            listing.Dispose();
            throw;
        }
    }

    private static void WalkVersion(SafeDirectory tablespace, string shown, string rel, string versionDirectory, List<DataEntry> result)
    {
        var st = tablespace.Stat(versionDirectory);
        if (st is not { IsDirectory: true })
        {
            return;
        }
        using var version = tablespace.OpenDirectory(versionDirectory);
        if (version is not null)
        {
            result.Add(Entry(st, rel + "/" + versionDirectory, shown + "/" + versionDirectory, DataEntryType.Directory));
            Walk(version, shown + "/" + versionDirectory, rel + "/" + versionDirectory, result);
        }
    }

    private static void Walk(SafeDirectory dir, string shown, string rel, List<DataEntry> result)
    {
        List<(string Name, EntryStat Stat)> children;
        try
        {
            children = [.. dir.Names().Select(n => (n, dir.Stat(n))).Where(c => c.Item2 is not null).Select(c => (c.n, c.Item2!))];
        }
        catch (FileNotFoundException)
        {
            return; // dropped while we looked (a database or tablespace removed during the backup)
        }
        // Unlogged relations: only the init fork is copied; recovery recreates the main fork from it.
        var unlogged = new HashSet<string>(children.Where(c => c.Name.EndsWith("_init", StringComparison.Ordinal) && RelationFile().IsMatch(c.Name)).Select(c => c.Name[..^5]), StringComparer.Ordinal);
        foreach (var (name, st) in children)
        {
            var childRel = rel.Length == 0 ? name : rel + "/" + name;
            var full = shown + "/" + name;
            if (FilesExcluded.Contains(name) || name.StartsWith("pgsql_tmp", StringComparison.Ordinal) || TempRelation().IsMatch(name))
            {
                continue;
            }
            if (rel.Length == 0 && name == "pg_tblspc" && st.IsDirectory)
            {
                result.Add(Entry(st, childRel, full, DataEntryType.Directory));
                continue; // followed separately
            }
            if (rel.Length == 0 && name == "pg_wal" && (st.IsDirectory || st.IsLink))
            {
                // pg_wal may link elsewhere (initdb --waldir); its contents are archived separately, so it is an empty folder here.
                result.Add(new DataEntry(childRel, full, DataEntryType.Directory, 0, st.Modified, DirMode));
                result.Add(new DataEntry("pg_wal/archive_status", full + "/archive_status", DataEntryType.Directory, 0, st.Modified, DirMode));
                continue;
            }
            if (st.IsLink)
            {
                result.Add(new DataEntry(childRel, full, DataEntryType.Link, 0, st.Modified, FileMode, dir.ReadLink(name)));
                continue;
            }
            if (st.IsDirectory)
            {
                result.Add(Entry(st, childRel, full, DataEntryType.Directory));
                if (rel.Length == 0 && ContentsExcluded.Contains(name))
                {
                    continue;
                }
                SafeDirectory? sub;
                try
                {
                    sub = dir.OpenDirectory(name);
                }
                catch (UnsafePathException)
                {
                    throw new PgToolException($"{full} turned from a folder into something else (a link?) while the backup listed it; refusing to follow it");
                }
                using (sub)
                {
                    if (sub is not null)
                    {
                        Walk(sub, full, childRel, result);
                    }
                }
                continue;
            }
            if (st.IsFile)
            {
                var m = RelationFile().Match(name);
                if (m.Success && unlogged.Contains(m.Groups[1].Value) && m.Groups[2].Value != "_init")
                {
                    continue;
                }
                result.Add(Entry(st, childRel, full, DataEntryType.File));
            }
            // Sockets, FIFOs and devices are not PostgreSQL's; pg_basebackup skips them too.
        }
    }

    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode DirMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    private static DataEntry Entry(EntryStat st, string rel, string full, DataEntryType type)
        => new(rel, full, type, type == DataEntryType.File ? st.Size : 0, st.Modified, st.Mode);

    /// <summary>relfilenode[_fork][.segment]: group 1 = relfilenode, group 2 = fork.</summary>
    [GeneratedRegex(@"^(\d+)(_fsm|_vm|_init)?(\.\d+)?\z")]
    private static partial Regex RelationFile();

    /// <summary>Temporary relations (t&lt;backend&gt;_&lt;relfilenode&gt;), never backed up.</summary>
    [GeneratedRegex(@"^t\d+_\d+(_fsm|_vm|_init)?(\.\d+)?\z")]
    private static partial Regex TempRelation();
}

/// <summary>
/// What a backup copies from a data directory, with the data directory and each followed tablespace held open, so
/// that files are opened from those handles (never through a path a link could redirect).
/// </summary>
public sealed class DataDirectoryListing : IDisposable
{
    private readonly SafeDirectory _root;
    private readonly Dictionary<string, SafeDirectory> _tablespaces = new(StringComparer.Ordinal);

    internal DataDirectoryListing(SafeDirectory root, string path)
    {
        _root = root;
        Root = path;
    }

    /// <summary>The data directory's path, for messages.</summary>
    public string Root { get; }

    public List<DataEntry> Entries { get; } = [];

    internal void AddTablespace(string name, SafeDirectory folder) => _tablespaces[name] = folder;

    /// <summary>
    /// Opens a listed file for reading, walking from the data directory (or its tablespace's folder) one component at
    /// a time without following links; null when it was removed since the listing (a dropped table).
    /// </summary>
    public SafeFileHandle? OpenRead(DataEntry entry)
    {
        var parts = entry.Path.Split('/');
        var start = 0;
        var dir = _root;
        if (parts.Length > 2 && parts[0] == "pg_tblspc" && _tablespaces.TryGetValue(parts[0] + "/" + parts[1], out var ts))
        {
            dir = ts;
            start = 2;
        }
        var opened = new List<SafeDirectory>();
        try
        {
            for (var i = start; i < parts.Length - 1; i++)
            {
                var next = dir.OpenDirectory(parts[i]);
                if (next is null)
                {
                    return null;
                }
                opened.Add(next);
                dir = next;
            }
            var handle = dir.OpenFile(parts[^1]);
            if (handle is not null)
            {
                SafeDirectory.SequentialScan(handle);
            }
            return handle;
        }
        finally
        {
            foreach (var d in opened)
            {
                d.Dispose();
            }
        }
    }

    public void Dispose()
    {
        _root.Dispose();
        foreach (var t in _tablespaces.Values)
        {
            t.Dispose();
        }
    }
}
