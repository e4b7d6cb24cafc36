using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>
/// A physical backup recovered in a throwaway server (the physical drill's and the point-in-time recoveries' one way to do
/// it): restored as root into a folder only root can write to, handed to the server's user, started on a private socket with
/// Cairn's restore_command, and — on <see cref="DisposeAsync"/> — stopped and removed, whatever happened. The teardown never
/// throws: an exception there would replace the one that ended the caller's work (a cancellation would no longer exit 130).
/// </summary>
internal sealed class ScratchRecovery(OperationContext context, string what, string root) : IAsyncDisposable
{
    private bool _started;

    /// <summary>The folder holding the data directory and the socket folder; empty after <see cref="Keep"/>.</summary>
    public string Root { get; private set; } = root;

    public string DataDirectory { get; } = Path.Combine(root, "data");

    public string SocketDirectory { get; } = Path.Combine(root, "sock");

    public int Port { get; private set; }

    /// <summary>A scratch folder <c>$TMPDIR/cairn-PREFIX-…</c>; <paramref name="what"/> names it in warnings ("the drill").</summary>
    public static ScratchRecovery Create(OperationContext context, string prefix, string what)
    {
        var root = Path.Combine(Path.GetTempPath(), $"cairn-{prefix}-{Guid.NewGuid():N}"[..(20 + prefix.Length)]);
        var scratch = new ScratchRecovery(context, what, root);
        Directory.CreateDirectory(scratch.SocketDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return scratch;
    }

    /// <summary>Restores <paramref name="snapshot"/>, configures recovery to <paramref name="target"/> and waits until the server is up.</summary>
    public async Task<RecoveryResult> RecoverAsync(Repository.Repository repo, Snapshot snapshot, string database, RecoveryTarget target, CancellationToken ct)
    {
        await PhysicalBackups.RestoreAsync(repo, snapshot, DataDirectory, new FileRestoreOptions(Force: false, Delta: false, Jobs: Environment.ProcessorCount * 2), null, ct).ConfigureAwait(false);
        PgProcess.GiveToServerUser(Root);
        Port = ScratchServer.FreePort();
        await PhysicalRestorer.ConfigureRecoveryAsync(DataDirectory, WalCommands.RestoreCommand(context, repo.Storage.Location, database), target, Port, SocketDirectory, keepArchiving: false, ct).ConfigureAwait(false);
        PgProcess.GiveToServerUser(SocketDirectory);
        _started = true;
        return await PhysicalRestorer.StartAndWaitAsync(DataDirectory, Port, SocketDirectory, target.Action, TimeSpan.FromMinutes(30), context.Toolchain.PostgresBin, ct).ConfigureAwait(false);
    }

    /// <summary>Whether the server was started (and so may be running).</summary>
    public bool Started => _started;

    /// <summary>The server's log (it writes it in the socket folder, which belongs to it).</summary>
    public Task<string> ServerLogAsync(CancellationToken ct) => File.ReadAllTextAsync(Path.Combine(SocketDirectory, "server.log"), ct);

    /// <summary>The connection URL of <paramref name="databaseName"/> on the scratch server.</summary>
    public string Url(string databaseName) => SocketUrl.For(SocketDirectory, Port, databaseName);

    /// <summary>Leaves the server running and its folder in place (a drill's <c>--keep</c>): the teardown does nothing.</summary>
    public void Keep()
    {
        _started = false;
        Root = "";
    }

    /// <summary>
    /// Stops the server and removes the folder. pg_ctl start -W returns before the server writes postmaster.pid, so a stop
    /// that finds no pid file looks again once before trusting it; the removal is retried while files still appear (a
    /// restore_command child finishing its write). A folder that still cannot be removed is a warning that names it.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_started)
        {
            var pidFile = Path.Combine(DataDirectory, "postmaster.pid");
            for (var attempt = 0; attempt < 10; attempt++)
            {
                try
                {
                    await PgProcess.RunAsServerUserAsync(context.Toolchain.Binaries()["pg_ctl"], ["-D", DataDirectory, "-m", "immediate", "-w", "stop"], null, CancellationToken.None).ConfigureAwait(false);
                }
                catch (Exception e) when (e is PgToolException or IOException or System.ComponentModel.Win32Exception)
                {
                    context.Warn($"stopping {what}'s server failed: {e.Message}");
                }
                if (!File.Exists(pidFile))
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(500), CancellationToken.None).ConfigureAwait(false);
                    if (!File.Exists(pidFile))
                    {
                        break;
                    }
                }
            }
            _started = false;
        }
        for (var attempt = 1; Root.Length > 0; attempt++)
        {
            try
            {
                if (Directory.Exists(Root))
                {
                    Directory.Delete(Root, recursive: true);
                }
                return;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (attempt >= 10)
                {
                    context.Warn($"could not remove {what}'s folder {Root}: {e.Message}; remove it by hand");
                    return;
                }
                await Task.Delay(TimeSpan.FromMilliseconds(300), CancellationToken.None).ConfigureAwait(false);
            }
        }
    }
}
