using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Files;
using Cairn.PostgreSql.Physical;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>Options of a file-level physical backup.</summary>
/// <summary>A page whose checksum did not match when a physical backup read it: the file (relative to the data directory) and the block number in its fork.</summary>
public sealed record BadPage(string File, uint Block);

public sealed record FileBackupOptions(int Jobs, TimeSpan ArchiveWait, bool Full = false)
{
    /// <summary>Tags for the manifest (<c>--tag</c>).</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>How new blocks are compressed (cairn.yaml <c>compression:</c>, set by the operation).</summary>
    public Repository.Compression.CompressionSetting Compression { get; init; }
}

public static partial class PhysicalFiles
{
    /// <summary>
    /// Safety margin for modification times: Linux file times come from a coarse clock, so a write just after
    /// a backup read a file can leave its mtime unchanged. A file last modified this long before the previous
    /// backup started was not written while that backup read it, so an unchanged mtime proves unchanged content.
    /// </summary>
    public static readonly TimeSpan MtimeMargin = TimeSpan.FromSeconds(2);

    /// <summary>Relation files are stored in fixed, page-aligned blocks of this size, so unchanged pages line up with the previous backup's.</summary>
    public const int BlockSize = 256 * 1024;

    /// <summary>The snapshot meta key listing pages with bad checksums (<c>FILE:BLOCK</c>, space-separated): the backup holds damage.</summary>
    public const string BadPagesMetaKey = "bad_pages";

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
        await using var writer = repo.BeginWrite(new RepositoryOptions { Compression = options.Compression });
        foreach (var e in entries.Where(e => e.Type != DataEntryType.File))
        {
            writer.AddExistingItem(new ManifestItem { Name = e.Path, Type = e.Type == DataEntryType.Directory ? "dir" : "link", Meta = EntryMeta(e, null) });
        }

        var queue = new ConcurrentQueue<DataEntry>(entries.Where(e => e.Type == DataEntryType.File).OrderByDescending(e => e.Size));
        var manifestFiles = new ConcurrentBag<ManifestFile>();
        long processed = 0, reusedBytes = 0, reusedFiles = 0, reusedPageBytes = 0;
        var badPages = new ConcurrentBag<BadPage>();
        var startLsn = WalNames.ParseLsn(start.StartLsn);
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
                await using var source = file;
                long last = 0;
                var progress = new Progress(n =>
                {
                    done?.Report(Interlocked.Add(ref processed, n - last));
                    last = n;
                });
                ManifestItem added;
                string crcHex;
                long bytesRead;
                var meta = EntryMeta(e, null);
                if (RelationPages.IsRelationData(e.Path))
                {
                    // Fixed blocks; a block whose pages are all older than the previous backup's start and whose
                    // checksum is the previous block's is that block: it is carried over without hashing it.
                    var before = previousBlocks?.GetValueOrDefault(e.Path);
                    var oldCrcs = before?.Meta!["block_crcs"];
                    var crcs = new System.Text.StringBuilder();
                    long carried = 0;
                    var segmentFirst = PageChecksum.SegmentOf(e.Path) * PageChecksum.BlocksPerSegment;
                    // Each block is checksummed once: the file's CRC for backup_manifest is folded from the blocks' CRCs.
                    var fileCrc = new Crc32C();
                    long fileBytes = 0;
                    added = await writer.AddBlocksAsync(e.Path, source, BlockSize, (i, block) =>
                    {
                        if (start.DataChecksums)
                        {
                            // Checked while read (as pg_basebackup and pgBackRest do): the backup completes, marked as holding damage.
                            foreach (var n in PageChecksum.BadPages(block, start.PageSize, segmentFirst + (uint)((long)i * BlockSize / start.PageSize), startLsn))
                            {
                                badPages.Add(new BadPage(e.Path, n));
                            }
                        }
                        var blockCrcValue = Crc32C.ValueOf(block);
                        fileCrc.AppendCrc(blockCrcValue, block.Length);
                        fileBytes += block.Length;
                        var blockCrc = Crc32C.HexOf(blockCrcValue);
                        crcs.Append(blockCrc);
                        if (before is null || oldCrcs is null || (i + 1) * 8 > oldCrcs.Length || i >= before.Chunks.Count || block.Length != Math.Min(BlockSize, before.Size - ((long)i * BlockSize)))
                        {
                            return BlockChoice.Whole;
                        }
                        // Depth one: a block that changed is patched on the previous block's whole chunk, or on the base
                        // the previous patch had (docs/repository-format.md, "Page patches"); the writer decides whether
                        // the patch is worth it, and patches only in a repository with the page-patches feature.
                        var baseChunk = before.BaseOf(i);
                        var patchOn = block.Length % start.PageSize == 0 ? baseChunk ?? before.Chunks[i] : null;
                        if (!oldCrcs.AsSpan(i * 8, 8).SequenceEqual(blockCrc) || !RelationPages.AllOlderThan(block, start.PageSize, previousStartLsn))
                        {
                            return new BlockChoice(null, null, patchOn, start.PageSize);
                        }
                        carried += block.Length;
                        return new BlockChoice(before.Chunks[i], baseChunk, patchOn, start.PageSize);
                    }, progress, "file", null, ct).ConfigureAwait(false);
                    Interlocked.Add(ref reusedPageBytes, carried);
                    meta["blocks"] = BlockSize.ToString(CultureInfo.InvariantCulture);
                    meta["block_crcs"] = crcs.ToString();
                    crcHex = fileCrc.Hex;
                    bytesRead = fileBytes;
                }
                else
                {
                    await using var crc = new Crc32CStream(source);
                    added = await writer.AddStreamAsync(e.Path, crc, progress, "file", null, ct).ConfigureAwait(false);
                    crcHex = crc.Crc.Hex;
                    bytesRead = crc.BytesRead;
                }
                // The size recorded is what was read: a file growing or shrinking during the copy is fine (WAL replay fixes it).
                meta["crc32c"] = crcHex;
                writer.ReplaceItem(added, added with { Meta = meta });
                manifestFiles.Add(new ManifestFile(e.Path, bytesRead, e.Modified, crcHex));
            }
        }, ct))).ConfigureAwait(false);

        var stop = await session.StopAsync(ct).ConfigureAwait(false);
        await WaitForArchiveAsync(repo, name, start.StartWal, stop.StopWal, session.ArchiverFailureAsync, options.ArchiveWait, time, ct).ConfigureAwait(false);

        var label = System.Text.Encoding.UTF8.GetBytes(stop.BackupLabel);
        var labelCrc = Crc32C.Of(label);
        await AddBytesAsync(writer, "backup_label", label, new() { ["mode"] = "0600", ["mtime"] = Iso(stop.StopTime), ["crc32c"] = labelCrc }, "file", ct).ConfigureAwait(false);
        manifestFiles.Add(new ManifestFile("backup_label", label.Length, stop.StopTime, labelCrc));
        if (stop.TablespaceMap.Length > 0)
        {
            // Kept for the record only: a restore creates tablespace links itself (into the folders it was told),
            // so PostgreSQL must not recreate the original links from this file.
            await AddBytesAsync(writer, TablespaceMapItem, System.Text.Encoding.UTF8.GetBytes(stop.TablespaceMap), null, "meta", ct).ConfigureAwait(false);
        }
        var pgManifest = BackupManifest.Build([.. manifestFiles.OrderBy(f => f.Path, StringComparer.Ordinal)], start.Timeline, start.StartLsn, stop.StopLsn);
        await AddBytesAsync(writer, ManifestItemName, pgManifest, null, "meta", ct).ConfigureAwait(false);

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
            ["data_checksums"] = start.DataChecksums ? "on" : "off",
        };
        if (writer.Stats is { PatchedBlocks: > 0 } patched)
        {
            meta["patched_blocks"] = patched.PatchedBlocks.ToString(CultureInfo.InvariantCulture);
            meta["patched_bytes"] = patched.PatchedBytes.ToString(CultureInfo.InvariantCulture);
        }
        if (!badPages.IsEmpty)
        {
            meta[BadPagesMetaKey] = string.Join(' ', badPages.OrderBy(b => b.File, StringComparer.Ordinal).ThenBy(b => b.Block).Select(b => $"{b.File}:{b.Block}"));
        }
        Pins.BackupTags.AddTo(meta, options.Tags);
        var snap = await writer.CommitAsync(name, BackupKinds.Physical, meta, ct).ConfigureAwait(false);
        var info = new BaseBackupInfo(start.StartLsn, stop.StopLsn, start.Timeline, start.StartWal, start.ServerVersion, stop.StopTime);
        return new PhysicalBackupResult(snap, info, writer.Stats, sw.Elapsed) { ReusedBytes = reusedBytes, ReusedFiles = reusedFiles, ReusedPageBytes = reusedPageBytes, IncrementalFrom = previous, BadPages = [.. badPages.OrderBy(b => b.File, StringComparer.Ordinal).ThenBy(b => b.Block)] };
    }

    /// <summary>The newest file-level backup of the same server, timeline and data directory.</summary>
    private static async Task<Snapshot?> PreviousAsync(Repository.Repository repo, string name, BackupStart start, CancellationToken ct)
        => await SnapshotSelector.NewestMatchingAsync(repo, s => s.Manifest.Kind == BackupKinds.Physical && s.Manifest.Name == name
                && s.Manifest.Meta.GetValueOrDefault("format") == Format
                && s.Manifest.Meta.GetValueOrDefault("system_identifier") == start.SystemIdentifier
                && s.Manifest.Meta.GetValueOrDefault("timeline") == start.Timeline.ToString(CultureInfo.InvariantCulture)
                && s.Manifest.Meta.GetValueOrDefault("data_directory") == start.DataDirectory
                && s.Manifest.Meta.GetValueOrDefault("server_version") == start.ServerVersion, ct).ConfigureAwait(false);

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

    private static async Task AddBytesAsync(ItemWriter writer, string name, byte[] data, Dictionary<string, string>? meta, string type, CancellationToken ct)
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

    private sealed class Progress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
