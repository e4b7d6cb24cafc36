using Cairn.Cli.Terminal;

namespace Cairn.Cli;

/// <summary>What the CLI needs from the outside world: console, clock and environment, all passed in (tests pass their own).</summary>
public sealed class CliContext(CliConsole console, TimeProvider time, Func<string, string?> environment)
{
    public CliConsole Console { get; } = console;

    public TimeProvider Time { get; } = time;

    public Func<string, string?> Environment { get; } = environment;

    public string? Env(string name) => Environment(name);

    /// <summary>The real process. Secret variables are read once and removed from the environment, so no child inherits them.</summary>
    public static CliContext System()
    {
        var secrets = Cairn.PostgreSql.Programs.ChildEnvironment.TakeSecrets();
        return new(CliConsole.System(), TimeProvider.System, name => secrets.TryGetValue(name, out var v) ? v : global::System.Environment.GetEnvironmentVariable(name));
    }
}
