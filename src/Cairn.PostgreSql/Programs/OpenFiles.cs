namespace Cairn.PostgreSql.Programs;

/// <summary>Which files under a folder some process still holds open, read from /proc/PID/fd.</summary>
public static class OpenFiles
{
    /// <summary>
    /// The files under <paramref name="folder"/> that any visible process holds open; null when the answer cannot be
    /// trusted: /proc is missing or unreadable, or the writer (<paramref name="writerPid"/>, e.g. pg_dump) is not
    /// visible or its descriptors cannot be read (hidepid, another user). Callers treat null as "everything may still
    /// be open" — failing closed, since calling a half-written file complete would store a truncated backup.
    /// </summary>
    public static HashSet<string>? Under(string folder, int writerPid, string procRoot = "/proc")
    {
        List<string> processes;
        try
        {
            processes = [.. Directory.EnumerateDirectories(procRoot)];
            // The writer's own descriptors must be readable, or a file it is writing would look closed.
            _ = Directory.EnumerateFileSystemEntries(Path.Combine(procRoot, writerPid.ToString(System.Globalization.CultureInfo.InvariantCulture), "fd")).Take(1).ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        var open = new HashSet<string>(StringComparer.Ordinal);
        foreach (var proc in processes)
        {
            var name = Path.GetFileName(proc);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]))
            {
                continue;
            }
            IEnumerable<string> fds;
            try
            {
                fds = Directory.EnumerateFileSystemEntries(Path.Combine(proc, "fd")).ToList();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another user's process: it cannot write into the dump folder (0700, ours). Gone since listed: fine.
                continue;
            }
            foreach (var fd in fds)
            {
                try
                {
                    var target = new FileInfo(fd).LinkTarget;
                    if (target is not null && target.StartsWith(folder, StringComparison.Ordinal))
                    {
                        open.Add(target);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
        }
        return open;
    }
}
