using System.Reflection;
using Cairn.Cli.Terminal;
using Cairn.Operations;
using Cairn.Operations.Configuration;
using Cairn.Operations.Physical;

namespace Cairn.Cli;

/// <summary>The global options of one command line: --repo, --evidence, --config, --json.</summary>
internal sealed record GlobalOptions(string? Repository = null, string? Evidence = null, string? Config = null, bool Json = false);

/// <summary>
/// One run of one command: the global options, the configuration (loaded on first use, so a bad file is an error
/// of that command), and the <see cref="OperationContext"/> the operations get. Per run, never shared.
/// </summary>
internal sealed class Invocation
{
    private CairnConfig? _config;
    private OperationContext? _operations;

    public Invocation(CliContext cli, GlobalOptions options, CairnConfig? config = null)
    {
        Cli = cli;
        Options = options;
        _config = config;
    }

    public CliContext Cli { get; }

    public GlobalOptions Options { get; }

    public CliConsole Console => Cli.Console;

    public bool Json => Options.Json;

    /// <summary>The database the command is about, for the record of its failure.</summary>
    public string? Database { get; private set; }

    /// <summary>cairn.yaml from --config, else CAIRN_CONFIG, else ./cairn.yaml if it exists; else an empty config.</summary>
    public CairnConfig Config => _config ??= LoadConfig(Options.Config ?? Cli.Env("CAIRN_CONFIG"));

    public static CairnConfig LoadConfig(string? path)
    {
        if (path is null && File.Exists("cairn.yaml"))
        {
            path = "cairn.yaml";
        }
        return path is null ? CairnConfig.Empty : CairnConfig.Load(path);
    }

    /// <summary><c>append_only: true</c> in cairn.yaml, or CAIRN_APPEND_ONLY=1: this client never deletes or replaces an object.</summary>
    public bool AppendOnly => Config.AppendOnly || Cli.Env("CAIRN_APPEND_ONLY") is "1" or "true" or "yes";

    /// <summary>What every operation of this run gets.</summary>
    public OperationContext Operations => _operations ??= new OperationContext(Config, Cli.Time, new CliSecrets(Cli), new CliStorageFactory(Cli.Time, Config.S3, Cli.Environment, AppendOnly), Cli.Environment,
        Options.Repository, Options.Evidence, ToolVersion, Console.Info, SelfCommand(Cli));

    /// <summary>Resolves the DATABASE argument and remembers it as what this run is about.</summary>
    public DatabaseTarget ResolveDatabase(string nameOrUrl) => About(Operations.ResolveDatabase(nameOrUrl));

    public DatabaseTarget About(DatabaseTarget database)
    {
        Database = database.Name;
        return database;
    }

    public static string ToolVersion => "cairn " + (typeof(Invocation).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0");

    /// <summary>How a shell runs this very binary (or dotnet cairn.dll when not published), for archive_command and restore_command.</summary>
    private static string SelfCommand(CliContext cli) => cli.Env("CAIRN_BIN") ?? (Environment.ProcessPath is { } pp && Path.GetFileName(pp) == "dotnet"
        ? $"{WalCommands.Sh(pp)} {WalCommands.Sh(Path.Combine(AppContext.BaseDirectory, "cairn.dll"))}"
        : WalCommands.Sh(Environment.ProcessPath ?? "cairn"));
}
