using System.Globalization;
using Cairn.Operations.Physical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Snapshots;

/// <summary>The kinds of snapshot (a manifest's <c>kind</c>).</summary>
public static class BackupKinds
{
    public const string Logical = "logical";
    public const string Physical = "physical";

    /// <summary>A file or stream stored with <c>cairn repo put</c>.</summary>
    public const string File = "file";
}

/// <summary>Which snapshots a selection looks among: one database's (by manifest name) and one kind's, when given.</summary>
public sealed record SnapshotFilter(string? Database = null, string? Kind = null)
{
    public bool Matches(Snapshot s) => (Database is null || s.Manifest.Name == Database) && (Kind is null || s.Manifest.Kind == Kind);
}

/// <summary>
/// The one answer to "which snapshot did the user mean": <c>latest</c> (or nothing) is the newest that matches
/// the filter; anything else is an ID prefix that must name exactly one snapshot that matches it. The other
/// question, for point-in-time recovery: the newest physical backup that finished before a recovery target.
/// </summary>
public static class SnapshotSelector
{
    public const string Latest = "latest";

    /// <summary>
    /// Chooses with <paramref name="choose"/> among the snapshot index's summaries, then loads the chosen manifest. The
    /// index is a cache, never trusted over the manifests: when the chosen manifest is unreadable or disagrees with its
    /// entry, the choice is made again from the manifests themselves (as it was before the index existed).
    /// </summary>
    public static async Task<Snapshot> ChooseAsync(Repository.Repository repo, Func<IReadOnlyList<Snapshot>, Snapshot> choose, CancellationToken cancellationToken)
    {
        var summaries = await repo.ListSnapshotSummariesAsync(null, null, cancellationToken).ConfigureAwait(false);
        try
        {
            if (await repo.LoadChosenAsync(choose(summaries), cancellationToken).ConfigureAwait(false) is { } chosen)
            {
                return chosen;
            }
        }
        catch (Exception e) when (e is DataDamagedException or System.Text.Json.JsonException or Repository.Storage.ObjectNotFoundException)
        {
            // Damaged or gone since it was indexed: the manifests decide below.
        }
        return choose(await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false));
    }

    /// <summary>The newest snapshot that <paramref name="matches"/>, or null: <see cref="ChooseAsync"/> without the error when none does.</summary>
    public static async Task<Snapshot?> NewestMatchingAsync(Repository.Repository repo, Func<Snapshot, bool> matches, CancellationToken cancellationToken)
    {
        var found = (await repo.ListSnapshotSummariesAsync(null, null, cancellationToken).ConfigureAwait(false)).LastOrDefault(matches);
        if (found is null)
        {
            return null;
        }
        try
        {
            if (await repo.LoadChosenAsync(found, cancellationToken).ConfigureAwait(false) is { } chosen)
            {
                return chosen;
            }
        }
        catch (Exception e) when (e is DataDamagedException or System.Text.Json.JsonException or Repository.Storage.ObjectNotFoundException)
        {
            // Damaged or gone since it was indexed: the manifests decide below.
        }
        return (await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).LastOrDefault(matches);
    }

    /// <summary>Picks a snapshot among <paramref name="snapshots"/> (oldest first, as the repository lists them).</summary>
    public static Snapshot Select(IReadOnlyList<Snapshot> snapshots, string? idOrLatest, SnapshotFilter filter)
    {
        if (idOrLatest is null or Latest)
        {
            return snapshots.LastOrDefault(filter.Matches) ?? throw new RepositoryException(ErrorKind.NotFound, NoneYet(filter));
        }
        var byId = snapshots.Where(s => s.Id.StartsWith(idOrLatest, StringComparison.OrdinalIgnoreCase)).ToList();
        var candidates = byId.Where(filter.Matches).ToList();
        return candidates.Count switch
        {
            1 => candidates[0],
            > 1 => throw new RepositoryException(ErrorKind.InvalidInput, $"snapshot prefix {idOrLatest} is ambiguous ({candidates.Count} candidates); give more characters"),
            _ when byId.Count == 1 => throw new RepositoryException(ErrorKind.InvalidInput, $"snapshot {byId[0].ShortId} is a {byId[0].Manifest.Kind} backup of {byId[0].Manifest.Name}, not {Wanted(filter)}"),
            _ => throw new RepositoryException(ErrorKind.NotFound, $"no snapshot {idOrLatest}{(filter.Database is { } db ? $" among the {Kind(filter)}backups of {db}" : "")}; list them with {ListCommand(filter)}"),
        };
    }

    /// <summary>
    /// The newest of <paramref name="physical"/> that can reach <paramref name="target"/>: finished before the target
    /// time, or stopped at or before the target LSN; the newest of all for other targets.
    /// </summary>
    public static Snapshot NewestBefore(IReadOnlyList<Snapshot> physical, RecoveryTarget target, string database)
    {
        if (physical.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, NoneYet(new SnapshotFilter(database, BackupKinds.Physical)));
        }
        IEnumerable<Snapshot> usable = physical;
        if (target.Time is { } t)
        {
            var when = DateTimeOffset.Parse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);
            usable = physical.Where(s => PhysicalBackupMeta.Of(s).StopTime < when);
        }
        else if (target.Lsn is { } l)
        {
            var lsn = WalNames.ParseLsn(l);
            usable = physical.Where(s => PhysicalBackupMeta.Of(s).StopLsnValue <= lsn);
        }
        var oldest = PhysicalBackupMeta.Of(physical[0]);
        return usable.LastOrDefault() ?? throw new RepositoryException(ErrorKind.NotFound,
            $"no physical backup of {database} finished before the target; the oldest ends at {oldest.StopTimeText} (LSN {oldest.StopLsn})");
    }

    private static string NoneYet(SnapshotFilter filter) => (filter.Kind, filter.Database) switch
    {
        (BackupKinds.Physical, { } db) => $"no physical backup of {db} yet; take one with 'cairn backup {db} --physical'",
        (BackupKinds.Logical, { } db) => $"no logical backup of {db} yet; take one with 'cairn backup {db}'",
        (null, { } name) => $"no snapshot named {name}; list them with 'cairn repo ls'",
        _ => "no snapshot yet; list them with 'cairn repo ls'",
    };

    private static string ListCommand(SnapshotFilter filter) => filter.Kind is null or BackupKinds.File ? "'cairn repo ls'" : "'cairn snapshots'";

    private static string Kind(SnapshotFilter filter) => filter.Kind is { } k ? k + " " : "";

    private static string Wanted(SnapshotFilter filter) => (filter.Kind, filter.Database) switch
    {
        ({ } k, { } db) => $"a {k} one of {db}",
        ({ } k, null) => $"a {k} one",
        (null, { } db) => $"one of {db}",
        _ => "what was asked for",
    };
}
