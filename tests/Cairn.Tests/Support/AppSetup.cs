namespace Cairn.Tests.Support;

/// <summary>
/// The set-up the lifecycle and report tests share: a database on the class's scratch server, a folder of the test's own,
/// a repository in it (or none), a cairn.yaml naming the database "app" with the sections given, and an in-process CLI
/// pointed at all of them. Disposing removes the folder.
/// </summary>
public sealed class AppSetup : IDisposable
{
    private AppSetup(TempDir dir, CliRunner cli, string database)
    {
        Dir = dir;
        Cli = cli;
        Database = database;
    }

    public TempDir Dir { get; }

    public CliRunner Cli { get; }

    /// <summary>The database's name on the fixture's server (cairn.yaml calls it "app").</summary>
    public string Database { get; }

    public void Deconstruct(out CliRunner cli, out TempDir dir, out string database)
    {
        cli = Cli;
        dir = Dir;
        database = Database;
    }

    /// <summary>Creates a database from <paramref name="sql"/> and the rest of the set-up around it.</summary>
    /// <param name="sections">YAML under <c>databases.app</c>, every line indented by 4 spaces (as the tests' raw string constants write it).</param>
    /// <param name="withRepository">Initialise a repository (erase, recover, backups and reports need one); cleanup runs without.</param>
    /// <param name="topLevel">YAML before <c>databases:</c> (e.g. an <c>evidence:</c> section), each line ending in a newline.</param>
    public static async Task<AppSetup> CreateAsync(PostgresFixture pg, string name, string sql, string sections, TimeProvider? time = null, bool withRepository = true, string topLevel = "")
        => await ForDatabaseAsync(pg, await pg.CreateDatabaseAsync(name, sql), sections, time, withRepository, topLevel);

    /// <summary>The set-up around a database the test created itself.</summary>
    public static async Task<AppSetup> ForDatabaseAsync(PostgresFixture pg, string database, string sections, TimeProvider? time = null, bool withRepository = true, string topLevel = "")
    {
        var dir = new TempDir();
        try
        {
            var cli = withRepository
                ? await CliRunner.WithRepositoryAsync(dir, time)
                : new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = dir.File("evidence"), ["CAIRN_REPOSITORY"] = dir.File("repo") }) { Time = time ?? TimeProvider.System };
            await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"{topLevel}databases:\n  app:\n    connection: \"{pg.Server.Url(database)}\"\n{sections}");
            cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
            return new AppSetup(dir, cli, database);
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    public void Dispose() => Dir.Dispose();
}
