using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Files;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>Options of a file-level physical backup.</summary>
public sealed record FileBackupOptions(int Jobs, TimeSpan ArchiveWait, bool Full = false);

/// <summary>Options of a file-level physical restore.</summary>
public sealed record FileRestoreOptions(bool Force, bool Delta, int Jobs, IReadOnlyDictionary<string, string>? TablespaceMap = null);

/// <summary>What a restore did with the files.</summary>
public sealed record FileRestoreStats(int Files, long Bytes, int FilesReused, long BytesReused, int Removed);

/// <summary>
/// Physical backups that read a local data directory directly, between pg_backup_start and pg_backup_stop:
/// files are read in parallel; a file whose size and modification time are those of the previous backup
/// (same system, timeline and data directory) and that was last modified well before that backup started is
/// not read at all, its chunks are carried over; everything else is chunked and deduplicated. Each file is one
/// manifest item, so a restore writes files in parallel and <c>--delta</c> keeps files that already match.
/// A PostgreSQL-format backup_manifest (CRC-32C per file) is stored too, so pg_verifybackup can check a
/// restored copy independently of Cairn.
/// </summary>
public static class PhysicalFiles
{
    public const string Format = PhysicalBackupMeta.FilesFormat;
    public const string ManifestItemName = "backup_manifest";
    public const string TablespaceMapItem = "tablespace_map";

    /// <summary>
    /// Safety margin for modification times: Linux file times come from a coarse clock, so a write just after
    /// a backup read a file can leave its mtime unchanged. A file last modified this long before the previous
    /// backup started was not written while that backup read it, so an unchanged mtime proves unchanged content.
    /// </summary>
    public static readonly TimeSpan MtimeMargin = TimeSpan.FromSeconds(2);

    /// <summary>Relation files are stored in fixed, page-aligned blocks of this size, so unchanged pages line up with the previous backup's.</summary>
    public const int BlockSize = 256 * 1024;

    public static async Task<PhysicalBackupResult> BackupAsync(Repository.Repository repo, string name, PgConnection connection, string dataDirectory, FileBackupOptions options, TimeProvider time, Action<long>? total, IProgress<long>? done, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        await using var session = await BackupSession.StartAsync(connection, dataDirectory, time, ct).ConfigureAwait(false);
        var start = session.Start;
        var previous = options.Full ? null : await PreviousAsync(repo, name, start, ct).ConfigureAwait(false);
        var reusable = previous is null ? null : ReusableItems(previous);
        var previousBlocks = previous?.Manifest.Items.Where(i => i.Type == "file" && i.Meta?.GetValueOrDefault("blocks") == BlockSize.ToString(CultureInfo.InvariantCulture) && i.Meta.ContainsKey("block_crcs"))
            .ToDictionary(i => i.Name, StringComparer.Ordinal);
        var previousStartLsn = previous is null ? 0UL : PhysicalBackupMeta.Of(previous).StartLsnValue;
        using var listing = DataDirectory.List(start.DataDirectory, start.TablespaceVersionDirectory);
        var entries = listing.Entries;
        total?.Invoke(entries.Sum(e => e.Size));
        await using var writer = repo.BeginWrite();
        foreach (var e in entries.Where(e => e.Type != DataEntryType.File))
        {
            writer.AddExistingItem(new ManifestItem { Name = e.Path, Type = e.Type == DataEntryType.Directory ? "dir" : "link", Meta = EntryMeta(e, null) });
        }

        var queue = new ConcurrentQueue<DataEntry>(entries.Where(e => e.Type == DataEntryType.File).OrderByDescending(e => e.Size));
        var manifestFiles = new ConcurrentBag<ManifestFile>();
        long processed = 0, reusedBytes = 0, reusedFiles = 0, reusedPageBytes = 0;
        var jobs = Math.Max(1, options.Jobs);
        await Task.WhenAll(Enumerable.Range(0, jobs).Select(_ => Task.Run(async () =>
        {
            while (queue.TryDequeue(out var e))
            {
                ct.ThrowIfCancellationRequested();
                if (reusable is not null && reusable.TryGetValue(e.Path, out var old) && Unchanged(old, e) && TryCarryOver(writer, old))
                {
                    manifestFiles.Add(new ManifestFile(e.Path, old.Size, e.Modified, old.Meta!["crc32c"]));
                    Interlocked.Add(ref reusedBytes, old.Size);
                    Interlocked.Increment(ref reusedFiles);
                    done?.Report(Interlocked.Add(ref processed, e.Size));
                    continue;
                }
                FileStream file;
                try
                {
                    if (listing.OpenRead(e) is not { } handle)
                    {
                        continue; // dropped during the backup: WAL replay removes it anyway
                    }
                    file = new FileStream(handle, FileAccess.Read, bufferSize: 0);
                }
                catch (IOException ex) when (ex.InnerException is UnauthorizedAccessException)
                {
                    throw new PgToolException($"cannot read {e.FullPath}: {ex.Message}; run cairn as root or as the server's user", ex);
                }
                catch (UnsafePathException ex)
                {
                    throw new PgToolException($"{ex.Message}; it was listed as a regular file moments ago, so something is swapping files in the data directory: refusing to follow it, no backup was recorded", ex);
                }
                await using var crc = new Crc32CStream(file);
                long last = 0;
                var progress = new Progress(n =>
                {
                    done?.Report(Interlocked.Add(ref processed, n - last));
                    last = n;
                });
                ManifestItem added;
                var meta = EntryMeta(e, null);
                if (RelationPages.IsRelationData(e.Path))
                {
                    // Fixed blocks; a block whose pages are all older than the previous backup's start and whose
                    // checksum is the previous block's is that block: it is carried over without hashing it.
                    var before = previousBlocks?.GetValueOrDefault(e.Path);
                    var oldCrcs = before?.Meta!["block_crcs"];
                    var crcs = new System.Text.StringBuilder();
                    long carried = 0;
                    added = await writer.AddBlocksAsync(e.Path, crc, BlockSize, (i, block) =>
                    {
                        var blockCrc = Crc32C.Of(block);
                        crcs.Append(blockCrc);
                        if (before is null || oldCrcs is null || (i + 1) * 8 > oldCrcs.Length || i >= before.Chunks.Count || block.Length != Math.Min(BlockSize, before.Size - ((long)i * BlockSize))
                            || !oldCrcs.AsSpan(i * 8, 8).SequenceEqual(blockCrc) || !RelationPages.AllOlderThan(block, start.PageSize, previousStartLsn))
                        {
                            return null;
                        }
                        carried += block.Length;
                        return before.Chunks[i];
                    }, progress, "file", null, ct).ConfigureAwait(false);
                    Interlocked.Add(ref reusedPageBytes, carried);
                    meta["blocks"] = BlockSize.ToString(CultureInfo.InvariantCulture);
                    meta["block_crcs"] = crcs.ToString();
                }
                else
                {
                    added = await writer.AddStreamAsync(e.Path, crc, progress, "file", null, ct).ConfigureAwait(false);
                }
                // The size recorded is what was read: a file growing or shrinking during the copy is fine (WAL replay fixes it).
                var crcHex = crc.Crc.Hex;
                meta["crc32c"] = crcHex;
                writer.ReplaceItem(added, added with { Meta = meta });
                manifestFiles.Add(new ManifestFile(e.Path, crc.BytesRead, e.Modified, crcHex));
            }
        }, ct))).ConfigureAwait(false);

        var stop = await session.StopAsync(ct).ConfigureAwait(false);
        await WaitForArchiveAsync(repo, name, start.StartWal, stop.StopWal, session.ArchiverFailureAsync, options.ArchiveWait, time, ct).ConfigureAwait(false);

        var label = System.Text.Encoding.UTF8.GetBytes(stop.BackupLabel);
        var labelCrc = Crc32C.Of(label);
        await AddBytesAsync(writer, "backup_label", label, new() { ["mode"] = "0600", ["mtime"] = Iso(stop.StopTime), ["crc32c"] = labelCrc }, ct).ConfigureAwait(false);
        manifestFiles.Add(new ManifestFile("backup_label", label.Length, stop.StopTime, labelCrc));
        if (stop.TablespaceMap.Length > 0)
        {
            // Kept for the record only: a restore creates tablespace links itself (into the folders it was told),
            // so PostgreSQL must not recreate the original links from this file.
            await AddBytesAsync(writer, TablespaceMapItem, System.Text.Encoding.UTF8.GetBytes(stop.TablespaceMap), null, ct, "meta").ConfigureAwait(false);
        }
        var pgManifest = BackupManifest.Build([.. manifestFiles.OrderBy(f => f.Path, StringComparer.Ordinal)], start.Timeline, start.StartLsn, stop.StopLsn);
        await AddBytesAsync(writer, ManifestItemName, pgManifest, null, ct, "meta").ConfigureAwait(false);

        var meta = new Dictionary<string, string>
        {
            ["source"] = connection.Redacted,
            ["server_version"] = start.ServerVersion,
            ["system_identifier"] = start.SystemIdentifier,
            ["data_directory"] = start.DataDirectory,
            ["start_lsn"] = start.StartLsn,
            ["stop_lsn"] = stop.StopLsn,
            ["timeline"] = start.Timeline.ToString(CultureInfo.InvariantCulture),
            ["start_wal"] = start.StartWal,
            ["stop_wal"] = stop.StopWal,
            ["start_time"] = Iso(start.StartTime),
            ["stop_time"] = Iso(stop.StopTime),
            ["format"] = Format,
            ["from_standby"] = start.FromStandby ? "yes" : "no",
            ["incremental_from"] = previous?.Id ?? "",
            ["reused_files"] = reusedFiles.ToString(CultureInfo.InvariantCulture),
            ["reused_bytes"] = reusedBytes.ToString(CultureInfo.InvariantCulture),
            ["reused_page_bytes"] = reusedPageBytes.ToString(CultureInfo.InvariantCulture),
        };
        var snap = await writer.CommitAsync(name, BackupKinds.Physical, meta, ct).ConfigureAwait(false);
        var info = new BaseBackupInfo(start.StartLsn, stop.StopLsn, start.Timeline, start.StartWal, start.ServerVersion, stop.StopTime);
        return new PhysicalBackupResult(snap, info, writer.Stats, sw.Elapsed) { ReusedBytes = reusedBytes, ReusedFiles = reusedFiles, ReusedPageBytes = reusedPageBytes, IncrementalFrom = previous };
    }

    /// <summary>The newest file-level backup of the same server, timeline and data directory.</summary>
    private static async Task<Snapshot?> PreviousAsync(Repository.Repository repo, string name, BackupStart start, CancellationToken ct)
        => (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false))
            .Where(s => s.Manifest.Kind == BackupKinds.Physical && s.Manifest.Name == name
                && s.Manifest.Meta.GetValueOrDefault("format") == Format
                && s.Manifest.Meta.GetValueOrDefault("system_identifier") == start.SystemIdentifier
                && s.Manifest.Meta.GetValueOrDefault("timeline") == start.Timeline.ToString(CultureInfo.InvariantCulture)
                && s.Manifest.Meta.GetValueOrDefault("data_directory") == start.DataDirectory
                && s.Manifest.Meta.GetValueOrDefault("server_version") == start.ServerVersion)
            .LastOrDefault();

    /// <summary>Files of the previous backup that were last modified well before it started (see <see cref="MtimeMargin"/>).</summary>
    private static Dictionary<string, ManifestItem> ReusableItems(Snapshot previous)
    {
        var started = PhysicalBackupMeta.Of(previous).StartTime ?? throw new DataDamagedException($"physical backup {previous.ShortId} has no start_time in its manifest");
        return previous.Manifest.Items
            .Where(i => i.Type == "file" && i.Meta is { } m && m.ContainsKey("crc32c") && m.TryGetValue("mtime", out var mt)
                && DateTimeOffset.Parse(mt, CultureInfo.InvariantCulture) < started - MtimeMargin)
            .ToDictionary(i => i.Name, StringComparer.Ordinal);
    }

    private static bool Unchanged(ManifestItem old, DataEntry now)
        => old.Size == now.Size && old.Meta!["mtime"] == Iso(now.Modified);

    private static bool TryCarryOver(ItemWriter writer, ManifestItem old)
    {
        try
        {
            writer.AddExistingItem(old);
            return true;
        }
        catch (DataDamagedException)
        {
            return false; // its chunks are gone (damage): read the file again
        }
    }

    private static Dictionary<string, string> EntryMeta(DataEntry e, string? crc)
    {
        var m = new Dictionary<string, string>
        {
            ["mode"] = Convert.ToString((int)e.Mode, 8),
            ["mtime"] = Iso(e.Modified),
        };
        if (crc is not null)
        {
            m["crc32c"] = crc;
        }
        if (e.LinkTarget is not null)
        {
            m["target"] = e.LinkTarget;
        }
        return m;
    }

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    private static async Task AddBytesAsync(ItemWriter writer, string name, byte[] data, Dictionary<string, string>? meta, CancellationToken ct, string type = "file")
    {
        await using var ms = new MemoryStream(data, writable: false);
        await writer.AddStreamAsync(name, ms, null, type, meta, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// pg_backup_stop switched to a new segment; the backup is only restorable once every segment from its start
    /// to its stop is in the repository. Waits for the archiver (on <paramref name="time"/>, so a test clock can end the
    /// wait), then names what is missing and why.
    /// </summary>
    internal static async Task WaitForArchiveAsync(Repository.Repository repo, string name, string startWal, string stopWal, Func<CancellationToken, Task<string?>> archiverFailure, TimeSpan wait, TimeProvider time, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + wait;
        var archive = new WalArchive(repo, name);
        var missing = new List<string>();
        for (var s = startWal; string.CompareOrdinal(s, stopWal) <= 0; s = WalContinuity.Next(s))
        {
            missing.Add(s);
        }
        while (true)
        {
            // Only the segments still missing are looked up (one stat each), not the whole archive.
            var still = new List<string>();
            foreach (var s in missing)
            {
                if (!await archive.ExistsAsync(s, ct).ConfigureAwait(false))
                {
                    still.Add(s);
                }
            }
            missing = still;
            if (missing.Count == 0)
            {
                return;
            }
            if (time.GetUtcNow() > deadline)
            {
                var why = await archiverFailure(ct).ConfigureAwait(false);
                throw new PgToolException($"WAL segment {missing[0]} needed by this backup was not archived within {wait.TotalSeconds:0} s{(why is null ? "" : $" ({why})")}; check archive_command and the server log, then back up again; no backup was recorded");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct).ConfigureAwait(false);
        }
    }

    // ---- restore -------------------------------------------------------------------------------

    /// <summary>
    /// Writes a file-level backup into <paramref name="target"/>. The manifest is checked whole before anything touches
    /// the disk (see <see cref="Plan"/>); then folders, files and, last, links are created through
    /// <see cref="RestoreTree"/>, which never follows a link and hands only what it creates to the server's user.
    /// </summary>
    public static async Task<FileRestoreStats> RestoreAsync(Repository.Repository repo, Snapshot snap, string target, FileRestoreOptions options, IProgress<long>? done, CancellationToken ct)
    {
        target = Path.GetFullPath(target);
        var plan = Plan(snap);
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
        using var tree = new RestoreTree(root, owner);

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

        var queue = new ConcurrentQueue<ManifestItem>(plan.Files.OrderByDescending(i => i.Size));
        long written = 0, reusedBytes = 0, processed = 0;
        int reusedFiles = 0, count = 0;
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, options.Jobs)).Select(_ => Task.Run(async () =>
        {
            while (queue.TryDequeue(out var item))
            {
                ct.ThrowIfCancellationRequested();
                Interlocked.Increment(ref count);
                var mode = DataPaths.FileMode(ModeOf(item, UnixFileMode.UserRead | UnixFileMode.UserWrite));
                if (exists && options.Delta && await tree.KeepIfMatchesAsync(item.Name, item.Size, mode, (s, c) => repo.ContentMatchesAsync(item, s, c), ct).ConfigureAwait(false))
                {
                    Interlocked.Increment(ref reusedFiles);
                    Interlocked.Add(ref reusedBytes, item.Size);
                    done?.Report(Interlocked.Add(ref processed, item.Size));
                    continue;
                }
                await tree.WriteFileAsync(item.Name, item.Size, mode, (s, c) => repo.ReadItemAsync(item, s, null, c), ct).ConfigureAwait(false);
                Interlocked.Add(ref written, item.Size);
                done?.Report(Interlocked.Add(ref processed, item.Size));
            }
        }, ct))).ConfigureAwait(false);

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

    private sealed class Progress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
