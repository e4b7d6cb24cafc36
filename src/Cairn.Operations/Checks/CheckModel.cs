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
/// only those whose cause is in <see cref="AllowSkipped"/> (<c>extension NAME</c>, <c>event trigger</c>, <c>role NAME</c>: a grant, policy or
/// ownership naming a role the target lacks) are accepted. A NAME may hold <c>*</c> wildcards (any run of characters, none
/// included): <c>role *</c> accepts every missing role, <c>extension pg_*</c> every extension whose name starts with pg_. The kind
/// is never a wildcard: a pattern only ever matches causes of its own kind.
/// Runs after a logical restore only (drills); elsewhere it is skipped, never passed.
/// </summary>
public sealed record RestoreCompleteCheck(IReadOnlyList<string> AllowSkipped) : CheckSpec("restore_complete", "restore_complete")
{
    /// <summary>The causes a restore skips objects for (<see cref="Cairn.PostgreSql.Logical.SkippedObject.Cause"/>).</summary>
    public static bool IsCause(string text) => text == "event trigger"
        || (text.StartsWith("extension ", StringComparison.Ordinal) && text.Length > "extension ".Length && !text["extension ".Length..].Contains(' ', StringComparison.Ordinal))
        || (text.StartsWith("role ", StringComparison.Ordinal) && text.Length > "role ".Length);

    /// <summary>Whether <paramref name="cause"/> is accepted by one of <see cref="AllowSkipped"/>.</summary>
    public bool Allows(string cause) => AllowSkipped.Any(p => Matches(p, cause));

    /// <summary>
    /// Whether the pattern <paramref name="allowed"/> (a cause, its name possibly with <c>*</c>) accepts <paramref name="cause"/>:
    /// the kinds (<c>extension </c>, <c>role </c>, <c>event trigger</c>) must be equal, and only the name after the kind is
    /// matched with wildcards, so <c>role *</c> can never accept an extension.
    /// </summary>
    public static bool Matches(string allowed, string cause)
    {
        if (allowed == "event trigger" || cause == "event trigger")
        {
            return allowed == cause;
        }
        foreach (var kind in (string[])["extension ", "role "])
        {
            if (allowed.StartsWith(kind, StringComparison.Ordinal))
            {
                return cause.StartsWith(kind, StringComparison.Ordinal) && Glob(allowed[kind.Length..], cause[kind.Length..]);
            }
        }
        return false;
    }

    /// <summary><c>*</c> matches any run of characters (none included); every other character matches itself.</summary>
    private static bool Glob(string pattern, string name)
    {
        var parts = pattern.Split('*');
        if (parts.Length == 1)
        {
            return pattern == name;
        }
        if (!name.StartsWith(parts[0], StringComparison.Ordinal) || !name.EndsWith(parts[^1], StringComparison.Ordinal) || name.Length < parts[0].Length + parts[^1].Length)
        {
            return false;
        }
        var at = parts[0].Length;
        var end = name.Length - parts[^1].Length;
        foreach (var middle in parts[1..^1])
        {
            var i = name.IndexOf(middle, at, end - at, StringComparison.Ordinal);
            if (i < 0)
            {
                return false;
            }
            at = i + middle.Length;
        }
        return true;
    }
}

/// <summary>
/// A Supabase project's auth survived: the <c>auth</c> schema and <c>auth.users</c> present, as many users as the backup
/// had, no row of <see cref="Profiles"/> whose <see cref="UserColumn"/> names a user that is not there, the functions
/// <c>auth.uid()</c> and <c>auth.jwt()</c> present, and as many RLS policies calling them as the backup had.
/// </summary>
public sealed record SupabaseAuthCheck(string Profiles, string UserColumn) : CheckSpec("supabase_auth", "supabase_auth");

/// <summary>A Supabase project's Storage metadata survived: the buckets, and each bucket's <c>storage.objects</c> rows, as the backup had them.</summary>
public sealed record StorageObjectsCheck() : CheckSpec("storage_objects", "storage_objects");

/// <summary>
/// Every <c>storage.objects</c> row (of <see cref="Buckets"/>, or of all buckets) of the restored database has its file in the
/// backup's storage part, with the size its metadata records when it records one. Runs in drills only; elsewhere it is
/// skipped, never passed.
/// </summary>
public sealed record StorageFilesCheck(IReadOnlyList<string>? Buckets) : CheckSpec("storage_files", "storage_files");

/// <summary>What a drill's backup holds of the Storage files: the buckets, and each file's size by (bucket, key); <see cref="None"/> when it holds none.</summary>
public sealed record StorageFilesView(IReadOnlySet<string> Buckets, IReadOnlyDictionary<(string Bucket, string Key), long> Sizes, IReadOnlySet<(string Bucket, string Key)> Vanished)
{
    public static StorageFilesView None { get; } = new(new HashSet<string>(), new Dictionary<(string, string), long>(), new HashSet<(string, string)>());

    public bool HoldsAny => Buckets.Count > 0;
}
