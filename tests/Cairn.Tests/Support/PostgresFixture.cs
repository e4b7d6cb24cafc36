using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.PostgreSql.Servers;

namespace Cairn.Tests.Support;

/// <summary>One real PostgreSQL server (a Cairn scratch server) shared by the tests of one class. Databases get unique names.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private int _counter;

    public ScratchServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // A test that cannot reach its server fails rather than skipping silently. The server listens on TCP too, on a
        // port found free a moment before: when another process took it meanwhile, start again on another.
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["listen_addresses"] = "'127.0.0.1'" });
                return;
            }
            catch (Cairn.PostgreSql.PgToolException e) when (attempt < 3 && (e.Message.Contains("already in use", StringComparison.Ordinal) || e.Message.Contains("could not bind", StringComparison.Ordinal)))
            {
            }
        }
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    public string NewName(string prefix) => $"{prefix}_{Interlocked.Increment(ref _counter)}_{Environment.ProcessId % 1000}";

    public async Task<string> CreateDatabaseAsync(string prefix, string? sql = null)
    {
        var name = NewName(prefix);
        await Server.ExecuteAsync($"CREATE DATABASE \"{name}\"");
        if (sql is not null)
        {
            await Server.ExecuteAsync(sql, name);
        }
        return name;
    }
}

/// <summary>
/// Tests that change process-wide state (environment variables): they run alone, after the parallel ones, with a
/// server of their own. Every other PostgreSQL test class takes <c>IClassFixture&lt;PostgresFixture&gt;</c>: a
/// scratch server per class, so classes run in parallel without sharing a server's state.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "process environment";
}

/// <summary>Runs the CLI in-process with its own environment and captured output.</summary>
public sealed class CliRunner(Dictionary<string, string> env)
{
    public Dictionary<string, string> Env { get; } = env;

    /// <summary>The clock the commands run with (a FakeTimeProvider drives a month of history in seconds).</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    public async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var ctx = new CliContext(new CliConsole(o, e, false, false), Time, k => Env.GetValueOrDefault(k));
        var code = await CairnCli.RunAsync(args, ctx);
        return (code, o.ToString(), e.ToString());
    }

    public static async Task<CliRunner> WithRepositoryAsync(TempDir dir, TimeProvider? time = null)
    {
        var r = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase }) { Time = time ?? TimeProvider.System };
        var (code, _, err) = await r.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, err);
        return r;
    }
}
