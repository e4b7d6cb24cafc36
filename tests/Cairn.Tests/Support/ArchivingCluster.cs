using System.Globalization;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;

namespace Cairn.Tests.Support;

/// <summary>
/// A scratch server whose archive_command is <c>cairn wal-push</c> into a fresh repository, with a cairn.yaml
/// naming it "app" (and its data_directory, for file-level physical backups). The CLI runs in process.
/// </summary>
public sealed class ArchivingCluster : IAsyncDisposable
{
    private ArchivingCluster(TempDir dir, Dictionary<string, string> env, CliRunner cli, ScratchServer server)
    {
        Dir = dir;
        Env = env;
        Cli = cli;
        Server = server;
    }

    public TempDir Dir { get; }

    public Dictionary<string, string> Env { get; }

    public CliRunner Cli { get; }

    public ScratchServer Server { get; }

    public static async Task<ArchivingCluster> StartAsync(bool withDataDirectory = true, string extraYaml = "")
    {
        var dir = new TempDir();
        Directory.CreateDirectory(dir.File("repo"));
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "archiver passphrase 5be1\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        var cli = new CliRunner(env);
        var init = await cli.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(init.Code == 0, init.Err);
        await ArchiverSetup.AllowAsync(cli, passFile);
        var self = $"\"{Environment.ProcessPath}\" \"{CairnProcess.Dll}\"";
        env["CAIRN_BIN"] = self;
        var archive = $"CAIRN_PASSPHRASE_FILE={passFile} {self} --repo {dir.File("repo")} wal-push %p --database app";
        var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["archive_command"] = $"'{archive.Replace("'", "''", StringComparison.Ordinal)}'" });
        var cluster = new ArchivingCluster(dir, env, cli, server);
        await cluster.WriteConfigAsync(withDataDirectory, extraYaml);
        env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return cluster;
    }

    public Task WriteConfigAsync(bool withDataDirectory, string extraYaml = "")
        => File.WriteAllTextAsync(Dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{Server.Url()}\"\n{(withDataDirectory ? $"    data_directory: {Server.DataDirectory}\n" : "")}{extraYaml}");

    /// <summary>Sets archive_command to wal-push with this cluster's cairn.yaml (CAIRN_CONFIG), so its <c>wal:</c> settings apply.</summary>
    public async Task ArchiveWithConfigAsync()
    {
        var self = $"\"{Environment.ProcessPath}\" \"{CairnProcess.Dll}\"";
        var archive = $"CAIRN_CONFIG={Dir.File("cairn.yaml")} CAIRN_PASSPHRASE_FILE={Dir.File("pass")} {self} --repo {Dir.File("repo")} wal-push %p --database app";
        await Server.ExecuteAsync($"ALTER SYSTEM SET archive_command = '{archive.Replace("'", "''", StringComparison.Ordinal)}'");
        await Server.ExecuteAsync("SELECT pg_reload_conf()");
    }

    public Dictionary<string, string> PgEnv => new() { ["PGHOST"] = Server.SocketDirectory, ["PGPORT"] = Server.Port.ToString(CultureInfo.InvariantCulture), ["PGUSER"] = "postgres", ["PGDATABASE"] = "postgres" };

    /// <summary>Switches to a new segment and waits until the one holding everything so far is archived.</summary>
    public async Task ArchiveAllAsync()
    {
        // pg_switch_wal returns the end of the segment it closed, and pg_walfile_name of a segment boundary names the
        // segment before it: the one holding everything so far. With nothing written since the last switch, no
        // switch happens and that is the segment before the current one, archived already. (Naming the current
        // segment before the switch waited for a segment that, when empty, is never archived.)
        var last = await Server.ScalarAsync<string>("SELECT pg_walfile_name(pg_switch_wal())");
        await Eventually.UntilAsync(async () => string.CompareOrdinal(await Server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver"), last) >= 0,
            TimeSpan.FromMinutes(2), $"WAL segment {last} being archived");
    }

    public async Task StopRestoredAsync(string dataDirectory)
        => await PgProcess.RunAsServerUserAsync(Server.Binaries["pg_ctl"], ["-D", dataDirectory, "-m", "immediate", "-w", "stop"], null, default);

    public static async Task<T> ScalarAsync<T>(string socket, int port, string sql)
    {
        await using var c = new Npgsql.NpgsqlConnection($"Host={socket};Port={port};Username=postgres;Database=postgres;Pooling=false");
        await c.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, c);
        return (T)Convert.ChangeType((await cmd.ExecuteScalarAsync())!, typeof(T), CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        Dir.Dispose();
    }
}
