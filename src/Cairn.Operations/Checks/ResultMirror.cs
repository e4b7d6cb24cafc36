using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Sessions;

namespace Cairn.Operations.Checks;

/// <summary>
/// With <c>evidence.mirror_table</c>, check results are also written into the runbook's
/// <c>backup_verification_log</c> in the monitored database. The evidence log is the record; a mirror that
/// cannot be written is a warning, not a failure.
/// </summary>
public static class ResultMirror
{
    /// <summary>Writes the rows; returns a warning when they could not be written, else null.</summary>
    public static async Task<string?> WriteAsync(OperationContext context, PgConnection connection, IReadOnlyList<CheckResult> results, long evidenceSeq, CancellationToken cancellationToken)
    {
        if (!context.Config.Evidence.MirrorTable)
        {
            return null;
        }
        var now = context.Time.GetUtcNow();
        try
        {
            await VerificationMirror.WriteAsync(connection, results.Select(r => (r.Name, r.Status.ToString().ToLowerInvariant(), r.Kind, r.Detail)), now, now, evidenceSeq, cancellationToken).ConfigureAwait(false);
            return null;
        }
        catch (PgToolException e)
        {
            return $"could not write backup_verification_log: {e.Message}";
        }
        catch (System.Data.Common.DbException e)
        {
            return $"could not write backup_verification_log ({e.Message}); the user needs INSERT/CREATE rights, or set evidence.mirror_table: false";
        }
    }
}
