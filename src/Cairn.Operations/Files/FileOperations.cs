using System.Diagnostics;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Files;

/// <summary>Store a stream as a new snapshot of <see cref="Name"/>; the content is opened once the repository is locked.</summary>
public sealed record FilePutRequest(string Name, Func<Stream> OpenContent);

public sealed record FilePutResult(Snapshot Snapshot, string Name, WriteStats Stats, TimeSpan Elapsed)
{
    public double MegabytesPerSecond => Stats.BytesRead / 1e6 / Math.Max(Elapsed.TotalSeconds, 1e-6);
}

/// <summary><c>repo put</c>: any file or stream into the repository, deduplicated and encrypted.</summary>
public sealed class FilePutOperation(OperationContext context)
{
    public async Task<FilePutResult> RunAsync(FilePutRequest request, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var started = context.Time.GetUtcNow();
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "put", cancellationToken).ConfigureAwait(false);
        var sw = Stopwatch.StartNew();
        await using var input = request.OpenContent();
        Snapshot snap;
        WriteStats stats;
        await using (var w = repo.BeginWrite(new RepositoryOptions { Compression = context.Config.Compression }))
        {
            await w.AddStreamAsync(request.Name, input, progress, cancellationToken).ConfigureAwait(false);
            snap = await w.CommitAsync(request.Name, BackupKinds.File, null, cancellationToken).ConfigureAwait(false);
            stats = w.Stats;
            if (w.IndexWarning is { } warning)
            {
                context.Warn(warning);
            }
        }
        await Retention.BackupLocks.ExtendAsync(context, repo, snap, started, cancellationToken).ConfigureAwait(false);
        var elapsed = sw.Elapsed;
        context.Evidence.Record(new FileStoredEvent(request.Name, stats.BytesRead, stats.BytesAdded, stats.ChunksNew, stats.ChunksTotal)
        {
            Repository = repo.Storage.Location,
            Snapshot = snap.Id,
            DurationMs = sw.ElapsedMilliseconds,
        });
        await Recording.EvidencePublishing.AfterAsync(context, repo, cancellationToken).ConfigureAwait(false);
        return new FilePutResult(snap, request.Name, stats, elapsed);
    }
}

/// <summary>
/// Read back the newest (or a given) snapshot of <see cref="Name"/>: into <see cref="OutputPath"/> (written beside it and
/// renamed at the end), or, without a path, into the stream <see cref="OpenOutput"/> gives.
/// </summary>
public sealed record FileGetRequest(string Name, string? SnapshotId, string? OutputPath, Func<Stream>? OpenOutput);

public sealed record FileGetResult(Snapshot Snapshot, ManifestItem Item, string? OutputPath);

/// <summary><c>repo get</c>: a stored file or stream back, never a partial or unauthenticated one.</summary>
public sealed class FileGetOperation(OperationContext context)
{
    public async Task<FileGetResult> RunAsync(FileGetRequest request, IByteProgress? progress, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "get", cancellationToken).ConfigureAwait(false);
        // An explicit ID names the snapshot whatever it is called; without one, the newest snapshot of NAME.
        var snap = request.SnapshotId is { } id
            ? await repo.FindSnapshotAsync(id, cancellationToken).ConfigureAwait(false)
            : SnapshotSelector.Select(await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false), SnapshotSelector.Latest, new SnapshotFilter(request.Name));
        var item = snap.Manifest.Items.FirstOrDefault(i => i.Name == request.Name) ?? snap.Manifest.Items.FirstOrDefault()
            ?? throw new RepositoryException(ErrorKind.NotFound, $"snapshot {snap.ShortId} holds no item");
        if (request.OutputPath is not { } file)
        {
            var open = request.OpenOutput ?? throw new ArgumentException("a file get needs an output path or an output stream", nameof(request));
            await using var output = open();
            await repo.ReadItemAsync(item, output, null, cancellationToken).ConfigureAwait(false);
            Record(repo, request, snap, item, "stdout");
            return new FileGetResult(snap, item, null);
        }
        // Write beside the target and rename at the end: a failed read never leaves a file that looks complete.
        var full = Path.GetFullPath(file);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.cairn-partial");
        try
        {
            progress?.SetTotal(item.Size);
            await using (var output = FreshFile.Create(temp, 1 << 20, FileOptions.Asynchronous))
            {
                await repo.ReadItemAsync(item, output, progress, cancellationToken).ConfigureAwait(false);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        Record(repo, request, snap, item, "file");
        return new FileGetResult(snap, item, file);
    }

    private void Record(Repository.Repository repo, FileGetRequest request, Snapshot snap, ManifestItem item, string target)
        => context.Evidence.Record(new FileRestoredEvent(request.Name, item.Size, target) { Repository = repo.Storage.Location, Snapshot = snap.Id });
}

public sealed record ForgetRequest(string IdOrPrefix);

public sealed record ForgetResult(Snapshot Snapshot);

/// <summary><c>repo rm</c>: forget a snapshot; <c>prune</c> then frees its data.</summary>
public sealed class ForgetOperation(OperationContext context)
{
    public async Task<ForgetResult> RunAsync(ForgetRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        OperationContext.RequireDeleteRights(repo.Storage, "forgetting a snapshot");
        await using var l = await repo.LockAsync(exclusive: false, "forget", cancellationToken).ConfigureAwait(false);
        var s = await repo.FindSnapshotAsync(request.IdOrPrefix, cancellationToken).ConfigureAwait(false);
        await repo.ForgetAsync(s, cancellationToken).ConfigureAwait(false);
        return new ForgetResult(s);
    }
}
