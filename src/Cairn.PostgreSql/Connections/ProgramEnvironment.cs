namespace Cairn.PostgreSql.Connections;

/// <summary>
/// The variables a PostgreSQL client program (or a command check) runs with, and the private folder
/// holding its password file, if any. Disposing deletes that folder: a password never outlives the
/// program that needed it.
/// </summary>
public sealed class ProgramEnvironment : IDisposable
{
    private readonly string? _folder;

    internal ProgramEnvironment(IReadOnlyDictionary<string, string> variables, string? folder)
    {
        Variables = variables;
        _folder = folder;
    }

    public IReadOnlyDictionary<string, string> Variables { get; }

    /// <summary>The password file's folder, or null when no password was needed.</summary>
    public string? PrivateFolder => _folder;

    public void Dispose()
    {
        if (_folder is null)
        {
            return;
        }
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    /// <summary>
    /// A new folder only we can open (0700), under <paramref name="parent"/>. Refuses a name that already
    /// exists (CreateDirectory would silently reuse it) or turned out to be a link.
    /// </summary>
    internal static string CreatePrivateFolder(string parent)
    {
        var folder = Path.Combine(parent, $"cairn-pgpass-{Guid.NewGuid():N}"[..25]);
        if (Path.Exists(folder))
        {
            throw new IOException($"{folder} already exists; refusing to put a password file there");
        }
        var info = OperatingSystem.IsWindows() ? Directory.CreateDirectory(folder)
            : Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (info.LinkTarget is not null || (!OperatingSystem.IsWindows() && File.GetUnixFileMode(folder) != (UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute)))
        {
            throw new IOException($"{folder} is not a private folder (a link, or not 0700); refusing to put a password file there");
        }
        return folder;
    }
}
