using System.Diagnostics;
using System.Text;

namespace Cairn.PostgreSql.Programs;

/// <summary>The result of a finished program: exit code and captured stderr (never contains a password: none is passed in argv).</summary>
public sealed record ProcessResult(int ExitCode, string StandardError, string StandardOutput);

/// <summary>
/// Runs PostgreSQL programs and command checks with an allow-listed environment (<see cref="ChildEnvironment"/>).
/// A password reaches a client program only through PGPASSFILE naming a private file, never through
/// arguments or PGPASSWORD. When Cairn runs as root, server programs (initdb, pg_ctl,
/// postgres) run as the <c>postgres</c> user through <c>runuser</c>, because PostgreSQL refuses root.
/// </summary>
public static class PgProcess
{
    public static bool IsRoot => Environment.UserName == "root" || (OperatingSystem.IsLinux() && GetUid() == 0);

    /// <summary>The user server programs run as: postgres when we are root, else ourselves.</summary>
    public static string? ServerUser => IsRoot ? "postgres" : null;

    public static ProcessStartInfo StartInfo(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env = null, bool asServerUser = false)
    {
        ProcessStartInfo psi;
        if (asServerUser && IsRoot)
        {
            if (!File.Exists("/usr/sbin/runuser") && !File.Exists("/sbin/runuser") && !File.Exists("/usr/bin/runuser"))
            {
                throw new PgToolException("running as root, but 'runuser' is missing, so PostgreSQL's server programs cannot be run as the postgres user; install util-linux or run Cairn as a non-root user");
            }
            if (!UserExists("postgres"))
            {
                throw new PgToolException("running as root, but there is no 'postgres' user to run the PostgreSQL server as (PostgreSQL refuses to run as root); create it (Debian: apt-get install postgresql creates it) or run Cairn as a non-root user");
            }
            psi = new ProcessStartInfo("runuser");
            psi.ArgumentList.Add("-u");
            psi.ArgumentList.Add("postgres");
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(program);
        }
        else
        {
            psi = new ProcessStartInfo(program);
        }
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.UseShellExecute = false;
        psi.RedirectStandardError = true;
        psi.RedirectStandardOutput = true;
        psi.RedirectStandardInput = true;
        // An allow-listed environment, never a copy of ours (see ChildEnvironment): a server keeps it for life.
        ChildEnvironment.Apply(psi, server: asServerUser);
        psi.Environment["LC_ALL"] = "C.UTF-8";
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        return psi;
    }

    /// <summary>Runs <paramref name="program"/> as this process's user and collects its output.</summary>
    public static Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, CancellationToken cancellationToken)
        => RunAsync(program, args, env, asServerUser: false, timeout: null, cancellationToken);

    /// <summary>Like <see cref="RunAsync(string, IEnumerable{string}, IReadOnlyDictionary{string, string}?, CancellationToken)"/>, killed after <paramref name="timeout"/>.</summary>
    public static Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, TimeSpan timeout, CancellationToken cancellationToken)
        => RunAsync(program, args, env, asServerUser: false, timeout, cancellationToken);

    /// <summary>Runs <paramref name="program"/> as the server's user (see <see cref="StartInfo"/>) and collects its output.</summary>
    public static Task<ProcessResult> RunAsServerUserAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, CancellationToken cancellationToken)
        => RunAsync(program, args, env, asServerUser: true, timeout: null, cancellationToken);

    private static async Task<ProcessResult> RunAsync(string program, IEnumerable<string> args, IReadOnlyDictionary<string, string>? env, bool asServerUser, TimeSpan? timeout, CancellationToken cancellationToken)
    {
        var psi = StartInfo(program, args, env, asServerUser);
        using var p = Start(psi, program);
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync(cancellationToken);
        var output = p.StandardOutput.ReadToEndAsync(cancellationToken);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (timeout is { } t)
        {
            cts.CancelAfter(t);
        }
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            Kill(p);
            if (!cancellationToken.IsCancellationRequested)
            {
                throw new PgToolException($"{Path.GetFileName(program)} did not finish within {timeout}") { TimedOut = true };
            }
            throw;
        }
        return new ProcessResult(p.ExitCode, await err.ConfigureAwait(false), await output.ConfigureAwait(false));
    }

    public static Process Start(ProcessStartInfo psi, string program)
    {
        try
        {
            return Process.Start(psi) ?? throw new PgToolException($"could not start {program}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new PgToolException($"could not start {program}: {e.Message}; is PostgreSQL installed?", e);
        }
    }

    public static void Kill(Process p)
    {
        try
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
        }
        catch (System.ComponentModel.Win32Exception)
        {
        }
    }

    /// <summary>The last lines of a program's stderr, for error messages.</summary>
    public static string Tail(string stderr, int lines = 8)
    {
        var all = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join("; ", all.TakeLast(lines));
    }

    /// <summary>The server's user Cairn hands data directories to when it runs as root.</summary>
    public const string ServerUserName = "postgres";

    /// <summary>
    /// Hands a folder Cairn created (a scratch server's, a drill's, a restored tablespace's) and its contents to the
    /// postgres user when we run as root. Walks through handles and never follows a link (see
    /// <see cref="Files.SafeDirectory.GiveTree"/>); no chown -R.
    /// </summary>
    public static void GiveToServerUser(string path)
    {
        if (Files.Accounts.ServerOwner() is not { } owner)
        {
            return;
        }
        using var dir = Files.SafeDirectory.Open(path);
        dir.GiveTree(owner);
    }

    private static bool UserExists(string name)
    {
        try
        {
            return File.ReadLines("/etc/passwd").Any(l => l.StartsWith(name + ":", StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static uint GetUid()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("Uid:", StringComparison.Ordinal))
                {
                    return uint.Parse(line.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (IOException)
        {
        }
        return uint.MaxValue;
    }
}
