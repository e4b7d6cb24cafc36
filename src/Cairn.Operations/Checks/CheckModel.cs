namespace Cairn.Operations.Checks;

public enum CheckStatus
{
    Pass,
    Fail,
    Error,
    Skip,
}

/// <summary>One check's outcome: what was expected, what was found, and why it failed or could not run.</summary>
public sealed record CheckResult(string Name, string Kind, string Expected, string Actual, CheckStatus Status, TimeSpan Duration, string? Detail = null)
{
    /// <summary>The check said <c>optional: true</c>: a skip of it does not fail the run.</summary>
    public bool Optional { get; init; }

    /// <summary>Only a check that ran and held passed; a skipped check did not.</summary>
    public bool Passed => Status == CheckStatus.Pass;

    public bool Skipped => Status == CheckStatus.Skip;

    public bool Failed => Status is CheckStatus.Fail or CheckStatus.Error;

    /// <summary>Whether this result fails the run: a failure always, a skip unless the check is optional or skips are allowed.</summary>
    public bool Blocks(bool allowSkipped) => Failed || (Skipped && !Optional && !allowSkipped);
}

/// <summary>
/// The verdict over a run's checks. A run passes only when every check passed, except skips that are allowed
/// (the check is <c>optional: true</c> or the command got <c>--allow-skipped</c>).
/// </summary>
public sealed record CheckTally(int Passed, int Failed, int Skipped, int SkippedNotAllowed)
{
    public bool Ok => Failed == 0 && SkippedNotAllowed == 0;

    public static CheckTally Of(IReadOnlyCollection<CheckResult> results, bool allowSkipped) => new(
        results.Count(r => r.Passed), results.Count(r => r.Failed), results.Count(r => r.Skipped), results.Count(r => r.Skipped && r.Blocks(allowSkipped)));

    /// <summary>The summary line's counts: "9 passed, 1 skipped" (and the failures when there are some).</summary>
    public override string ToString()
    {
        var parts = new List<string> { $"{Passed} passed" };
        if (Failed > 0)
        {
            parts.Add($"{Failed} failed");
        }
        if (Skipped > 0)
        {
            parts.Add(SkippedNotAllowed > 0 ? $"{Skipped} skipped ({SkippedNotAllowed} not optional)" : $"{Skipped} skipped");
        }
        return string.Join(", ", parts);
    }
}

/// <summary>A declared check. Identifiers in its SQL are quoted; its SQL runs read-only.</summary>
public abstract record CheckSpec(string Name, string Kind)
{
    /// <summary><c>optional: true</c> in cairn.yaml: the check may be skipped (when it cannot run) without failing the run.</summary>
    public bool Optional { get; init; }
}

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

/// <summary>
/// Whether objects a restore left out (the target lacks an extension; event triggers without a superuser) fail the run:
/// only those whose cause is in <see cref="AllowSkipped"/> (<c>extension NAME</c>, <c>event trigger</c>) are accepted.
/// Runs after a logical restore only (drills); elsewhere it is skipped, never passed.
/// </summary>
public sealed record RestoreCompleteCheck(IReadOnlyList<string> AllowSkipped) : CheckSpec("restore_complete", "restore_complete")
{
    /// <summary>The causes a restore skips objects for (<see cref="Cairn.PostgreSql.Logical.SkippedObject.Cause"/>).</summary>
    public static bool IsCause(string text) => text == "event trigger"
        || (text.StartsWith("extension ", StringComparison.Ordinal) && text.Length > "extension ".Length && !text["extension ".Length..].Contains(' ', StringComparison.Ordinal));
}

/// <summary>
/// A Supabase project's auth survived: the <c>auth</c> schema and <c>auth.users</c> present, as many users as the backup
/// had, no row of <see cref="Profiles"/> whose <see cref="UserColumn"/> names a user that is not there, the functions
/// <c>auth.uid()</c> and <c>auth.jwt()</c> present, and as many RLS policies calling them as the backup had.
/// </summary>
public sealed record SupabaseAuthCheck(string Profiles, string UserColumn) : CheckSpec("supabase_auth", "supabase_auth");

/// <summary>A Supabase project's Storage metadata survived: the buckets, and each bucket's <c>storage.objects</c> rows, as the backup had them.</summary>
public sealed record StorageObjectsCheck() : CheckSpec("storage_objects", "storage_objects");
