namespace Cairn.Operations.Checks;

public enum CheckStatus
{
    Pass,
    Fail,
    Error,
    Skip,
}

/// <summary>One check's outcome: what was expected, what was found, and why it failed.</summary>
public sealed record CheckResult(string Name, string Kind, string Expected, string Actual, CheckStatus Status, TimeSpan Duration, string? Detail = null)
{
    public bool Passed => Status is CheckStatus.Pass or CheckStatus.Skip;
}

/// <summary>A declared check. Identifiers in its SQL are quoted; its SQL runs read-only.</summary>
public abstract record CheckSpec(string Name, string Kind);

public sealed record TablesPresentCheck(IReadOnlyList<string> Tables) : CheckSpec("tables_present", "tables_present");

public sealed record RowCountsCheck(IReadOnlyList<string>? Tables, bool EqualToFingerprint, long? Min, long? Max, double? MaxChange)
    : CheckSpec("row_counts", "row_counts");

public sealed record RlsEnabledCheck(string? Schema, IReadOnlyList<string>? Tables) : CheckSpec("rls_enabled", "rls_enabled");

public sealed record ForeignKeysCheck() : CheckSpec("foreign_keys", "foreign_keys");

public sealed record AuditContinuityCheck(string Table, string TimeColumn, TimeSpan MaxGap) : CheckSpec($"audit_continuity {Table}", "audit_continuity");

public sealed record SqlCheck(string CheckName, string Query, Expectation Expect) : CheckSpec(CheckName, "sql");

public sealed record AmcheckCheck(bool HeapAllIndexed) : CheckSpec("amcheck", "amcheck");

/// <summary>No subject of the erasure ledger is present in the database (drills, restores, <c>verify --live</c>).</summary>
public sealed record ErasuresAppliedCheck() : CheckSpec("erasures_applied", "erasures_applied");

public sealed record CommandCheck(string CheckName, string Run, TimeSpan Timeout) : CheckSpec(CheckName, "command");
