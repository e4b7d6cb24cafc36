using System.Security.Cryptography;
using System.Text;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// A private folder holding the restore target and, beside it, a canary folder (a file, a folder, a file inside it)
/// that no input may change. Inputs name the canary as <c>@CANARY@</c> (link targets), so a restore that follows a
/// link it wrote lands in the canary and is caught. Folders are made under /dev/shm when it exists (fast, in memory).
/// </summary>
internal sealed class Scratch : IDisposable
{
    private static int _counter;
    private readonly string _before;

    public Scratch(string what)
    {
        var root = Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath();
        Folder = Path.Combine(root, $"cairn-fuzz-{Environment.ProcessId}-{what}-{Interlocked.Increment(ref _counter)}");
        Directory.CreateDirectory(Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        Target = Path.Combine(Folder, "target");
        Canary = Path.Combine(Folder, "canary");
        Directory.CreateDirectory(Path.Combine(Canary, "inner"));
        File.WriteAllText(Path.Combine(Canary, "secret"), "canary\n");
        File.WriteAllText(Path.Combine(Canary, "inner", "file"), "canary inner\n");
        _before = Fingerprint(Folder, except: "target");
    }

    public string Folder { get; }

    public string Target { get; }

    public string Canary { get; }

    /// <summary>The input with <c>@CANARY@</c> replaced by the canary folder's path.</summary>
    public byte[] Bind(byte[] input) => Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(input).Replace("@CANARY@", Canary, StringComparison.Ordinal));

    /// <summary>Throws <see cref="FuzzCrashException"/> when anything beside the target changed.</summary>
    public void AssertNothingOutside()
    {
        var after = Fingerprint(Folder, except: "target");
        if (after != _before)
        {
            throw new FuzzCrashException($"an input changed files outside the target:\nbefore:\n{_before}after:\n{after}");
        }
    }

    /// <summary>Every entry under a folder (links not followed) with its type, mode and content hash.</summary>
    public static string Fingerprint(string folder, string? except = null)
    {
        var sb = new StringBuilder();
        foreach (var path in Directory.EnumerateFileSystemEntries(folder, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, ReturnSpecialDirectories = false }).Order(StringComparer.Ordinal))
        {
            var rel = Path.GetRelativePath(folder, path);
            if (except is not null && (rel == except || rel.StartsWith(except + "/", StringComparison.Ordinal)))
            {
                continue;
            }
            var info = new FileInfo(path);
            sb.Append(rel).Append(' ');
            if (info.LinkTarget is { } t)
            {
                sb.Append("-> ").Append(t);
            }
            else if (Directory.Exists(path))
            {
                sb.Append("dir ").Append(File.GetUnixFileMode(path));
            }
            else
            {
                sb.Append(File.GetUnixFileMode(path)).Append(' ').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)))[..16]);
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
