using Cairn.Evidence.Log;
using Cairn.Operations.Monitoring;

namespace Cairn.Operations.Recording;

/// <summary>
/// Before a restore: the verified evidence may know successful backups of the database newer than the newest
/// snapshot the repository still holds (their manifests were deleted). Restoring then gives an older state than
/// the newest backup; the user is told, and told when the log does not verify so that cannot be known.
/// </summary>
public static class DeletedBackups
{
    public static async Task WarnAsync(OperationContext context, Repository.Repository repo, string database, CancellationToken cancellationToken)
    {
        if (!context.Evidence.Open().Exists)
        {
            return;
        }
        var reading = context.Evidence.ReadVerified();
        if (reading.Findings.FirstOrDefault(f => f.State != HealthState.Ok) is { } bad)
        {
            context.Warn($"cannot tell from the evidence whether newer backups of {database} were deleted: {bad.Message}");
        }
        var snapshots = (await repo.ListSnapshotSummariesAsync(null, null, cancellationToken).ConfigureAwait(false)).Where(s => s.Manifest.Name == database).ToList();
        var missing = EvidenceQueries.NewerBackupsMissing(reading.Entries, database, snapshots.Select(s => s.Id).ToHashSet(StringComparer.Ordinal),
            snapshots.Count == 0 ? null : snapshots.Max(s => s.Manifest.Time));
        if (missing.Count > 0)
        {
            var shown = string.Join(", ", missing.TakeLast(5).Select(e => $"{e.Record?["snapshot"]?.GetValue<string>()?[..8]} at {e.Time:yyyy-MM-dd HH:mm}Z (evidence {e.Seq})"));
            context.Warn($"the evidence log records {missing.Count} successful backup(s) of {database} newer than any snapshot left in the repository ({shown}); their manifests were deleted. This restores an older state than the newest backup: find out who removed them ('cairn evidence list --database {database}')");
        }
    }
}
