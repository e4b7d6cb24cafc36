using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;

namespace Cairn.Tests.Support;

/// <summary>
/// Debian's PgBouncer in front of a scratch server on 127.0.0.1, in the pool mode given, as the postgres user
/// (PgBouncer refuses root). Clients log in with SCRAM with the passwords of <paramref name="users"/>; PgBouncer
/// logs in to the server with the same; they may use the admin console (the <c>pgbouncer</c> database) unless
/// <c>consoleAccess</c> is false. With <c>serverUser</c> every client logs in to the server as that user (its password
/// from <paramref name="users"/>), as Supavisor takes <c>user.project-ref</c> to the server as <c>user</c>. Killed (its
/// process, by id) on dispose.
/// </summary>
public sealed class PgBouncer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TempDir _dir;

    private PgBouncer(Process process, TempDir dir, int port)
    {
        _process = process;
        _dir = dir;
        Port = port;
    }

    public int Port { get; }

    /// <summary>PgBouncer's own log (logins, refused ones included).</summary>
    public string LogFile => _dir.File("pgbouncer.log");

    public static string Program => File.Exists("/usr/sbin/pgbouncer") ? "/usr/sbin/pgbouncer"
        : throw new InvalidOperationException("PgBouncer is not installed (apt-get install pgbouncer; scripts/test installs it)");

    public static async Task<PgBouncer> StartAsync(ScratchServer server, string poolMode, IReadOnlyDictionary<string, string> users, int poolSize = 20, bool consoleAccess = true, string? serverUser = null)
    {
        var program = Program;
        var dir = new TempDir("pgb");
        var port = ScratchServer.FreePort();
        File.WriteAllText(dir.File("users.txt"), string.Concat(users.Select(u => $"\"{u.Key}\" \"{u.Value}\"\n")));
        File.WriteAllText(dir.File("pgbouncer.ini"), $"""
            [databases]
            * = host=127.0.0.1 port={server.Port.ToString(CultureInfo.InvariantCulture)}{(serverUser is null ? "" : " user=" + serverUser)}
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {port.ToString(CultureInfo.InvariantCulture)}
            unix_socket_dir =
            auth_type = scram-sha-256
            auth_file = {dir.File("users.txt")}
            pool_mode = {poolMode}
            default_pool_size = {poolSize.ToString(CultureInfo.InvariantCulture)}
            admin_users = {(consoleAccess ? string.Join(',', users.Keys) : "")}
            logfile = {dir.File("pgbouncer.log")}

            """);
        PgProcess.GiveToServerUser(dir.Path);
        var p = PgProcess.Start(PgProcess.StartInfo(program, [dir.File("pgbouncer.ini")], asServerUser: true), "pgbouncer");
        var bouncer = new PgBouncer(p, dir, port);
        for (var i = 0; i < 100; i++)
        {
            if (p.HasExited)
            {
                var log = File.Exists(dir.File("pgbouncer.log")) ? await File.ReadAllTextAsync(dir.File("pgbouncer.log")) : "";
                throw new InvalidOperationException($"pgbouncer exited ({p.ExitCode}): {await p.StandardError.ReadToEndAsync()} {log}");
            }
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync("127.0.0.1", port);
                return bouncer;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        await bouncer.DisposeAsync();
        throw new TimeoutException("pgbouncer did not listen within 10 s");
    }

    public async ValueTask DisposeAsync()
    {
        PgProcess.Kill(_process);
        await _process.WaitForExitAsync();
        _process.Dispose();
        _dir.Dispose();
    }
}
