using System.Diagnostics;
using Cairn.Operations.Configuration;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Operations.Verification;
using Cairn.Repository;
using Cairn.Repository.Copying;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Storage.S3;

namespace Cairn.Operations.Copying;

/// <summary>
/// What to copy to: <see cref="To"/> one location (a folder or s3://; its <c>copies:</c> entry, when it has one, gives its
/// S3 settings), or null for every entry of <c>copies:</c>. <see cref="ReadData"/>: also read every object already in the
/// copy and every pack through the key (else sizes, and the structure through the key); null takes the entry's read_data.
/// </summary>
public sealed record CopyRequest(string? To = null, bool? ReadData = null);

/// <summary>One copy's outcome: the objects copied (<see cref="Copy"/>), the copy verified through the key, the evidence files carried, or the error that stopped it.</summary>
public sealed record CopyTargetResult(string Target, CopyReport? Copy, VerificationReport? Verification, int EvidenceFilesCopied, bool ReadData, long ElapsedMs, string? Error)
{
    /// <summary>Findings of the copy run and of the copy's verification (orphaned objects are not damage).</summary>
    public IReadOnlyList<string> Damage => [.. (Copy?.Findings ?? []).Select(f => $"{f.Object}: {f.Detail}"), .. (Verification?.Findings ?? []).Where(f => f.IsDamage).Select(f => $"{f.Kind.ToString().ToLowerInvariant()} {f.Object}: {f.Detail}")];

    public bool Ok => Error is null && Damage.Count == 0;
}

public sealed record CopyResult(IReadOnlyList<CopyTargetResult> Targets)
{
    public bool HasDamage => Targets.Any(t => t.Error is null && t.Damage.Count > 0);

    public bool HasErrors => Targets.Any(t => t.Error is not null);
}

/// <summary>
/// <c>cairn copy</c> (3-2-1): the repository's objects copied to a second repository (same ID and keys, so nothing is
/// re-encrypted), only what is missing there, each object read back; the copy then opened with the key and verified like
/// <c>verify</c> (structure, or every byte with read-data) including its WAL; the evidence log carried along (the signing
/// key never is); one <c>copy</c> record per target. A shared lock on both sides keeps prune out of either while it runs.
/// </summary>
public sealed class CopyOperation(OperationContext context)
{
    public async Task<CopyResult> RunAsync(CopyRequest request, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var targets = Targets(request);
        var results = new List<CopyTargetResult>();
        foreach (var (location, s3, readData) in targets)
        {
            results.Add(await CopyOneAsync(location, s3, readData, progress, cancellationToken).ConfigureAwait(false));
        }
        return new CopyResult(results);
    }

    /// <summary>The locations to copy to, each with its S3 settings and read-data choice; a clear error when there is none.</summary>
    private List<(RepositoryLocation Location, S3Options? S3, bool ReadData)> Targets(CopyRequest request)
    {
        var copies = context.Config.Copies;
        if (request.To is { } to)
        {
            var location = RepositoryLocation.Parse(to);
            var entry = copies.FirstOrDefault(c => RepositoryLocation.Parse(c.Repository) == location);
            return [(location, entry?.S3 ?? context.Config.S3, request.ReadData ?? entry?.ReadData ?? false)];
        }
        if (copies.Count == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "no copy to make: pass --to REPO2 (a folder or s3://BUCKET/PREFIX), or list copies in cairn.yaml (copies: [ { repository: s3://other-region/cairn, schedule: \"30 1 * * *\" } ])");
        }
        return [.. copies.Select(c => (RepositoryLocation.Parse(c.Repository), c.S3 ?? context.Config.S3, request.ReadData ?? c.ReadData))];
    }

    private async Task<CopyTargetResult> CopyOneAsync(RepositoryLocation location, S3Options? s3, bool readData, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        var primary = context.RepositoryLocation;
        if (primary == location)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to {location.Display} is the primary repository itself; a copy goes to another place");
        }
        using var source = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var target = context.OpenStorage(location, s3);
        CopyReport? copy = null;
        VerificationReport? verification = null;
        var evidenceFiles = 0;
        try
        {
            // Prune on the primary waits (its exclusive lock), so no pack this copy still needs is deleted under it.
            await using var sourceLock = await source.LockAsync(exclusive: false, "copy", cancellationToken).ConfigureAwait(false);
            var byKind = new Progress<(ObjectKind Kind, long Done, long Total)>(p => progress?.Report($"copy to {location.Display}: {StorageKey.FolderOf(p.Kind == ObjectKind.Config ? ObjectKind.Key : p.Kind)} {p.Done}/{p.Total}"));
            // Keys and config first: then the copy is a repository that opens, and its own lock keeps a prune there from
            // deleting packs copied before the index that names them.
            // A copy made before the primary was upgraded ('cairn repo upgrade') takes the primary's config first.
            await source.CarryUpgradeToAsync(target, cancellationToken).ConfigureAwait(false);
            var head = await RepositoryCopier.CopyAsync(source.Storage, target, readData, 1, [ObjectKind.Key, ObjectKind.Config], byKind, cancellationToken).ConfigureAwait(false);
            using var copyRepo = await Repository.Repository.OpenAsync(target, context.Secrets.Passphrase(), context.Time, cancellationToken).ConfigureAwait(false);
            await using (var targetLock = await copyRepo.LockAsync(exclusive: false, "copy", cancellationToken).ConfigureAwait(false))
            {
                var rest = await RepositoryCopier.CopyAsync(source.Storage, target, readData, 4, [.. RepositoryCopier.Order.Skip(2)], byKind, cancellationToken).ConfigureAwait(false);
                copy = Merge(head, rest);
                evidenceFiles = await CopyEvidenceAsync(source, target, cancellationToken).ConfigureAwait(false);
            }
            // Checked, not trusted: the copy opened afresh (its own index and snapshots) and verified as 'verify' would.
            progress?.Report($"verify the copy at {location.Display}");
            using var check = await Repository.Repository.OpenAsync(target, context.Secrets.Passphrase(), context.Time, cancellationToken).ConfigureAwait(false);
            var seed = Random.Shared.Next();
            verification = await new Verifier(check).VerifyAsync(new VerifyOptions(readData, 1.0, seed), null, cancellationToken).ConfigureAwait(false);
            var physical = (await check.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).Where(x => x.Manifest.Kind == BackupKinds.Physical).ToList();
            var wal = await WalVerification.VerifyAsync(check, physical, readData, 1.0, seed, cancellationToken).ConfigureAwait(false);
            verification = verification with { Findings = [.. verification.Findings, .. wal] };
        }
        catch (Exception e) when (e is RepositoryException or IOException or UnauthorizedAccessException or S3StorageException)
        {
            var failed = new CopyTargetResult(location.Display, copy, verification, evidenceFiles, readData, sw.ElapsedMilliseconds, e.Message);
            Record(source, failed, "error");
            return failed;
        }
        var result = new CopyTargetResult(location.Display, copy, verification, evidenceFiles, readData, sw.ElapsedMilliseconds, null);
        Record(source, result, result.Ok ? "pass" : "fail");
        return result;
    }

    /// <summary>
    /// The evidence log published into the copy as into the primary (<see cref="EvidencePublishing"/>: the folder's files, not
    /// the signing key, which lives outside it); the objects written. The primary's own publications came along with its objects.
    /// </summary>
    private async Task<int> CopyEvidenceAsync(Repository.Repository source, IStorage target, CancellationToken cancellationToken)
    {
        try
        {
            return (await EvidencePublishing.PublishAsync(context, source, target, cancellationToken).ConfigureAwait(false))?.PiecesWritten ?? 0;
        }
        catch (Cairn.Evidence.Log.EvidenceException)
        {
            return 0; // no evidence folder for this repository: nothing to carry
        }
    }

    private void Record(Repository.Repository source, CopyTargetResult r, string result) => context.Evidence.Record(new CopyEvent(r.Target, r.Copy?.ObjectsCopied ?? 0, r.Copy?.BytesCopied ?? 0,
        r.Copy?.ObjectsPresent ?? 0, r.EvidenceFilesCopied, r.Verification?.Snapshots ?? 0, r.ReadData ? "read-data" : "structure", r.Damage.Count, r.Damage.Take(5).ToList(), r.Error)
    {
        Repository = source.Storage.Location,
        Result = result,
        DurationMs = r.ElapsedMs,
    });

    private static CopyReport Merge(CopyReport a, CopyReport b) => new(a.Initialised || b.Initialised, a.ObjectsCopied + b.ObjectsCopied, a.BytesCopied + b.BytesCopied,
        a.ObjectsPresent + b.ObjectsPresent, a.ObjectsHashed + b.ObjectsHashed, a.BytesHashed + b.BytesHashed,
        a.CopiedByKind.Concat(b.CopiedByKind).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Sum(p => p.Value)), [.. a.Findings, .. b.Findings]);
}
