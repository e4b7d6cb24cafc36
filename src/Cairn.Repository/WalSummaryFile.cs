namespace Cairn.Repository;

/// <summary>
/// The stored WAL summary (<c>wal-summary/&lt;sha256&gt;</c>, docs/repository-format.md "WAL summary"): which WAL files
/// each database had in <c>wal/</c> when it was written. A cache; the listing decides.
/// </summary>
public sealed record WalSummaryFile
{
    public int Version { get; init; } = 1;

    /// <summary>When the listing it summarises was taken.</summary>
    public DateTimeOffset Written { get; init; }

    public List<WalSummaryDatabase> Databases { get; init; } = [];
}

/// <param name="Database">The database (the part of the object names before <c>@</c>).</param>
/// <param name="Through">The last WAL file name of the database in name order: everything up to it is summarised, what sorts after it is listed.</param>
/// <param name="Runs">Consecutive segments of one timeline, first and last.</param>
/// <param name="Files">Every other WAL file (history files, backup labels, partial segments).</param>
/// <param name="Newest">The newest segment as listed (name, size, when stored), or null when there is none.</param>
public sealed record WalSummaryDatabase(string Database, string Through, List<WalSummaryRun> Runs, List<string> Files, WalSummaryObject? Newest);

public sealed record WalSummaryRun(string First, string Last);

public sealed record WalSummaryObject(string Name, long Size, DateTimeOffset Time);
