using Cairn.Cli.Terminal;
using Cairn.Operations.Configuration;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Spectre.Console;

namespace Cairn.Cli;

/// <summary>What a command needs from the outside world: console, clock and environment, all passed in.</summary>
public sealed class CliContext(CliConsole console, TimeProvider time, Func<string, string?> environment)
{
    public CliConsole Console { get; } = console;

    public TimeProvider Time { get; } = time;

    public string? Env(string name) => environment(name);

    /// <summary>The --evidence option, set by the command runner before an action runs.</summary>
    public string? EvidenceOption { get; set; }

    /// <summary>The --repo option as given (may be null; see <see cref="RepositoryPath"/>).</summary>
    public string? RepoOption { get; set; }

    /// <summary>The database an operation was about, for its failure record.</summary>
    public string? LastDatabase { get; set; }

    /// <summary>The last error message printed, for the failure's evidence record.</summary>
    public string? LastError { get; set; }

    /// <summary>The real process. Secret variables are read once and removed from the environment, so no child inherits them.</summary>
    public static CliContext System()
    {
        var secrets = Cairn.PostgreSql.Programs.ChildEnvironment.TakeSecrets();
        return new(CliConsole.System(), TimeProvider.System, name => secrets.TryGetValue(name, out var v) ? v : Environment.GetEnvironmentVariable(name));
    }

    /// <summary>The --config option, set by the command runner.</summary>
    public string? ConfigOption { get; set; }

    private CairnConfig? _config;

    /// <summary>cairn.yaml from --config, else CAIRN_CONFIG, else ./cairn.yaml if it exists; else an empty config.</summary>
    public CairnConfig Config
    {
        get
        {
            if (_config is not null)
            {
                return _config;
            }
            var path = ConfigOption ?? Env("CAIRN_CONFIG");
            if (path is null && File.Exists("cairn.yaml"))
            {
                path = "cairn.yaml";
            }
            _config = path is null ? CairnConfig.Empty : CairnConfig.Load(path);
            return _config;
        }
    }

    /// <summary>Swaps in a reloaded configuration (daemon SIGHUP).</summary>
    public void ReplaceConfig(CairnConfig config) => _config = config;

    /// <summary>The repository location: --repo, else CAIRN_REPOSITORY, else repository: in cairn.yaml.</summary>
    public string RepositoryPath(string? option)
    {
        var path = option ?? Env("CAIRN_REPOSITORY") ?? Config.Repository;
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "no repository given: pass --repo PATH, set CAIRN_REPOSITORY, or set repository: in cairn.yaml");
        }
        return path;
    }

    /// <summary>The repository path if one is known, else null (for evidence records).</summary>
    public string? RepositoryPathOrNull() => RepoOption ?? Env("CAIRN_REPOSITORY") ?? Config.Repository;

    public IStorage Storage(string? option) => new FileSystemStorage(RepositoryPath(option), Time);

    /// <summary>The passphrase: CAIRN_PASSPHRASE_FILE, else CAIRN_PASSPHRASE, else a prompt on a terminal. Never an argument.</summary>
    public string Passphrase(bool confirm = false) => ReadSecret("CAIRN_PASSPHRASE", "repository passphrase", confirm);

    /// <summary>A second passphrase for 'key add': CAIRN_NEW_PASSPHRASE_FILE, CAIRN_NEW_PASSPHRASE, or a prompt.</summary>
    public string NewPassphrase() => ReadSecret("CAIRN_NEW_PASSPHRASE", "new passphrase", confirm: true);

    public async Task<Repository.Repository> OpenRepositoryAsync(string? repoOption, CancellationToken cancellationToken)
    {
        var storage = Storage(repoOption);
        if (!await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no repository at {storage.Location}; create one with 'cairn init --repo {storage.Location}' or check --repo / CAIRN_REPOSITORY");
        }
        var repo = await Repository.Repository.OpenAsync(storage, Passphrase(), Time, cancellationToken).ConfigureAwait(false);
        repo.StaleLocksRemoved = (removal, ct) => Commands.Evidence.RecordLockRemovalAsync(this, storage.Location, removal, ct);
        foreach (var warning in repo.Warnings)
        {
            Console.Error.WriteLine($"cairn: warning: {warning}");
        }
        return repo;
    }

    /// <summary>
    /// Opens the repository for wal-push / wal-fetch only: no index is loaded, so the server's user needs nothing
    /// but the WAL area, the config and its own key file (see 'cairn archiver allow').
    /// </summary>
    public async Task<Repository.Repository> OpenRepositoryForWalAsync(string? repoOption, CancellationToken cancellationToken)
    {
        var storage = Storage(repoOption);
        if (!await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no repository at {storage.Location} (or the server's user may not enter it: see 'cairn archiver allow'); check --repo / CAIRN_REPOSITORY");
        }
        return await Repository.Repository.OpenForNamedFilesAsync(storage, Passphrase(), Time, cancellationToken).ConfigureAwait(false);
    }

    private string ReadSecret(string variable, string what, bool confirm)
    {
        var file = Env(variable + "_FILE");
        if (!string.IsNullOrEmpty(file))
        {
            try
            {
                var text = File.ReadAllText(file);
                var secret = text.TrimEnd('\r', '\n');
                if (secret.Length == 0)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"{variable}_FILE names {file}, which is empty");
                }
                return secret;
            }
            catch (IOException e)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"cannot read the {what} from {variable}_FILE ({file}): {e.Message}");
            }
            catch (UnauthorizedAccessException)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"cannot read the {what} from {variable}_FILE ({file}): permission denied");
            }
        }
        var direct = Env(variable);
        if (!string.IsNullOrEmpty(direct))
        {
            return direct;
        }
        if (!Console.InputIsTerminal || !Console.ErrorIsTerminal)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"no {what}: set {variable}_FILE to a file that holds it (or {variable}), or run on a terminal to be asked");
        }
        var first = Console.AnsiError.Prompt(new TextPrompt<string>($"Enter {what}:").Secret());
        if (confirm)
        {
            var second = Console.AnsiError.Prompt(new TextPrompt<string>($"Repeat {what}:").Secret());
            if (first != second)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, "the two passphrases differ; nothing was changed");
            }
        }
        return first;
    }

    /// <summary>KDF cost for new keys; lower values are for tests and small machines.</summary>
    public static KdfParameters Kdf(int? memoryMib, int? iterations)
    {
        var d = KdfParameters.Default;
        return new KdfParameters(memoryMib is { } m ? m * 1024 : d.MemoryKib, iterations ?? d.Iterations, d.Parallelism);
    }
}
