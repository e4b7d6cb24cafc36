using Cairn.Repository.Locks;

namespace Cairn.Tests.Repository;

/// <summary>The liveness verdict behind stale locks and temp-file cleanup, with /proc played by a fake.</summary>
public class ProcessLivenessTests
{
    private const string HidePidMount = "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw,hidepid=invisible\n";
    private const string PlainMount = "22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n";

    private sealed class FakeProc(ProcStat stat, ProbeResult probe, string? mountInfo = PlainMount) : IProcessTable
    {
        public ProcStat ReadStat(int pid) => stat;

        public ProbeResult Probe(int pid) => probe;

        public string? MountInfo() => mountInfo;
    }

    [Fact]
    public void Under_hidepid_invisible_another_users_live_process_is_alive()
    {
        // /proc/PID is ENOENT for someone else's process; kill(pid, 0) answers EPERM: it exists.
        var v = ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.NotFound), ProbeResult.ExistsNotOurs, HidePidMount));
        Assert.False(v.ProvablyDead, v.Reason);
    }

    [Fact]
    public void Under_hidepid_noaccess_an_unreadable_entry_is_alive()
    {
        var v = ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.AccessDenied), ProbeResult.ExistsNotOurs, HidePidMount));
        Assert.False(v.ProvablyDead, v.Reason);
    }

    [Fact]
    public void Under_hidepid_without_a_probe_an_invisible_process_is_alive()
    {
        var v = ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.NotFound), ProbeResult.Unavailable, HidePidMount));
        Assert.False(v.ProvablyDead, v.Reason);
        Assert.Contains("hidepid", v.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void A_process_that_is_gone_is_dead()
    {
        Assert.True(ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.NotFound), ProbeResult.NoSuchProcess, HidePidMount)).ProvablyDead);
        Assert.True(ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.NotFound), ProbeResult.Unavailable, PlainMount)).ProvablyDead);
    }

    [Fact]
    public void A_reused_pid_or_a_zombie_is_dead_and_the_same_process_is_alive()
    {
        Assert.True(ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.Found, "999", 'S'), ProbeResult.Exists)).ProvablyDead);
        Assert.True(ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.Found, "123", 'Z'), ProbeResult.Exists)).ProvablyDead);
        Assert.False(ProcessLiveness.Judge(4242, "123", new FakeProc(new ProcStat(ProcStatus.Found, "123", 'S'), ProbeResult.Exists)).ProvablyDead);
    }

    [Fact]
    public void The_real_table_sees_this_process_alive_and_a_free_pid_dead()
    {
        Assert.False(ProcessLiveness.Judge(Environment.ProcessId, ProcessLiveness.OwnStartTicks, ProcessLiveness.Linux).ProvablyDead);
        Assert.True(ProcessLiveness.Judge(999_999, "1", ProcessLiveness.Linux).ProvablyDead);
    }

    [Theory]
    [InlineData("hidepid=2", true)]
    [InlineData("hidepid=invisible", true)]
    [InlineData("hidepid=1", true)]
    [InlineData("hidepid=0", false)]
    [InlineData("hidepid=off", false)]
    [InlineData("", false)]
    public void Mountinfo_hidepid_is_read(string option, bool hidden)
    {
        var line = $"22 27 0:21 / /proc rw,nosuid shared:12 - proc proc rw{(option.Length > 0 ? "," + option : "")}\n";
        Assert.Equal(hidden, ProcessLiveness.HidePid(line));
    }
}
