using System.Text.Json;

namespace Cairn.Evidence.Log;

/// <summary>Questions answered from verified evidence (pass only records a signed checkpoint covers; see <see cref="LogVerifier.ReadVerified"/>).</summary>
public static class EvidenceQueries
{
    /// <summary>
    /// Successful backups of <paramref name="database"/> the log recorded whose snapshot is not among
    /// <paramref name="presentSnapshotIds"/> and that are newer than the newest snapshot present
    /// (<paramref name="newestPresent"/>; null when the repository holds none): their manifests were
    /// deleted after the backup, by hand or by someone with write access to the repository. Older missing
    /// ones are left out, since retention deletes those on purpose. Oldest first.
    /// </summary>
    public static List<LogEntry> NewerBackupsMissing(IEnumerable<LogEntry> verified, string database, IReadOnlySet<string> presentSnapshotIds, DateTimeOffset? newestPresent)
        => [.. verified.Where(e =>
            e.Kind == "backup"
            && Text(e, "result") == "pass"
            && Text(e, "database") == database
            && Text(e, "snapshot") is { Length: > 0 } id && !presentSnapshotIds.Contains(id)
            && e.Time is { } t && (newestPresent is null || t > newestPresent))];

    private static string? Text(LogEntry e, string field)
        => e.Record?[field] is { } v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;
}
