using System.Diagnostics;
using System.Globalization;

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

    public Snapshot? IncrementalFrom { get; init; }
}

/// <summary>Physical backups (base backup + archived WAL) and point-in-time restores.</summary>
public static class PhysicalOperation
{
    public const string Kind = "physical";
    public const string BaseItem = "base.tar";

    /// <summary>WAL objects are named DATABASE@WALFILE.</summary>
    public static string WalObjectName(string database, string walFile) => $"{database}@{walFile}";

    public static async Task<PhysicalBackupResult> BackupAsync(Repository.Repository repo, string name, PgConnection connection, TimeProvider time, CancellationToken ct, string? postgresBin = null)
    {
        var sw = Stopwatch.StartNew();
        await using var writer = repo.BeginWrite();
        var info = await BaseBackup.RunAsync(connection, async stream =>
        {
            await writer.AddStreamAsync(BaseItem, stream, null, ct, "file").ConfigureAwait(false);
        }, time, ct, postgresBin).ConfigureAwait(false);
        var meta = new Dictionary<string, string>
        {
            ["source"] = connection.Redacted,
            ["server_version"] = info.ServerVersion,
            ["start_lsn"] = info.StartLsn,
            ["stop_lsn"] = info.StopLsn,
            ["timeline"] = info.Timeline.ToString(CultureInfo.InvariantCulture),
            ["start_wal"] = info.StartWal,
            ["stop_time"] = info.StopTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            ["format"] = "pg_basebackup-tar",
        };
        var snap = await writer.CommitAsync(name, Kind, meta, ct).ConfigureAwait(false);
        return new PhysicalBackupResult(snap, info, writer.Stats, sw.Elapsed);
    }

    /// <summary>The newest physical backup that can reach the target: finished before the target time / LSN.</summary>
    public static async Task<Snapshot> ChooseAsync(Repository.Repository repo, string name, string? snapshot, RecoveryTarget target, CancellationToken ct)
    {
        var all = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(s => s.Manifest.Kind == Kind && s.Manifest.Name == name).ToList();
        if (snapshot is not null && snapshot != "latest")
        {
            return all.FirstOrDefault(s => s.Id.StartsWith(snapshot, StringComparison.OrdinalIgnoreCase))
                ?? throw new RepositoryException(ErrorKind.NotFound, $"no physical backup {snapshot} of {name}");
        }
        if (all.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no physical backup of {name} yet; take one with 'cairn backup {name} --physical'");
        }
        IEnumerable<Snapshot> usable = all;
        if (target.Time is { } t)
        {
            var when = DateTimeOffset.Parse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            usable = all.Where(s => DateTimeOffset.Parse(s.Manifest.Meta["stop_time"], CultureInfo.InvariantCulture) < when);
        }
        else if (target.Lsn is { } l)
        {
            var lsn = WalNames.ParseLsn(l);
            usable = all.Where(s => WalNames.ParseLsn(s.Manifest.Meta["stop_lsn"]) <= lsn);
        }
        return usable.LastOrDefault() ?? throw new RepositoryException(ErrorKind.NotFound, $"no physical backup of {name} finished before the target; the oldest ends at {all[0].Manifest.Meta["stop_time"]} (LSN {all[0].Manifest.Meta["stop_lsn"]})");
    }

    /// <summary>Writes a physical backup into <paramref name="targetDir"/>: file by file in parallel (file-level backups) or by extracting the pg_basebackup tar.</summary>
    public static async Task<FileRestoreStats?> RestoreAsync(Repository.Repository repo, Snapshot snap, string targetDir, FileRestoreOptions options, IProgress<long>? done, CancellationToken ct)
    {
        if (snap.Manifest.Meta.GetValueOrDefault("format") == PhysicalFiles.Format)
        {
            return await PhysicalFiles.RestoreAsync(repo, snap, targetDir, options, done, ct).ConfigureAwait(false);
        }
        if (options.Delta)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"backup {snap.ShortId} was streamed through pg_basebackup (one tar), so --delta cannot compare files; restore into an empty folder or use --force");
        }
        var item = snap.Manifest.Items.Single(i => i.Name == BaseItem);
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

    /// <summary>The archived WAL of a database, for the recovery window and continuity checks.</summary>
    public static async Task<List<string>> WalFilesAsync(Repository.Repository repo, string name, CancellationToken ct)
        => [.. (await NamedFiles.ListAsync(repo, name + "@", ct).ConfigureAwait(false)).Select(x => x.Name[(name.Length + 1)..])];

}
