using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
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
    public const string Format = "files";
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
        var previousStartLsn = previous is null ? 0UL : WalNames.ParseLsn(previous.Manifest.Meta["start_lsn"]);
        var entries = DataDirectory.List(start.DataDirectory, start.TablespaceVersionDirectory);
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
                    file = new FileStream(e.FullPath, new FileStreamOptions { Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.ReadWrite | FileShare.Delete, Options = FileOptions.SequentialScan, BufferSize = 0 });
                }
                catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
                {
                    continue; // dropped during the backup: WAL replay removes it anyway
                }
                catch (UnauthorizedAccessException ex)
                {
                    throw new PgToolException($"cannot read {e.FullPath}: {ex.Message}; run cairn as root or as the server's user", ex);
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
                    }, progress, ct, "file", null).ConfigureAwait(false);
                    Interlocked.Add(ref reusedPageBytes, carried);
                    meta["blocks"] = BlockSize.ToString(CultureInfo.InvariantCulture);
                    meta["block_crcs"] = crcs.ToString();
                }
                else
                {
                    added = await writer.AddStreamAsync(e.Path, crc, progress, ct, "file", null).ConfigureAwait(false);
                }
                // The size recorded is what was read: a file growing or shrinking during the copy is fine (WAL replay fixes it).
                var crcHex = crc.Crc.Hex;
                meta["crc32c"] = crcHex;
                writer.ReplaceItem(added, added with { Meta = meta });
                manifestFiles.Add(new ManifestFile(e.Path, crc.BytesRead, e.Modified, crcHex));
            }
        }, ct))).ConfigureAwait(false);

        var stop = await session.StopAsync(ct).ConfigureAwait(false);
        await WaitForArchiveAsync(repo, name, start.StartWal, stop.StopWal, session, options.ArchiveWait, time, ct).ConfigureAwait(false);

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
        var snap = await writer.CommitAsync(name, PhysicalOperation.Kind, meta, ct).ConfigureAwait(false);
        var info = new BaseBackupInfo(start.StartLsn, stop.StopLsn, start.Timeline, start.StartWal, start.ServerVersion, stop.StopTime);
        return new PhysicalBackupResult(snap, info, writer.Stats, sw.Elapsed) { ReusedBytes = reusedBytes, ReusedFiles = reusedFiles, ReusedPageBytes = reusedPageBytes, IncrementalFrom = previous };
    }

    /// <summary>The newest file-level backup of the same server, timeline and data directory.</summary>
    private static async Task<Snapshot?> PreviousAsync(Repository.Repository repo, string name, BackupStart start, CancellationToken ct)
        => (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false))
            .Where(s => s.Manifest.Kind == PhysicalOperation.Kind && s.Manifest.Name == name
                && s.Manifest.Meta.GetValueOrDefault("format") == Format
                && s.Manifest.Meta.GetValueOrDefault("system_identifier") == start.SystemIdentifier
                && s.Manifest.Meta.GetValueOrDefault("timeline") == start.Timeline.ToString(CultureInfo.InvariantCulture)
                && s.Manifest.Meta.GetValueOrDefault("data_directory") == start.DataDirectory
                && s.Manifest.Meta.GetValueOrDefault("server_version") == start.ServerVersion)
            .LastOrDefault();

    /// <summary>Files of the previous backup that were last modified well before it started (see <see cref="MtimeMargin"/>).</summary>
    private static Dictionary<string, ManifestItem> ReusableItems(Snapshot previous)
    {
        var started = DateTimeOffset.Parse(previous.Manifest.Meta["start_time"], CultureInfo.InvariantCulture);
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
        await writer.AddStreamAsync(name, ms, null, ct, type, meta).ConfigureAwait(false);
    }

    /// <summary>
    /// pg_backup_stop switched to a new segment; the backup is only restorable once every segment from its start
    /// to its stop is in the repository. Waits for the archiver, then names what is missing and why.
    /// </summary>
    private static async Task WaitForArchiveAsync(Repository.Repository repo, string name, string startWal, string stopWal, BackupSession session, TimeSpan wait, TimeProvider time, CancellationToken ct)
    {
        var deadline = time.GetUtcNow() + wait;
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
                if (await repo.Storage.StatAsync(new Repository.Storage.StorageKey(Repository.Storage.ObjectKind.Named, PhysicalOperation.WalObjectName(name, s)), ct).ConfigureAwait(false) is null)
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
                var why = await session.ArchiverFailureAsync(ct).ConfigureAwait(false);
                throw new PgToolException($"WAL segment {missing[0]} needed by this backup was not archived within {wait.TotalSeconds:0} s{(why is null ? "" : $" ({why})")}; check archive_command and the server log, then back up again; no backup was recorded");
            }
            await Task.Delay(200, ct).ConfigureAwait(false);
        }
    }

    // ---- restore -------------------------------------------------------------------------------

    public static async Task<FileRestoreStats> RestoreAsync(Repository.Repository repo, Snapshot snap, string target, FileRestoreOptions options, IProgress<long>? done, CancellationToken ct)
    {
        target = Path.GetFullPath(target);
        var exists = Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any();
        if (exists)
        {
            if (File.Exists(Path.Combine(target, "postmaster.pid")) && ServerRunning(Path.Combine(target, "postmaster.pid")))
            {
                throw new PgToolException($"a server is running in {target} (postmaster.pid); stop it before restoring into its folder");
            }
            if (!options.Delta && !options.Force)
            {
                throw new PgToolException($"{target} is not empty; choose an empty folder, pass --delta to keep the files that already match the backup, or --force to replace its contents");
            }
            if (!options.Delta)
            {
                Directory.Delete(target, recursive: true);
                exists = false;
            }
        }
        Directory.CreateDirectory(target);
        var items = snap.Manifest.Items;
        var dirs = items.Where(i => i.Type == "dir").ToList();
        var links = items.Where(i => i.Type == "link").ToList();
        var files = items.Where(i => i.Type == "file").OrderByDescending(i => i.Size).ToList();
        var restoredPaths = new HashSet<string>(StringComparer.Ordinal);

        // Tablespaces: into the folder named in the map, else beside the data directory (DIR-tablespaces/OID),
        // never onto the original's location; pg_tblspc/OID links to it, as PostgreSQL expects.
        var tablespaceFolders = new List<string>();
        foreach (var l in links.Where(l => l.Name.StartsWith("pg_tblspc/", StringComparison.Ordinal)))
        {
            var oid = l.Name["pg_tblspc/".Length..];
            var path = Path.Combine(target, "pg_tblspc", oid);
            var mapped = Path.GetFullPath(options.TablespaceMap?.GetValueOrDefault(oid) ?? Path.Combine(target + "-tablespaces", oid));
            if (mapped == Path.GetFullPath(l.Meta!["target"]) && !options.Delta)
            {
                throw new PgToolException($"tablespace {oid} would be restored onto its original folder {mapped}; map it elsewhere with --tablespace-map {oid}=DIR");
            }
            if (Directory.Exists(mapped) && Directory.EnumerateFileSystemEntries(mapped).Any() && !options.Delta)
            {
                if (!options.Force)
                {
                    throw new PgToolException($"the tablespace folder {mapped} is not empty; empty it, pass --force to replace it, or map tablespace {oid} elsewhere with --tablespace-map {oid}=DIR");
                }
                Directory.Delete(mapped, recursive: true);
            }
            Directory.CreateDirectory(mapped);
            Directory.CreateDirectory(Path.Combine(target, "pg_tblspc"));
            var existing = new FileInfo(path);
            if (existing.LinkTarget is not null)
            {
                existing.Delete();
            }
            else if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
            File.CreateSymbolicLink(path, mapped);
            tablespaceFolders.Add(mapped);
            restoredPaths.Add(l.Name);
        }
        foreach (var d in dirs.OrderBy(d => d.Name.Length))
        {
            var path = Resolve(target, d.Name);
            Directory.CreateDirectory(path);
            SetMode(path, d.Meta, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            restoredPaths.Add(d.Name);
        }
        foreach (var l in links.Where(l => !l.Name.StartsWith("pg_tblspc/", StringComparison.Ordinal)))
        {
            var path = Resolve(target, l.Name);
            if (File.Exists(path) || new FileInfo(path).LinkTarget is not null)
            {
                File.Delete(path);
            }
            File.CreateSymbolicLink(path, l.Meta!["target"]);
            restoredPaths.Add(l.Name);
        }

        var queue = new ConcurrentQueue<ManifestItem>(files);
        long written = 0, reusedBytes = 0, processed = 0;
        int reusedFiles = 0, count = 0;
        await Task.WhenAll(Enumerable.Range(0, Math.Max(1, options.Jobs)).Select(_ => Task.Run(async () =>
        {
            while (queue.TryDequeue(out var item))
            {
                ct.ThrowIfCancellationRequested();
                var path = Resolve(target, item.Name);
                Interlocked.Increment(ref count);
                if (exists && options.Delta && File.Exists(path) && new FileInfo(path).Length == item.Size && await MatchesAsync(repo, item, path, ct).ConfigureAwait(false))
                {
                    Interlocked.Increment(ref reusedFiles);
                    Interlocked.Add(ref reusedBytes, item.Size);
                    SetMode(path, item.Meta, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                    done?.Report(Interlocked.Add(ref processed, item.Size));
                    continue;
                }
                Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                var temp = path + ".cairn-partial";
                await using (var fs = new FileStream(temp, new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, Share = FileShare.None, PreallocationSize = item.Size, BufferSize = 0 }))
                {
                    await repo.ReadItemAsync(item, fs, null, ct).ConfigureAwait(false);
                }
                SetMode(temp, item.Meta, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                File.Move(temp, path, overwrite: true);
                Interlocked.Add(ref written, item.Size);
                done?.Report(Interlocked.Add(ref processed, item.Size));
            }
        }, ct))).ConfigureAwait(false);
        foreach (var f in files)
        {
            restoredPaths.Add(f.Name);
        }

        // The PostgreSQL-format manifest goes next to the files, so pg_verifybackup can check the copy.
        if (items.FirstOrDefault(i => i.Name == ManifestItemName) is { } pgManifest)
        {
            await using var fs = File.Create(Path.Combine(target, "backup_manifest"));
            await repo.ReadItemAsync(pgManifest, fs, null, ct).ConfigureAwait(false);
            restoredPaths.Add("backup_manifest");
        }

        var removed = 0;
        if (exists && options.Delta)
        {
            removed = RemoveExtra(target, "", restoredPaths); // mapped tablespace folders are walked through their links
        }
        foreach (var folder in tablespaceFolders)
        {
            PgProcess.GiveToServerUser(folder); // the data directory itself is handed over with the recovery settings
        }
        return new FileRestoreStats(count, written, reusedFiles, reusedBytes, removed);
    }

    /// <summary>An existing file matches when its content chunks to exactly the item's (keyed) chunk IDs.</summary>
    private static async Task<bool> MatchesAsync(Repository.Repository repo, ManifestItem item, string path, CancellationToken ct)
    {
        await using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
        return await repo.ContentMatchesAsync(item, fs, ct).ConfigureAwait(false);
    }

    /// <summary>Removes what the backup does not hold (stale WAL, dropped relations), so the copy is exactly the backup.</summary>
    private static int RemoveExtra(string dir, string rel, HashSet<string> keep)
    {
        var removed = 0;
        foreach (var e in new DirectoryInfo(dir).EnumerateFileSystemInfos())
        {
            var r = rel.Length == 0 ? e.Name : rel + "/" + e.Name;
            if (!keep.Contains(r))
            {
                if (e is DirectoryInfo d && d.LinkTarget is null)
                {
                    d.Delete(recursive: true);
                }
                else
                {
                    e.Delete();
                }
                removed++;
            }
            else if (e is DirectoryInfo d)
            {
                removed += RemoveExtra(d.FullName, r, keep);
            }
        }
        return removed;
    }

    private static string Resolve(string target, string rel)
    {
        var path = Path.GetFullPath(Path.Combine(target, rel));
        if (!path.StartsWith(target + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            throw new PgToolException($"the backup holds an entry outside the data directory ({rel}); refusing it");
        }
        return path;
    }

    private static void SetMode(string path, Dictionary<string, string>? meta, UnixFileMode fallback)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        var mode = meta?.GetValueOrDefault("mode") is { } m ? (UnixFileMode)Convert.ToInt32(m, 8) : fallback;
        File.SetUnixFileMode(path, mode);
    }

    private static bool ServerRunning(string pidFile)
    {
        try
        {
            var first = File.ReadLines(pidFile).FirstOrDefault();
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
