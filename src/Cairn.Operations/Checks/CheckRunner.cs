using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Sessions;

namespace Cairn.Operations.Checks;

/// <summary>What checks run against, and what they compare with.</summary>
public sealed record CheckTarget(
    PgConnection Connection,
    DateTimeOffset BackupTime,
    Fingerprint? Fingerprint,
    Fingerprint? PreviousFingerprint,
    bool IsScratchCopy,
    string Url,
    IReadOnlyDictionary<string, string>? CommandEnvironment = null,
    IReadOnlyList<Lifecycle.Erasure.ErasureEntry>? Erasures = null,
    IReadOnlyList<SkippedObject>? Skipped = null,
    StorageFilesView? StorageFiles = null);

/// <summary>
/// Runs declared checks. A check that errors (bad SQL, missing table, timeout) fails and says why;
/// nothing passes silently. SQL runs in read-only transactions with a statement timeout.
/// </summary>
public static partial class CheckRunner
{
    public static async Task<List<CheckResult>> RunAsync(IReadOnlyList<CheckSpec> checks, CheckTarget target, TimeSpan statementTimeout, CancellationToken ct)
    {
        var results = new List<CheckResult>();
        await using var session = await CheckSession.OpenAsync(target.Connection, statementTimeout, ct).ConfigureAwait(false);
        foreach (var check in checks)
        {
            var sw = Stopwatch.StartNew();
            CheckResult r;
            try
            {
                r = await RunOneAsync(check, session, target, ct).ConfigureAwait(false);
            }
            catch (CheckQueryException e)
            {
                r = new CheckResult(check.Name, check.Kind, "the check runs", Cause(e.SqlState), CheckStatus.Error, default, e.Message);
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException or InvalidCastException or TimeoutException)
            {
                r = new CheckResult(check.Name, check.Kind, "the check runs", e is TimeoutException ? "timed out" : "error", CheckStatus.Error, default, e.Message);
            }
            results.Add(r with { Duration = sw.Elapsed, Optional = check.Optional });
        }
        return results;
    }

    /// <summary>What went wrong, by SQLSTATE: a timeout, a lost connection, or an error in the query itself.</summary>
    internal static string Cause(string sqlState) => sqlState switch
    {
        "57014" => "statement timed out",
        "55P03" => "lock timed out",
        "57P01" or "57P02" or "57P03" => "connection lost",
        _ when sqlState.StartsWith("08", StringComparison.Ordinal) => "connection lost",
        _ => "query error",
    };

    /// <summary>Why an <c>= fingerprint</c> comparison cannot run here, and what would run it.</summary>
    private static string NoFingerprint(CheckTarget t) => t.IsScratchCopy
        ? "needs a logical backup's fingerprint: physical backups carry none; run it in a logical drill ('cairn drill DATABASE') or mark the check optional: true"
        : "needs a backup's fingerprint: run it in a drill ('cairn drill DATABASE'); on the live database mark it optional: true or pass --allow-skipped";

    private static Task<CheckResult> RunOneAsync(CheckSpec check, CheckSession s, CheckTarget t, CancellationToken ct) => check switch
    {
        TablesPresentCheck c => TablesPresentAsync(c, s, ct),
        RowCountsCheck c => RowCountsAsync(c, s, t, ct),
        RlsEnabledCheck c => RlsAsync(c, s, ct),
        ForeignKeysCheck c => ForeignKeysAsync(c, s, t, ct),
        AuditContinuityCheck c => AuditAsync(c, s, ct),
        SqlCheck c => SqlAsync(c, s, t, ct),
        AmcheckCheck c => AmcheckAsync(c, s, t, ct),
        CommandCheck c => CommandAsync(c, t, ct),
        ErasuresAppliedCheck c => ErasuresAppliedAsync(c, s, t, ct),
        RestoreCompleteCheck c => Task.FromResult(RestoreComplete(c, t)),
        SupabaseAuthCheck c => SupabaseAuthAsync(c, s, t, ct),
        StorageObjectsCheck c => StorageObjectsAsync(c, s, t, ct),
        StorageFilesCheck c => StorageFilesAsync(c, s, t, ct),
        _ => throw new InvalidOperationException($"unknown check {check.Kind}"),
    };

    /// <summary>
    /// Every subject of the erasure ledger is absent: its row in the subject table, and rows holding its identifier in the
    /// named delete and anonymize tables. Without the ledger the check errors (a skipped check is never a pass).
    /// </summary>
    private static async Task<CheckResult> ErasuresAppliedAsync(ErasuresAppliedCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        if (t.Erasures is not { } entries)
        {
            return new CheckResult(c.Name, c.Kind, "no erased subject present", "ledger not read", CheckStatus.Error, default, "the erasure ledger could not be read (this run has no repository); the check cannot tell");
        }
        var present = new List<string>();
        foreach (var e in entries)
        {
            var places = new List<(string Schema, string Table, string Column)> { (e.Spec.SubjectSchema, e.Spec.SubjectTable, e.Spec.KeyColumn) };
            places.AddRange(e.Spec.Delete.Select(d => (d.Schema, d.Table, d.Column)));
            places.AddRange(e.Spec.Anonymize.Select(a => (a.Schema, a.Table, a.MatchColumn)));
            foreach (var (schema, table, column) in places)
            {
                var rows = await s.QueryAsync($"SELECT count(*) FROM {Catalog.Qualified(schema, table)} WHERE {Catalog.Quote(column)}::text = @id",
                    new Dictionary<string, object?> { ["id"] = e.Subject }, ct).ConfigureAwait(false);
                var n = Convert.ToInt64(rows[0][0], CultureInfo.InvariantCulture);
                if (n > 0)
                {
                    // The keyed hash, never the identifier: check details reach the evidence log.
                    present.Add($"{e.SubjectHash[..12]}… ({n} rows in {Catalog.Display(schema)}.{Catalog.Display(table)})");
                }
            }
        }
        return new CheckResult(c.Name, c.Kind, $"none of {entries.Count} erased subjects present", present.Count == 0 ? "none present" : $"{present.Count} present",
            present.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, present.Count == 0 ? null : "erased subjects found again: " + string.Join("; ", present));
    }

    private const string AuthUsersValue = "cairn:supabase_auth:users";
    private const string AuthPoliciesValue = "cairn:supabase_auth:policies";
    private const string BucketsValue = "cairn:storage_objects:buckets";

    /// <summary>
    /// The RLS policies that call auth.uid() or auth.jwt() (by the catalog's dependencies, not by their text), as a JSON array
    /// of schema.table.policy (a name may hold a comma; fingerprints of older backups hold them comma-joined: <see cref="SplitList"/>).
    /// </summary>
    private const string AuthPoliciesQuery = """
        SELECT coalesce(jsonb_agg(x.name ORDER BY x.name), '[]')::text FROM (
          SELECT DISTINCT n.nspname || '.' || c.relname || '.' || p.polname AS name
          FROM pg_depend d JOIN pg_policy p ON d.classid = 'pg_policy'::regclass AND d.objid = p.oid
          JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE d.refclassid = 'pg_proc'::regclass
            AND d.refobjid IN (SELECT f.oid FROM pg_proc f JOIN pg_namespace fn ON fn.oid = f.pronamespace WHERE fn.nspname = 'auth' AND f.proname IN ('uid', 'jwt'))) x
        """;

    /// <summary>Every bucket with its number of storage.objects rows, as a JSON object id: count (older fingerprints: id=count,id=count).</summary>
    private const string BucketsQuery = "SELECT coalesce(jsonb_object_agg(b.id::text, (SELECT count(*) FROM storage.objects o WHERE o.bucket_id = b.id)), '{}')::text FROM storage.buckets b";

    /// <summary>
    /// The named scalar queries a backup evaluates in its own snapshot and keeps in the fingerprint, for the checks that
    /// compare with it: <c>sql</c> checks expecting <c>= fingerprint</c>, <c>supabase_auth</c> and <c>storage_objects</c>.
    /// </summary>
    public static List<(string Name, string Query)> FingerprintQueries(IEnumerable<CheckSpec> checks)
    {
        var list = new List<(string Name, string Query)>();
        foreach (var check in checks)
        {
            switch (check)
            {
                case SqlCheck c when c.Expect.Fingerprint:
                    list.Add((c.Name, BindBackupTime(c.Query)));
                    break;
                case SupabaseAuthCheck:
                    list.Add((AuthUsersValue, "SELECT count(*) FROM auth.users"));
                    list.Add((AuthPoliciesValue, AuthPoliciesQuery));
                    break;
                case StorageObjectsCheck:
                    list.Add((BucketsValue, BucketsQuery));
                    break;
            }
        }
        return [.. list.DistinctBy(q => q.Name)];
    }

    private static async Task<CheckResult> SupabaseAuthAsync(SupabaseAuthCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        const string expected = "auth schema, auth.users, auth.uid(), auth.jwt(), every profile's user, users and auth policies as in the backup";
        var present = await s.QueryAsync(
            "SELECT to_regnamespace('auth') IS NOT NULL, to_regclass('auth.users') IS NOT NULL, to_regprocedure('auth.uid()') IS NOT NULL, to_regprocedure('auth.jwt()') IS NOT NULL", null, ct).ConfigureAwait(false);
        var problems = new List<string>();
        if (!(bool)present[0][0]! || !(bool)present[0][1]!)
        {
            return new CheckResult(c.Name, c.Kind, expected, (bool)present[0][0]! ? "no auth.users" : "no auth schema", CheckStatus.Fail, default,
                "the auth schema and its users table are not in this database: back them up (with the supabase preset, auth is data the backup keeps)");
        }
        foreach (var (fn, i) in new[] { ("auth.uid()", 2), ("auth.jwt()", 3) })
        {
            if (!(bool)present[0][i]!)
            {
                problems.Add($"function {fn} is missing (RLS policies calling it cannot work)");
            }
        }
        var users = Convert.ToInt64((await s.QueryAsync("SELECT count(*) FROM auth.users", null, ct).ConfigureAwait(false))[0][0], CultureInfo.InvariantCulture);
        var (pSchema, pTable) = Catalog.ParseQualified(c.Profiles);
        var profilesExist = (bool)(await s.QueryAsync("SELECT to_regclass(@t) IS NOT NULL", new Dictionary<string, object?> { ["t"] = Catalog.Qualified(pSchema, pTable) }, ct).ConfigureAwait(false))[0][0]!;
        if (!profilesExist)
        {
            problems.Add($"profiles table {c.Profiles} not found (name yours: supabase_auth: {{ profiles: SCHEMA.TABLE, user_column: COLUMN }})");
        }
        else
        {
            var col = Catalog.Quote(c.UserColumn);
            var orphans = Convert.ToInt64((await s.QueryAsync(
                $"SELECT count(*) FROM {Catalog.Qualified(pSchema, pTable)} p WHERE p.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM auth.users u WHERE u.id = p.{col})", null, ct).ConfigureAwait(false))[0][0], CultureInfo.InvariantCulture);
            if (orphans > 0)
            {
                problems.Add($"{orphans} row(s) of {c.Profiles} name a user ({c.UserColumn}) that auth.users does not have");
            }
        }
        var policies = SplitList((string?)(await s.QueryAsync(AuthPoliciesQuery, null, ct).ConfigureAwait(false))[0][0]);
        var actual = $"{users} users, {policies.Count} policies calling auth.uid()/auth.jwt()";
        if (!t.IsScratchCopy || t.Fingerprint is null)
        {
            // Users and policies "as in the backup" were not compared: not a pass, even when the rest held.
            return problems.Count > 0
                ? new CheckResult(c.Name, c.Kind, expected, actual, CheckStatus.Fail, default, string.Join("; ", problems))
                : new CheckResult(c.Name, c.Kind, expected, actual, CheckStatus.Skip, default, "the schema, functions and profiles held, but users and policies were not compared with the backup: " + NoFingerprint(t));
        }
        var fpUsers = t.Fingerprint.Tables.FirstOrDefault(x => x.Schema == "auth" && x.Name == "users")?.Rows
            ?? (t.Fingerprint.CheckValues?.TryGetValue(AuthUsersValue, out var u) == true && long.TryParse(u, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : null);
        if (fpUsers is null || t.Fingerprint.CheckValues?.TryGetValue(AuthPoliciesValue, out var fpPolicies) != true)
        {
            return new CheckResult(c.Name, c.Kind, expected, actual, CheckStatus.Error, default,
                "the backup's fingerprint has no auth figures (the check was added after the backup was taken, or the backup could not read auth.users)" + (problems.Count > 0 ? "; " + string.Join("; ", problems) : ""));
        }
        if (fpUsers != users)
        {
            problems.Add($"auth.users has {users} rows, the backup had {fpUsers}");
        }
        var missing = SplitList(fpPolicies).Except(policies, StringComparer.Ordinal).ToList();
        if (missing.Count > 0)
        {
            problems.Add($"RLS policies calling auth.uid()/auth.jwt() missing: {string.Join(", ", missing)}");
        }
        return new CheckResult(c.Name, c.Kind, expected, actual, problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    private static async Task<CheckResult> StorageObjectsAsync(StorageObjectsCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        const string expected = "every bucket with its storage.objects rows, as in the backup";
        var present = await s.QueryAsync("SELECT to_regclass('storage.buckets') IS NOT NULL AND to_regclass('storage.objects') IS NOT NULL", null, ct).ConfigureAwait(false);
        if (!(bool)present[0][0]!)
        {
            return new CheckResult(c.Name, c.Kind, expected, "no storage.buckets/storage.objects", CheckStatus.Fail, default, "Storage's metadata tables are not in this database: back up the storage schema's data");
        }
        var buckets = BucketCounts((string?)(await s.QueryAsync(BucketsQuery, null, ct).ConfigureAwait(false))[0][0]);
        var actual = $"{buckets.Count} buckets, {buckets.Values.Sum()} objects";
        if (!t.IsScratchCopy || t.Fingerprint is null)
        {
            return new CheckResult(c.Name, c.Kind, expected, actual, CheckStatus.Skip, default, NoFingerprint(t));
        }
        if (t.Fingerprint.CheckValues?.TryGetValue(BucketsValue, out var fpText) != true)
        {
            return new CheckResult(c.Name, c.Kind, expected, actual, CheckStatus.Error, default, "the backup's fingerprint has no bucket figures (the check was added after the backup was taken, or the backup could not read storage.buckets)");
        }
        var fp = BucketCounts(fpText);
        var problems = new List<string>();
        foreach (var (bucket, rows) in fp)
        {
            if (!buckets.TryGetValue(bucket, out var now))
            {
                problems.Add($"bucket {bucket} is missing (the backup had it with {rows} objects)");
            }
            else if (now != rows)
            {
                problems.Add($"bucket {bucket}: {now} objects, the backup had {rows}");
            }
        }
        problems.AddRange(buckets.Keys.Except(fp.Keys, StringComparer.Ordinal).Select(b => $"bucket {b} was not in the backup"));
        return new CheckResult(c.Name, c.Kind, expected, actual, problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    /// <summary>Each storage.objects row against the backup's storage part: the file is there, with the size the row's metadata records.</summary>
    private static async Task<CheckResult> StorageFilesAsync(StorageFilesCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        var expected = c.Buckets is { } chosen ? $"every storage.objects row of {string.Join(", ", chosen)} has its file in the backup" : "every storage.objects row has its file in the backup";
        if (t.StorageFiles is not { } files)
        {
            return new CheckResult(c.Name, c.Kind, expected, "no backup's files here", CheckStatus.Skip, default,
                "compares the restored rows with the files a backup holds: run it in a logical drill ('cairn drill DATABASE'), or mark it optional: true");
        }
        var present = await s.QueryAsync("SELECT to_regclass('storage.objects') IS NOT NULL", null, ct).ConfigureAwait(false);
        if (!(bool)present[0][0]!)
        {
            return new CheckResult(c.Name, c.Kind, expected, "no storage.objects", CheckStatus.Fail, default, "Storage's metadata table storage.objects is not in this database: back up the storage schema's data");
        }
        var rows = await s.QueryAsync("SELECT bucket_id::text, name::text, metadata->>'size' FROM storage.objects ORDER BY 1, 2", null, ct).ConfigureAwait(false);
        var missing = new List<string>();
        var sizes = new List<string>();
        var bucketsWithout = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var counted = 0;
        foreach (var r in rows)
        {
            var bucket = (string?)r[0] ?? "";
            var name = (string?)r[1] ?? "";
            if (c.Buckets is { } only && !only.Contains(bucket, StringComparer.Ordinal))
            {
                continue;
            }
            counted++;
            if (!files.Buckets.Contains(bucket))
            {
                bucketsWithout[bucket] = bucketsWithout.GetValueOrDefault(bucket) + 1;
                continue;
            }
            if (!files.Sizes.TryGetValue((bucket, name), out var size))
            {
                missing.Add($"{bucket}/{StorageFiles.StorageNames.Display(name)}{(files.Vanished.Contains((bucket, name)) ? " (deleted from the bucket while the backup ran)" : "")}");
            }
            else if (r[2] is string text && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var recorded) && recorded != size)
            {
                sizes.Add($"{bucket}/{StorageFiles.StorageNames.Display(name)} ({size} bytes in the backup, {recorded} in its metadata)");
            }
        }
        var problems = new List<string>();
        if (!files.HoldsAny)
        {
            problems.Add("the backup holds no Storage files: configure storage_buckets for this database and take a backup");
        }
        problems.AddRange(bucketsWithout.Select(b => $"bucket {b.Key}: {b.Value} row(s), but the backup holds none of its files (add it to storage_buckets.buckets, or limit the check: storage_files: {{ buckets: [...] }})"));
        if (missing.Count > 0)
        {
            problems.Add($"{missing.Count} file(s) missing from the backup: {string.Join(", ", missing.Take(20))}{(missing.Count > 20 ? $", and {missing.Count - 20} more" : "")}");
        }
        if (sizes.Count > 0)
        {
            problems.Add($"{sizes.Count} file(s) of another size: {string.Join(", ", sizes.Take(20))}{(sizes.Count > 20 ? $", and {sizes.Count - 20} more" : "")}");
        }
        var bad = missing.Count + sizes.Count + bucketsWithout.Values.Sum();
        return new CheckResult(c.Name, c.Kind, expected, $"{counted - bad} of {counted} rows have their file", problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default,
            problems.Count == 0 ? null : string.Join("; ", problems));
    }

    /// <summary>
    /// A list of names kept in a fingerprint: a JSON array, or comma-joined text in the fingerprints of older backups
    /// (which may itself start with '[': a policy named "[legacy]"), so text that is not a JSON array of strings is the
    /// older form.
    /// </summary>
    private static List<string> SplitList(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }
        if (text.StartsWith('[') && TryJson(text) is JsonArray array && array.All(x => x is JsonValue v && v.TryGetValue<string>(out _)))
        {
            return [.. array.Select(x => x!.GetValue<string>())];
        }
        return [.. text.Split(',')];
    }

    /// <summary>Bucket counts kept in a fingerprint: a JSON object, or id=count,… in the fingerprints of older backups.</summary>
    private static Dictionary<string, long> BucketCounts(string? text)
    {
        if (text is not null && text.StartsWith('{') && TryJson(text) is JsonObject o && o.All(p => p.Value is JsonValue v && v.TryGetValue<long>(out _)))
        {
            return o.ToDictionary(p => p.Key, p => p.Value!.GetValue<long>(), StringComparer.Ordinal);
        }
        return SplitList(text).Select(x => x.Split('=')).Where(p => p.Length >= 2)
            .ToDictionary(p => string.Join('=', p[..^1]), p => long.Parse(p[^1], CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }

    private static JsonNode? TryJson(string text)
    {
        try
        {
            return JsonNode.Parse(text);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>Objects the restore left out are judged: each must have a cause the check allows.</summary>
    private static CheckResult RestoreComplete(RestoreCompleteCheck c, CheckTarget t)
    {
        var expected = c.AllowSkipped.Count == 0 ? "every object restored" : $"every object restored, except for {string.Join(", ", c.AllowSkipped)}";
        if (t.Skipped is null)
        {
            return new CheckResult(c.Name, c.Kind, expected, "no logical restore here", CheckStatus.Skip, default,
                "judges what a logical restore left out: run it in a logical drill ('cairn drill DATABASE'), or mark it optional: true");
        }
        var notAllowed = t.Skipped.Where(x => !c.Allows(x.Cause)).ToList();
        var detail = new List<string>();
        if (notAllowed.Count > 0)
        {
            detail.Add($"skipped and not allowed: {string.Join("; ", notAllowed.Take(20).Select(x => $"{x.Entry} ({x.Cause})"))}{(notAllowed.Count > 20 ? $"; and {notAllowed.Count - 20} more" : "")}"
                + $"; restore where {string.Join(" and ", notAllowed.Select(x => x.Cause).Distinct())} exist(s) (drill: {{ on: URL }}), or allow it: restore_complete: {{ allow_skipped: [{string.Join(", ", notAllowed.Select(x => x.Cause).Distinct())}] }}"
                + (notAllowed.Select(x => x.Cause).Where(x => x.StartsWith("role ", StringComparison.Ordinal)).Distinct().Count() > 1 ? " (a wildcard accepts several: role * for every missing role, or e.g. role supabase_*)" : ""));
        }
        if (t.Skipped.Count > notAllowed.Count)
        {
            detail.Add($"skipped as allowed: {string.Join("; ", t.Skipped.Where(x => c.Allows(x.Cause)).Take(20).Select(x => $"{x.Entry} ({x.Cause})"))}");
        }
        return new CheckResult(c.Name, c.Kind, expected, t.Skipped.Count == 0 ? "every object restored" : $"{t.Skipped.Count} object(s) skipped, {notAllowed.Count} not allowed",
            notAllowed.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, detail.Count == 0 ? null : string.Join("; ", detail));
    }

    private static async Task<CheckResult> TablesPresentAsync(TablesPresentCheck c, CheckSession s, CancellationToken ct)
    {
        var missing = new List<string>();
        foreach (var name in c.Tables)
        {
            var (schema, table) = Catalog.ParseQualified(name);
            var rows = await s.QueryAsync("SELECT 1 FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = @s AND t.relname = @t AND t.relkind IN ('r','p','v','m','f')",
                new Dictionary<string, object?> { ["s"] = schema, ["t"] = table }, ct).ConfigureAwait(false);
            if (rows.Count == 0)
            {
                missing.Add(name);
            }
        }
        return new CheckResult(c.Name, c.Kind, $"{c.Tables.Count} tables present", $"{c.Tables.Count - missing.Count} present",
            missing.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, missing.Count == 0 ? null : "missing: " + string.Join(", ", missing));
    }

    private static async Task<long> CountWithPartitionsAsync(CheckSession s, string schema, string table, CancellationToken ct)
    {
        var rows = await s.QueryAsync($"SELECT count(*) FROM {Catalog.Qualified(schema, table)}", null, ct).ConfigureAwait(false);
        return Convert.ToInt64(rows[0][0], CultureInfo.InvariantCulture);
    }

    /// <summary>Rows the fingerprint holds for a table, summing partitions for a partitioned table.</summary>
    private static async Task<long?> FingerprintRowsAsync(CheckSession s, Fingerprint? fp, string schema, string table, CancellationToken ct)
    {
        if (fp is null)
        {
            return null;
        }
        var direct = fp.Tables.FirstOrDefault(x => x.Schema == schema && x.Name == table);
        var parts = await s.QueryAsync(
            "WITH RECURSIVE tree(oid) AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = @s AND c.relname = @t UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid) " +
            "SELECT n.nspname, c.relname FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'",
            new Dictionary<string, object?> { ["s"] = schema, ["t"] = table }, ct).ConfigureAwait(false);
        if (parts.Count == 0)
        {
            return direct?.Rows;
        }
        long sum = 0;
        var found = false;
        foreach (var p in parts)
        {
            var e = fp.Tables.FirstOrDefault(x => x.Schema == (string)p[0]! && x.Name == (string)p[1]!);
            if (e is not null)
            {
                sum += e.Rows;
                found = true;
            }
        }
        return found ? sum : direct?.Rows;
    }

    private static async Task<CheckResult> RowCountsAsync(RowCountsCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        var tables = c.Tables?.Select(Catalog.ParseQualified).ToList()
            ?? t.Fingerprint?.Tables.Where(x => x.Kind == "table").Select(x => (x.Schema, x.Name)).ToList()
            ?? [];
        var problems = new List<string>();
        var left = new List<string>();
        long total = 0;
        foreach (var (schema, table) in tables)
        {
            var name = $"{schema}.{table}";
            if (t.Skipped?.Any(x => x.IsTable(schema, table)) == true)
            {
                left.Add(name);
                continue; // left out by the restore, with its cause: restore_complete judges it
            }
            long actual;
            try
            {
                actual = await CountWithPartitionsAsync(s, schema, table, ct).ConfigureAwait(false);
            }
            catch (CheckQueryException e)
            {
                problems.Add($"{name}: {e.Message}");
                continue;
            }
            total += actual;
            if (c.EqualToFingerprint)
            {
                if (!t.IsScratchCopy || t.Fingerprint is null)
                {
                    continue; // a live database moves on from its last backup: nothing to compare with
                }
                var expected = await FingerprintRowsAsync(s, t.Fingerprint, schema, table, ct).ConfigureAwait(false);
                if (expected is null)
                {
                    problems.Add($"{name}: not in the backup's fingerprint");
                }
                else if (expected != actual)
                {
                    problems.Add($"{name}: {actual} rows, the fingerprint says {expected}");
                }
            }
            if (c.Min is { } min && actual < min)
            {
                problems.Add($"{name}: {actual} rows < min {min}");
            }
            if (c.Max is { } max && actual > max)
            {
                problems.Add($"{name}: {actual} rows > max {max}");
            }
            if (c.MaxChange is { } mc)
            {
                var prev = await FingerprintRowsAsync(s, t.PreviousFingerprint, schema, table, ct).ConfigureAwait(false);
                if (prev is { } p && p > 0 && Math.Abs(actual - p) / (double)p > mc)
                {
                    problems.Add($"{name}: {actual} rows vs {p} in the previous backup ({(actual - p) * 100.0 / p:+0.#;-0.#}%, more than {mc * 100:0.#}%)");
                }
            }
        }
        var expectedText = string.Join(", ", new[] { c.EqualToFingerprint ? "= fingerprint" : null, c.Min is { } a ? $">= {a}" : null, c.Max is { } b ? $"<= {b}" : null, c.MaxChange is { } m ? $"change <= {m * 100:0.#}%" : null }.Where(x => x is not null));
        var status = problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail;
        if (c.EqualToFingerprint && (!t.IsScratchCopy || t.Fingerprint is null) && problems.Count == 0)
        {
            // The comparison the check asks for did not happen, so it did not pass, even when its bounds held.
            var held = c.Min is not null || c.Max is not null || c.MaxChange is not null ? "the bounds held, but = fingerprint was not compared: " : "";
            return new CheckResult(c.Name, c.Kind, expectedText, $"{total} rows in {tables.Count} tables", CheckStatus.Skip, default, held + NoFingerprint(t));
        }
        if (left.Count > 0)
        {
            problems.Add($"not counted, left out by the restore (see restore_complete): {string.Join(", ", left)}");
        }
        return new CheckResult(c.Name, c.Kind, expectedText, $"{total} rows in {tables.Count - left.Count} tables", status, default, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    private static async Task<CheckResult> RlsAsync(RlsEnabledCheck c, CheckSession s, CancellationToken ct)
    {
        var rows = await s.QueryAsync(
            "SELECT n.nspname, t.relname, t.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = t.oid) FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace WHERE t.relkind IN ('r','p') AND NOT t.relispartition AND n.nspname NOT IN ('pg_catalog','information_schema')",
            null, ct).ConfigureAwait(false);
        var wanted = c.Tables?.Select(Catalog.ParseQualified).Select(x => $"{x.Schema}.{x.Name}").ToHashSet(StringComparer.Ordinal);
        var selected = rows.Where(r => wanted is not null ? wanted.Contains($"{r[0]}.{r[1]}") : (string)r[0]! == (c.Schema ?? "public")).ToList();
        var off = selected.Where(r => !(bool)r[2]!).Select(r => $"{r[0]}.{r[1]}").ToList();
        var missing = wanted?.Where(w => !selected.Any(r => $"{r[0]}.{r[1]}" == w)).ToList() ?? [];
        var policies = selected.Sum(r => Convert.ToInt64(r[3], CultureInfo.InvariantCulture));
        var detail = new List<string>();
        if (off.Count > 0)
        {
            detail.Add("RLS disabled on: " + string.Join(", ", off));
        }
        if (missing.Count > 0)
        {
            detail.Add("tables not found: " + string.Join(", ", missing));
        }
        return new CheckResult(c.Name, c.Kind, $"RLS enabled on every table{(wanted is null ? $" in {c.Schema ?? "public"}" : "")}",
            $"{selected.Count - off.Count}/{selected.Count} tables, {policies} policies", detail.Count == 0 && selected.Count > 0 ? CheckStatus.Pass : CheckStatus.Fail, default,
            detail.Count > 0 ? string.Join("; ", detail) : selected.Count == 0 ? "no tables matched" : null);
    }

    private static async Task<CheckResult> ForeignKeysAsync(ForeignKeysCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        var fks = await s.QueryAsync(
            """
            SELECT k.conname, cn.nspname, cl.relname, fn.nspname, fl.relname, k.convalidated,
                   (SELECT array_agg(a.attname ORDER BY x.ord) FROM unnest(k.conkey) WITH ORDINALITY x(attnum, ord) JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum),
                   (SELECT array_agg(a.attname ORDER BY x.ord) FROM unnest(k.confkey) WITH ORDINALITY x(attnum, ord) JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.attnum)
            FROM pg_constraint k JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace
            JOIN pg_class fl ON fl.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = fl.relnamespace
            WHERE k.contype = 'f' AND k.conparentid = 0 ORDER BY 2, 3, 1
            """, null, ct).ConfigureAwait(false);
        var problems = new List<string>();
        long orphans = 0;
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var fk in fks)
        {
            var name = $"{fk[1]}.{fk[2]}.{fk[0]}";
            names.Add(name);
            if (!(bool)fk[5]!)
            {
                problems.Add($"{name} is NOT VALID");
            }
            var cols = (string[])fk[6]!;
            var refs = (string[])fk[7]!;
            var notNull = string.Join(" AND ", cols.Select(x => $"c.{Catalog.Quote(x)} IS NOT NULL"));
            var match = string.Join(" AND ", cols.Zip(refs).Select(p => $"p.{Catalog.Quote(p.Second)} = c.{Catalog.Quote(p.First)}"));
            var count = await s.QueryAsync($"SELECT count(*) FROM {Catalog.Qualified((string)fk[1]!, (string)fk[2]!)} c WHERE {notNull} AND NOT EXISTS (SELECT 1 FROM {Catalog.Qualified((string)fk[3]!, (string)fk[4]!)} p WHERE {match})", null, ct).ConfigureAwait(false);
            var n = Convert.ToInt64(count[0][0], CultureInfo.InvariantCulture);
            if (n > 0)
            {
                orphans += n;
                problems.Add($"{name}: {n} orphan row(s) in {fk[1]}.{fk[2]} without a match in {fk[3]}.{fk[4]}");
            }
        }
        if (t.IsScratchCopy && t.Fingerprint?.ForeignKeys is { Count: > 0 } expected)
        {
            // A foreign key the restore left out (its table depends on an extension the target lacks) is restore_complete's to judge.
            // A name with a dot or a space does not match its list entry here, and is then reported missing: never the other way round.
            foreach (var e in expected.Where(e => !names.Contains(e) && t.Skipped?.Any(x => x.Entry.StartsWith($"FK CONSTRAINT {e.Replace('.', ' ')} ", StringComparison.Ordinal)) != true))
            {
                problems.Add($"{e} is missing from the restored copy");
            }
        }
        return new CheckResult(c.Name, c.Kind, "every foreign key present, validated, no orphan rows", $"{fks.Count} foreign keys, {orphans} orphan rows",
            problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, problems.Count == 0 ? null : string.Join("; ", problems));
    }

    private static async Task<CheckResult> AuditAsync(AuditContinuityCheck c, CheckSession s, CancellationToken ct)
    {
        var (schema, table) = Catalog.ParseQualified(c.Table);
        var col = Catalog.Quote(c.TimeColumn);
        var rows = await s.QueryAsync(
            $"SELECT extract(epoch FROM g)::float8, prev, cur FROM (SELECT {col} - lag({col}) OVER (ORDER BY {col}) AS g, lag({col}) OVER (ORDER BY {col}) AS prev, {col} AS cur FROM {Catalog.Qualified(schema, table)}) x WHERE g IS NOT NULL ORDER BY g DESC LIMIT 1",
            null, ct).ConfigureAwait(false);
        if (rows.Count == 0)
        {
            return new CheckResult(c.Name, c.Kind, $"no gap > {Fmt(c.MaxGap)}", "fewer than two rows", CheckStatus.Fail, default, $"{c.Table} has fewer than two rows: no trail to judge");
        }
        var gap = TimeSpan.FromSeconds((double)rows[0][0]!);
        var ok = gap <= c.MaxGap;
        return new CheckResult(c.Name, c.Kind, $"no gap > {Fmt(c.MaxGap)}", $"largest gap {Fmt(gap)}", ok ? CheckStatus.Pass : CheckStatus.Fail, default,
            ok ? null : $"no {c.Table} rows between {Stamp(rows[0][1])} and {Stamp(rows[0][2])}");
    }

    private static string Stamp(object? v) => v switch
    {
        DateTime d => d.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        DateTimeOffset o => o.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };

    [GeneratedRegex(@"(?<!:):backup_time\b")]
    private static partial Regex BackupTimeToken();

    /// <summary>Replaces <c>:backup_time</c> with a parameter holding the backup's consistency point.</summary>
    public static string BindBackupTime(string query) => BackupTimeToken().Replace(query, "@backup_time::timestamptz");

    private static async Task<CheckResult> SqlAsync(SqlCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        var rows = await s.QueryAsync(BindBackupTime(c.Query), new Dictionary<string, object?> { ["backup_time"] = t.BackupTime }, ct).ConfigureAwait(false);
        if (rows.Count == 0 || rows[0].Length == 0 || rows[0][0] is null)
        {
            return new CheckResult(c.Name, c.Kind, c.Expect.ToString(), "no value", CheckStatus.Fail, default, "the query returned no row or NULL");
        }
        decimal actual;
        try
        {
            actual = Convert.ToDecimal(rows[0][0], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is InvalidCastException or FormatException)
        {
            return new CheckResult(c.Name, c.Kind, c.Expect.ToString(), Convert.ToString(rows[0][0], CultureInfo.InvariantCulture) ?? "", CheckStatus.Error, default, "the query's first column is not a number");
        }
        decimal? fp = null;
        if (c.Expect.Fingerprint)
        {
            if (!t.IsScratchCopy || t.Fingerprint is null)
            {
                return new CheckResult(c.Name, c.Kind, c.Expect.ToString(), actual.ToString(CultureInfo.InvariantCulture), CheckStatus.Skip, default, NoFingerprint(t));
            }
            if (t.Fingerprint?.CheckValues?.TryGetValue(c.Name, out var v) != true || !decimal.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out var parsed))
            {
                return new CheckResult(c.Name, c.Kind, c.Expect.ToString(), actual.ToString(CultureInfo.InvariantCulture), CheckStatus.Error, default, "the backup's fingerprint has no value for this check (it was added after the backup was taken)");
            }
            fp = parsed;
        }
        var ok = c.Expect.Holds(actual, fp);
        return new CheckResult(c.Name, c.Kind, fp is { } f ? $"= {f} (fingerprint)" : c.Expect.ToString(), actual.ToString(CultureInfo.InvariantCulture), ok ? CheckStatus.Pass : CheckStatus.Fail, default);
    }

    private static async Task<CheckResult> AmcheckAsync(AmcheckCheck c, CheckSession s, CheckTarget t, CancellationToken ct)
    {
        if (!await Amcheck.InstalledAsync(s, ct).ConfigureAwait(false))
        {
            if (!t.IsScratchCopy)
            {
                return new CheckResult(c.Name, c.Kind, "no corruption", "amcheck not installed", CheckStatus.Error, default, "run CREATE EXTENSION amcheck in this database (checks run read-only and will not install it)");
            }
            await s.ExecuteWritableAsync("CREATE EXTENSION IF NOT EXISTS amcheck", ct).ConfigureAwait(false);
        }
        var targets = await Amcheck.TargetsAsync(s, ct).ConfigureAwait(false);
        var problems = new List<string>();
        foreach (var target in targets)
        {
            problems.AddRange((await Amcheck.CheckAsync(s, target, c.HeapAllIndexed, ct).ConfigureAwait(false)).Select(f => f.Line));
        }
        var indexes = targets.Count(x => x.IsIndex);
        return new CheckResult(c.Name, c.Kind, "no corruption", $"{indexes} indexes, {targets.Count - indexes} tables checked{(problems.Count > 0 ? $", {problems.Count} problem(s)" : "")}",
            problems.Count == 0 ? CheckStatus.Pass : CheckStatus.Fail, default, problems.Count == 0 ? null : string.Join("; ", problems.Take(10)));
    }

    private static async Task<CheckResult> CommandAsync(CommandCheck c, CheckTarget t, CancellationToken ct)
    {
        var env = new Dictionary<string, string>(t.CommandEnvironment ?? new Dictionary<string, string>()) { ["CAIRN_RESTORED_URL"] = t.Url, ["CAIRN_BACKUP_TIME"] = t.BackupTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture) };
        try
        {
            var r = await PgProcess.RunAsync("/bin/sh", ["-c", c.Run], env, c.Timeout, ct).ConfigureAwait(false);
            return new CheckResult(c.Name, c.Kind, "exit 0", $"exit {r.ExitCode}", r.ExitCode == 0 ? CheckStatus.Pass : CheckStatus.Fail, default,
                r.ExitCode == 0 ? null : PgProcess.Tail(r.StandardError + "\n" + r.StandardOutput, 5));
        }
        catch (Cairn.PostgreSql.PgToolException e) when (e.TimedOut)
        {
            return new CheckResult(c.Name, c.Kind, "exit 0", $"timed out after {Fmt(c.Timeout)}", CheckStatus.Fail, default, e.Message);
        }
        catch (Cairn.PostgreSql.PgToolException e)
        {
            return new CheckResult(c.Name, c.Kind, "exit 0", "could not run", CheckStatus.Error, default, e.Message);
        }
    }

    private static string Fmt(TimeSpan t) => t.TotalDays >= 1 ? $"{t.TotalDays:0.#}d" : t.TotalHours >= 1 ? $"{t.TotalHours:0.#}h" : t.TotalMinutes >= 1 ? $"{t.TotalMinutes:0.#}m" : $"{t.TotalSeconds:0.#}s";
}
