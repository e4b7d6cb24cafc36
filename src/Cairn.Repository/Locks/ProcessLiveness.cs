using System.Runtime.InteropServices;

namespace Cairn.Repository.Locks;

/// <summary>What reading <c>/proc/PID/stat</c> gave.</summary>
public enum ProcStatus
{
    /// <summary>Read: <see cref="ProcStat.StartTicks"/> and <see cref="ProcStat.State"/> are set.</summary>
    Found,

    /// <summary>ENOENT: no such entry — the process is gone, or procfs hides it (hidepid=2/invisible).</summary>
    NotFound,

    /// <summary>EACCES/EPERM: the entry exists but may not be read (hidepid=1/noaccess).</summary>
    AccessDenied,
}

/// <summary>One process as <c>/proc/PID/stat</c> shows it: its start time (clock ticks since boot) and state letter.</summary>
public readonly record struct ProcStat(ProcStatus Status, string? StartTicks = null, char State = '?');

/// <summary>What <c>kill(pid, 0)</c> said: it is not subject to hidepid, so it tells "gone" from "hidden".</summary>
public enum ProbeResult
{
    Exists,

    /// <summary>EPERM: the process exists but belongs to someone else.</summary>
    ExistsNotOurs,

    /// <summary>ESRCH: no process has this pid.</summary>
    NoSuchProcess,

    /// <summary>The probe cannot run here (not a Unix system).</summary>
    Unavailable,
}

/// <summary>The view of the process table liveness is judged from; injected so tests can play hidepid.</summary>
public interface IProcessTable
{
    ProcStat ReadStat(int pid);

    ProbeResult Probe(int pid);

    /// <summary>The text of <c>/proc/self/mountinfo</c>, or null when it cannot be read.</summary>
    string? MountInfo();
}

/// <summary>The verdict on a process a lock or a temp file names.</summary>
public readonly record struct LivenessVerdict(bool ProvablyDead, string Reason);

/// <summary>
/// Decides whether a local process is provably dead. Only proof counts: anything Cairn cannot see
/// (a hidden or unreadable /proc entry, no probe) is treated as alive, because removing a live
/// process's lock or temp file corrupts its work while keeping a dead one's only delays.
/// </summary>
public static partial class ProcessLiveness
{
    public static readonly IProcessTable Linux = new LinuxProcessTable();

    /// <summary>The start time of this process, as written into locks and temp-file names.</summary>
    public static string? OwnStartTicks { get; } = Linux.ReadStat(Environment.ProcessId) is { Status: ProcStatus.Found } s ? s.StartTicks : null;

    /// <param name="pid">The process's id on this host.</param>
    /// <param name="recordedStart">Its start time when it wrote the lock (null when unknown: then pid reuse cannot be told).</param>
    /// <param name="table">Where to look (the real /proc unless a test injects one).</param>
    public static LivenessVerdict Judge(int pid, string? recordedStart, IProcessTable table)
    {
        if (pid <= 0)
        {
            return new(false, $"pid {pid} cannot be checked");
        }
        var stat = table.ReadStat(pid);
        switch (stat.Status)
        {
            case ProcStatus.Found when stat.State is 'Z' or 'X':
                return new(true, $"process {pid} has exited (state {stat.State})");
            case ProcStatus.Found when recordedStart is not null && recordedStart != "unknown" && stat.StartTicks != recordedStart:
                return new(true, $"process {pid} is a different process now (pid reused: started at tick {stat.StartTicks}, the recorded one at {recordedStart})");
            case ProcStatus.Found:
                return new(false, $"process {pid} is running");
            case ProcStatus.AccessDenied:
                return new(false, $"process {pid} exists but /proc/{pid} may not be read (hidepid); treated as alive");
        }
        // ENOENT: gone, or hidden by hidepid=2. The signal probe is not subject to hidepid.
        return table.Probe(pid) switch
        {
            ProbeResult.NoSuchProcess => new(true, $"process {pid} no longer exists"),
            ProbeResult.Exists or ProbeResult.ExistsNotOurs => new(false, $"process {pid} exists but /proc hides it (hidepid); treated as alive"),
            _ => HidePid(table.MountInfo())
                ? new(false, $"process {pid} is not visible in /proc, which is mounted with hidepid; treated as alive")
                : new(true, $"process {pid} no longer exists"),
        };
    }

    /// <summary>True when a procfs mounted on /proc hides other users' processes (hidepid other than 0/off).</summary>
    internal static bool HidePid(string? mountInfo)
    {
        if (mountInfo is null)
        {
            return true; // cannot tell: assume the careful answer
        }
        foreach (var line in mountInfo.Split('\n'))
        {
            // id parent major:minor root mountpoint options [optional…] - fstype source superoptions
            var fields = line.Split(' ');
            var dash = Array.IndexOf(fields, "-");
            if (fields.Length < 5 || fields[4] != "/proc" || dash < 0 || dash + 3 >= fields.Length || fields[dash + 1] != "proc")
            {
                continue;
            }
            foreach (var option in fields[dash + 3].Split(','))
            {
                if (option.StartsWith("hidepid=", StringComparison.Ordinal) && option[8..] is not ("0" or "off"))
                {
                    return true;
                }
            }
        }
        return false;
    }

    private sealed partial class LinuxProcessTable : IProcessTable
    {
        private const int EPERM = 1;
        private const int ESRCH = 3;

        public ProcStat ReadStat(int pid)
        {
            string stat;
            try
            {
                stat = File.ReadAllText($"/proc/{pid}/stat");
            }
            catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
            {
                return new(ProcStatus.NotFound);
            }
            catch (UnauthorizedAccessException)
            {
                return new(ProcStatus.AccessDenied);
            }
            catch (IOException)
            {
                // ESRCH while reading: the process exited between open and read.
                return new(ProcStatus.NotFound);
            }
            // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
            var close = stat.LastIndexOf(')');
            if (close < 0 || close + 2 >= stat.Length)
            {
                return new(ProcStatus.AccessDenied);
            }
            var fields = stat[(close + 2)..].Split(' ');
            return fields.Length > 19 ? new(ProcStatus.Found, fields[19], fields[0].Length == 1 ? fields[0][0] : '?') : new(ProcStatus.AccessDenied);
        }

        public ProbeResult Probe(int pid)
        {
            if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS() && !OperatingSystem.IsFreeBSD())
            {
                return ProbeResult.Unavailable;
            }
            if (kill(pid, 0) == 0)
            {
                return ProbeResult.Exists;
            }
            return Marshal.GetLastPInvokeError() switch
            {
                ESRCH => ProbeResult.NoSuchProcess,
                EPERM => ProbeResult.ExistsNotOurs,
                _ => ProbeResult.Unavailable,
            };
        }

        public string? MountInfo()
        {
            try
            {
                return File.ReadAllText("/proc/self/mountinfo");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }
        }

        [LibraryImport("libc", SetLastError = true)]
        private static partial int kill(int pid, int signal);
    }
}
