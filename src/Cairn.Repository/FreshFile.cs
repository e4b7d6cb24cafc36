namespace Cairn.Repository;

/// <summary>
/// Creates the temporary file a download is written to before its rename. Cairn runs as root and often
/// writes into folders other users can write to (a shared /tmp, a server's pg_wal): a link planted under the
/// temporary name must never be followed, or root would write through it. Whatever is there is unlinked
/// first (unlink removes a link, never its target), then the file is created with O_CREAT|O_EXCL, which
/// fails rather than follow anything that reappears in between.
/// </summary>
public static class FreshFile
{
    public static FileStream Create(string path, int bufferSize = 4096, FileOptions options = FileOptions.None)
    {
        File.Delete(path);
        var fileOptions = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None, BufferSize = bufferSize, Options = options };
        if (!OperatingSystem.IsWindows())
        {
            fileOptions.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        return new FileStream(path, fileOptions);
    }

    /// <summary>Writes <paramref name="bytes"/> as a new 0600 file at <paramref name="path"/> (see the class remarks).</summary>
    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        using var f = Create(path);
        f.Write(bytes);
    }

    /// <summary>Writes <paramref name="text"/> as UTF-8 without a byte order mark into a new 0600 file.</summary>
    public static void WriteAllText(string path, string text) => WriteAllBytes(path, System.Text.Encoding.UTF8.GetBytes(text));
}
