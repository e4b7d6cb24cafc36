using System.Diagnostics;
using System.Globalization;

using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

public sealed record PhysicalBackupResult(Snapshot Snapshot, BaseBackupInfo Info, WriteStats Stats, TimeSpan Duration)
{
    /// <summary>Bytes and files carried over unread from the previous backup (file-level backups only).</summary>
    public long ReusedBytes { get; init; }

    public long ReusedFiles { get; init; }

    /// <summary>Bytes of changed relation files whose blocks were proven unchanged (page LSNs and checksums) and carried over without hashing.</summary>
    public long ReusedPageBytes { get; init; }

    /// <summary>Pages whose checksum did not match while read (clusters with data checksums, file-level backups): the backup holds damage.</summary>
    public IReadOnlyList<BadPage> BadPages { get; init; } = [];

    public Snapshot? IncrementalFrom { get; init; }
}

/// <summary>
/// Physical backups in the repository: taking one through pg_basebackup (for servers whose files Cairn cannot
/// read; file-level backups are <see cref="PhysicalFiles"/>), and writing one out into a data directory.
/// </summary>
public static class PhysicalBackups
{
    public const string BaseItem = "base.tar";

    public static async Task<PhysicalBackupResult> BaseBackupAsync(Repository.Repository repo, string name, PgConnection connection, TimeProvider time, string? postgresBin, IReadOnlyList<string>? tags, Repository.Compression.CompressionSetting compression, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        await using var writer = repo.BeginWrite(new RepositoryOptions { Compression = compression });
        var info = await BaseBackup.RunAsync(connection, async stream =>
        {
            await writer.AddStreamAsync(BaseItem, stream, null, "file", null, ct).ConfigureAwait(false);
        }, time, postgresBin, ct).ConfigureAwait(false);
        var meta = new Dictionary<string, string>
        {
            ["source"] = connection.Redacted,
            ["server_version"] = info.ServerVersion,
            ["start_lsn"] = info.StartLsn,
            ["stop_lsn"] = info.StopLsn,
            ["timeline"] = info.Timeline.ToString(CultureInfo.InvariantCulture),
            ["start_wal"] = info.StartWal,
            ["stop_time"] = info.StopTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            ["format"] = PhysicalBackupMeta.BaseBackupFormat,
        };
        Pins.BackupTags.AddTo(meta, tags);
        var snap = await writer.CommitAsync(name, BackupKinds.Physical, meta, ct).ConfigureAwait(false);
        return new PhysicalBackupResult(snap, info, writer.Stats, sw.Elapsed);
    }

    /// <summary>Writes a physical backup into <paramref name="targetDir"/>: file by file in parallel (file-level backups) or by extracting the pg_basebackup tar.</summary>
    public static async Task<FileRestoreStats?> RestoreAsync(Repository.Repository repo, Snapshot snap, string targetDir, FileRestoreOptions options, IProgress<long>? done, CancellationToken ct)
    {
        if (PhysicalBackupMeta.FormatOf(snap) == PhysicalBackupMeta.FilesFormat)
        {
            return await PhysicalFiles.RestoreAsync(repo, snap, targetDir, options, done, ct).ConfigureAwait(false);
        }
        if (options.Delta)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"backup {snap.ShortId} was streamed through pg_basebackup (one tar), so --delta cannot compare files; restore into an empty folder or use --force");
        }
        // A manifest with a format other than "files" names a pg_basebackup tar: exactly one item holds it.
        var tars = snap.Manifest.Items.Where(i => i.Name == BaseItem).Take(2).ToList();
        var item = tars.Count == 1 ? tars[0] : throw new DataDamagedException($"physical backup {snap.ShortId} has {(tars.Count == 0 ? "no" : "more than one")} '{BaseItem}' item (format '{PhysicalBackupMeta.FormatOf(snap)}'); it cannot be restored. Run 'cairn verify'");
        var pipe = new System.IO.Pipelines.Pipe();
        var write = Task.Run(async () =>
        {
            try
            {
                await using var s = pipe.Writer.AsStream();
                await repo.ReadItemAsync(item, s, done, ct).ConfigureAwait(false);
            }
            catch (Exception e)
            {
                await pipe.Writer.CompleteAsync(e).ConfigureAwait(false);
                throw;
            }
        }, ct);
        try
        {
            await using var r = pipe.Reader.AsStream();
            await PhysicalRestorer.ExtractAsync(r, targetDir, options.Force, ct).ConfigureAwait(false);
        }
        finally
        {
            await write.ConfigureAwait(false);
        }
        return null;
    }
}
