using System.CommandLine;
using System.Text.Json;
using Cairn.Evidence.Log;
using Cairn.Operations.Reports;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn report</c>: the compliance report of a period from verified evidence; <c>cairn report verify FILE</c> checks one.</summary>
internal static class ReportCommands
{
    public static Command Build(CliContext ctx)
    {
        var month = new Option<string?>("--month") { Description = "The month to report on, e.g. 2026-11 (default: the previous month)" };
        var from = new Option<string?>("--from") { Description = "First UTC date/time of the period (instead of --month)" };
        var until = new Option<string?>("--until") { Description = "End of the period, exclusive (default: now)" };
        var database = new Option<string?>("--database") { Description = "Only this database (default: all)" };
        var format = new Option<string>("--format") { Description = "html (one self-contained file), md or json", DefaultValueFactory = _ => "html" };
        var output = new Option<string?>("--out", "-o") { Description = "Write the report to this file (default: stdout)" };
        var cmd = new Command("report", "The compliance report of a month: backups, freshness, WAL, drills, checks, verifications, alerts, changes, with the proof from the evidence log (the read and the report are recorded)")
        {
            month, from, until, database, format, output, Verify(ctx),
        };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var (f, u) = ReportPeriod.Parse(p.GetValue(month), p.GetValue(from), p.GetValue(until), inv.Operations.Time.GetUtcNow());
            var request = new ReportRequest(f, u, p.GetValue(database), ReportOperation.ParseFormat(p.GetValue(format)!), p.GetValue(output));
            return Task.FromResult(Write(inv, request));
        });
        return cmd;
    }

    /// <summary>Writes one report and says where; the daemon's report job calls this too.</summary>
    public static int Write(Invocation inv, ReportRequest request)
    {
        if (request.Database is { } db && !inv.Operations.Config.Databases.ContainsKey(db))
        {
            inv.Console.Error.WriteLine($"cairn: warning: '{db}' is not configured in cairn.yaml: the report uses its records but knows no schedule or targets for it");
        }
        var r = new ReportOperation(inv.Operations).Run(request);
        if (r.Path is null)
        {
            inv.Console.Out.Write(r.Text);
            return ExitCodes.Ok;
        }
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new ReportOutput("report", r.Path, ReportOperation.Name(request.Format), r.Sha256, r.RecordSeq, r.Report.Status.Level, r.Report.Inputs.TreeSize), CliJson.Default.ReportOutput));
        }
        else
        {
            inv.Console.Out.WriteLine($"wrote {r.Path}: {r.Report.Title}; status {r.Report.Status.Level.ToUpperInvariant()}");
            inv.Console.Out.WriteLine($"sha256 {r.Sha256}, proven against the checkpoint of {r.Report.Inputs.TreeSize} records; recorded as evidence record {r.RecordSeq}");
        }
        return ExitCodes.Ok;
    }

    private static Command Verify(CliContext ctx)
    {
        var file = new Argument<string>("FILE") { Description = "A report file cairn report wrote (.html, .md or .json)" };
        var cmd = new Command("verify", "Check a report against the evidence log: its text, its signed checkpoint, the proofs, and every figure recomputed from the records. Exit 5 when anything differs") { file };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            ReportVerifyResult r;
            try
            {
                r = new ReportVerifyOperation(inv.Operations).Run(new ReportVerifyRequest(p.GetValue(file)!));
            }
            catch (Exception e) when (e is FormatException or JsonException)
            {
                throw new EvidenceException($"{p.GetValue(file)} is not a report Cairn can read: {e.Message}");
            }
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new ReportVerifyOutput("report_verify", r.Ok, r.File, r.Format, r.TreeSize, r.FiguresChecked, r.Problems), CliJson.Default.ReportVerifyOutput));
            }
            else
            {
                foreach (var problem in r.Problems)
                {
                    inv.Console.Out.WriteLine($"FAIL: {problem}");
                }
                inv.Console.Out.WriteLine(r.Ok
                    ? $"OK: {r.File} ({r.Title}): the text matches its data, the checkpoint of {r.TreeSize} records is signed and still a prefix of the log, the proofs hold, and all {r.FiguresChecked} sections equal what the records give"
                    : $"FAILED: {r.Problems.Count} problem(s); this report does not match the evidence log");
            }
            return Task.FromResult(r.Ok ? ExitCodes.Ok : ExitCodes.Damaged);
        });
        return cmd;
    }
}
