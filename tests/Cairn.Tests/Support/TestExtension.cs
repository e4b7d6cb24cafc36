namespace Cairn.Tests.Support;

/// <summary>
/// A tiny PostgreSQL extension (a domain and a function) installed into PostgreSQL 15's extension folder for a source
/// database, and removed before a drill so the drill's server lacks it. The name is unique: other tests run in
/// parallel and must never see it. Removed on dispose, also when the test fails.
/// </summary>
public sealed class TestExtension : IDisposable
{
    private const string Folder = "/usr/share/postgresql/15/extension";

    public TestExtension()
    {
        Name = $"cairn_t_{Guid.NewGuid():N}"[..20];
        var files = new Dictionary<string, string>
        {
            [ControlFile] = "default_version = '1.0'\nrelocatable = true\ncomment = 'a Cairn test extension'\n",
            [ScriptFile] = "CREATE DOMAIN positive_int AS int CHECK (VALUE > 0);\nCREATE FUNCTION " + Name + "_answer() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 42';\n",
        };
        foreach (var (path, text) in files)
        {
            File.WriteAllText(path, text);
            // The server runs as postgres: it must read what this (umask 077) process wrote.
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }
    }

    public string Name { get; }

    private string ControlFile => Path.Combine(Folder, Name + ".control");

    private string ScriptFile => Path.Combine(Folder, Name + "--1.0.sql");

    /// <summary>The extension is no longer available to any server of this installation (the source's database keeps it).</summary>
    public void Remove()
    {
        File.Delete(ControlFile);
        File.Delete(ScriptFile);
    }

    public void Dispose() => Remove();
}
