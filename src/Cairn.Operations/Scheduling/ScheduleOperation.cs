namespace Cairn.Operations.Scheduling;

public sealed record ScheduleRequest(int Count = 3);

/// <summary>A scheduled job and its next run times (UTC).</summary>
public sealed record ScheduledRun(ScheduledJob Job, IReadOnlyList<DateTimeOffset> Next);

public sealed record ScheduleResult(IReadOnlyList<ScheduledRun> Runs);

/// <summary><c>schedule</c>: the next run times of every scheduled job in cairn.yaml.</summary>
public sealed class ScheduleOperation(OperationContext context)
{
    public ScheduleResult Run(ScheduleRequest request)
    {
        var now = context.Time.GetUtcNow();
        var n = Math.Max(1, request.Count);
        return new ScheduleResult([.. context.Config.Schedules.Select(j => new ScheduledRun(j, NextOf(j, now, n)))]);
    }

    private static List<DateTimeOffset> NextOf(ScheduledJob job, DateTimeOffset now, int count)
    {
        var list = new List<DateTimeOffset>();
        var t = now;
        for (var i = 0; i < count && job.Next(t) is { } next; i++)
        {
            list.Add(next);
            t = next;
        }
        return list;
    }
}
