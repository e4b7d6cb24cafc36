using Cairn.Operations.Physical;
using Cairn.Operations.Verification;
using Cairn.PostgreSql;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>Waits follow the clock they are given; random choices that must be repeatable are.</summary>
public class ClockAndReproducibilityTests
{
    /// <summary>A fake clock that counts the timers waits create on it.</summary>
    private sealed class CountingClock() : Microsoft.Extensions.Time.Testing.FakeTimeProvider(OperationsHarness.T0)
    {
        private int _timers;

        public int Timers => Volatile.Read(ref _timers);

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            Interlocked.Increment(ref _timers);
            return base.CreateTimer(callback, state, dueTime, period);
        }
    }

    [Fact]
    public async Task Waiting_for_the_archive_waits_on_the_clock_it_is_given_and_times_out_naming_the_missing_segment()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await h.ArchiveAsync(repo, "app", 1, 2); // 3 never arrives
        var clock = new CountingClock();
        var wait = PhysicalFiles.WaitForArchiveAsync(repo, "app", OperationsHarness.Segment(1), OperationsHarness.Segment(3), _ => Task.FromResult<string?>("pg_stat_archiver: last failed X"),
            TimeSpan.FromMinutes(5), clock, default);
        // The wait sleeps on this clock (a real Task.Delay would create no timer here), so moving it ends the wait.
        Assert.True(clock.Timers > 0, "the wait did not sleep on the clock it was given");
        for (var i = 0; i < 200 && !wait.IsCompleted; i++)
        {
            clock.Advance(TimeSpan.FromMinutes(1));
            await Task.Delay(5);
        }
        var e = await Assert.ThrowsAsync<PgToolException>(() => wait);
        Assert.Contains(OperationsHarness.Segment(3), e.Message, StringComparison.Ordinal);
        Assert.Contains("last failed X", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Waiting_for_the_archive_ends_when_the_last_segment_arrives()
    {
        using var h = new OperationsHarness();
        using var repo = await h.InitAsync();
        await h.ArchiveAsync(repo, "app", 1, 2);
        var wait = PhysicalFiles.WaitForArchiveAsync(repo, "app", OperationsHarness.Segment(1), OperationsHarness.Segment(3), _ => Task.FromResult<string?>(null), TimeSpan.FromMinutes(5), h.Clock, default);
        await new WalArchive(repo, "app").PutAsync(OperationsHarness.Segment(3), new byte[16], default);
        for (var i = 0; i < 200 && !wait.IsCompleted; i++)
        {
            h.Clock.Advance(TimeSpan.FromMilliseconds(200));
            await Task.Delay(5);
        }
        await wait;
    }

    [Fact]
    public void Read_data_subset_picks_the_same_wal_segments_for_the_same_seed_in_every_process()
    {
        var segments = Enumerable.Range(1, 40).Select(n => OperationsHarness.Segment(n)).ToList();
        var picked = segments.Where(s => WalVerification.Picked(s, 42, 0.25)).Select(s => Convert.ToInt32(s[16..], 16)).ToList();
        // Fixed numbers: a per-process hash (string.GetHashCode) would pick differently in every run.
        Assert.Equal([3, 6, 9, 19, 20, 24, 25, 28, 32, 37], picked); // FNV-1a 64 of the seed (little-endian) and the name, as computed independently
        Assert.NotEqual(picked, segments.Where(s => WalVerification.Picked(s, 43, 0.25)).Select(s => Convert.ToInt32(s[16..], 16)).ToList());
    }
}
