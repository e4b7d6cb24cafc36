namespace Cairn.PostgreSql.Connections;

/// <summary>
/// The libpq URI of a server Cairn started on a private Unix socket (scratch servers, drills, restored copies):
/// built in this one place, with the database and the socket folder escaped.
/// </summary>
public static class SocketUrl
{
    public const string Superuser = "postgres";

    public static string For(string socketDirectory, int port, string database = "postgres", string user = Superuser)
        => $"postgresql://{Uri.EscapeDataString(user)}@/{Uri.EscapeDataString(database)}?host={Uri.EscapeDataString(socketDirectory)}&port={port}";
}
