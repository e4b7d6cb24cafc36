using System.Collections.Concurrent;
using System.Globalization;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Files;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>Options of a file-level physical restore.</summary>
public sealed record FileRestoreOptions(bool Force, bool Delta, int Jobs, IReadOnlyDictionary<string, string>? TablespaceMap = null);

/// <summary>What a restore did with the files.</summary>
public sealed record FileRestoreStats(int Files, long Bytes, int FilesReused, long BytesReused, int Removed);

public static partial class PhysicalFiles
{
    /// <summary>
    /// Writes a file-level backup into <paramref name="target"/>. The manifest is checked whole before anything touches
    /// the disk (see <see cref="Plan"/>); then folders, files and, last, links are created through
    /// <see cref="RestoreTree"/>, which never follows a link and hands only what it creates to the server's user.
    /// </summary>
    public static async Task<FileRestoreStats> RestoreAsync(Repository.Repository repo, Snapshot snap, string target, FileRestoreOptions options, IProgress<long>? done, CancellationToken ct)
    {
        target = Path.GetFullPath(target);
        var plan = Plan(snap);
        // Every page patch's base must be in the repository before anything is written (a missing one refuses the
        // backup, naming the block).
        foreach (var f in plan.Files)
        {
            repo.BasesOf(f);
        }
        var tablespaceFolders = plan.Tablespaces.Select(l => TablespaceFolder(l, target, options)).ToList();
        var owner = Accounts.ServerOwner();
        var root = SafeDirectory.Open(target, create: true);
        bool exists;
        try
        {
            exists = root.Names().Count > 0;
            if (exists)
            {
                if (ServerRunning(root))
                {
                    throw new PgToolException($"a server is running in {target} (postmaster.pid); stop it before restoring into its folder");
                }
                if (!options.Delta && !options.Force)
                {
                    throw new PgToolException($"{target} is not empty; choose an empty folder, pass --delta to keep the files that already match the backup, or --force to replace its contents");
                }
                if (!options.Delta)
                {
                    root.RemoveContents();
                    exists = false;
                }
            }
        }
        catch
        {
            root.Dispose();
            throw;
        }
        using var tree = new RestoreTree(root, owner) { Fresh = !exists };

        // Tablespaces: into the folder named in the map, else beside the data directory (DIR-tablespaces/OID),
        // never onto the original's location. Their contents are written into that folder directly; the
        // pg_tblspc/OID link PostgreSQL expects is created last, with the other links.
        foreach (var (link, mapped) in plan.Tablespaces.Zip(tablespaceFolders))
        {
            var oid = DataPaths.TablespaceOid(link.Name);
            var folder = SafeDirectory.Open(mapped, create: true);
            tree.Map(link.Name, folder);
            if (folder.Names().Count > 0 && !options.Delta)
            {
                if (!options.Force)
                {
                    throw new PgToolException($"the tablespace folder {mapped} is not empty; empty it, pass --force to replace it, or map tablespace {oid} elsewhere with --tablespace-map {oid}=DIR");
                }
                folder.RemoveContents();
            }
            folder.SetMode(DataPaths.DirectoryMode(0));
            if (owner is { } o)
            {
                folder.SetOwner(o);
            }
        }
        foreach (var d in plan.Dirs)
        {
            tree.Directory(d.Name, DataPaths.DirectoryMode(ModeOf(d, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute)));
        }

        // Large files one per job, each read in coalesced batches (Repository.ReadItemAsync); small files (most of a
        // data directory by count) read together, many per request, in the order their data lies in the repository
        // (Repository.ReadItemsAsync), so a restore from object storage is not one round trip per small file.
        var jobs = Math.Max(1, options.Jobs);
        var queue = new ConcurrentQueue<ManifestItem>(plan.Files.Where(i => i.Size > SmallFileBytes).OrderByDescending(i => i.Size));
        long written = 0, reusedBytes = 0, processed = 0;
        int reusedFiles = 0, count = 0;

        async Task<bool> KeptAsync(ManifestItem item, UnixFileMode mode)
        {
            if (exists && options.Delta && await tree.KeepIfMatchesAsync(item.Name, item.Size, mode, (s, c) => IsBlocked(item) ? repo.BlocksMatchAsync(item, s, BlockSize, c) : repo.ContentMatchesAsync(item, s, c), ct).ConfigureAwait(false))
            {
                Interlocked.Increment(ref reusedFiles);
                Interlocked.Add(ref reusedBytes, item.Size);
                done?.Report(Interlocked.Add(ref processed, item.Size));
                return true;
            }
            return false;
        }

        async Task RestoreSmallFilesAsync()
        {
            var small = new ConcurrentBag<ManifestItem>();
            await Parallel.ForEachAsync(plan.Files.Where(i => i.Size <= SmallFileBytes), new ParallelOptions { MaxDegreeOfParallelism = jobs, CancellationToken = ct }, async (item, _) =>
            {
                Interlocked.Increment(ref count);
                if (!await KeptAsync(item, DataPaths.FileMode(ModeOf(item, UnixFileMode.UserRead | UnixFileMode.UserWrite))).ConfigureAwait(false))
                {
                    small.Add(item);
                }
            }).ConfigureAwait(false);
            await repo.ReadItemsAsync(small, async (item, fill, c) =>
            {
                await tree.WriteFileAsync(item.Name, item.Size, DataPaths.FileMode(ModeOf(item, UnixFileMode.UserRead | UnixFileMode.UserWrite)), fill, c).ConfigureAwait(false);
                Interlocked.Add(ref written, item.Size);
                done?.Report(Interlocked.Add(ref processed, item.Size));
            }, jobs, CheckRebuiltBlock, ct).ConfigureAwait(false);
        }

        await Task.WhenAll(Enumerable.Range(0, jobs).Select(_ => Task.Run(async () =>
        {
            while (queue.TryDequeue(out var item))
            {
                ct.ThrowIfCancellationRequested();
                Interlocked.Increment(ref count);
                var mode = DataPaths.FileMode(ModeOf(item, UnixFileMode.UserRead | UnixFileMode.UserWrite));
                if (await KeptAsync(item, mode).ConfigureAwait(false))
                {
                    continue;
                }
                await tree.WriteFileAsync(item.Name, item.Size, mode, (s, c) => repo.ReadItemAsync(item, s, null, CheckRebuiltBlock, c), ct).ConfigureAwait(false);
                Interlocked.Add(ref written, item.Size);
                done?.Report(Interlocked.Add(ref processed, item.Size));
            }
        }, ct)).Append(Task.Run(RestoreSmallFilesAsync, ct))).ConfigureAwait(false);

        // Links last, when every folder and file is in place: nothing is ever written beneath one.
        foreach (var (link, mapped) in plan.Tablespaces.Zip(tablespaceFolders))
        {
            tree.Link(link.Name, mapped);
        }
        foreach (var l in plan.Links)
        {
            tree.Link(l.Name, l.Meta!["target"]);
        }

        var restoredPaths = new HashSet<string>(plan.Dirs.Concat(plan.Files).Concat(plan.Links).Concat(plan.Tablespaces).Select(i => i.Name), StringComparer.Ordinal);
        // The PostgreSQL-format manifest goes next to the files, so pg_verifybackup can check the copy.
        if (plan.PgManifest is { } pgManifest)
        {
            await tree.WriteFileAsync(ManifestItemName, pgManifest.Size, UnixFileMode.UserRead | UnixFileMode.UserWrite, (s, c) => repo.ReadItemAsync(pgManifest, s, null, c), ct).ConfigureAwait(false);
            restoredPaths.Add(ManifestItemName);
        }

        var removed = exists && options.Delta ? tree.RemoveExtra(restoredPaths) : 0;
        return new FileRestoreStats(count, written, reusedFiles, reusedBytes, removed);
    }

    /// <summary>Whether an item was stored in fixed blocks of <see cref="BlockSize"/> (relation files).</summary>
    private static bool IsBlocked(ManifestItem item) => item.Meta?.GetValueOrDefault("blocks") == BlockSize.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// A block rebuilt from a page patch (its keyed hash already checked) must also have the CRC-32C the backup recorded
    /// for it when it read the block (<c>block_crcs</c>); only then is it written.
    /// </summary>
    private static void CheckRebuiltBlock(ManifestItem item, int index, ReadOnlySpan<byte> block)
    {
        var crcs = item.Meta?.GetValueOrDefault("block_crcs");
        var crc = Cairn.PostgreSql.Physical.Crc32C.HexOf(Cairn.PostgreSql.Physical.Crc32C.ValueOf(block));
        if (crcs is null || ((long)index + 1) * 8 > crcs.Length || !crcs.AsSpan(index * 8, 8).SequenceEqual(crc))
        {
            throw new DataDamagedException($"block {index} of {item.Name}, rebuilt from its page patch, has CRC-32C {crc}, the backup recorded {(crcs is not null && ((long)index + 1) * 8 <= crcs.Length ? crcs.Substring(index * 8, 8) : "none")}; nothing of it was written: restore an older backup, and run 'cairn verify'");
        }
    }

    /// <summary>Files up to this size are restored many per request (see <see cref="RestoreAsync"/>).</summary>
    private const long SmallFileBytes = 1024 * 1024;

    private sealed record RestorePlan(List<ManifestItem> Dirs, List<ManifestItem> Files, List<ManifestItem> Links, List<ManifestItem> Tablespaces, ManifestItem? PgManifest);

    /// <summary>
    /// Checks the whole manifest before anything touches the disk, and refuses what a backup Cairn wrote never holds:
    /// a name that is not a plain relative path, a name twice, an unknown type or mode, a link under pg_tblspc that is
    /// not pg_tblspc/OID, an item whose folder is not in the backup as a folder (e.g. a file under a link).
    /// </summary>
    private static RestorePlan Plan(Snapshot snap)
    {
        var kinds = new Dictionary<string, string>(StringComparer.Ordinal);
        var items = snap.Manifest.Items.Where(i => i.Type != "meta").ToList();
        foreach (var i in items)
        {
            if (DataPaths.Problem(i.Name) is { } problem)
            {
                throw Refused(snap, i.Name, problem);
            }
            if (i.Type is not ("file" or "dir" or "link"))
            {
                throw Refused(snap, i.Name, $"has the unknown type '{i.Type}'");
            }
            if (!kinds.TryAdd(i.Name, i.Type))
            {
                throw Refused(snap, i.Name, "appears twice");
            }
            if (i.Meta?.GetValueOrDefault("mode") is { } m && DataPaths.ParseMode(m) is null)
            {
                throw Refused(snap, i.Name, $"has the invalid mode '{m}'");
            }
            if (i.Type == "link")
            {
                if (i.Meta?.GetValueOrDefault("target") is not { Length: > 0 } t || t.Contains('\0', StringComparison.Ordinal))
                {
                    throw Refused(snap, i.Name, "is a link without a valid target");
                }
                if (i.Name.StartsWith("pg_tblspc/", StringComparison.Ordinal) && !DataPaths.IsTablespaceLink(i.Name))
                {
                    throw Refused(snap, i.Name, "is a link in pg_tblspc that is not pg_tblspc/OID");
                }
                if (i.Name is "pg_wal" or "global" or "base" or "pg_tblspc")
                {
                    throw Refused(snap, i.Name, "is a link where PostgreSQL keeps a folder");
                }
                if (i.Name is "postgresql.auto.conf" or "recovery.signal" or "standby.signal" or "postmaster.pid" or "postmaster.opts" or "backup_label" or ManifestItemName)
                {
                    throw Refused(snap, i.Name, "is a link where the restore or the server writes a file");
                }
            }
        }
        foreach (var i in items)
        {
            var parent = DataPaths.Parent(i.Name);
            if (parent.Length == 0 || kinds.GetValueOrDefault(parent) == "dir" || (kinds.GetValueOrDefault(parent) == "link" && DataPaths.IsTablespaceLink(parent)))
            {
                continue;
            }
            throw Refused(snap, i.Name, kinds.GetValueOrDefault(parent) == "link" ? $"lies under the link '{parent}'" : $"lies in '{parent}', which the backup does not hold as a folder");
        }
        return new RestorePlan(
            [.. items.Where(i => i.Type == "dir").OrderBy(i => i.Name.Count(c => c == '/')).ThenBy(i => i.Name, StringComparer.Ordinal)],
            [.. items.Where(i => i.Type == "file")],
            [.. items.Where(i => i.Type == "link" && !DataPaths.IsTablespaceLink(i.Name))],
            [.. items.Where(i => i.Type == "link" && DataPaths.IsTablespaceLink(i.Name))],
            snap.Manifest.Items.FirstOrDefault(i => i.Name == ManifestItemName && i.Type == "meta"));
    }

    private static RepositoryException Refused(Snapshot snap, string name, string why)
    {
        var shown = string.Concat(name.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
        return new RepositoryException(ErrorKind.Damaged, $"backup {snap.ShortId} holds an item the restore refuses: '{shown}' {why}; nothing was written. Cairn never writes such an item, so the manifest was forged or damaged: restore another backup, and check who can write to the repository");
    }

    /// <summary>Where a tablespace goes: the mapped folder, else DIR-tablespaces/OID; never the original's folder, never inside the data directory.</summary>
    private static string TablespaceFolder(ManifestItem link, string target, FileRestoreOptions options)
    {
        var oid = DataPaths.TablespaceOid(link.Name);
        var mapped = Path.GetFullPath(options.TablespaceMap?.GetValueOrDefault(oid) ?? Path.Combine(target + "-tablespaces", oid));
        if (mapped == Path.GetFullPath(link.Meta!["target"]) && !options.Delta)
        {
            throw new PgToolException($"tablespace {oid} would be restored onto its original folder {mapped}; map it elsewhere with --tablespace-map {oid}=DIR");
        }
        if (mapped == target || mapped.StartsWith(target + "/", StringComparison.Ordinal) || target.StartsWith(mapped + "/", StringComparison.Ordinal))
        {
            throw new PgToolException($"tablespace {oid} would be restored to {mapped}, inside the data directory or around it; map it to a folder of its own with --tablespace-map {oid}=DIR");
        }
        return mapped;
    }

    private static UnixFileMode ModeOf(ManifestItem item, UnixFileMode fallback) => DataPaths.ParseMode(item.Meta?.GetValueOrDefault("mode")) ?? fallback;

    /// <summary>Whether postmaster.pid names a live process. Read without following a link: a planted link is no pid file.</summary>
    private static bool ServerRunning(SafeDirectory dataDirectory)
    {
        try
        {
            using var handle = dataDirectory.OpenFile("postmaster.pid");
            if (handle is null)
            {
                return false;
            }
            using var reader = new StreamReader(new FileStream(handle, FileAccess.Read, bufferSize: 0));
            var first = reader.ReadLine();
            return int.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var pid) && Directory.Exists($"/proc/{pid}");
        }
        catch (IOException)
        {
            return false;
        }
    }
}
