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
/// <see cref="Databases"/> and <see cref="Since"/> narrow the copy (empty and null: the entry's <c>databases</c> and
/// <c>since</c>, else everything); <see cref="ToPassphraseFile"/> holds the passphrase of a copy that is a repository of
/// its own (the copy then re-encrypts; null: the entry's <c>passphrase_file</c>).
/// </summary>
public sealed record CopyRequest(string? To = null, bool? ReadData = null, IReadOnlyList<string>? Databases = null, string? Since = null, string? ToPassphraseFile = null);

/// <summary>One copy's outcome: the objects copied (<see cref="Copy"/>), the copy verified through the key, the evidence files carried, or the error that stopped it.</summary>
/// <remarks>
/// <see cref="Blobs"/>: the blob-level copy's figures (a filtered copy, or one into a repository with other keys);
/// <see cref="Scope"/>: the filter as text ("" for everything).
/// </remarks>
public sealed record CopyTargetResult(string Target, CopyReport? Copy, VerificationReport? Verification, int EvidenceFilesCopied, bool ReadData, long ElapsedMs, string? Error)
{
    public SnapshotCopyReport? Blobs { get; init; }

    public string Scope { get; init; } = "";

    /// <summary>Findings of the copy run and of the copy's verification (orphaned objects are not damage).</summary>
    public IReadOnlyList<string> Damage => [.. (Copy?.Findings ?? []).Select(f => $"{f.Object}: {f.Detail}"), .. (Blobs?.Findings ?? []).Select(f => $"{f.Object}: {f.Detail}"), .. (Verification?.Findings ?? []).Where(f => f.IsDamage).Select(f => $"{f.Kind.ToString().ToLowerInvariant()} {f.Object}: {f.Detail}")];

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
        foreach (var t in targets)
        {
            results.Add(await CopyOneAsync(t, progress, cancellationToken).ConfigureAwait(false));
        }
        return new CopyResult(results);
    }

    private sealed record Target(RepositoryLocation Location, S3Options? S3, bool ReadData, CopyFilter Filter, string? PassphraseFile);

    /// <summary>The locations to copy to, each with its S3 settings, read-data choice, filter and passphrase file; a clear error when there is none.</summary>
    private List<Target> Targets(CopyRequest request)
    {
        var copies = context.Config.Copies;
        CopyFilter FilterOf(CopyConfig? entry) => new(request.Databases is { Count: > 0 } d ? [.. d.Distinct(StringComparer.Ordinal)] : entry?.Databases ?? [], request.Since ?? entry?.Since);
        if (request.Since is { } since)
        {
            _ = CopyFilter.SinceTime(since, context.Time.GetUtcNow()); // a typo fails before anything is opened
        }
        if (request.To is { } to)
        {
            var location = RepositoryLocation.Parse(to);
            var entry = copies.FirstOrDefault(c => RepositoryLocation.Parse(c.Repository) == location);
            return [new(location, entry?.S3 ?? context.Config.S3, request.ReadData ?? entry?.ReadData ?? false, FilterOf(entry), request.ToPassphraseFile ?? entry?.PassphraseFile)];
        }
        if (copies.Count == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "no copy to make: pass --to REPO2 (a folder or s3://BUCKET/PREFIX), or list copies in cairn.yaml (copies: [ { repository: s3://other-region/cairn, schedule: \"30 1 * * *\" } ])");
        }
        if (request.ToPassphraseFile is not null)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "--to-passphrase-file needs --to (each copies: entry names its own passphrase_file)");
        }
        return [.. copies.Select(c => new Target(RepositoryLocation.Parse(c.Repository), c.S3 ?? context.Config.S3, request.ReadData ?? c.ReadData, FilterOf(c), c.PassphraseFile))];
    }

    /// <summary>The passphrase of a copy with keys of its own, from its file (never argv); a clear error when it cannot be read.</summary>
    private static string ReadPassphraseFile(string file)
    {
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"cannot read the copy's passphrase from {file}: {e.Message}");
        }
        var secret = text.TrimEnd('\r', '\n');
        return secret.Length > 0 ? secret : throw new RepositoryException(ErrorKind.InvalidInput, $"the copy's passphrase file {file} is empty");
    }

    private async Task<CopyTargetResult> CopyOneAsync(Target t, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        var (location, s3, readData, filter, passphraseFile) = t;
        var sw = Stopwatch.StartNew();
        var primary = context.RepositoryLocation;
        if (primary == location)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to {location.Display} is the primary repository itself; a copy goes to another place");
        }
        using var source = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var target = context.OpenStorage(location, s3);
        var now = context.Time.GetUtcNow();
        var scope = filter.Describe(now);
        CopyReport? copy = null;
        SnapshotCopyReport? blobs = null;
        VerificationReport? verification = null;
        var evidenceFiles = 0;
        try
        {
            // Which copy this is, decided before anything is written: the same repository (or an empty place) gets the
            // same keys; another repository (its own init, its own passphrase) gets every object re-encrypted.
            var sourceConfig = await source.Storage.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
            var targetConfig = await target.StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false) is null ? null : await target.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
            // The same repository ID is this repository, whatever its config's bytes: a copy made before 'cairn repo
            // upgrade' on the primary holds the older config (CarryUpgradeToAsync below brings it up to date and records
            // it; a copy ahead of the primary is refused by the copier with the fix).
            var otherKeys = targetConfig is not null && !targetConfig.AsSpan().SequenceEqual(sourceConfig) && !source.IsOlderConfigOfThis(targetConfig) && IdOf(targetConfig) != source.Config.Id;
            if (otherKeys && passphraseFile is null)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"{location.Display} holds another repository (id {IdOf(targetConfig!)}, this one is {source.Config.Id}); to copy into it re-encrypted under its own keys, give its passphrase in a file: --to-passphrase-file FILE (or passphrase_file in its copies: entry); for a copy with this repository's keys give an empty location. Nothing was written");
            }
            if (targetConfig is null && passphraseFile is not null)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"a passphrase file was given for the copy, but {location.Display} holds no repository: initialise it first with its own passphrase ('cairn init --repo {location.Display}'), or leave out --to-passphrase-file (and passphrase_file) for a copy with this repository's keys. Nothing was written");
            }
            var copyPassphrase = passphraseFile is not null ? ReadPassphraseFile(passphraseFile) : context.Secrets.Passphrase();
            // Prune on the primary waits (its exclusive lock), so no pack this copy still needs is deleted under it.
            await using var sourceLock = await source.LockAsync(exclusive: false, "copy", cancellationToken).ConfigureAwait(false);
            var byKind = new Progress<(ObjectKind Kind, long Done, long Total)>(p => progress?.Report($"copy to {location.Display}: {StorageKey.FolderOf(p.Kind == ObjectKind.Config ? ObjectKind.Key : p.Kind)} {p.Done}/{p.Total}"));
            var described = new Progress<string>(p => progress?.Report($"copy to {location.Display}: {p}"));
            CopyReport? head = null;
            if (!otherKeys)
            {
                // Keys and config first: then the copy is a repository that opens, and its own lock keeps a prune there from
                // deleting packs copied before the index that names them.
                // A copy made before the primary was upgraded ('cairn repo upgrade') takes the primary's config first.
                // A format change of the copy is on the record as 'cairn repo upgrade' puts one of the primary.
                if (await source.CarryUpgradeToAsync(target, cancellationToken).ConfigureAwait(false))
                {
                    context.Evidence.Record(new RepositoryUpgradeEvent(source.Config.Id, source.Config.Version, [.. source.Config.Features ?? []])
                    {
                        Repository = target.Location,
                        CarriedFrom = source.Storage.Location,
                    });
                    progress?.Report($"copy to {location.Display}: its config took the primary's format (version {source.Config.Version}, {string.Join(", ", source.Config.Features ?? [])})");
                }
                head = await RepositoryCopier.CopyAsync(source.Storage, target, readData, 1, [ObjectKind.Key, ObjectKind.Config], byKind, cancellationToken).ConfigureAwait(false);
            }
            Repository.Repository copyRepo;
            try
            {
                copyRepo = await Repository.Repository.OpenAsync(target, copyPassphrase, context.Time, cancellationToken).ConfigureAwait(false);
            }
            catch (WrongPassphraseException)
            {
                throw new RepositoryException(ErrorKind.WrongPassphrase, passphraseFile is not null
                    ? $"wrong passphrase for the copy at {location.Display}: no key of it opens with the passphrase in {passphraseFile}; nothing was written"
                    : $"wrong passphrase for the copy at {location.Display}; nothing was written");
            }
            using (copyRepo)
            {
                await using var targetLock = await copyRepo.LockAsync(exclusive: false, "copy", cancellationToken).ConfigureAwait(false);
                if (!otherKeys && filter.IsAll)
                {
                    var rest = await RepositoryCopier.CopyAsync(source.Storage, target, readData, 4, [.. RepositoryCopier.Order.Skip(2)], byKind, cancellationToken).ConfigureAwait(false);
                    copy = Merge(head!, rest);
                }
                else
                {
                    progress?.Report($"copy to {location.Display}: choosing snapshots{(scope.Length > 0 ? $" ({scope})" : "")}");
                    var plan = await filter.PlanAsync(source, now, cancellationToken).ConfigureAwait(false);
                    blobs = await SnapshotCopier.CopyAsync(source, copyRepo, plan, described, cancellationToken).ConfigureAwait(false);
                    var mine = new CopyReport(false, blobs.ObjectsCopied, blobs.BytesWritten, blobs.SnapshotsPresent + blobs.WalPresent, 0, 0, new Dictionary<ObjectKind, int>(), []);
                    copy = head is null ? mine : Merge(head, mine);
                }
                evidenceFiles = await CopyEvidenceAsync(copyRepo, target, cancellationToken).ConfigureAwait(false);
            }
            // Checked, not trusted: the copy opened afresh (its own index and snapshots) and verified as 'verify' would.
            progress?.Report($"verify the copy at {location.Display}");
            using var check = await Repository.Repository.OpenAsync(target, copyPassphrase, context.Time, cancellationToken).ConfigureAwait(false);
            var seed = Random.Shared.Next();
            verification = await new Verifier(check).VerifyAsync(new VerifyOptions(readData, 1.0, seed), null, cancellationToken).ConfigureAwait(false);
            var physical = (await check.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).Where(x => x.Manifest.Kind == BackupKinds.Physical).ToList();
            var wal = await WalVerification.VerifyAsync(check, physical, readData, 1.0, seed, cancellationToken).ConfigureAwait(false);
            verification = verification with { Findings = [.. verification.Findings, .. wal] };
        }
        catch (Exception e) when (e is RepositoryException or IOException or UnauthorizedAccessException or S3StorageException)
        {
            var failed = new CopyTargetResult(location.Display, copy, verification, evidenceFiles, readData, sw.ElapsedMilliseconds, e.Message) { Blobs = blobs, Scope = scope };
            Record(source, failed, "error");
            return failed;
        }
        var result = new CopyTargetResult(location.Display, copy, verification, evidenceFiles, readData, sw.ElapsedMilliseconds, null) { Blobs = blobs, Scope = scope };
        Record(source, result, result.Ok ? "pass" : "fail");
        return result;
    }

    /// <summary>The clear-text repository ID at the start of a config (<c>CAIRN1\n&lt;32 hex&gt;\n</c>), or "?".</summary>
    private static string IdOf(byte[] config)
    {
        var head = System.Text.Encoding.ASCII.GetString(config, 0, Math.Min(config.Length, 40)).Split('\n');
        return head.Length > 1 && head[0] == "CAIRN1" && head[1].Length == 32 && head[1].All(char.IsAsciiHexDigit) ? head[1] : "?";
    }

    /// <summary>
    /// The evidence log published into the copy as into the primary (<see cref="EvidencePublishing"/>: the folder's files, not
    /// the signing key, which lives outside it), sealed under the copy's own keys; the objects written. With the same keys the
    /// primary's own publications came along with its objects.
    /// </summary>
    private async Task<int> CopyEvidenceAsync(Repository.Repository copy, IStorage target, CancellationToken cancellationToken)
    {
        try
        {
            return (await EvidencePublishing.PublishAsync(context, copy, target, cancellationToken).ConfigureAwait(false))?.PiecesWritten ?? 0;
        }
        catch (Cairn.Evidence.Log.EvidenceException)
        {
            return 0; // no evidence folder for this repository: nothing to carry
        }
    }

    private void Record(Repository.Repository source, CopyTargetResult r, string result) => context.Evidence.Record(new CopyEvent(r.Target, r.Copy?.ObjectsCopied ?? 0, r.Copy?.BytesCopied ?? 0,
        r.Copy?.ObjectsPresent ?? 0, r.EvidenceFilesCopied, r.Verification?.Snapshots ?? 0, r.ReadData ? "read-data" : "structure", r.Damage.Count, r.Damage.Take(5).ToList(), r.Error)
    {
        Filter = r.Scope.Length > 0 ? r.Scope : null,
        Reencrypted = r.Blobs?.Reencrypted ?? false,
        Repository = source.Storage.Location,
        Result = result,
        DurationMs = r.ElapsedMs,
    });

    private static CopyReport Merge(CopyReport a, CopyReport b) => new(a.Initialised || b.Initialised, a.ObjectsCopied + b.ObjectsCopied, a.BytesCopied + b.BytesCopied,
        a.ObjectsPresent + b.ObjectsPresent, a.ObjectsHashed + b.ObjectsHashed, a.BytesHashed + b.BytesHashed,
        a.CopiedByKind.Concat(b.CopiedByKind).GroupBy(p => p.Key).ToDictionary(g => g.Key, g => g.Sum(p => p.Value)), [.. a.Findings, .. b.Findings]);
}
