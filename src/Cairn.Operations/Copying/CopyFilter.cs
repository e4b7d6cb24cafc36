using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.Operations.Configuration;
using Cairn.Operations.Snapshots;
using Cairn.Repository;
using Cairn.Repository.Copying;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Copying;

/// <summary>
/// Which part of the primary a copy takes: the snapshots of <see cref="Databases"/> (a snapshot's database is its
/// manifest name; none named: every database) taken at or after <see cref="Since"/> (a date/time, or a duration
/// counted back from now; null: any time), and the WAL, ledger entries and pins they need (docs/repository-format.md,
/// "Filtered copies and copies into a repository with other keys").
/// </summary>
public sealed partial record CopyFilter(IReadOnlyList<string> Databases, string? Since)
{
    public static readonly CopyFilter All = new([], null);

    public bool IsAll => Databases.Count == 0 && Since is null;

    /// <summary>How the filter reads in output and on the record ("" when it takes everything).</summary>
    public string Describe(DateTimeOffset now) => string.Join("; ", new[]
    {
        Databases.Count > 0 ? "databases " + string.Join(", ", Databases) : null,
        Since is { } s ? $"since {SinceTime(s, now):yyyy-MM-dd HH:mm:ss}Z" : null,
    }.OfType<string>());

    /// <summary><paramref name="text"/> as a point in time: a duration (7d, 12h) back from <paramref name="now"/>, or a UTC date/time.</summary>
    public static DateTimeOffset SinceTime(string text, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (CairnConfig.TryParseDuration(text, out var d))
        {
            return now - d;
        }
        if (DateOnly().IsMatch(text.Trim()) || DateTimeText().IsMatch(text.Trim()))
        {
            if (DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t))
            {
                return t;
            }
        }
        throw new RepositoryException(ErrorKind.InvalidInput, $"since '{text}' is neither a date/time (2026-11-01, 2026-11-01T12:00:00Z) nor a duration back from now (7d, 12h, 30m)");
    }

    /// <summary>
    /// The plan for <see cref="SnapshotCopier"/>: the matching snapshots (manifests loaded), for each database with a
    /// copied physical backup the WAL from the oldest one's start_wal on (any timeline, with every history file), the
    /// ledger of the named databases (of every database when none is named). A database named that has no snapshot
    /// in the primary is an error naming the databases that have.
    /// </summary>
    public async Task<SnapshotCopyPlan> PlanAsync(Repository.Repository source, DateTimeOffset now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        var all = await source.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false);
        foreach (var db in Databases.Where(d => !all.Any(s => s.Manifest.Name == d)))
        {
            var known = all.Where(s => s.Manifest.Kind is BackupKinds.Logical or BackupKinds.Physical).Select(s => s.Manifest.Name).Distinct().Order(StringComparer.Ordinal).ToList();
            throw new RepositoryException(ErrorKind.InvalidInput, $"--database {db}: the primary holds no snapshot of it (its databases: {(known.Count == 0 ? "none" : string.Join(", ", known))}); nothing was copied");
        }
        var since = Since is { } s ? SinceTime(s, now) : (DateTimeOffset?)null;
        var chosen = all.Where(x => (Databases.Count == 0 || Databases.Contains(x.Manifest.Name)) && (since is null || x.Manifest.Time >= since)).ToList();
        var walNames = new List<string>();
        var archived = await NamedFiles.ListAsync(source, "", cancellationToken).ConfigureAwait(false);
        if (IsAll)
        {
            walNames.AddRange(archived.Select(a => a.Name));
        }
        else
        {
            foreach (var group in chosen.Where(x => x.Manifest.Kind == BackupKinds.Physical).GroupBy(x => x.Manifest.Name))
            {
                var starts = group.Select(x => x.Manifest.Meta.GetValueOrDefault("start_wal")).OfType<string>().Where(w => WalName().IsMatch(w)).Select(w => w[8..24]).Order(StringComparer.Ordinal).ToList();
                if (starts.Count == 0)
                {
                    continue;
                }
                var first = starts[0];
                var prefix = group.Key + "@";
                foreach (var (name, _) in archived.Where(a => a.Name.StartsWith(prefix, StringComparison.Ordinal)))
                {
                    var file = name[prefix.Length..];
                    if (HistoryName().IsMatch(file) || (file.Length >= 24 && WalName().IsMatch(file[..24]) && string.CompareOrdinal(file[8..24], first) >= 0))
                    {
                        walNames.Add(name);
                    }
                }
            }
        }
        var ledger = Databases.Count > 0 ? Databases : await ErasureLedger.DatabasesAsync(source, cancellationToken).ConfigureAwait(false);
        return new SnapshotCopyPlan(chosen, walNames, ledger);
    }

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}\z")]
    private static partial Regex DateOnly();

    [GeneratedRegex(@"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")]
    private static partial Regex DateTimeText();

    [GeneratedRegex("^[0-9A-F]{24}\\z")]
    private static partial Regex WalName();

    [GeneratedRegex("^[0-9A-F]{8}\\.history\\z")]
    private static partial Regex HistoryName();
}
