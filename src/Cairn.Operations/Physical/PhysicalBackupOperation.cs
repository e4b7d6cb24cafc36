using Cairn.Operations.Recording;

namespace Cairn.Operations.Physical;

public sealed record PhysicalBackupRequest(DatabaseTarget Database, FileBackupOptions Options);

/// <summary>What a physical backup did, and how it read the cluster: <c>files</c> (the data directory) or <c>pg_basebackup</c>.</summary>
public sealed record PhysicalBackupOutcome(string Database, PhysicalBackupResult Backup, bool ReadFiles)
{
    public string Method => ReadFiles ? "files" : "pg_basebackup";
}

/// <summary>
/// <c>backup DATABASE --physical</c>: reads the data directory directly when <c>data_directory</c> is configured
/// (incremental, parallel), else streams pg_basebackup; then waits until the WAL it needs is archived.
/// </summary>
public sealed class PhysicalBackupOperation(OperationContext context)
{
    public async Task<PhysicalBackupOutcome> RunAsync(PhysicalBackupRequest request, IByteProgress? progress, CancellationToken cancellationToken)
    {
        Pins.BackupTags.Validate(request.Options.Tags); // a bad tag is refused before the backup, not after it
        var db = request.Database;
        var dataDirectory = db.Config?.DataDirectory;
        var started = context.Time.GetUtcNow();
        var options = request.Options with { Compression = context.Config.CompressionOf(db.Name) };
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, $"backup {db.Name} --physical", cancellationToken).ConfigureAwait(false);
        var r = dataDirectory is not null
            ? await PhysicalFiles.BackupAsync(repo, db.Name, db.Connection, dataDirectory, options, context.Time, progress is null ? null : progress.SetTotal, progress, cancellationToken).ConfigureAwait(false)
            : await PhysicalBackups.BaseBackupAsync(repo, db.Name, db.Connection, context.Time, context.Toolchain.PostgresBin, request.Options.Tags, options.Compression, cancellationToken).ConfigureAwait(false);
        var outcome = new PhysicalBackupOutcome(db.Name, r, dataDirectory is not null);
        // An incremental reuses the previous backup's packs: their Object Lock must last as long as this backup may be kept.
        await Retention.BackupLocks.ExtendAsync(context, repo, r.Snapshot, started, cancellationToken).ConfigureAwait(false);
        var seq = context.Evidence.Record(new PhysicalBackupEvent(db.Connection.Redacted, r.Stats.BytesRead, r.Stats.BytesAdded, r.Info.StartLsn, r.Info.StopLsn, r.Info.Timeline, outcome.Method, r.ReusedBytes, r.IncrementalFrom?.Id)
        {
            Repository = repo.Storage.Location,
            Database = db.Name,
            Snapshot = r.Snapshot.Id,
            DurationMs = (long)r.Duration.TotalMilliseconds,
            BadPages = [.. r.BadPages.Select(b => $"{b.File}:{b.Block}")],
        });
        // The repository's WAL summary follows the archive, so snapshots' recovery windows need not list years of WAL.
        await WalSummaryWriter.TryWriteAsync(context, repo, cancellationToken).ConfigureAwait(false);
        var now = context.Time.GetUtcNow();
        if (await Checks.ResultMirror.WriteAsync(context, db.Connection, [Checks.ResultMirror.EventRow("backup", db.Name, true, now, now, r.Duration, seq, $"physical ({outcome.Method}), {r.Info.StartLsn} to {r.Info.StopLsn}")], cancellationToken).ConfigureAwait(false) is { } warning)
        {
            context.Warn(warning);
        }
        await Recording.EvidencePublishing.AfterAsync(context, repo, cancellationToken).ConfigureAwait(false);
        return outcome;
    }
}
