using System.Globalization;
using Cairn.PostgreSql.Connections;

namespace Cairn.PostgreSql.Sessions;

/// <summary>A relation amcheck verifies: a valid B-tree index (bt_index_check) or a heap (verify_heapam).</summary>
/// <param name="Table">For an index, the table it indexes; for a heap, the heap itself.</param>
public sealed record AmcheckTarget(long Oid, string Schema, string Name, bool IsIndex, string TableSchema, string Table)
{
    public string Display => Schema + "." + Name;

    public string TableDisplay => TableSchema + "." + Table;
}

/// <summary>One problem amcheck reported; <see cref="Block"/> when verify_heapam named the page.</summary>
public sealed record AmcheckFinding(AmcheckTarget Target, long? Block, string Message)
{
    /// <summary>The line drills and checks have always printed: "index s.i: …" or "table s.t block N: …".</summary>
    public string Line => Target.IsIndex ? $"index {Target.Display}: {Message}" : Block is { } b ? $"table {Target.Display} block {b}: {Message}" : $"table {Target.Display}: {Message}";
}

/// <summary>
/// PostgreSQL's amcheck, shared by the amcheck check (drills, verify --live) and <c>assess</c>: which relations to verify,
/// verifying one, and verifying many over parallel read-only sessions. An error while reading a relation (a page whose
/// checksum fails, a missing file) is a finding on that relation, not an error of the run.
/// </summary>
public static class Amcheck
{
    public static async Task<bool> InstalledAsync(CheckSession session, CancellationToken cancellationToken)
        => (await session.QueryAsync("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'", null, cancellationToken).ConfigureAwait(false)).Count > 0;

    /// <summary>Every valid, non-temporary B-tree index outside the system schemas, then every table, materialized view and TOAST table.</summary>
    public static async Task<List<AmcheckTarget>> TargetsAsync(CheckSession session, CancellationToken cancellationToken)
    {
        var targets = new List<AmcheckTarget>();
        foreach (var r in await session.QueryAsync(
            "SELECT c.oid::int8, n.nspname, c.relname, tn.nspname, t.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            + "JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace JOIN pg_am am ON am.oid = c.relam "
            + "WHERE am.amname = 'btree' AND c.relkind = 'i' AND c.relpersistence <> 't' AND i.indisvalid AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY c.oid",
            null, cancellationToken).ConfigureAwait(false))
        {
            targets.Add(new AmcheckTarget(Convert.ToInt64(r[0], CultureInfo.InvariantCulture), (string)r[1]!, (string)r[2]!, true, (string)r[3]!, (string)r[4]!));
        }
        foreach (var r in await session.QueryAsync(
            "SELECT c.oid::int8, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','m','t') AND c.relpersistence <> 't' AND n.nspname NOT IN ('pg_catalog','information_schema') ORDER BY c.oid",
            null, cancellationToken).ConfigureAwait(false))
        {
            targets.Add(new AmcheckTarget(Convert.ToInt64(r[0], CultureInfo.InvariantCulture), (string)r[1]!, (string)r[2]!, false, (string)r[1]!, (string)r[2]!));
        }
        return targets;
    }

    /// <summary>Verifies one relation; at most <paramref name="maxPerHeap"/> findings per heap.</summary>
    public static async Task<List<AmcheckFinding>> CheckAsync(CheckSession session, AmcheckTarget target, bool heapAllIndexed, CancellationToken cancellationToken, int maxPerHeap = 3)
    {
        var parameters = new Dictionary<string, object?> { ["oid"] = target.Oid };
        try
        {
            if (target.IsIndex)
            {
                await session.QueryAsync($"SELECT bt_index_check(index => @oid::oid, heapallindexed => {(heapAllIndexed ? "true" : "false")})", parameters, cancellationToken).ConfigureAwait(false);
                return [];
            }
            var bad = await session.QueryAsync($"SELECT blkno, msg FROM verify_heapam(@oid::oid) LIMIT {maxPerHeap.ToString(CultureInfo.InvariantCulture)}", parameters, cancellationToken).ConfigureAwait(false);
            return [.. bad.Select(b => new AmcheckFinding(target, b[0] is null ? null : Convert.ToInt64(b[0], CultureInfo.InvariantCulture), b[1] as string ?? ""))];
        }
        catch (CheckQueryException e)
        {
            return [new AmcheckFinding(target, null, e.Message)];
        }
    }

    /// <summary>
    /// Verifies <paramref name="targets"/> over <paramref name="jobs"/> sessions at once (largest first is the caller's
    /// choice of order); <paramref name="progress"/> hears each relation as it is done.
    /// </summary>
    public static async Task<List<AmcheckFinding>> CheckAllAsync(PgConnection connection, IReadOnlyList<AmcheckTarget> targets, bool heapAllIndexed, int jobs, TimeSpan statementTimeout,
        IProgress<AmcheckTarget>? progress, CancellationToken cancellationToken)
    {
        var next = -1;
        var findings = new List<AmcheckFinding>();
        async Task Worker()
        {
            await using var session = await CheckSession.OpenAsync(connection, statementTimeout, cancellationToken).ConfigureAwait(false);
            int i;
            while ((i = Interlocked.Increment(ref next)) < targets.Count)
            {
                var found = await CheckAsync(session, targets[i], heapAllIndexed, cancellationToken).ConfigureAwait(false);
                lock (findings)
                {
                    findings.AddRange(found);
                }
                progress?.Report(targets[i]);
            }
        }
        await Task.WhenAll(Enumerable.Range(0, Math.Clamp(jobs, 1, Math.Max(1, targets.Count))).Select(_ => Worker())).ConfigureAwait(false);
        return [.. findings.OrderBy(f => f.Target.Oid).ThenBy(f => f.Block)];
    }
}
