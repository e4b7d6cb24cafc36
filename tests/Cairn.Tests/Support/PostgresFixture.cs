using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.PostgreSql.Servers;

namespace Cairn.Tests.Support;

/// <summary>One real PostgreSQL server (a Cairn scratch server) shared by the PostgreSQL tests. Databases get unique names.</summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private int _counter;

    public ScratchServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // A test that cannot reach its server fails rather than skipping silently.
        Server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["listen_addresses"] = "'127.0.0.1'" });
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

[CollectionDefinition("postgres")]
public sealed class PostgresCollection : ICollectionFixture<PostgresFixture>;

/// <summary>Runs the CLI in-process with its own environment and captured output.</summary>
public sealed class CliRunner(Dictionary<string, string> env)
{
    public Dictionary<string, string> Env { get; } = env;

    public async Task<(int Code, string Out, string Err)> RunAsync(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var ctx = new CliContext(new CliConsole(o, e, false, false), TimeProvider.System, k => Env.GetValueOrDefault(k));
        var code = await CairnCli.RunAsync(args, ctx);
        return (code, o.ToString(), e.ToString());
    }

    public static async Task<CliRunner> WithRepositoryAsync(TempDir dir)
    {
        var r = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = TestData.Passphrase });
        var (code, _, err) = await r.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, err);
        return r;
    }
}
