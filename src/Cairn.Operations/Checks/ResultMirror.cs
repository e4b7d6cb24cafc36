using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Sessions;

namespace Cairn.Operations.Checks;

/// <summary>
/// With <c>evidence.mirror_table</c>, backups, restores, drills and live verifications also write rows into the runbook's
/// <c>backup_verification_log</c>, in its own schema (<c>evidence.mirror_schema</c>, default <c>cairn</c>) of the monitored
/// database. The evidence log is the record; a mirror that cannot be written is a warning, not a failure.
/// </summary>
public static class ResultMirror
{
    /// <summary>
    /// One row per check of a drill or live verification (<paramref name="kind"/>: drill, drill_physical, verify_live). Its
    /// created_at stays empty: the runbook reads MAX(created_at) as the newest backup, and a check is not a backup.
    /// </summary>
    public static IReadOnlyList<MirrorRow> CheckRows(string kind, string database, IReadOnlyList<CheckResult> results, DateTimeOffset now, TimeSpan took, long seq)
        => [.. results.Select(r => new MirrorRow(kind, database, r.Name, r.Status.ToString().ToLowerInvariant(), null, now.ToUniversalTime(),
            (now - took).ToUniversalTime(), now.ToUniversalTime(), seq, r.Kind, r.Detail))];

    /// <summary>One row for a backup (<paramref name="backupTime"/>: when it was taken, the created_at the runbook reads) or a restore (none).</summary>
    public static MirrorRow EventRow(string kind, string database, bool passed, DateTimeOffset? backupTime, DateTimeOffset now, TimeSpan took, long seq, string? detail = null)
        => new(kind, database, null, passed ? "pass" : "fail", backupTime?.ToUniversalTime(), null, (now - took).ToUniversalTime(), now.ToUniversalTime(), seq, null, detail);

    /// <summary>Writes the rows; returns a warning when they could not be written, else null.</summary>
    public static async Task<string?> WriteAsync(OperationContext context, PgConnection connection, IReadOnlyList<MirrorRow> rows, CancellationToken cancellationToken)
    {
        if (!context.Config.Evidence.MirrorTable || rows.Count == 0)
        {
            return null;
        }
        var schema = context.Config.Evidence.MirrorSchema ?? VerificationMirror.DefaultSchema;
        try
        {
            await VerificationMirror.WriteAsync(connection, schema, rows, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (PgToolException e)
        {
            return $"could not write {schema}.backup_verification_log: {e.Message}";
        }
        catch (System.Data.Common.DbException e)
        {
            return $"could not write {schema}.backup_verification_log ({e.Message}); the user needs CREATE on the database (or the schema) and INSERT, or set evidence.mirror_table: false";
        }
    }
}
