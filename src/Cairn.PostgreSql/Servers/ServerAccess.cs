using System.Text;
using Cairn.PostgreSql.Programs;

namespace Cairn.PostgreSql.Servers;

/// <summary>
/// Who may connect to a server Cairn starts (scratch servers, drills, restored copies it starts): over
/// its private socket only (folder 0700, <c>unix_socket_permissions = 0700</c>), with peer authentication
/// for the OS user running Cairn and the server's own user, both mapped to the database superuser. No
/// password exists, so none can leak or be printed; another local user cannot even reach the socket.
/// TCP, when a caller opens it, asks for scram passwords, which only roles given one have.
/// </summary>
public static class ServerAccess
{
    public const string MapName = "cairn";

    /// <summary>pg_hba.conf for such a server.</summary>
    public static string Hba =>
        """
        # Written by Cairn: only the OS user running Cairn and the server's user, over the private socket (peer).
        local   all           all                   peer map=cairn
        local   replication   all                   peer map=cairn
        host    all           all   127.0.0.1/32    scram-sha-256
        host    all           all   ::1/128         scram-sha-256
        host    replication   all   127.0.0.1/32    scram-sha-256
        host    replication   all   ::1/128         scram-sha-256

        """;

    /// <summary>pg_ident.conf mapping the OS users allowed in to <paramref name="superuser"/>.</summary>
    public static string Ident(string superuser)
    {
        var sb = new StringBuilder("# Written by Cairn: the OS users that may connect, as the superuser\n");
        foreach (var osUser in new[] { Environment.UserName, PgProcess.ServerUser }.OfType<string>().Distinct(StringComparer.Ordinal))
        {
            sb.Append(MapName).Append("   ").Append(osUser).Append("   ").Append(superuser).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// Writes <paramref name="name"/> in <paramref name="folder"/> as a new 0600 file: whatever was there is
    /// unlinked first (a planted link is removed, never followed), and CreateNew fails if anything reappears.
    /// </summary>
    public static async Task WriteNewFileAsync(string folder, string name, string text, CancellationToken ct)
    {
        var path = Path.Combine(folder, name);
        File.Delete(path);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        await using var fs = new FileStream(path, options);
        await fs.WriteAsync(Encoding.UTF8.GetBytes(text), ct).ConfigureAwait(false);
    }

    /// <summary>Makes <paramref name="folder"/> 0700 (it is handed to the server's user afterwards).</summary>
    public static void MakePrivate(string folder)
    {
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>A postgresql.conf string value, quoted: the configuration parser reads backslash escapes, and a quote doubled.</summary>
    public static string Setting(string value) => "'" + value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("'", "''", StringComparison.Ordinal) + "'";
}
