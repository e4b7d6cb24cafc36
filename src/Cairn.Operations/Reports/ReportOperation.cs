using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;
using Cairn.Operations.Recording;

namespace Cairn.Operations.Reports;

public enum ReportFormat
{
    Html,
    Md,
    Json,
}

/// <summary>The period [<see cref="From"/>, <see cref="Until"/>) in UTC; <see cref="Out"/> null writes nothing (the caller prints <see cref="ReportResult.Text"/>).</summary>
public sealed record ReportRequest(DateTimeOffset From, DateTimeOffset Until, string? Database, ReportFormat Format, string? Out);

public sealed record ReportResult(ComplianceReport Report, string Text, string Sha256, string? Path, long RecordSeq);

/// <summary>Periods as users write them.</summary>
public static class ReportPeriod
{
    /// <summary>A month (2026-11), or --from/--until dates; neither: the previous whole month.</summary>
    public static (DateTimeOffset From, DateTimeOffset Until) Parse(string? month, string? from, string? until, DateTimeOffset now)
    {
        if (month is not null && (from is not null || until is not null))
        {
            throw new EvidenceException("give --month, or --from and --until, not both");
        }
        if (month is not null)
        {
            if (!DateTimeOffset.TryParseExact(month, "yyyy-MM", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var m))
            {
                throw new EvidenceException($"--month '{month}' is not a month; write it like 2026-11");
            }
            return (m, m.AddMonths(1));
        }
        if (from is null && until is null)
        {
            var thisMonth = new DateTimeOffset(now.UtcDateTime.Year, now.UtcDateTime.Month, 1, 0, 0, 0, TimeSpan.Zero);
            return (thisMonth.AddMonths(-1), thisMonth);
        }
        var f = EvidenceTime.Parse(from) ?? throw new EvidenceException("--until needs --from (the first day of the period)");
        var u = EvidenceTime.Parse(until) ?? now;
        return u > f ? (f, u) : throw new EvidenceException($"--until ({until}) must be after --from ({from})");
    }
}

/// <summary>
/// <c>cairn report</c>: the compliance report of a period, computed from verified evidence only (records a verifying
/// checkpoint covers), with the signed checkpoint at the period's end, a consistency proof from the previous report's
/// checkpoint and inclusion proofs for the drills. The read and the report (its SHA-256 and checkpoint) go on the record.
/// </summary>
public sealed class ReportOperation(OperationContext context)
{
    public ReportResult Run(ReportRequest request)
    {
        var log = context.Evidence.OpenExisting();
        var (chain, entries) = ReportEvidence.ReadVerified(log, context.Evidence.PinnedPublicKey);
        var now = context.Time.GetUtcNow();
        var asOf = request.Until < now ? request.Until : now;
        var leaves = entries.Select(e => e.LeafHash).ToList();

        // The signed checkpoint closest to the period's end that covers every record before it.
        var needed = entries.Where(e => e.Time is { } t && t < asOf).Select(e => e.Seq + 1).DefaultIfEmpty(0).Max();
        var (checkpointText, checkpoint) = ReportEvidence.Checkpoints(log, chain)
            .Where(c => c.Checkpoint.Size >= needed && c.Checkpoint.Size <= leaves.Count && MerkleTree.Hash(leaves, 0, (int)c.Checkpoint.Size).AsSpan().SequenceEqual(c.Checkpoint.Root))
            .OrderBy(c => c.Checkpoint.Size).FirstOrDefault();
        if (checkpoint is null)
        {
            throw new EvidenceException("no signed checkpoint covers the period's records; run 'cairn evidence verify'");
        }
        var size = (int)checkpoint.Size;
        // The key that signed that checkpoint (before a later rotation: the key of its time).
        var key = chain.KeyFor(size) ?? chain.Current;

        var inputs = new ReportInputs(request.From, request.Until, asOf, request.Database, size, [.. context.Config.Databases.Values
            .Where(d => request.Database is null || d.Name == request.Database)
            .OrderBy(d => d.Name, StringComparer.Ordinal)
            .Select(d => new DatabaseInputs(d.Name, [.. d.Schedule.Where(j => j.Job == "backup").Select(j => j.Expression)], (long)d.Monitoring.BackupWarn.TotalSeconds,
                (long?)d.RtoTarget?.TotalSeconds, (long?)d.RpoTarget?.TotalSeconds))]);
        var report = ReportBuilder.Build(entries, inputs, log.Origin, now, ControlMapping.Load());

        // Reports chain: the newest earlier report's checkpoint, and the proof that this log extends it. Its record may come
        // after this report's checkpoint (a report is recorded after the period it covers); its checkpoint may not.
        PreviousReport? previous = null;
        var prior = entries.LastOrDefault(e => e.Kind == "report" && ReportEvidence.DetailNumber(e, "tree_size") is { } s && s <= size && s > 0);
        if (prior is not null)
        {
            var oldText = ReportEvidence.DetailText(prior, "checkpoint") ?? "";
            var old = chain.OpenAnySize(oldText);
            previous = new PreviousReport(prior.Seq, EvidenceTime.Parse(ReportEvidence.DetailText(prior, "from"))!.Value, EvidenceTime.Parse(ReportEvidence.DetailText(prior, "until"))!.Value,
                ReportEvidence.DetailText(prior, "sha256") ?? "", oldText, old.Size, [.. MerkleTree.ConsistencyProof(leaves, (int)old.Size, size).Select(Convert.ToHexStringLower)]);
        }
        var inclusions = report.Databases.SelectMany(d => d.Drills.Rows).Select(r => r.Seq).Order()
            .Select(seq => new InclusionRow(seq, Convert.ToHexStringLower(leaves[(int)seq]), [.. MerkleTree.InclusionProof(leaves, (int)seq, size).Select(Convert.ToHexStringLower)])).ToList();
        report = report with { Proof = report.Proof with { Checkpoint = checkpointText, RootHex = Convert.ToHexStringLower(checkpoint.Root), VerifierKey = key.VerifierKey, Previous = previous, Inclusions = inclusions } };

        var text = ReportRenderer.Render(report, request.Format);
        var bytes = Encoding.UTF8.GetBytes(text);
        var sha = Convert.ToHexStringLower(SHA256.HashData(bytes));
        if (request.Out is { } path)
        {
            ReportFiles.Write(path, bytes);
        }
        var repository = context.RepositoryText ?? log.Folder;
        EvidenceReads.Record(context, log, "report", report.Proof.FirstSeq is { } first ? $"{first}..{report.Proof.LastSeq} ({Stamp(request.From)} to {Stamp(request.Until)})" : $"none ({Stamp(request.From)} to {Stamp(request.Until)})");
        var seq = context.Evidence.Record(new ReportEvent(request.From, request.Until, Name(request.Format), sha, request.Out is null ? "(stdout)" : Path.GetFileName(request.Out), size, checkpointText)
        {
            Repository = repository,
            Database = request.Database,
        });
        return new ReportResult(report, text, sha, request.Out, seq);
    }

    public static string Name(ReportFormat f) => f switch { ReportFormat.Html => "html", ReportFormat.Md => "md", _ => "json" };

    public static ReportFormat ParseFormat(string text) => text.ToLowerInvariant() switch
    {
        "html" => ReportFormat.Html,
        "md" or "markdown" => ReportFormat.Md,
        "json" => ReportFormat.Json,
        _ => throw new EvidenceException($"--format '{text}' is not a report format; use html, md or json"),
    };

    private static string Stamp(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}

/// <summary>Reading the evidence for reports: verified records only, and the signed checkpoints on disk.</summary>
internal static class ReportEvidence
{
    /// <summary>The trusted key and the records a verifying checkpoint covers; a log that does not verify is refused.</summary>
    public static (KeyChain Chain, IReadOnlyList<LogEntry> Entries) ReadVerified(EvidenceLog log, string? pinned)
    {
        var (key, keyProblem) = log.TrustedPublicKey(pinned);
        var verified = LogVerifier.ReadVerified(log, key);
        var problems = keyProblem is null ? verified.Problems : [keyProblem, .. verified.Problems];
        if (problems.Count > 0)
        {
            throw new EvidenceException($"the evidence log {log.Folder} does not verify ({string.Join("; ", problems.Take(3))}); reports are made from verified evidence only. Run 'cairn evidence verify'");
        }
        return (verified.Chain!, verified.Entries);
    }

    /// <summary>The newest checkpoint and the daily copies, each with its text, when it verifies with the key of <paramref name="chain"/> valid at its size.</summary>
    public static IEnumerable<(string Text, Checkpoint Checkpoint)> Checkpoints(EvidenceLog log, KeyChain chain)
    {
        var dir = Path.Combine(log.Folder, "checkpoints");
        var files = Directory.Exists(dir) ? Directory.EnumerateFiles(dir, "*.txt").Order(StringComparer.Ordinal).ToList() : [];
        files.Add(log.CheckpointPath);
        foreach (var f in files)
        {
            (string, Checkpoint)? c = null;
            try
            {
                var text = EvidenceLog.ReadCheckpointFile(f);
                c = (text, chain.OpenAnySize(text));
            }
            catch (Exception e) when (e is EvidenceException or FormatException or IOException or InvalidDataException)
            {
                // A copy that does not verify is not used; the log's own verification reports it.
            }
            if (c is { } ok)
            {
                yield return ok;
            }
        }
    }

    public static string? DetailText(LogEntry e, string field) => e.Record?["details"]?[field] is System.Text.Json.Nodes.JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.String ? v.GetValue<string>() : null;

    public static long? DetailNumber(LogEntry e, string field) => e.Record?["details"]?[field] is System.Text.Json.Nodes.JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number ? v.GetValue<long>() : null;
}

/// <summary>Report files: written whole under a temporary name, then renamed, mode 0600; an existing link is never followed.</summary>
internal static class ReportFiles
{
    public static void Write(string path, byte[] bytes)
    {
        var full = Path.GetFullPath(path);
        var dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var temp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        using (var f = new FileStream(temp, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
        {
            f.Write(bytes);
            f.Flush(flushToDisk: true);
        }
        // rename replaces a link at the target by the file; it never writes through it.
        File.Move(temp, full, overwrite: true);
    }
}
