using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Physical;

/// <summary>
/// The WAL summary (docs/repository-format.md, "WAL summary"): which WAL files each database had in <c>wal/</c> when a
/// writer listed it, as runs of consecutive segments, so a reader that looks at years of WAL (the recovery windows of
/// <c>snapshots</c>) lists only what was archived since, not 100,000 objects. A cache: only what is listed exists. A
/// reader trusts it for what it covers, lists what sorts after it, and confirms a gap it shows with a listing; a
/// damaged or missing summary means a listing. A segment deleted after the summary was written is not seen through it,
/// which is why verify, restore, prune and copy never read it.
/// </summary>
public static class WalSummaries
{
    /// <summary>The most segments a summary may stand for (160 TB of 16 MiB segments): more is damage, not history.</summary>
    private const long MaxSegments = 10_000_000;

    /// <summary>
    /// Lists <c>wal/</c> as it is now, stores a summary of it and deletes the summaries it supersedes (not on an
    /// append-only storage). Written by physical backups and prune, which hold a lock; readers never write one.
    /// </summary>
    public static async Task<WalSummaryFile> WriteAsync(Repository.Repository repo, CancellationToken cancellationToken)
    {
        var before = await repo.ListWalSummariesAsync(cancellationToken).ConfigureAwait(false);
        var written = repo.Time.GetUtcNow();
        var all = await WalArchive.ListByDatabaseAsync(repo.Storage, cancellationToken).ConfigureAwait(false);
        var summary = Summarise(all, written);
        await repo.PutWalSummaryAsync(summary, before, cancellationToken).ConfigureAwait(false);
        return summary;
    }

    /// <summary>The summary of a listing (database → WAL files in name order).</summary>
    public static WalSummaryFile Summarise(IReadOnlyDictionary<string, List<WalObject>> byDatabase, DateTimeOffset written)
    {
        var databases = new List<WalSummaryDatabase>();
        foreach (var (db, objects) in byDatabase.OrderBy(d => d.Key, StringComparer.Ordinal))
        {
            if (objects.Count == 0)
            {
                continue;
            }
            var runs = new List<WalSummaryRun>();
            var files = new List<string>();
            string? first = null;
            string? last = null;
            foreach (var o in objects.OrderBy(o => o.Name, StringComparer.Ordinal))
            {
                if (!o.IsSegment)
                {
                    files.Add(o.Name);
                    continue;
                }
                if (last is not null && WalContinuity.Next(last) == o.Name)
                {
                    last = o.Name;
                    continue;
                }
                if (first is not null)
                {
                    runs.Add(new WalSummaryRun(first, last!));
                }
                first = last = o.Name;
            }
            if (first is not null)
            {
                runs.Add(new WalSummaryRun(first, last!));
            }
            var newest = WalArchive.NewestSegment(objects);
            databases.Add(new WalSummaryDatabase(db, objects.Select(o => o.Name).Max(StringComparer.Ordinal)!, runs, files,
                newest is null ? null : new WalSummaryObject(newest.Name, newest.Size, newest.LastModified)));
        }
        return new WalSummaryFile { Written = written, Databases = databases };
    }

    /// <summary>
    /// The archived WAL files of each database in <paramref name="fromWal"/> (database → the first WAL file its caller
    /// needs), in name order: from the newest summary plus a listing of what sorts after it, or, for a database the
    /// summary does not cover (or without a usable summary), from a listing from <c>fromWal</c> on. Objects known only
    /// from the summary carry no size or time (except its newest segment). <c>FromSummary</c> says which databases'
    /// files came partly from the summary: a gap there MUST be confirmed with a listing (<see cref="WalArchive.ListFromByDatabaseAsync"/>). Every database's WAL comes from one listing request.
    /// </summary>
    public static async Task<(Dictionary<string, List<WalObject>> Archived, HashSet<string> FromSummary)> ArchivedAsync(Repository.Repository repo,
        IReadOnlyDictionary<string, string> fromWal, Action<string>? onIgnored, CancellationToken cancellationToken)
    {
        var archived = new Dictionary<string, List<WalObject>>(StringComparer.Ordinal);
        var fromSummary = new HashSet<string>(StringComparer.Ordinal);
        var summary = fromWal.Count == 0 ? null : await repo.ReadNewestWalSummaryAsync(onIgnored, cancellationToken).ConfigureAwait(false);
        Dictionary<string, List<WalObject>>? expanded = null;
        if (summary is not null)
        {
            try
            {
                expanded = Expand(summary, fromWal.Keys);
            }
            catch (DataDamagedException e)
            {
                onIgnored?.Invoke($"the WAL summary of {summary.Written:u} is not used ({e.Message}); wal/ was listed instead");
            }
        }
        // One listing for every database: what sorts after the summary's end where the summary covers it, else from the
        // first WAL file the caller needs.
        var starts = new Dictionary<string, WalListStart>(StringComparer.Ordinal);
        foreach (var (db, from) in fromWal)
        {
            var entry = summary?.Databases.FirstOrDefault(d => d.Database == db);
            starts[db] = expanded is not null && entry is not null && expanded.ContainsKey(db) ? WalListStart.After(entry.Through) : WalListStart.From(from);
        }
        var listed = await WalArchive.ListFromByDatabaseAsync(repo.Storage, starts, cancellationToken).ConfigureAwait(false);
        foreach (var (db, start) in starts)
        {
            var tail = listed[db];
            if (start.Inclusive)
            {
                archived[db] = tail;
                continue;
            }
            // The summary names nothing after its end and the listing nothing before it: both in name order, no overlap.
            var known = expanded![db];
            var merged = new List<WalObject>(known.Count + tail.Count);
            merged.AddRange(known);
            merged.AddRange(tail);
            archived[db] = merged;
            fromSummary.Add(db);
        }
        return (archived, fromSummary);
    }

    /// <summary>The WAL files a summary names for <paramref name="databases"/>; damage (a name that is not WAL, a run that is not one) throws.</summary>
    internal static Dictionary<string, List<WalObject>> Expand(WalSummaryFile summary, IEnumerable<string> databases)
    {
        var wanted = databases.ToHashSet(StringComparer.Ordinal);
        var result = new Dictionary<string, List<WalObject>>(StringComparer.Ordinal);
        long total = 0;
        foreach (var d in summary.Databases.Where(d => wanted.Contains(d.Database)))
        {
            if (!WalNames.IsValid(d.Through) || d.Files.Any(f => !WalNames.IsValid(f) || WalNames.IsSegment(f)) || d.Newest is { } n && !WalNames.IsSegment(n.Name))
            {
                throw new DataDamagedException($"its entry for {d.Database} names a file that is not a WAL file name");
            }
            var list = new List<WalObject>();
            foreach (var r in d.Runs)
            {
                if (!WalNames.IsSegment(r.First) || !WalNames.IsSegment(r.Last) || r.First[..8] != r.Last[..8] || !InSegmentRange(r.First) || !InSegmentRange(r.Last)
                    || Position(r.First) > Position(r.Last))
                {
                    throw new DataDamagedException($"its entry for {d.Database} has a run {r.First}–{r.Last} that is not one (two timelines, or backwards)");
                }
                total += (long)(Position(r.Last) - Position(r.First)) + 1;
                if (total > MaxSegments)
                {
                    throw new DataDamagedException($"it stands for more than {MaxSegments} segments");
                }
                var timeline = r.First[..8];
                var end = Position(r.Last);
                for (var p = Position(r.First); p <= end; p++)
                {
                    var s = $"{timeline}{p / 0x100:X8}{p % 0x100:X8}";
                    list.Add(d.Newest is { } nw && nw.Name == s ? new WalObject(s, nw.Size, nw.Time) : new WalObject(s, 0, DateTimeOffset.MinValue));
                }
            }
            list.AddRange(d.Files.Select(f => new WalObject(f, 0, DateTimeOffset.MinValue)));
            if (list.Any(o => string.CompareOrdinal(o.Name, d.Through) > 0))
            {
                throw new DataDamagedException($"its entry for {d.Database} names a file after its 'through' {d.Through}");
            }
            list.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            result[d.Database] = list;
        }
        return result;
    }

    /// <summary>Whether the segment number fits 16 MiB segments (00–FF), the numbering <see cref="WalContinuity.Next"/> walks.</summary>
    private static bool InSegmentRange(string segment) => Convert.ToUInt32(segment[16..], 16) <= 0xFF;

    private static ulong Position(string segment) => Convert.ToUInt64(segment[8..16], 16) * 0x100 + Convert.ToUInt64(segment[16..], 16);
}

/// <summary>Writing the WAL summary where a command already changed the repository: a failure is a warning, never the command's failure.</summary>
internal static class WalSummaryWriter
{
    public static async Task TryWriteAsync(OperationContext context, Repository.Repository repo, CancellationToken cancellationToken)
    {
        try
        {
            await WalSummaries.WriteAsync(repo, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or RepositoryException or UnauthorizedAccessException or NotSupportedException)
        {
            context.Warn($"the WAL summary was not updated ({e.Message}); readers list wal/ instead, and the next physical backup writes it");
        }
    }
}
