using System.Diagnostics;
using Cairn.Operations.Checks;
using Cairn.Operations.Recording;
using Cairn.Repository;

namespace Cairn.Operations.Verification;

/// <see cref="AllowSkipped"/> (<c>--allow-skipped</c>): a check that could not run does not fail the verification.
public sealed record LiveVerifyRequest(DatabaseTarget Database, bool AllowSkipped = false);

public sealed record LiveVerifyResult(string Database, IReadOnlyList<CheckResult> Checks, TimeSpan Elapsed, IReadOnlyList<string> Warnings, bool AllowSkipped = false)
{
    public CheckTally Tally => CheckTally.Of(Checks, AllowSkipped);

    public bool Passed => Tally.Ok;
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
        var warning = await ResultMirror.WriteAsync(context, connection, results, seq, cancellationToken).ConfigureAwait(false);
        return new LiveVerifyResult(db.Name, results, sw.Elapsed, warning is null ? [] : [warning], request.AllowSkipped);
    }
}
