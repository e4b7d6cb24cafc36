using System.Diagnostics;
using Cairn.Operations.Checks;
using Cairn.Operations.Recording;
using Cairn.Repository;

namespace Cairn.Operations.Verification;

/// <see cref="AllowSkipped"/> (<c>--allow-skipped</c>): a check that could not run does not fail the verification.
/// <param name="EvidenceFileDirectory">Also write the runbook's <c>backup_verify_TIMESTAMP.log</c> into this folder.</param>
public sealed record LiveVerifyRequest(DatabaseTarget Database, bool AllowSkipped = false, string? EvidenceFileDirectory = null);

public sealed record LiveVerifyResult(string Database, IReadOnlyList<CheckResult> Checks, TimeSpan Elapsed, IReadOnlyList<string> Warnings, bool AllowSkipped = false)
{
    public CheckTally Tally => CheckTally.Of(Checks, AllowSkipped);

    public bool Passed => Tally.Ok;

    /// <summary>The runbook's evidence file, when one was asked for.</summary>
    public string? EvidenceFile { get; init; }
}

/// <summary>
/// <c>verify DATABASE --live</c>, the runbook's daily verification: the configured checks against the live
/// database, read-only, with a statement timeout; the result goes on the record (and into the mirror table).
/// </summary>
public sealed class LiveVerifyOperation(OperationContext context)
{
    public async Task<LiveVerifyResult> RunAsync(LiveVerifyRequest request, CancellationToken cancellationToken)
    {
        var db = request.Database;
        if (db.Checks.Count == 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"no checks are configured for {db.Name}: add a checks: list under databases.{db.Name} in cairn.yaml");
        }
        var sw = Stopwatch.StartNew();
        var connection = db.Connection;
        // erasures_applied needs the ledger; without a repository the check errors rather than passes.
        IReadOnlyList<Lifecycle.Erasure.ErasureEntry>? erasures = null;
        if (db.Checks.Any(c => c is ErasuresAppliedCheck) && context.RepositoryText is not null)
        {
            using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
            erasures = await Lifecycle.Erasure.ErasureLedgerEntries.ReadAsync(repo, db.Name, cancellationToken).ConfigureAwait(false);
        }
        List<CheckResult> results;
        using (var commandEnvironment = connection.ProgramEnvironment())
        {
            var target = new CheckTarget(connection, context.Time.GetUtcNow(), null, null, IsScratchCopy: false, connection.Redacted, commandEnvironment.Variables, erasures);
            results = await CheckRunner.RunAsync(db.Checks, target, TimeSpan.FromSeconds(60), cancellationToken).ConfigureAwait(false);
        }
        var tally = CheckTally.Of(results, request.AllowSkipped);
        var passed = tally.Ok;
        var seq = context.Evidence.Record(new LiveVerifyEvent(connection.Redacted, tally, request.AllowSkipped)
        {
            Repository = context.RepositoryText ?? "",
            Result = EvidenceEvent.Outcome(passed),
            Database = db.Name,
            DurationMs = sw.ElapsedMilliseconds,
            Checks = results,
        });
        var warning = await ResultMirror.WriteAsync(context, connection, ResultMirror.CheckRows("verify_live", db.Name, results, context.Time.GetUtcNow(), sw.Elapsed, seq), cancellationToken).ConfigureAwait(false);
        string? file = null;
        if (request.EvidenceFileDirectory is { } dir)
        {
            file = RunbookEvidenceFile.Write(dir, context.Time.GetUtcNow(), connection.Redacted, db.Name, results, seq, context.Evidence.Open().ReadEntries(out _)[(int)seq].LeafHash);
        }
        return new LiveVerifyResult(db.Name, results, sw.Elapsed, warning is null ? [] : [warning], request.AllowSkipped) { EvidenceFile = file };
    }
}

/// <summary>
/// The runbook's evidence file (<c>backup_verify_YYYY-MM-DD_HH-MM-SS_UTC.log</c>) for teams that keep one: its sections,
/// and a <c>Verification Hash:</c> line that is the evidence record's Merkle leaf hash, so the runbook's
/// <c>find … | xargs grep "Verification Hash"</c> monthly report keeps working and each hash can be proven in the log.
/// </summary>
public static class RunbookEvidenceFile
{
    public static string Write(string directory, DateTimeOffset now, string redactedConnection, string database, IReadOnlyList<CheckResult> results, long seq, byte[] leafHash)
    {
        var stamp = now.UtcDateTime.ToString("yyyy-MM-dd_HH-mm-ss", System.Globalization.CultureInfo.InvariantCulture) + "_UTC";
        var at = redactedConnection.LastIndexOf('/');
        var w = new System.Text.StringBuilder();
        w.Append("=== Backup Verification Report ===\n");
        w.Append($"Timestamp: {stamp}\n");
        w.Append($"Database: {(at > 0 ? redactedConnection[..at] : redactedConnection)}/[REDACTED]\n\n");
        var section = 1;
        foreach (var group in results.GroupBy(r => r.Kind))
        {
            w.Append($"{section++}. {group.Key}:\n");
            foreach (var r in group)
            {
                w.Append($" {r.Name}: {r.Status.ToString().ToUpperInvariant()} (expected {r.Expected}, actual {r.Actual}){(r.Detail is { Length: > 0 } d ? "; " + d.ReplaceLineEndings(" ") : "")}\n");
            }
            w.Append('\n');
        }
        w.Append($"{section}. Evidence:\n database {database}: record {seq} ({(results.All(r => r.Passed) ? "PASS" : "FAIL")}); prove it with: cairn evidence show {seq}\n\n");
        w.Append($"Verification Hash: {Convert.ToHexStringLower(leafHash)}\n");
        Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var path = Path.Combine(directory, $"backup_verify_{stamp}.log");
        Reports.ReportFiles.Write(path, System.Text.Encoding.UTF8.GetBytes(w.ToString()));
        return path;
    }
}
