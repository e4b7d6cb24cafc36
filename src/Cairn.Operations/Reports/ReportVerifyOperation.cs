using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;

namespace Cairn.Operations.Reports;

public sealed record ReportVerifyRequest(string File);

/// <param name="Problems">Empty when the report holds: its text, proofs and every figure.</param>
public sealed record ReportVerifyResult(string File, string Format, string Title, long TreeSize, int FiguresChecked, IReadOnlyList<string> Problems)
{
    public bool Ok => Problems.Count == 0;
}

/// <summary>
/// <c>cairn report verify FILE</c>: the file's text is exactly what its data renders to; its checkpoint is signed by the
/// log's key and is a prefix of the log as it is now; the previous report's checkpoint is consistent with it; each drill's
/// inclusion proof holds; and every figure, computed again from the records below the checkpoint, is the same.
/// </summary>
public sealed class ReportVerifyOperation(OperationContext context)
{
    public ReportVerifyResult Run(ReportVerifyRequest request)
    {
        var text = File.ReadAllText(request.File);
        var (format, report) = ReportRenderer.Extract(text);
        var problems = new List<string>();
        if (ReportRenderer.Render(report, format) != text)
        {
            problems.Add("the file's text differs from what its data renders to: it was edited after 'cairn report' wrote it");
        }

        var log = context.Evidence.OpenExisting();
        var (key, keyProblem) = log.TrustedPublicKey(context.Evidence.PinnedPublicKey);
        if (keyProblem is not null)
        {
            problems.Add(keyProblem);
        }
        var verified = LogVerifier.ReadVerified(log, key);
        problems.AddRange(verified.Problems.Select(p => $"evidence log: {p}"));
        var entries = verified.Entries;
        var leaves = entries.Select(e => e.LeafHash).ToList();

        Checkpoint? cp = null;
        try
        {
            cp = verified.Chain!.OpenAnySize(report.Proof.Checkpoint);
        }
        catch (Exception e) when (e is EvidenceException or FormatException or InvalidDataException)
        {
            problems.Add($"the report's checkpoint does not verify with the log's key {key.VerifierKey}: {e.Message}");
        }
        if (cp is not null)
        {
            if (cp.Size != report.Inputs.TreeSize || Convert.ToHexStringLower(cp.Root) != report.Proof.RootHex)
            {
                problems.Add($"the report's figures claim tree size {report.Inputs.TreeSize} and root {report.Proof.RootHex}, its checkpoint says {cp.Size} and {Convert.ToHexStringLower(cp.Root)}");
            }
            if (cp.Size > leaves.Count)
            {
                problems.Add($"the report's checkpoint covers {cp.Size} records, the verified log holds only {leaves.Count}: records were removed or no longer verify");
            }
            else if (!MerkleTree.Hash(leaves, 0, (int)cp.Size).AsSpan().SequenceEqual(cp.Root))
            {
                problems.Add($"the log's first {cp.Size} records no longer hash to the report's signed root: a record of the period (or before it) was changed");
            }
            foreach (var i in report.Proof.Inclusions)
            {
                var leaf = Convert.FromHexString(i.LeafHash);
                if (!MerkleTree.VerifyInclusion(leaf, i.Seq, cp.Size, [.. i.AuditPath.Select(Convert.FromHexString)], cp.Root))
                {
                    problems.Add($"the inclusion proof of record {i.Seq} does not lead to the signed root");
                }
                else if (i.Seq < leaves.Count && !leaves[(int)i.Seq].AsSpan().SequenceEqual(leaf))
                {
                    problems.Add($"record {i.Seq} in the log is not the record the report proved (its leaf hash changed)");
                }
            }
            if (report.Proof.Previous is { } p)
            {
                try
                {
                    var old = verified.Chain!.OpenAnySize(p.Checkpoint);
                    if (!MerkleTree.VerifyConsistency(old.Size, cp.Size, old.Root, cp.Root, [.. p.ConsistencyProof.Select(Convert.FromHexString)]))
                    {
                        problems.Add($"the consistency proof from the previous report's checkpoint (size {old.Size}) to this one does not hold: the log was rewritten between the two reports");
                    }
                }
                catch (Exception e) when (e is EvidenceException or FormatException or InvalidDataException)
                {
                    problems.Add($"the previous report's checkpoint does not verify: {e.Message}");
                }
            }
        }

        // Every figure again, from the records below the checkpoint and the inputs the report states.
        var again = ReportBuilder.Build(entries, report.Inputs, report.Origin, report.GeneratedAt, report.Controls) with { Proof = report.Proof };
        var expected = JsonNode.Parse(ReportSerializer.ToJson(again))!.AsObject();
        var actual = JsonNode.Parse(ReportSerializer.ToJson(report))!.AsObject();
        var figures = 0;
        foreach (var (name, value) in expected)
        {
            figures++;
            if (!JsonNode.DeepEquals(value, actual[name]))
            {
                problems.Add($"section '{name}' differs from what the evidence log's records give now{Detail(value, actual[name])}");
            }
        }
        return new ReportVerifyResult(request.File, ReportOperation.Name(format), report.Title, report.Inputs.TreeSize, figures, problems);
    }

    /// <summary>The first differing field, so a reader knows where to look.</summary>
    private static string Detail(JsonNode? expected, JsonNode? actual, string path = "")
    {
        switch (expected, actual)
        {
            case (JsonObject e, JsonObject a):
                foreach (var (k, v) in e)
                {
                    if (!JsonNode.DeepEquals(v, a[k]))
                    {
                        return Detail(v, a[k], path + "." + k);
                    }
                }
                break;
            case (JsonArray e, JsonArray a) when e.Count == a.Count:
                for (var i = 0; i < e.Count; i++)
                {
                    if (!JsonNode.DeepEquals(e[i], a[i]))
                    {
                        return Detail(e[i], a[i], $"{path}[{i}]");
                    }
                }
                break;
        }
        return $" ({path.TrimStart('.')}: the records give {Short(expected)}, the report says {Short(actual)})";
    }

    private static string Short(JsonNode? n)
    {
        var s = n?.ToJsonString() ?? "nothing";
        return s.Length > 120 ? s[..120] + "…" : s;
    }
}
