using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Servers;

/// <summary>
/// A throwaway PostgreSQL server: initdb in a temp folder, a free port, a private socket folder,
/// settings tuned for speed over durability. Stopped and removed on dispose, also after a failure.
/// Tests, the demo and drills all use this one component. Runs as the postgres user when we are root.
/// It may hold a full copy of production data, so only Cairn's own OS user and the server's user can
/// reach it (<see cref="ServerAccess"/>): every folder 0700, socket 0700, peer authentication, no password.
/// </summary>
public sealed class ScratchServer : IAsyncDisposable
{
    private bool _stopped;

    private ScratchServer(PgBinaries bin, string root, int port)
    {
        Binaries = bin;
        Root = root;
        Port = port;
    }

    public PgBinaries Binaries { get; }

    /// <summary>The temp folder holding data/, sock/ and the log.</summary>
    public string Root { get; }

    public string DataDirectory => Path.Combine(Root, "data");

    public string SocketDirectory => Path.Combine(Root, "sock");

    public string LogFile => Path.Combine(Root, "server.log");

    public int Port { get; }

    public const string Superuser = "postgres";

    /// <summary>A libpq URI for this server over its socket (no password: peer authentication on the private socket, for root or the postgres user).</summary>
    public string Url(string database = "postgres") => SocketUrl.For(SocketDirectory, Port, database, Superuser);

    public string ConnectionString(string database = "postgres") => new NpgsqlConnectionStringBuilder
    {
        Host = SocketDirectory,
        Port = Port,
        Username = Superuser,
        Database = database,
        Pooling = false,
        Timeout = 30,
        CommandTimeout = 0,
    }.ConnectionString;

    /// <summary>initdb + start. Extra settings (e.g. archive_command) go to postgresql.conf; <paramref name="dataChecksums"/> runs initdb with --data-checksums.</summary>
    public static async Task<ScratchServer> StartAsync(PgBinaries? binaries = null, IReadOnlyDictionary<string, string>? settings = null, string? initFrom = null, bool dataChecksums = false, CancellationToken cancellationToken = default)
    {
        var bin = binaries ?? PgBinaries.Find();
        if (!bin.HasServer)
        {
            throw new PgToolException($"no PostgreSQL server programs (initdb, pg_ctl, postgres) in {bin.Folder}; install the server package (Debian: apt-get install postgresql)");
        }
        var root = Path.Combine(Path.GetTempPath(), $"cairn-scratch-{Guid.NewGuid():N}"[..28]);
        if (Path.Exists(root))
        {
            throw new PgToolException($"{root} already exists; refusing to start a scratch server in it");
        }
        Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        ServerAccess.MakePrivate(root);
        Directory.CreateDirectory(Path.Combine(root, "sock"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        ServerAccess.MakePrivate(Path.Combine(root, "sock"));
        var server = new ScratchServer(bin, root, FreePort());
        try
        {
            PgProcess.GiveToServerUser(root);
            if (initFrom is null)
            {
                var init = await PgProcess.RunAsServerUserAsync(bin["initdb"], ["-D", server.DataDirectory, "-U", Superuser, "--auth-local=peer", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", .. (dataChecksums ? new[] { "--data-checksums" } : [])], null, cancellationToken).ConfigureAwait(false);
                if (init.ExitCode != 0)
                {
                    throw new PgToolException($"initdb failed: {PgProcess.Tail(init.StandardError)}");
                }
            }
            var conf = new Dictionary<string, string>
            {
                ["listen_addresses"] = "''",
                ["unix_socket_directories"] = ServerAccess.Setting(server.SocketDirectory),
                ["unix_socket_permissions"] = "0700",
                ["port"] = server.Port.ToString(CultureInfo.InvariantCulture),
                ["fsync"] = "off",
                ["synchronous_commit"] = "off",
                ["full_page_writes"] = "off",
                ["shared_buffers"] = "128MB",
                ["max_wal_size"] = "1GB",
                ["max_connections"] = "50",
                ["logging_collector"] = "off",
            };
            foreach (var (k, v) in settings ?? new Dictionary<string, string>())
            {
                conf[k] = v;
            }
            if (initFrom is null)
            {
                await File.AppendAllTextAsync(Path.Combine(server.DataDirectory, "postgresql.conf"),
                    "\n# Cairn scratch server\n" + string.Concat(conf.Select(p => $"{p.Key} = {p.Value}\n")), cancellationToken).ConfigureAwait(false);
                await ServerAccess.WriteNewFileAsync(server.DataDirectory, "pg_hba.conf", ServerAccess.Hba, cancellationToken).ConfigureAwait(false);
                await ServerAccess.WriteNewFileAsync(server.DataDirectory, "pg_ident.conf", ServerAccess.Ident(Superuser), cancellationToken).ConfigureAwait(false);
            }
            await server.StartProcessAsync(cancellationToken).ConfigureAwait(false);
            return server;
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task StartProcessAsync(CancellationToken cancellationToken)
    {
        PgProcess.GiveToServerUser(Root);
        var r = await PgProcess.RunAsServerUserAsync(Binaries["pg_ctl"], ["-D", DataDirectory, "-l", LogFile, "-w", "-t", "120", "start"], null, cancellationToken).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            var log = File.Exists(LogFile) ? PgProcess.Tail(await File.ReadAllTextAsync(LogFile, cancellationToken).ConfigureAwait(false)) : "";
            throw new PgToolException($"the scratch server did not start: {PgProcess.Tail(r.StandardError + r.StandardOutput)} {log}");
        }
    }

    public async Task<NpgsqlConnection> OpenAsync(string database = "postgres", CancellationToken cancellationToken = default)
    {
        var c = new NpgsqlConnection(ConnectionString(database));
        await c.OpenAsync(cancellationToken).ConfigureAwait(false);
        return c;
    }

    public async Task ExecuteAsync(string sql, string database = "postgres", CancellationToken cancellationToken = default)
    {
        await using var c = await OpenAsync(database, cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, c);
        await cmd.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task<T> ScalarAsync<T>(string sql, string database = "postgres", CancellationToken cancellationToken = default)
    {
        await using var c = await OpenAsync(database, cancellationToken).ConfigureAwait(false);
        await using var cmd = new NpgsqlCommand(sql, c);
        return (T)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>Stops the server (fast shutdown) without removing its folder.</summary>
    public async Task StopAsync(bool immediate = false)
    {
        if (_stopped)
        {
            return;
        }
        _stopped = true;
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            await PgProcess.RunAsServerUserAsync(Binaries["pg_ctl"], ["-D", DataDirectory, "-m", immediate ? "immediate" : "fast", "-w", "-t", "60", "stop"], null, CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>Starts a stopped server again (e.g. after a test changed its files).</summary>
    public async Task RestartAsync(CancellationToken cancellationToken = default)
    {
        await StopAsync().ConfigureAwait(false);
        _stopped = false;
        await StartProcessAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync(immediate: true).ConfigureAwait(false);
        }
        catch (Exception e) when (e is PgToolException or IOException or InvalidOperationException)
        {
        }
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    /// <summary>A TCP port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
