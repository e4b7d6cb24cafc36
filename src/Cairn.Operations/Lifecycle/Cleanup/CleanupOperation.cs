using System.Diagnostics;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Lifecycle;
using Cairn.Repository;
using Npgsql;

namespace Cairn.Operations.Lifecycle.Cleanup;

/// <param name="Rule">Only this rule (numbered from 1 in cairn.yaml's order); all when null.</param>
/// <param name="Pause">A sleep between batches, so replication and vacuum keep up.</param>
public sealed record CleanupRequest(DatabaseTarget Database, bool DryRun = false, int? Rule = null, TimeSpan Pause = default);

/// <summary>A foreign-key path a rule's delete reaches: "a → b → c", what the last key does, and the rows it reaches now.</summary>
public sealed record CascadeReport(string Path, string Table, string Action, long Rows);

public sealed record PartitionReport(string Partition, string Bound, long Rows);

/// <summary>One rule's plan and (after a run) what it did. <see cref="Refused"/> says why it may not run.</summary>
public sealed record CleanupRuleReport(int Rule, string Table, string TimeColumn, string? Where, DateTimeOffset Cutoff, long RowsMatching, IReadOnlyList<PartitionReport> Partitions,
    IReadOnlyList<CascadeReport> Cascades, string? Refused, long RowsDeleted, int PartitionsDropped, bool Done);

/// <param name="Partial">Interrupted between batches (Ctrl-C) or stopped by an error: the rules' figures say what was done.</param>
public sealed record CleanupResult(string Database, bool DryRun, DateTimeOffset ServerTime, IReadOnlyList<CleanupRuleReport> Rules, bool Partial, string? Error, TimeSpan Duration)
{
    public long RowsDeleted => Rules.Sum(r => r.RowsDeleted);
}

/// <summary>Progress of a run: the rule, the table, the rows deleted so far of the rows that matched at the start.</summary>
public sealed record CleanupProgress(int Rule, string Table, long Deleted, long Expected);

/// <summary>
/// <c>cairn cleanup DATABASE</c>: the <c>cleanup:</c> rules of cairn.yaml, run safely on a live database. Every cutoff is
/// computed once from the server's clock at the start; rows go in short keyset batches (lock and statement timeouts set),
/// partitions wholly before the cutoff are detached and dropped, cascades into tables a rule does not name are refused,
/// Ctrl-C stops between batches, and each run is one evidence record (<c>cleanup</c>).
/// </summary>
public sealed class CleanupOperation(OperationContext context)
{
    public async Task<CleanupResult> RunAsync(CleanupRequest request, IProgress<CleanupProgress>? progress, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var rules = (db.Config?.Cleanup ?? []).Where(r => request.Rule is null || r.Number == request.Rule).ToList();
        if (rules.Count == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, request.Rule is { } n
                ? $"{db.Name} has no cleanup rule {n} (it has {db.Config?.Cleanup.Count ?? 0}); rules are numbered from 1 in cairn.yaml's order"
                : $"no cleanup rules for {db.Name}: add a cleanup: list under databases.{db.Name} in cairn.yaml, e.g. - {{ table: public.audit_log, time_column: created_at, older_than: 1y }}");
        }
        var sw = Stopwatch.StartNew();
        try
        {
            return await RunRulesAsync(request, rules, sw, progress, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!request.DryRun && e is NpgsqlException or PgToolException or RepositoryException)
        {
            // A run that could not start is on the record too (the daemon finds its last run there).
            context.Evidence.Record(new CleanupEvent(db.Connection.Redacted, [], false, e is PostgresException pe ? $"{pe.MessageText} ({pe.SqlState})" : e.Message)
            {
                Repository = context.RepositoryText ?? "",
                Database = db.Name,
                Result = "error",
                DurationMs = (long)sw.Elapsed.TotalMilliseconds,
            });
            throw;
        }
    }

    private async Task<CleanupResult> RunRulesAsync(CleanupRequest request, List<CleanupRule> rules, Stopwatch sw, IProgress<CleanupProgress>? progress, CancellationToken cancellationToken)
    {
        var db = request.Database;
        await using var c = await db.Connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        var now = await LiveTables.ServerNowAsync(c, cancellationToken).ConfigureAwait(false);
        var plans = new List<(CleanupRule Rule, CleanupTarget Target, CleanupRuleReport Report, List<DroppablePartition> Drop)>();
        foreach (var rule in rules)
        {
            plans.Add(await PlanAsync(c, rule, now, cancellationToken).ConfigureAwait(false));
        }
        if (request.DryRun)
        {
            return new CleanupResult(db.Name, true, now, [.. plans.Select(p => p.Report)], false, null, sw.Elapsed);
        }
        if (plans.FirstOrDefault(p => p.Report.Refused is not null) is { Report.Refused: { } refused })
        {
            throw new RepositoryException(ErrorKind.InvalidInput, refused + "; nothing was deleted ('cairn cleanup --dry-run' shows every rule's plan)");
        }
        var done = new List<CleanupRuleReport>();
        string? error = null;
        var partial = false;
        try
        {
            foreach (var plan in plans)
            {
                var t = plan.Rule.Timeouts;
                await LiveTables.SetTimeoutsAsync(c, t.Lock, t.Statement, cancellationToken).ConfigureAwait(false);
                var (report, interrupted) = await RunRuleOrExplainAsync(c, plan, request.Pause, progress, done, cancellationToken).ConfigureAwait(false);
                done.Add(report);
                if (interrupted)
                {
                    partial = true;
                    error = "interrupted between batches";
                    break;
                }
            }
        }
        catch (Exception e) when (e is NpgsqlException or PgToolException)
        {
            partial = true;
            error = e is PostgresException pe ? $"{pe.MessageText} ({pe.SqlState})" : e.Message;
        }
        done.AddRange(plans.Skip(done.Count).Select(p => p.Report));
        var result = new CleanupResult(db.Name, false, now, done, partial, error, sw.Elapsed);
        context.Evidence.Record(new CleanupEvent(db.Connection.Redacted, result.Rules, partial, error)
        {
            Repository = context.RepositoryText ?? "",
            Database = db.Name,
            Result = error is null ? "pass" : "error",
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
        });
        return result;
    }

    /// <summary>
    /// Runs one rule; a timeout becomes an error that names the timeout, its value, the cairn.yaml key that set it and the
    /// fix (the batches before it stay deleted: each is its own transaction). The rule's figures so far are added to <paramref name="done"/>.
    /// </summary>
    private async Task<(CleanupRuleReport, bool)> RunRuleOrExplainAsync(NpgsqlConnection c, (CleanupRule Rule, CleanupTarget Target, CleanupRuleReport Report, List<DroppablePartition> Drop) plan, TimeSpan pause,
        IProgress<CleanupProgress>? progress, List<CleanupRuleReport> done, CancellationToken ct)
    {
        var sofar = plan.Report;
        try
        {
            return await RunRuleAsync(c, plan.Target, plan.Report, plan.Drop, plan.Rule.BatchSize, pause, new Tracking(progress, p => sofar = plan.Report with { RowsDeleted = p.Deleted }), ct).ConfigureAwait(false);
        }
        catch (PostgresException e) when (TimeoutMessage(plan.Rule, e) is { } message)
        {
            done.Add(sofar);
            throw new PgToolException(message);
        }
    }

    /// <summary>Why a batch stopped when it was one of the rule's timeouts (lock_not_available 55P03, or a statement timeout 57014), else null.</summary>
    internal static string? TimeoutMessage(CleanupRule rule, PostgresException e)
    {
        var t = rule.Timeouts;
        var what = $"cleanup rule {rule.Number} ({rule.Table})";
        return e.SqlState switch
        {
            PostgresErrorCodes.LockNotAvailable =>
                $"{what} stopped: lock_timeout {Duration(t.Lock)} ran out waiting for a lock on the table (another session holds it); raise {t.LockKey} in cairn.yaml, " +
                "or run when the table is less busy. Batches before it stay deleted",
            PostgresErrorCodes.QueryCanceled when e.MessageText.Contains("statement timeout", StringComparison.Ordinal) =>
                $"{what} stopped: a batch ran longer than statement_timeout {Duration(t.Statement)}; lower the rule's batch_size, add an index on its time column, " +
                $"or raise {t.StatementKey} in cairn.yaml. Batches before it stay deleted",
            _ => null,
        };
    }

    private static string Duration(TimeSpan d) => d.TotalMilliseconds < 1000 || d.Milliseconds != 0 ? $"{(long)d.TotalMilliseconds}ms"
        : d.TotalSeconds < 60 || d.Seconds != 0 ? $"{(long)d.TotalSeconds}s" : d.TotalMinutes < 60 || d.Minutes != 0 ? $"{(long)d.TotalMinutes}m" : $"{(long)d.TotalHours}h";

    /// <summary>Passes progress on and remembers the last figures (what a rule that stops on a timeout had done).</summary>
    private sealed class Tracking(IProgress<CleanupProgress>? inner, Action<CleanupProgress> last) : IProgress<CleanupProgress>
    {
        public void Report(CleanupProgress value)
        {
            last(value);
            inner?.Report(value);
        }
    }

    private static async Task<(CleanupRule, CleanupTarget, CleanupRuleReport, List<DroppablePartition>)> PlanAsync(NpgsqlConnection c, CleanupRule rule, DateTimeOffset now, CancellationToken ct)
    {
        var what = $"cleanup rule {rule.Number} ({rule.Table})";
        var table = await LiveTables.FindAsync(c, rule.Table.Schema, rule.Table.Name, ct).ConfigureAwait(false);
        await LiveTables.RequireColumnAsync(c, table, rule.TimeColumn, what, ct).ConfigureAwait(false);
        if (rule.Where is { } where)
        {
            await LiveTables.ValidateConditionAsync(c, table, where, what + " where", ct).ConfigureAwait(false);
        }
        var target = new CleanupTarget(table, rule.TimeColumn, rule.Where, now - rule.OlderThan);
        var cascades = await CleanupSql.CascadesAsync(c, target, ct).ConfigureAwait(false);
        // Whole partitions go only when every row in them is the rule's: no extra condition, and nothing references the table.
        var drop = rule.Where is null && cascades.Count == 0 ? await CleanupSql.WhollyBeforeAsync(c, target, ct).ConfigureAwait(false) : [];
        var count = await CleanupSql.CountAsync(c, target, ct).ConfigureAwait(false);
        var cascadeRows = cascades.Select(e => new CascadeReport(string.Join(" → ", [table.Display, .. e.Path.Select(f => f.Child.Display)]), e.Last.Child.Display, e.Last.Action, e.Rows)).ToList();
        string? refused = null;
        var into = cascades.Where(e => e.Last.Cascades).ToList();
        if (into.Count > 0 && !rule.Cascade)
        {
            refused = $"{what} would cascade into {string.Join(", ", into.Select(e => $"{e.Last.Child.Display} ({e.Rows} rows now, via {e.Last.Constraint})"))}, which it does not name: add cleanup rules for those tables first, or set cascade: true on the rule";
        }
        var blocked = cascades.Where(e => e.Last.Blocks && e.Rows > 0).ToList();
        if (refused is null && blocked.Count > 0)
        {
            refused = $"{what} is blocked by {string.Join(", ", blocked.Select(e => $"{e.Last.Child.Display} ({e.Rows} rows reference rows it would delete, {e.Last.Constraint} {e.Last.Action})"))}: clean those rows first";
        }
        var report = new CleanupRuleReport(rule.Number, table.Display, rule.TimeColumn, rule.Where, target.Cutoff, count, [.. drop.Select(d => new PartitionReport(d.Partition.Display, d.Bound, d.Rows))],
            cascadeRows, refused, 0, 0, false);
        return (rule, target, report, drop);
    }

    /// <summary>Runs one rule; true when Ctrl-C stopped it between batches (what was done is in the report).</summary>
    private async Task<(CleanupRuleReport, bool)> RunRuleAsync(NpgsqlConnection c, CleanupTarget target, CleanupRuleReport report, List<DroppablePartition> drop, int batchSize, TimeSpan pause,
        IProgress<CleanupProgress>? progress, CancellationToken ct)
    {
        long deleted = 0;
        var dropped = 0;
        CleanupRuleReport Now(bool finished) => report with { RowsDeleted = deleted, PartitionsDropped = dropped, Done = finished };
        foreach (var part in drop)
        {
            if (ct.IsCancellationRequested)
            {
                return (Now(false), true);
            }
            // The rows were counted at plan time; a partition wholly before the cutoff gets no new rows (they would be older than the cutoff).
            await CleanupSql.DetachAndDropAsync(c, target.Table, part.Partition, CancellationToken.None).ConfigureAwait(false);
            deleted += part.Rows;
            dropped++;
            progress?.Report(new CleanupProgress(report.Rule, report.Table, deleted, report.RowsMatching));
        }
        var leaves = await CleanupSql.LeavesAsync(c, target.Table, drop.Select(d => d.Partition.Oid).ToHashSet(), CancellationToken.None).ConfigureAwait(false);
        foreach (var leaf in leaves)
        {
            object[]? after = null;
            while (true)
            {
                if (ct.IsCancellationRequested)
                {
                    return (Now(false), true);
                }
                // A batch is never cancelled half-way: it is short (statement_timeout bounds it), and stopping between batches keeps the count exact.
                var (n, next) = await CleanupSql.DeleteBatchAsync(c, target, leaf, batchSize, after, CancellationToken.None).ConfigureAwait(false);
                deleted += n;
                progress?.Report(new CleanupProgress(report.Rule, report.Table, deleted, report.RowsMatching));
                if (next is null)
                {
                    break;
                }
                after = next.Length == 0 ? null : next;
                if (pause > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(pause, context.Time, ct).ConfigureAwait(false);
                    }
                    catch (OperationCanceledException) when (ct.IsCancellationRequested)
                    {
                        return (Now(false), true);
                    }
                }
            }
        }
        return (Now(true), false);
    }
}
