using System.Text;
using Cairn.Evidence.Log;
using Cairn.Evidence.Notes;
using Cairn.Operations.Monitoring;
using Cairn.Repository;
using Cairn.Repository.Copying;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Recording;

/// <summary>
/// The evidence log off the host (docs/evidence.md, "The log in the repository"): after each backup, drill and prune (and
/// <c>repo put</c>, <c>copy</c>, <c>evidence publish</c>) the log as it is then goes into the repository as a publication
/// (<see cref="EvidencePublication"/>); a publication that fails is a warning, never a failed backup, and <c>check</c> shows
/// the records not published.
/// </summary>
public static class EvidencePublishing
{
    /// <summary>The kinds whose passing records must be published: a host that dies after one of them takes no proof with it.</summary>
    private static readonly HashSet<string> MustPublish = new(StringComparer.Ordinal) { "backup", "drill", "prune" };

    /// <summary>The log's files (not its lock or temp files: names starting with '.'), read under its lock, with the checkpoint and its size.</summary>
    public static (Dictionary<string, byte[]> Files, string Origin, string Checkpoint, long Size) ReadLog(EvidenceLog log)
    {
        ArgumentNullException.ThrowIfNull(log);
        return log.ReadConsistent(() =>
        {
            var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
            var root = new DirectoryInfo(log.Folder);
            foreach (var file in root.EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint, IgnoreInaccessible = false }))
            {
                var relative = Path.GetRelativePath(root.FullName, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
                if (relative.Split('/').Any(p => p.StartsWith('.')) || !EvidencePublication.IsValidPath(relative))
                {
                    continue; // the log's own lock and temp files, and anything the log never writes
                }
                files[relative] = File.ReadAllBytes(file.FullName);
            }
            var checkpoint = files.TryGetValue("checkpoint", out var c) ? Encoding.UTF8.GetString(c) : throw new EvidenceException($"the evidence log {log.Folder} has no checkpoint file; run 'cairn evidence verify'");
            return (files, log.Origin, checkpoint, Checkpoint.Parse(checkpoint).Size);
        });
    }

    /// <summary>Publishes the local log into <paramref name="target"/> (the repository or a copy of it); null when there is no log.</summary>
    public static async Task<EvidencePublishReport?> PublishAsync(OperationContext context, Repository.Repository repo, IStorage target, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var log = context.Evidence.Open();
        if (!log.Exists)
        {
            return null;
        }
        var (files, origin, checkpoint, size) = ReadLog(log);
        return await EvidencePublication.PublishAsync(repo, target, files, origin, checkpoint, size, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>After an operation that recorded itself: the log into the repository. A failure is a warning (the backup stands).</summary>
    public static async Task AfterAsync(OperationContext context, Repository.Repository repo, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(repo);
        try
        {
            await PublishAsync(context, repo, repo.Storage, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is RepositoryException or IOException or UnauthorizedAccessException or EvidenceException or InvalidDataException or OperationCanceledException)
        {
            context.Warn($"the evidence log was not published to {repo.Storage.Location}: {e.Message}. 'cairn check' shows the records not published; 'cairn evidence publish' retries");
        }
    }

    /// <summary>
    /// Whether the local log and its newest publication in <paramref name="storage"/> agree: the published checkpoint opens
    /// with the log's keys and is a prefix of the local log (a local log rewritten, rolled back or truncated after publishing
    /// is caught). Needs no passphrase: the publication's manifest and checkpoint are clear text.
    /// </summary>
    public static async Task<PublishedAgreement> CompareAsync(EvidenceLog log, NoteKey key, IStorage storage, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(storage);
        var newest = (await EvidencePublication.ListAsync(storage, EvidencePublication.OriginId(log.Origin), cancellationToken).ConfigureAwait(false)).LastOrDefault();
        var entries = LogVerifier.ReadVerified(log, key);
        if (newest is null)
        {
            return new PublishedAgreement(storage.Location, null, 0, entries.TotalRecords, [], Unpublished(entries.Entries, 0));
        }
        EvidencePublicationManifest manifest;
        try
        {
            manifest = await EvidencePublication.ReadAsync(storage, newest.Name, cancellationToken).ConfigureAwait(false);
        }
        catch (DataDamagedException e)
        {
            return new PublishedAgreement(storage.Location, newest.Name, newest.Size, entries.TotalRecords, [e.Message], null);
        }
        var problems = LogVerifier.CheckExtends(log, key, [($"the published checkpoint of {manifest.Size} records (evidence/{newest.Name} in {storage.Location})", manifest.Checkpoint)]);
        return new PublishedAgreement(storage.Location, newest.Name, manifest.Size, entries.TotalRecords, problems, Unpublished(entries.Entries, manifest.Size));
    }

    /// <summary>The oldest passing backup, drill or prune record at or after <paramref name="published"/> (not in the repository yet).</summary>
    private static LogEntry? Unpublished(IReadOnlyList<LogEntry> verified, long published)
        => verified.FirstOrDefault(e => e.Seq >= published && e.Kind is { } k && MustPublish.Contains(k) && e.Record?["result"]?.GetValue<string>() == "pass");

    /// <summary>The <c>check</c> aspect <c>evidence-published</c>.</summary>
    public static HealthFinding Finding(PublishedAgreement a, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(a);
        const string aspect = "evidence-published";
        if (a.Problems.Count > 0)
        {
            return new HealthFinding("-", aspect, HealthState.Critical, $"the local evidence log and the one published in {a.Repository} disagree: {string.Join("; ", a.Problems.Take(3))}. Compare them with 'cairn evidence verify --from-repo'", null, null);
        }
        if (a.OldestUnpublished is { } u)
        {
            var age = u.Time is { } t ? now - t : (TimeSpan?)null;
            var since = a.Publication is null ? "the log was never published" : $"the newest publication holds {a.PublishedSize} of {a.LocalSize} records";
            return new HealthFinding("-", aspect, HealthState.Warning,
                $"the {u.Kind} record {u.Seq}{(age is { } g ? $" ({Freshness.Ago(g)} ago)" : "")} is not published in {a.Repository}: {since} (the last publication failed or never ran). A host that dies takes it with it; run 'cairn evidence publish'",
                age?.TotalSeconds, u.Time);
        }
        return new HealthFinding("-", aspect, HealthState.Ok, a.Publication is null
            ? $"nothing to publish to {a.Repository} yet (no backup, drill or prune on record)"
            : $"the evidence log published in {a.Repository} ({a.PublishedSize} records) is a prefix of the local log ({a.LocalSize})", null, null);
    }
}

/// <param name="Publication">The newest publication's object name; null when the log was never published there.</param>
/// <param name="Problems">Why the local log does not extend the published one (empty: it does).</param>
/// <param name="OldestUnpublished">The oldest passing backup, drill or prune record not in the repository yet.</param>
public sealed record PublishedAgreement(string Repository, string? Publication, long PublishedSize, long LocalSize, IReadOnlyList<string> Problems, LogEntry? OldestUnpublished);

public sealed record EvidencePublishResult(string Repository, EvidencePublishReport Report);

/// <param name="PublicKey">The verifier key to trust (default: the pinned key, else the local log's).</param>
public sealed record EvidenceFromRepoRequest(string? PublicKey);

/// <param name="To">A new or empty folder.</param>
public sealed record EvidencePullRequest(string To, string? PublicKey);

/// <param name="Verified">The pulled log verified with the key given (null: no key was given, nothing verified).</param>
public sealed record EvidencePullResult(string Folder, string Repository, string Publication, long Size, int Files, IReadOnlyList<string> Problems, VerifyResult? Verified);

/// <summary>
/// <c>evidence publish</c>, <c>evidence verify --from-repo</c> and <c>evidence pull</c>: the published log written now, checked
/// without the local folder, or rebuilt into a folder. Reading the pieces needs the passphrase (they are sealed like every
/// repository object); the publications' checkpoints do not.
/// </summary>
public sealed class EvidencePublishedOperation(OperationContext context)
{
    public async Task<EvidencePublishResult> PublishAsync(CancellationToken cancellationToken)
    {
        var log = context.Evidence.OpenExisting();
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var report = await EvidencePublishing.PublishAsync(context, repo, repo.Storage, cancellationToken).ConfigureAwait(false)
            ?? throw new EvidenceException($"no evidence log at {log.Folder}");
        return new EvidencePublishResult(repo.Storage.Location, report);
    }

    /// <summary>
    /// The newest publication rebuilt in a private scratch folder and verified as <c>evidence verify</c> verifies a folder (chain,
    /// signatures, hand-overs, pruning); every older publication must be a prefix of it (published history never changes), and
    /// the local log, when this host has one, must extend it.
    /// </summary>
    public async Task<VerifyResult> VerifyAsync(EvidenceFromRepoRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var local = LocalLog();
        var key = TrustedKey(request.PublicKey, local);
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var (all, newest, manifest) = await NewestAsync(repo.Storage, key, local, cancellationToken).ConfigureAwait(false);
        var scratch = context.Toolchain.NewWorkFolder("cairn-evidence");
        try
        {
            var problems = new List<string>();
            var files = await EvidencePublication.ReadFilesAsync(repo, repo.Storage, manifest, problems, cancellationToken).ConfigureAwait(false);
            WriteFolder(scratch, files);
            var log = new EvidenceLog(scratch, Path.Combine(scratch, ".no-signing-key"), context.Time);
            if (!log.Exists)
            {
                return new VerifyResult(0, 0, "", -1, [.. problems, $"evidence/{newest.Name} publishes no origin file: there is no log to verify"], false);
            }
            var result = LogVerifier.Verify(log, key, null);
            if (files.TryGetValue("checkpoint", out var cp) && Encoding.UTF8.GetString(cp) != manifest.Checkpoint)
            {
                problems.Add($"evidence/{newest.Name}: its checkpoint is not the checkpoint file it publishes");
            }
            // Published history never changes: every earlier publication is a prefix of the newest.
            var earlier = new List<(string, string)>();
            foreach (var p in all.Where(p => p.Name != newest.Name))
            {
                try
                {
                    earlier.Add(($"the publication evidence/{p.Name}", (await EvidencePublication.ReadAsync(repo.Storage, p.Name, cancellationToken).ConfigureAwait(false)).Checkpoint));
                }
                catch (Exception e) when (e is DataDamagedException or ObjectNotFoundException)
                {
                    problems.Add(e.Message);
                }
            }
            problems.AddRange(LogVerifier.CheckExtends(log, key, earlier));
            var note = $"verified the publication evidence/{newest.Name} ({manifest.Size} records) in {repo.Storage.Location}; {all.Count - 1} earlier publication(s) checked to be prefixes of it";
            if (local is not null && local.Origin == ReadOrigin(manifest))
            {
                var agree = LogVerifier.CheckExtends(local, key, [($"the published checkpoint of {manifest.Size} records", manifest.Checkpoint)]);
                problems.AddRange(agree.Select(a => $"the local log {local.Folder} disagrees with the published one: {a}"));
                note += agree.Count == 0 ? $"; the local log {local.Folder} extends it" : "";
            }
            return result with { Problems = [.. problems, .. result.Problems], Published = note };
        }
        finally
        {
            if (Directory.Exists(scratch))
            {
                Directory.Delete(scratch, recursive: true);
            }
        }
    }

    /// <summary>The newest publication rebuilt into a new or empty folder (the signing key is never published: it stays where it was kept).</summary>
    public async Task<EvidencePullResult> PullAsync(EvidencePullRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var target = Path.GetFullPath(request.To);
        if (new DirectoryInfo(target).LinkTarget is not null || File.Exists(target))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to {target} is a link or a file; pull into a new or empty folder");
        }
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"--to {target} is not empty; pull into a new or empty folder (nothing was written)");
        }
        var key = (request.PublicKey ?? context.Evidence.PinnedPublicKey) is { } keyPath ? LoadKey(keyPath) : null;
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var (_, newest, manifest) = await NewestAsync(repo.Storage, key, LocalLog(), cancellationToken).ConfigureAwait(false);
        var problems = new List<string>();
        var files = await EvidencePublication.ReadFilesAsync(repo, repo.Storage, manifest, problems, cancellationToken).ConfigureAwait(false);
        WriteFolder(target, files);
        VerifyResult? verified = null;
        if (key is not null)
        {
            verified = LogVerifier.Verify(new EvidenceLog(target, null, context.Time), key, null);
        }
        return new EvidencePullResult(target, repo.Storage.Location, newest.Name, manifest.Size, files.Count, problems, verified);
    }

    private EvidenceLog? LocalLog()
    {
        try
        {
            var log = context.Evidence.Open();
            return log.Exists ? log : null;
        }
        catch (EvidenceException)
        {
            return null;
        }
    }

    /// <summary>The key to trust: given, else pinned, else the local log's own (its signing key's public half, else evidence.pub).</summary>
    private NoteKey TrustedKey(string? given, EvidenceLog? local)
    {
        if ((given ?? context.Evidence.PinnedPublicKey) is { } path)
        {
            return LoadKey(path);
        }
        return local is not null
            ? local.TrustedPublicKey(null).Key
            : throw new RepositoryException(ErrorKind.InvalidInput, "no verifier key to check the published evidence log with: pass --public-key FILE (the log's verifier key, kept out of band), or set evidence.public_key in cairn.yaml; a key read from the repository itself proves nothing");
    }

    private NoteKey LoadKey(string path) => new EvidenceLog(Path.GetTempPath(), null, context.Time).LoadPublicKey(path);

    /// <summary>
    /// The newest publication of the log to read: the only log published there, or the one whose key is <paramref name="key"/>
    /// (a log's key is named after its origin) or that the local log is.
    /// </summary>
    private static async Task<(List<EvidencePublicationInfo> All, EvidencePublicationInfo Newest, EvidencePublicationManifest Manifest)> NewestAsync(IStorage storage, NoteKey? key, EvidenceLog? local, CancellationToken cancellationToken)
    {
        var all = await EvidencePublication.ListAsync(storage, null, cancellationToken).ConfigureAwait(false);
        if (all.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no evidence log is published in {storage.Location}: backups, drills and prunes publish it (this version on), or run 'cairn evidence publish' on the host that keeps the log");
        }
        var logs = all.GroupBy(p => p.OriginId).ToList();
        var chosen = logs[0].ToList();
        if (logs.Count > 1)
        {
            var origins = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var g in logs)
            {
                origins[g.Key] = ReadOrigin(await EvidencePublication.ReadAsync(storage, g.Last().Name, cancellationToken).ConfigureAwait(false));
            }
            var match = logs.FirstOrDefault(g => (key is not null && origins[g.Key].Replace('/', '-') == key.Name) || (key is null && local is not null && origins[g.Key] == local.Origin));
            chosen = match?.ToList() ?? throw new RepositoryException(ErrorKind.NotFound,
                $"{storage.Location} holds the published logs of {string.Join(", ", origins.Values)}, and none is {(key is not null ? $"the log of the key {key.Name}" : "this host's")}: pass the --public-key of the log to read");
        }
        var newest = chosen[^1];
        var manifest = await EvidencePublication.ReadAsync(storage, newest.Name, cancellationToken).ConfigureAwait(false);
        return (chosen, newest, manifest);
    }

    private static string ReadOrigin(EvidencePublicationManifest m) => m.Checkpoint.Split('\n')[0];

    /// <summary>Writes the files (paths checked by the manifest's parser) into a private folder that is new or empty.</summary>
    private static void WriteFolder(string folder, Dictionary<string, byte[]> files)
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        Directory.CreateDirectory(folder, Private);
        foreach (var (path, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var parts = path.Split('/');
            var dir = folder;
            foreach (var part in parts[..^1])
            {
                dir = Path.Combine(dir, part);
                if (new DirectoryInfo(dir).LinkTarget is not null)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"{dir} is a link, which Cairn did not create; refusing to write through it");
                }
                Directory.CreateDirectory(dir, Private);
            }
            FreshFile.WriteAllBytes(Path.Combine(dir, parts[^1]), bytes);
        }
    }
}
