using Cairn.Evidence.Log;

namespace Cairn.Operations.Monitoring;

/// <summary>The evidence monitoring may act on, and the finding that says whether the log verified.</summary>
public sealed record EvidenceReading(IReadOnlyList<LogEntry> Entries, IReadOnlyList<HealthFinding> Findings)
{
    public static readonly EvidenceReading None = new([], []);
}

/// <summary>
/// Reads the evidence log for monitoring: only records covered by a checkpoint that verifies with the
/// log's key count, so forged "pass" lines silence nothing. A log that does not verify is CRITICAL,
/// with the problems named; the records an older signed checkpoint still vouches for are used.
/// </summary>
public static class EvidenceHealth
{
    public const string Aspect = "evidence";

    /// <param name="log">The evidence log (need not exist: then no records and no finding; the caller reports the missing log).</param>
    /// <param name="pinnedPublicKey">A verifier key file to check the log with (see <see cref="EvidenceLog.TrustedPublicKey"/>).</param>
    public static EvidenceReading Read(EvidenceLog log, string? pinnedPublicKey)
    {
        if (!log.Exists)
        {
            return EvidenceReading.None;
        }
        try
        {
            var (key, keyProblem) = log.TrustedPublicKey(pinnedPublicKey);
            var verified = LogVerifier.ReadVerified(log, key);
            var problems = keyProblem is null ? verified.Problems : [keyProblem, .. verified.Problems];
            if (problems.Count == 0)
            {
                return new EvidenceReading(verified.Entries, [new HealthFinding("-", Aspect, HealthState.Ok, $"{verified.TotalRecords} record(s) verify against the signed checkpoint", null, null)]);
            }
            var shown = string.Join("; ", problems.Take(3)) + (problems.Count > 3 ? $"; and {problems.Count - 3} more problem(s)" : "");
            return new EvidenceReading(verified.Entries, [new HealthFinding("-", Aspect, HealthState.Critical,
                $"the evidence log {log.Folder} does not verify: {shown}. Only the {verified.Entries.Count} of {verified.TotalRecords} record(s) a signed checkpoint covers are used; run 'cairn evidence verify'", null, null)]);
        }
        catch (EvidenceException e)
        {
            return new EvidenceReading([], [new HealthFinding("-", Aspect, HealthState.Critical, $"the evidence log cannot be verified: {e.Message}", null, null)]);
        }
    }
}
