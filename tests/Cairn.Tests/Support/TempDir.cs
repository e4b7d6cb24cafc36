namespace Cairn.Tests.Support;

/// <summary>
/// A test's own folder, under one folder per test run (<see cref="RunRoot"/>), so tests running in parallel never
/// look at each other's files and a run's leftovers are in one place. The names are short: a scratch server's
/// socket path inside must stay under the 107 bytes a Unix socket path may have.
/// </summary>
public sealed class TempDir : IDisposable
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var root = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"cairn-t-{Guid.NewGuid():N}"[..16]);
        Directory.CreateDirectory(root);
        // Traversable, not listable, by the postgres user: scratch servers and archivers live below.
        System.IO.File.SetUnixFileMode(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                if (!Directory.EnumerateFileSystemEntries(root).Any())
                {
                    Directory.Delete(root);
                }
            }
            catch (IOException)
            {
            }
        };
        return root;
    });

    public TempDir(string prefix = "cairn-test")
    {
        Path = System.IO.Path.Combine(RunRoot, $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)]);
        Directory.CreateDirectory(Path);
    }

    /// <summary>This test run's folder under the system temp folder; every TempDir is inside it.</summary>
    public static string RunRoot => Root.Value;

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>
    /// A temp folder for the child processes this test starts (their TMPDIR): what they leave behind is found here
    /// and only here, whatever other tests run at the same time. The postgres user may pass through it.
    /// </summary>
    public string Tmp
    {
        get
        {
            var t = File("tmp");
            Directory.CreateDirectory(t);
            System.IO.File.SetUnixFileMode(t, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            return t;
        }
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
