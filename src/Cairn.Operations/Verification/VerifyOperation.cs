using System.Diagnostics;
using System.Globalization;
using Cairn.Operations.Recording;
using Cairn.Operations.Snapshots;
using Cairn.Repository.Verification;

namespace Cairn.Operations.Verification;

/// <summary>
/// What to verify: the structure always; with <see cref="ReadData"/> every byte, or a share of the packs and WAL
/// segments (<see cref="Fraction"/>). The same <see cref="Seed"/> reads the same share; without one a random seed
/// is drawn, so repeated runs spread the reading over the whole repository.
/// </summary>
public sealed record VerifyRequest(bool ReadData, double Fraction = 1.0, int? Seed = null);

public sealed record VerificationResult(VerificationReport Report, int WalFindings, bool ReadData, double Fraction)
{
    public IReadOnlyList<Finding> Damage => [.. Report.Findings.Where(f => f.IsDamage)];
}

/// <summary>
/// <c>verify</c>: the repository checked by the <see cref="Verifier"/> (indexes, manifests, packs, every blob with
/// read-data) plus the archived WAL's continuity and integrity; the result goes on the record.
/// </summary>
public sealed class VerifyOperation(OperationContext context)
{
    public async Task<VerificationResult> RunAsync(VerifyRequest request, IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "verify", cancellationToken).ConfigureAwait(false);
        var seed = request.Seed ?? Random.Shared.Next();
        var sw = Stopwatch.StartNew();
        var report = await new Verifier(repo).VerifyAsync(new VerifyOptions(request.ReadData, request.Fraction, seed), progress, cancellationToken).ConfigureAwait(false);
        var physical = (await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).Where(x => x.Manifest.Kind == BackupKinds.Physical).ToList();
        var walFindings = await WalVerification.VerifyAsync(repo, physical, request.ReadData, request.Fraction, seed, cancellationToken).ConfigureAwait(false);
        if (walFindings.Count > 0)
        {
            report = report with { Findings = [.. report.Findings, .. walFindings] };
        }
        var result = new VerificationResult(report, walFindings.Count, request.ReadData, request.Fraction);
        context.Evidence.Record(new RepositoryVerifyEvent(Scope(request), report.Snapshots, report.PacksRead, report.BytesRead, result.Damage.Count, walFindings.Count,
            [.. physical.Select(x => x.Manifest.Name).Distinct().Order(StringComparer.Ordinal)], sw.ElapsedMilliseconds)
        {
            Repository = repo.Storage.Location,
            Result = report.HasDamage ? "fail" : "pass",
        });
        return result;
    }

    private static string Scope(VerifyRequest r) => r.ReadData
        ? r.Fraction < 1 ? string.Create(CultureInfo.InvariantCulture, $"read-data {r.Fraction * 100:0.#}%") : "read-data"
        : "structure";
}
