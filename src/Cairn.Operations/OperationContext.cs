using Cairn.Operations.Configuration;
using Cairn.Operations.Recording;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Operations;

/// <summary>Where passphrases come from; the CLI reads them from files, the environment or a prompt (never arguments).</summary>
public interface ISecretSource
{
    /// <summary>The repository passphrase; with <paramref name="confirm"/>, asked twice when it is typed.</summary>
    string Passphrase(bool confirm = false);

    /// <summary>A second passphrase, for adding a key.</summary>
    string NewPassphrase();
}

/// <summary>A storage factory that can also build S3 storage with settings other than its own (a copy in another account or region).</summary>
public interface IS3StorageFactory : IStorageFactory
{
    IStorage Create(RepositoryLocation location, Cairn.Storage.S3.S3Options? s3);
}

/// <summary>PostgreSQL's programs and the scratch space they write to: <c>postgres_bin</c> and <c>work_dir</c> in cairn.yaml.</summary>
public sealed record PgToolchain(string? PostgresBin = null, string? WorkDirectory = null)
{
    /// <summary>The programs of <paramref name="major"/> (or the newest installed).</summary>
    public PgBinaries Binaries(int? major = null) => PgBinaries.Find(major, PostgresBin);

    /// <summary>A new private folder name under the work directory (not created).</summary>
    public string NewWorkFolder(string prefix) => Path.Combine(WorkDirectory ?? Path.GetTempPath(), $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 15)]);
}

/// <summary>A database named in cairn.yaml, or a connection string given for one-off use.</summary>
public sealed record DatabaseTarget(string Name, PgConnection Connection, DatabaseConfig? Config)
{
    /// <summary>The configured checks (none for a connection string).</summary>
    public IReadOnlyList<Checks.CheckSpec> Checks => Config?.Checks ?? [];
}

/// <summary>
/// What every operation needs from the outside world, fixed for its run: the typed configuration, the
/// clock, the secrets, where the repository is and how to reach it, the evidence log, PostgreSQL's programs,
/// and the environment (read through a function, so operations never touch the process's own).
/// </summary>
public sealed class OperationContext
{
    private readonly Func<string, string?> _environment;
    private readonly Action<string>? _notice;
    private readonly string? _repositoryOption;
    private readonly string? _evidenceOption;
    private readonly string _tool;

    public OperationContext(CairnConfig config, TimeProvider time, ISecretSource secrets, IStorageFactory storage, Func<string, string?> environment,
        string? repositoryOption = null, string? evidenceOption = null, string tool = "cairn", Action<string>? notice = null, string selfCommand = "cairn")
    {
        SelfCommand = selfCommand;
        _notice = notice;
        Config = config;
        Time = time;
        Secrets = secrets;
        StorageFactory = storage;
        _environment = environment;
        _repositoryOption = repositoryOption;
        _evidenceOption = evidenceOption;
        _tool = tool;
        Toolchain = new PgToolchain(config.PostgresBin, config.WorkDirectory);
        Evidence = new EvidenceRecorder(evidenceOption ?? environment("CAIRN_EVIDENCE") ?? config.Evidence.Path, environment("CAIRN_EVIDENCE_KEY") ?? config.Evidence.SigningKey,
            () => RepositoryText is null ? null : RepositoryLocation, time, tool, notice, environment("CAIRN_EVIDENCE_PUBLIC_KEY") ?? config.Evidence.PublicKey);
    }

    public CairnConfig Config { get; }

    /// <summary>The same context with other passphrases (an incident's harden step continues with the new one after it rotated the key).</summary>
    public OperationContext WithSecrets(ISecretSource secrets) => new(Config, Time, secrets, StorageFactory, _environment, _repositoryOption, _evidenceOption, _tool, _notice, SelfCommand);

    public TimeProvider Time { get; }

    public ISecretSource Secrets { get; }

    public IStorageFactory StorageFactory { get; }

    public EvidenceRecorder Evidence { get; }

    public PgToolchain Toolchain { get; }

    public string? Environment(string name) => _environment(name);

    /// <summary>Tells the user something went not quite as it should, while the operation goes on (stderr in the CLI).</summary>
    public void Warn(string message) => _notice?.Invoke($"cairn: warning: {message}");

    /// <summary>How a shell runs this very program (for archive_command and restore_command), already quoted.</summary>
    public string SelfCommand { get; }

    /// <summary>The repository as given: --repo, else CAIRN_REPOSITORY, else <c>repository:</c> in cairn.yaml; null when none is.</summary>
    public string? RepositoryText => _repositoryOption ?? _environment("CAIRN_REPOSITORY") ?? Config.Repository;

    /// <summary>The repository location, parsed; a clear error when none is given or it cannot be used.</summary>
    public RepositoryLocation RepositoryLocation => RepositoryText is { } text && !string.IsNullOrWhiteSpace(text)
        ? RepositoryLocation.Parse(text)
        : throw new RepositoryException(ErrorKind.InvalidInput, "no repository given: pass --repo PATH, set CAIRN_REPOSITORY, or set repository: in cairn.yaml");

    /// <summary>
    /// The storage the repository lives on (which may hold no repository yet). A repository that <c>--repo</c> names and
    /// that is one of <c>copies:</c> (<c>--repo s3://offsite/prod restore …</c>) is reached with that copy's own S3
    /// settings. Only through <c>--repo</c>, and never for the configured primary: S3 locations compare by bucket and
    /// prefix, not endpoint, so a copy entry that looks like the primary must not send the primary's backups, WAL and
    /// prunes to the copy's endpoint with the copy's credentials.
    /// </summary>
    public IStorage OpenStorage()
    {
        var location = RepositoryLocation;
        return location is S3Location && _repositoryOption is not null && !IsConfiguredPrimary(location) && CopyAt(location) is { S3: { } s3 }
            ? OpenStorage(location, s3)
            : StorageFactory.Create(location);
    }

    private bool IsConfiguredPrimary(RepositoryLocation location)
    {
        foreach (var text in new[] { _environment("CAIRN_REPOSITORY"), Config.Repository })
        {
            try
            {
                if (!string.IsNullOrWhiteSpace(text) && RepositoryLocation.Parse(text) == location)
                {
                    return true;
                }
            }
            catch (RepositoryException)
            {
                // A primary that does not parse is reported when it is used.
            }
        }
        return false;
    }

    /// <summary>The <c>copies:</c> entry whose repository is <paramref name="location"/>, if any.</summary>
    private CopyConfig? CopyAt(RepositoryLocation location)
    {
        foreach (var copy in Config.Copies)
        {
            try
            {
                if (RepositoryLocation.Parse(copy.Repository) == location)
                {
                    return copy;
                }
            }
            catch (RepositoryException)
            {
                // An entry that does not parse is reported by 'cairn copy', not here.
            }
        }
        return null;
    }

    /// <summary>"No repository here", with what to check: on S3 a missing bucket or refused credentials look the same.</summary>
    private RepositoryException NoRepository(IStorage storage, string fix)
        => new(ErrorKind.NotFound, storage.Location.StartsWith("s3://", StringComparison.Ordinal)
            ? $"no repository at {storage.Location} (nothing under that prefix, or no such bucket at the endpoint: 'cairn doctor' checks the endpoint, bucket and credentials); {fix}"
            : $"no repository at {storage.Location}; {fix}");

    /// <summary>
    /// The storage of another location (a copy) with its own S3 settings and credentials; null settings take the
    /// factory's own (the top-level <c>s3:</c> block).
    /// </summary>
    public IStorage OpenStorage(RepositoryLocation location, Cairn.Storage.S3.S3Options? s3) => StorageFactory switch
    {
        IS3StorageFactory f => f.Create(location, s3),
        var f when s3 is null || location is not S3Location => f.Create(location),
        _ => throw new RepositoryException(ErrorKind.InvalidInput, $"this program cannot reach {location.Display} with its own S3 settings"),
    };

    /// <summary>Opens the repository with the passphrase; a missing repository is a clear error that names the fix.</summary>
    public async Task<Repository.Repository> OpenRepositoryAsync(CancellationToken cancellationToken)
    {
        var storage = OpenStorage();
        if (!await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw NoRepository(storage, $"create one with 'cairn init --repo {storage.Location}' or check --repo / CAIRN_REPOSITORY");
        }
        var repo = await Repository.Repository.OpenAsync(storage, Secrets.Passphrase(), Time, cancellationToken).ConfigureAwait(false);
        // Locks of provably dead processes that the next lock removes go on the record, and the user hears of them.
        repo.StaleLocksRemoved = (removal, _) =>
        {
            foreach (var l in removal.Removed)
            {
                _notice?.Invoke($"cairn: removed the lock {l.Id[..Math.Min(8, l.Id.Length)]} of {l.Data.Operation} (pid {l.Data.Pid} on {l.Data.Host}): {l.StaleReason}");
            }
            Evidence.RecordLockRemoval(removal, storage.Location);
            return Task.CompletedTask;
        };
        foreach (var warning in repo.Warnings)
        {
            Warn(warning);
        }
        return repo;
    }

    /// <summary>
    /// Opens the repository for wal-push / wal-fetch only: no index is loaded, so the server's user needs nothing
    /// but the WAL area, the config and its own key file (see 'cairn archiver allow').
    /// </summary>
    public async Task<Repository.Repository> OpenRepositoryForWalAsync(CancellationToken cancellationToken)
    {
        var storage = OpenStorage();
        if (!await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no repository at {storage.Location} (or the server's user may not enter it: see 'cairn archiver allow'); check --repo / CAIRN_REPOSITORY");
        }
        return await Repository.Repository.OpenForNamedFilesAsync(storage, Secrets.Passphrase(), Time, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Refuses, before anything changes, an operation that deletes (prune, forget, unlock, key removal) on an
    /// append-only client: it runs on a host whose credentials may delete.
    /// </summary>
    public static void RequireDeleteRights(IStorage storage, string operation)
    {
        if (AppendOnlyStorage.Is(storage))
        {
            throw new AppendOnlyViolationException($"{operation} deletes objects, and this client is append-only (append_only: true in cairn.yaml or CAIRN_APPEND_ONLY); run it from a host whose credentials may delete (docs/security.md)");
        }
    }

    /// <summary>A database from cairn.yaml by name, or a connection string given on the command line for one-off use.</summary>
    public DatabaseTarget ResolveDatabase(string nameOrUrl)
    {
        if (Config.Databases.TryGetValue(nameOrUrl, out var db))
        {
            return new DatabaseTarget(db.Name, PgConnection.Parse(db.Connection, db.PasswordFile), db);
        }
        if (nameOrUrl.Contains("://", StringComparison.Ordinal) || nameOrUrl.Contains('=', StringComparison.Ordinal))
        {
            var c = ParseConnection(nameOrUrl);
            return new DatabaseTarget(c.Database, c, null);
        }
        var known = Config.Databases.Count == 0 ? "no databases are configured" : "configured: " + string.Join(", ", Config.Databases.Keys);
        throw new RepositoryException(ErrorKind.NotFound, $"unknown database '{nameOrUrl}' ({known}{(Config.File is { } f ? $" in {f}" : "; no cairn.yaml found")}); add it under databases: or pass a connection string");
    }

    /// <summary>A connection string from the command line; its password, if any, comes from CAIRN_DB_PASSWORD_FILE.</summary>
    public PgConnection ParseConnection(string connection) => PgConnection.Parse(connection, _environment("CAIRN_DB_PASSWORD_FILE"));
}

/// <summary>Progress in bytes, where the total may become known only once the work started.</summary>
public interface IByteProgress : IProgress<long>
{
    void SetTotal(long total);
}
