using System.Globalization;
using System.Text;

namespace Cairn.Operations.Reports;

/// <summary>
/// The three renderings of one <see cref="ComplianceReport"/>. Each is a function of the model alone (no clock, no
/// config), and the Markdown and HTML carry the model itself (base64 in a comment / JSON in a data block), so
/// <c>report verify</c> can render it again and see whether any character of the file was changed.
/// </summary>
public static class ReportRenderer
{
    private const string MdMarker = "<!-- cairn-report-data:";
    internal const string HtmlDataOpen = "<script type=\"application/json\" id=\"cairn-report-data\">";

    public static string Render(ComplianceReport report, ReportFormat format) => format switch
    {
        ReportFormat.Json => ReportSerializer.ToJson(report) + "\n",
        ReportFormat.Md => Markdown(report),
        _ => HtmlReport.Render(report),
    };

    /// <summary>The format and the model a report file carries; a clear error when it is not a Cairn report.</summary>
    public static (ReportFormat Format, ComplianceReport Report) Extract(string text)
    {
        if (text.TrimStart().StartsWith('{'))
        {
            return (ReportFormat.Json, ReportSerializer.FromJson(text));
        }
        var md = text.LastIndexOf(MdMarker, StringComparison.Ordinal);
        if (md >= 0)
        {
            var end = text.IndexOf("-->", md, StringComparison.Ordinal);
            var b64 = text[(md + MdMarker.Length)..end].Trim();
            return (ReportFormat.Md, ReportSerializer.FromJson(Encoding.UTF8.GetString(Convert.FromBase64String(b64))));
        }
        var html = text.IndexOf(HtmlDataOpen, StringComparison.Ordinal);
        if (html >= 0)
        {
            var start = html + HtmlDataOpen.Length;
            var end = text.IndexOf("</script>", start, StringComparison.Ordinal);
            return (ReportFormat.Html, ReportSerializer.FromJson(text[start..end]));
        }
        throw new FormatException("this file is not a Cairn report (no report data in it); give the .html, .md or .json file 'cairn report' wrote");
    }

    private static string Markdown(ComplianceReport r)
    {
        var w = new StringBuilder();
        void L(string s = "") => w.Append(s).Append('\n');
        L($"# {Md(r.Title)}");
        L();
        L($"**Status: {r.Status.Level.ToUpperInvariant()}**");
        L();
        foreach (var reason in r.Status.Reasons)
        {
            L($"- {Md(reason)}");
        }
        L();
        L($"Period: {Time(r.Inputs.From)} to {Time(r.Inputs.Until)} (figures as of {Time(r.Inputs.AsOf)}). Generated {Time(r.GeneratedAt)} from the evidence log `{Md(r.Origin)}`, records below {r.Inputs.TreeSize}. Numbers in brackets are evidence records (`cairn evidence show SEQ`).");
        L();
        foreach (var d in r.Databases)
        {
            var b = d.Backups;
            L($"## Database {Md(d.Name)}");
            L();
            L("### Backups");
            L();
            L("| figure | value | records |");
            L("|---|---|---|");
            L($"| expected (schedules) | {(b.Expected?.ToString(CultureInfo.InvariantCulture) ?? "no backup schedule")} | |");
            L($"| taken | {b.Taken} | {Seqs(b.TakenSeqs)} |");
            L($"| failed | {b.Failed} | {Seqs(b.FailedSeqs)} |");
            L($"| longest gap | {Duration(b.LongestGapSeconds)} ({Time(b.LongestGapStart)} to {Time(b.LongestGapEnd)}) | {Seqs(b.GapSeqs)} |");
            L($"| days without a backup | {b.DaysWithout.Count}{(b.DaysWithout.Count > 0 ? ": " + string.Join(", ", b.DaysWithout) : "")} | {Seqs(b.TakenSeqs)} |");
            L($"| freshness SLA (newest backup younger than {Duration(d.Freshness.WarnAfterSeconds)}) | {Pct(d.Freshness.SlaPercent)} ({Duration(d.Freshness.SecondsOverThreshold)} over) | {Seqs(d.Freshness.Seqs)} |");
            L();
            L("### WAL and recovery window");
            L();
            L($"- WAL verifications: {d.Wal.Verifications}, with gaps found: {d.Wal.WithFindings} {Seqs(d.Wal.Seqs)}");
            L($"- At the period's end ({d.Wal.RecoveryKind}): {Md(d.Wal.RecoveryNote)} {Seqs(d.Wal.RecoverySeqs)}");
            L();
            var dr = d.Drills;
            L("### Restore drills");
            L();
            L($"- run {dr.Run}, passed {dr.Passed}, failed {dr.Failed}");
            L($"- RTO: median {Ms(dr.Rto.Median)}, worst {Ms(dr.Rto.Worst)}, target {(dr.RtoTargetSeconds is { } rt ? Duration(rt) + $" (met by {dr.RtoMet})" : "not set (rto_target)")}, trend {dr.RtoTrend} {Seqs(dr.Rto.Seqs)}");
            L($"- data age: median {Sec(dr.DataAge.Median)}, worst {Sec(dr.DataAge.Worst)}, target {(dr.RpoTargetSeconds is { } rp ? Duration(rp) + $" (met by {dr.RpoMet})" : "not set (rpo_target)")}, trend {dr.DataAgeTrend} {Seqs(dr.DataAge.Seqs)}");
            L();
            if (dr.Rows.Count > 0)
            {
                L("| record | time | type | result | RTO | data age | checks passed | checks failed |");
                L("|---|---|---|---|---|---|---|---|");
                foreach (var x in dr.Rows)
                {
                    L($"| {x.Seq} | {Time(x.Time)} | {Md(x.Type)} | {Md(x.Result)} | {Ms(x.RtoMs)} | {Sec(x.DataAgeSeconds)} | {x.ChecksPassed} | {x.ChecksFailed} |");
                }
                L();
            }
            L("### Checks (drills and live verifications)");
            L();
            if (d.Checks.Count == 0)
            {
                L("No checks ran in the period.");
            }
            else
            {
                L("| run by | check kind | pass | fail | error | skip | records |");
                L("|---|---|---|---|---|---|---|");
                foreach (var c in d.Checks)
                {
                    L($"| {Md(c.Source)} | {Md(c.Kind)} | {c.Pass} | {c.Fail} | {c.Error} | {c.Skip} | {Seqs(c.Seqs)} |");
                }
            }
            L();
            L($"Restores: {d.Restores.Count} ({d.Restores.Failed} failed) {Seqs(d.Restores.Seqs)}");
            L();
        }
        var v = r.Verifications;
        L("## Repository verifications");
        L();
        L($"Runs {v.Runs}, passed {v.Passed}, failed {v.Failed}; expected share of the data read back at least once: {Pct(v.ExpectedReadCoveragePercent)}.");
        L();
        if (v.Rows.Count > 0)
        {
            L("| record | time | scope | result | read | damage | WAL findings |");
            L("|---|---|---|---|---|---|---|");
            foreach (var x in v.Rows)
            {
                L($"| {x.Seq} | {Time(x.Time)} | {Md(x.Scope)} | {Md(x.Result)} | {Pct(x.ReadPercent)} | {x.DamageFindings} | {x.WalFindings} |");
            }
            L();
        }
        L("## Alerts");
        L();
        if (r.Alerts.Count == 0)
        {
            L("No alerts were raised in the period.");
        }
        else
        {
            L("| database | check | worst state | raised | resolved | time to resolve | records |");
            L("|---|---|---|---|---|---|---|");
            foreach (var a in r.Alerts)
            {
                L($"| {Md(a.Database)} | {Md(a.Check)} | {Md(a.State)} | {Time(a.Raised)} | {(a.Resolved is { } t ? Time(t) : "not resolved")} | {(a.SecondsToResolve is { } s ? Duration(s) : "")} | {Seqs(a.Seqs)} |");
            }
        }
        L();
        L("## Key and configuration changes");
        L();
        Changes(L, "Key changes", r.KeyChanges);
        Changes(L, "Configuration loaded", r.ConfigChanges);
        L("## Cleanups and erasures");
        L();
        if (r.Cleanups.Count == 0)
        {
            L("No cleanups on record in the period.");
        }
        else
        {
            L("| database | rule | runs | rows | records |");
            L("|---|---|---|---|---|");
            foreach (var c in r.Cleanups)
            {
                L($"| {Md(c.Database)} | {Md(c.Rule)} | {c.Runs} | {c.Rows} | {Seqs(c.Seqs)} |");
            }
        }
        L();
        L($"Erasures (counts only): {r.Erasures.Requests} request(s), {r.Erasures.Rows} row(s); re-applied on restores: {r.Erasures.ReappliedOnRestores} {Seqs(r.Erasures.Seqs)}");
        L();
        L("## Incidents and pins");
        L();
        Events(L, "Incidents", r.Incidents);
        Events(L, "Pins", r.Pins);
        L("## Control mapping");
        L();
        L("| framework | control | title | report section | what the report shows |");
        L("|---|---|---|---|---|");
        foreach (var c in r.Controls)
        {
            L($"| {Md(c.Framework)} | {Md(c.Control)} | {Md(c.Title)} | {Md(c.Section)} | {Md(c.Shows)} |");
        }
        L();
        L("## Proof");
        L();
        L($"Records {r.Proof.FirstSeq?.ToString(CultureInfo.InvariantCulture) ?? "-"} to {r.Proof.LastSeq?.ToString(CultureInfo.InvariantCulture) ?? "-"} of the period are covered by this signed checkpoint (tree size {r.Proof.TreeSize}, root `{r.Proof.RootHex}`), verifier key `{Md(r.Proof.VerifierKey)}`:");
        L();
        L("```");
        w.Append(r.Proof.Checkpoint.Replace("```", "'''", StringComparison.Ordinal));
        L("```");
        L();
        if (r.Proof.Previous is { } p)
        {
            L($"Previous report: record {p.Seq} ({Time(p.From)} to {Time(p.Until)}, SHA-256 `{p.Sha256}`), checkpoint of tree size {p.TreeSize}. Consistency proof ({p.ConsistencyProof.Count} hashes) from it to this checkpoint:");
            L();
            foreach (var h in p.ConsistencyProof)
            {
                L($"- `{h}`");
            }
        }
        else
        {
            L("No earlier report is on record: this report starts the chain.");
        }
        L();
        L("### Appendix: inclusion proofs of the drills");
        L();
        foreach (var i in r.Proof.Inclusions)
        {
            L($"- record {i.Seq}: leaf `{i.LeafHash}`; audit path {string.Join(" ", i.AuditPath.Select(h => $"`{h}`"))}");
        }
        L();
        L("Check this report against the evidence log: `cairn report verify FILE`.");
        L();
        L(MdMarker + Convert.ToBase64String(Encoding.UTF8.GetBytes(ReportSerializer.ToJson(r))) + " -->");
        return w.ToString();
    }

    private static void Changes(Action<string> L, string title, IReadOnlyList<ChangeRow> rows)
    {
        L($"{title}: {rows.Count}");
        L("");
        if (rows.Count > 0)
        {
            L("| record | time | action | detail | result |");
            L("|---|---|---|---|---|");
            foreach (var c in rows)
            {
                L($"| {c.Seq} | {Time(c.Time)} | {Md(c.Action)} | {Md(c.Detail)} | {Md(c.Result)} |");
            }
            L("");
        }
    }

    private static void Events(Action<string> L, string title, IReadOnlyList<EventRow> rows)
    {
        L($"{title}: {rows.Count}");
        L("");
        if (rows.Count > 0)
        {
            L("| record | time | database | kind | result | summary |");
            L("|---|---|---|---|---|---|");
            foreach (var e in rows)
            {
                L($"| {e.Seq} | {Time(e.Time)} | {Md(e.Database)} | {Md(e.Kind)} | {Md(e.Result)} | {Md(e.Summary)} |");
            }
            L("");
        }
    }

    /// <summary>Text from records in Markdown: no HTML, no table breaks, no emphasis or links.</summary>
    internal static string Md(string s)
    {
        var b = new StringBuilder(s.Length);
        foreach (var c in s)
        {
            b.Append(c switch
            {
                '<' => "&lt;",
                '>' => "&gt;",
                '&' => "&amp;",
                '|' => "\\|",
                '\n' or '\r' => " ",
                '\\' or '`' or '*' or '_' or '[' or ']' or '#' or '!' => "\\" + c,
                _ => c.ToString(),
            });
        }
        return b.ToString();
    }

    internal static string Seqs(IReadOnlyList<long> seqs)
    {
        if (seqs.Count == 0)
        {
            return "";
        }
        var parts = new List<string>();
        var sorted = seqs.Order().ToList();
        var start = sorted[0];
        var prev = start;
        foreach (var s in sorted.Skip(1).Append(long.MinValue))
        {
            if (s == prev + 1)
            {
                prev = s;
                continue;
            }
            parts.Add(start == prev ? start.ToString(CultureInfo.InvariantCulture) : $"{start}–{prev}");
            start = prev = s;
        }
        return "[" + string.Join(", ", parts) + "]";
    }

    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd HH:mm'Z'", CultureInfo.InvariantCulture);

    internal static string Pct(double p) => p.ToString("0.##", CultureInfo.InvariantCulture) + "%";

    internal static string Ms(long? ms) => ms is { } v ? (v < 1000 ? $"{v} ms" : (v / 1000.0).ToString("0.#", CultureInfo.InvariantCulture) + " s") : "–";

    internal static string Sec(long? s) => s is { } v ? Duration(v) : "–";

    internal static string Duration(long seconds)
    {
        var t = TimeSpan.FromSeconds(seconds);
        return t.TotalDays >= 2 ? $"{t.TotalDays.ToString("0.#", CultureInfo.InvariantCulture)} d"
            : t.TotalHours >= 1 ? $"{t.TotalHours.ToString("0.#", CultureInfo.InvariantCulture)} h"
            : t.TotalMinutes >= 1 ? $"{t.TotalMinutes.ToString("0", CultureInfo.InvariantCulture)} min"
            : $"{seconds} s";
    }
}
