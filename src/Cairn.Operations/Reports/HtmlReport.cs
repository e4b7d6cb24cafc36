using System.Globalization;
using System.Net;
using System.Text;

namespace Cairn.Operations.Reports;

/// <summary>
/// The report as one self-contained HTML file: inline CSS (with print rules), inline SVG charts drawn here, a tiny
/// inline script that sorts tables, and the model as a JSON data block. Nothing is fetched from anywhere, and every
/// text that comes from a record is HTML-escaped (<see cref="E"/>).
/// </summary>
internal static class HtmlReport
{
    private const string Css = """
        :root{--ok:#1a7f37;--warn:#9a6700;--crit:#cf222e;--mute:#6e7781;--line:#d0d7de;--bg:#f6f8fa}
        *{box-sizing:border-box}
        body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:#1f2328;margin:0 auto;max-width:1100px;padding:24px}
        h1{font-size:22px;margin:0 0 12px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
        .banner{border-radius:8px;padding:12px 16px;color:#fff;margin:8px 0 16px}
        .banner.ok{background:var(--ok)}.banner.warning{background:var(--warn)}.banner.critical{background:var(--crit)}
        .banner.ok,.banner.warning,.banner.critical{color:#fff;font-weight:normal}
        .banner strong{font-size:16px;letter-spacing:.04em}.banner ul{margin:6px 0 0 18px;padding:0}
        .meta{color:var(--mute);font-size:12px}
        .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:8px;margin:8px 0}
        .card{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px 10px}
        .card .v{font-size:20px;font-weight:600}.card .k{color:var(--mute);font-size:12px}.card .s{color:var(--mute);font-size:11px}
        table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:13px}
        th,td{border:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
        th{background:var(--bg)}table.sortable th{cursor:pointer}table.sortable th:after{content:" \2195";color:var(--mute);font-size:10px}
        .pass{color:var(--ok);font-weight:600}.fail,.error,.critical{color:var(--crit);font-weight:600}.warning{color:var(--warn);font-weight:600}
        .charts{display:flex;flex-wrap:wrap;gap:16px}
        svg.chart{background:#fff;border:1px solid var(--line);border-radius:6px}
        svg text{font:11px system-ui,sans-serif;fill:#1f2328}
        pre{background:var(--bg);border:1px solid var(--line);padding:8px;overflow-x:auto;font-size:12px;white-space:pre-wrap;word-break:break-all}
        code{font-size:12px;word-break:break-all}
        .seqs{color:var(--mute);font-size:11px}
        @media print{body{max-width:none;padding:0;font-size:11px}h2{break-after:avoid}table,svg,.card{break-inside:avoid}
          .banner{-webkit-print-color-adjust:exact;print-color-adjust:exact}table.sortable th:after{content:""}@page{size:A4;margin:14mm}}
        """;

    // Sorts a table by the clicked column (numbers as numbers); no network, no libraries.
    private const string Script = """
        document.querySelectorAll("table.sortable").forEach(function(t){t.querySelectorAll("th").forEach(function(th,i){th.addEventListener("click",function(){
        var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.getAttribute("data-dir")!=="asc";
        rows.sort(function(x,y){var a=x.cells[i].getAttribute("data-v")||x.cells[i].textContent,c=y.cells[i].getAttribute("data-v")||y.cells[i].textContent,
        n=parseFloat(a),m=parseFloat(c),r=(!isNaN(n)&&!isNaN(m))?n-m:a.localeCompare(c);return asc?r:-r;});
        rows.forEach(function(r){b.appendChild(r);});th.setAttribute("data-dir",asc?"asc":"desc");});});});
        """;

    public static string Render(ComplianceReport r)
    {
        var w = new StringBuilder();
        w.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
        w.Append("<title>").Append(E(r.Title)).Append("</title>\n<style>\n").Append(Css).Append("\n</style>\n</head>\n<body>\n");
        w.Append("<h1>").Append(E(r.Title)).Append("</h1>\n");
        w.Append($"<div class=\"banner {E(r.Status.Level)}\" id=\"status\"><strong>{E(r.Status.Level.ToUpperInvariant())}</strong><ul>");
        foreach (var reason in r.Status.Reasons)
        {
            w.Append("<li>").Append(E(reason)).Append("</li>");
        }
        w.Append("</ul></div>\n");
        w.Append($"<p class=\"meta\">Period {T(r.Inputs.From)} to {T(r.Inputs.Until)} (figures as of {T(r.Inputs.AsOf)}); generated {T(r.GeneratedAt)} from the evidence log <code>{E(r.Origin)}</code>, records below {r.Inputs.TreeSize}. Numbers in brackets are evidence records: <code>cairn evidence show SEQ</code>.</p>\n");

        var index = 0;
        foreach (var d in r.Databases)
        {
            index++;
            var b = d.Backups;
            w.Append($"<section class=\"database\" id=\"db-{index}\">\n<h2>Database {E(d.Name)}</h2>\n<div class=\"cards\">");
            Card(w, "backups taken", b.Taken.ToString(CultureInfo.InvariantCulture), $"expected {b.Expected?.ToString(CultureInfo.InvariantCulture) ?? "(no schedule)"}", b.TakenSeqs);
            Card(w, "backups failed", b.Failed.ToString(CultureInfo.InvariantCulture), "", b.FailedSeqs);
            Card(w, "days without a backup", b.DaysWithout.Count.ToString(CultureInfo.InvariantCulture), string.Join(", ", b.DaysWithout), b.TakenSeqs);
            Card(w, "longest gap", ReportRenderer.Duration(b.LongestGapSeconds), $"{T(b.LongestGapStart)} to {T(b.LongestGapEnd)}", b.GapSeqs);
            Card(w, "freshness SLA", ReportRenderer.Pct(d.Freshness.SlaPercent), $"newest backup younger than {ReportRenderer.Duration(d.Freshness.WarnAfterSeconds)}", d.Freshness.Seqs);
            Card(w, "drills passed", $"{d.Drills.Passed}/{d.Drills.Run}", d.Drills.Failed > 0 ? $"{d.Drills.Failed} failed" : "", [.. d.Drills.Rows.Select(x => x.Seq)]);
            Card(w, "median RTO", ReportRenderer.Ms(d.Drills.Rto.Median), $"worst {ReportRenderer.Ms(d.Drills.Rto.Worst)}; {d.Drills.RtoTrend}", d.Drills.Rto.Seqs);
            Card(w, "median data age", ReportRenderer.Sec(d.Drills.DataAge.Median), $"worst {ReportRenderer.Sec(d.Drills.DataAge.Worst)}; {d.Drills.DataAgeTrend}", d.Drills.DataAge.Seqs);
            w.Append("</div>\n<h3>Backup days</h3>\n<div class=\"charts\">");
            Calendar(w, b.Calendar, index);
            w.Append("</div>\n<h3>Restore drills</h3>\n<div class=\"charts\">");
            Bars(w, $"rto-{index}", "RTO (s)", [.. d.Drills.Rows.Select(x => (x.Time, x.RtoMs / 1000.0, x.Result))], d.Drills.RtoTargetSeconds, "rto_target");
            Bars(w, $"age-{index}", "data age (h)", [.. d.Drills.Rows.Select(x => (x.Time, x.DataAgeSeconds / 3600.0, x.Result))], d.Drills.RpoTargetSeconds / 3600.0, "rpo_target");
            w.Append("</div>\n");
            w.Append($"<p>RTO target {(d.Drills.RtoTargetSeconds is { } rt ? ReportRenderer.Duration(rt) + $", met by {d.Drills.RtoMet} of {d.Drills.Rto.Seqs.Count}" : "not set (rto_target)")}; data age target {(d.Drills.RpoTargetSeconds is { } rp ? ReportRenderer.Duration(rp) + $", met by {d.Drills.RpoMet} of {d.Drills.DataAge.Seqs.Count}" : "not set (rpo_target)")}.</p>\n");
            if (d.Drills.Rows.Count > 0)
            {
                Table(w, ["record", "time", "type", "result", "RTO", "data age", "checks passed", "checks failed"], d.Drills.Rows.Select(x => new[]
                {
                    Num(x.Seq), Cell(T(x.Time)), Cell(x.Type), Result(x.Result), Num(x.RtoMs, ReportRenderer.Ms(x.RtoMs)), Num(x.DataAgeSeconds, ReportRenderer.Sec(x.DataAgeSeconds)), Num(x.ChecksPassed), Num(x.ChecksFailed),
                }));
            }
            w.Append("<h3>WAL archive and recovery window</h3>\n");
            w.Append($"<p>WAL verifications in the period: {d.Wal.Verifications}, with gaps found: {d.Wal.WithFindings} {S(d.Wal.Seqs)}.<br>At the period's end (<strong>{E(d.Wal.RecoveryKind)}</strong>): {E(d.Wal.RecoveryNote)} {S(d.Wal.RecoverySeqs)}</p>\n");
            w.Append("<h3>Checks per kind</h3>\n");
            if (d.Checks.Count == 0)
            {
                w.Append("<p>No checks ran in the period.</p>\n");
            }
            else
            {
                Table(w, ["run by", "check kind", "pass", "fail", "error", "skip", "records"], d.Checks.Select(c => new[]
                {
                    Cell(c.Source), Cell(c.Kind), Num(c.Pass), Num(c.Fail), Num(c.Error), Num(c.Skip), Cell(ReportRenderer.Seqs(c.Seqs)),
                }));
            }
            w.Append($"<p>Restores: {d.Restores.Count} ({d.Restores.Failed} failed) {S(d.Restores.Seqs)}</p>\n</section>\n");
        }

        var v = r.Verifications;
        w.Append("<h2 id=\"verifications\">Repository verifications</h2>\n");
        w.Append($"<p>Runs {v.Runs}, passed {v.Passed}, failed {v.Failed}; expected share of the data read back at least once: <strong>{ReportRenderer.Pct(v.ExpectedReadCoveragePercent)}</strong>.</p>\n");
        if (v.Rows.Count > 0)
        {
            Table(w, ["record", "time", "scope", "result", "read", "damage", "WAL findings"], v.Rows.Select(x => new[]
            {
                Num(x.Seq), Cell(T(x.Time)), Cell(x.Scope), Result(x.Result), Num(x.ReadPercent, ReportRenderer.Pct(x.ReadPercent)), Num(x.DamageFindings), Num(x.WalFindings),
            }));
        }
        w.Append("<h2 id=\"alerts\">Alerts</h2>\n");
        if (r.Alerts.Count == 0)
        {
            w.Append("<p>No alerts were raised in the period.</p>\n");
        }
        else
        {
            Table(w, ["database", "check", "worst state", "raised", "resolved", "time to resolve", "records"], r.Alerts.Select(a => new[]
            {
                Cell(a.Database), Cell(a.Check), Result(a.State), Cell(T(a.Raised)), Cell(a.Resolved is { } t ? T(t) : "not resolved"),
                Num(a.SecondsToResolve, a.SecondsToResolve is { } s ? ReportRenderer.Duration(s) : ""), Cell(ReportRenderer.Seqs(a.Seqs)),
            }));
        }
        w.Append("<h2 id=\"changes\">Key and configuration changes</h2>\n");
        Changes(w, "Key changes", r.KeyChanges);
        Changes(w, "Configuration loaded", r.ConfigChanges);
        w.Append("<h2 id=\"cleanups\">Cleanups and erasures</h2>\n");
        if (r.Cleanups.Count == 0)
        {
            w.Append("<p>No cleanups on record in the period.</p>\n");
        }
        else
        {
            Table(w, ["database", "rule", "runs", "rows", "records"], r.Cleanups.Select(c => new[] { Cell(c.Database), Cell(c.Rule), Num(c.Runs), Num(c.Rows), Cell(ReportRenderer.Seqs(c.Seqs)) }));
        }
        w.Append($"<p>Erasures (counts only, never identifiers): {r.Erasures.Requests} request(s), {r.Erasures.Rows} row(s); re-applied on restores: {r.Erasures.ReappliedOnRestores} {S(r.Erasures.Seqs)}</p>\n");
        w.Append("<h2 id=\"incidents\">Incidents and pins</h2>\n");
        Events(w, "Incidents", r.Incidents);
        Events(w, "Pins", r.Pins);
        w.Append("<h2 id=\"controls\">Control mapping</h2>\n");
        Table(w, ["framework", "control", "title", "report section", "what the report shows"], r.Controls.Select(c => new[] { Cell(c.Framework), Cell(c.Control), Cell(c.Title), Cell(c.Section), Cell(c.Shows) }));
        w.Append("<h2 id=\"proof\">Proof</h2>\n");
        w.Append($"<p>Records {r.Proof.FirstSeq?.ToString(CultureInfo.InvariantCulture) ?? "–"} to {r.Proof.LastSeq?.ToString(CultureInfo.InvariantCulture) ?? "–"} of the period are covered by this signed checkpoint (tree size {r.Proof.TreeSize}, root <code>{E(r.Proof.RootHex)}</code>; verifier key <code>{E(r.Proof.VerifierKey)}</code>):</p>\n<pre>{E(r.Proof.Checkpoint)}</pre>\n");
        if (r.Proof.Previous is { } p)
        {
            w.Append($"<p>Previous report: record {p.Seq} ({T(p.From)} to {T(p.Until)}, SHA-256 <code>{E(p.Sha256)}</code>), checkpoint of tree size {p.TreeSize}. Consistency proof from it to this checkpoint ({p.ConsistencyProof.Count} hashes):</p>\n<pre>{E(string.Join("\n", p.ConsistencyProof))}</pre>\n<pre>{E(p.Checkpoint)}</pre>\n");
        }
        else
        {
            w.Append("<p>No earlier report is on record: this report starts the chain.</p>\n");
        }
        w.Append("<h3>Appendix: inclusion proofs of the drills</h3>\n");
        Table(w, ["record", "leaf hash", "audit path (RFC 9162)"], r.Proof.Inclusions.Select(i => new[] { Num(i.Seq), Cell(i.LeafHash), Cell(string.Join(" ", i.AuditPath)) }));
        w.Append("<p class=\"meta\">Check this report against the evidence log: <code>cairn report verify FILE</code>.</p>\n");
        w.Append(ReportRenderer.HtmlDataOpen).Append(System.Text.Json.JsonSerializer.Serialize(r, ReportJson.Default.ComplianceReport).Replace("\n", "", StringComparison.Ordinal)).Append("</script>\n");
        w.Append("<script>\n").Append(Script).Append("\n</script>\n</body>\n</html>\n");
        return w.ToString();
    }

    /// <summary>A month (or period) as a calendar: one square per UTC day, Monday first, coloured by backups taken and failed.</summary>
    private static void Calendar(StringBuilder w, IReadOnlyList<DayCell> days, int index)
    {
        const int cell = 26;
        const int gap = 4;
        const int top = 30;
        if (days.Count == 0)
        {
            w.Append($"<svg class=\"chart calendar\" id=\"calendar-{index}\" width=\"240\" height=\"60\" role=\"img\" aria-label=\"no days\"><text x=\"10\" y=\"35\">no days in the period</text></svg>");
            return;
        }
        var first = DateTime.ParseExact(days[0].Date, "yyyy-MM-dd", CultureInfo.InvariantCulture);
        var offset = ((int)first.DayOfWeek + 6) % 7;
        var weeks = (offset + days.Count + 6) / 7;
        var width = 7 * (cell + gap) + 20;
        var height = top + weeks * (cell + gap) + 40;
        w.Append($"<svg class=\"chart calendar\" id=\"calendar-{index}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"backup days\">");
        string[] names = ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"];
        for (var i = 0; i < 7; i++)
        {
            w.Append($"<text x=\"{10 + i * (cell + gap) + 6}\" y=\"20\">{names[i]}</text>");
        }
        for (var i = 0; i < days.Count; i++)
        {
            var d = days[i];
            var pos = offset + i;
            var x = 10 + pos % 7 * (cell + gap);
            var y = top + pos / 7 * (cell + gap);
            var fill = d.Taken > 0 && d.Failed == 0 ? "#2da44e" : d.Taken > 0 ? "#bf8700" : d.Failed > 0 ? "#cf222e" : "#ff8182";
            w.Append($"<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" rx=\"4\" fill=\"{fill}\"><title>{E(d.Date)}: {d.Taken} backup(s), {d.Failed} failed</title></rect>");
            w.Append($"<text x=\"{x + 4}\" y=\"{y + 17}\" style=\"fill:#fff\">{d.Date[8..]}</text>");
        }
        var ly = top + weeks * (cell + gap) + 20;
        w.Append($"<rect x=\"10\" y=\"{ly - 10}\" width=\"10\" height=\"10\" fill=\"#2da44e\"/><text x=\"24\" y=\"{ly}\">backed up</text>");
        w.Append($"<rect x=\"100\" y=\"{ly - 10}\" width=\"10\" height=\"10\" fill=\"#ff8182\"/><text x=\"114\" y=\"{ly}\">none</text>");
        w.Append($"<rect x=\"160\" y=\"{ly - 10}\" width=\"10\" height=\"10\" fill=\"#cf222e\"/><text x=\"174\" y=\"{ly}\">failed</text>");
        w.Append("</svg>");
    }

    /// <summary>One bar per drill (red when it failed), with the target as a dashed line.</summary>
    private static void Bars(StringBuilder w, string id, string label, IReadOnlyList<(DateTimeOffset Time, double? Value, string Result)> points, double? target, string targetKey)
    {
        const int width = 460;
        const int height = 220;
        const int left = 50;
        const int bottom = 190;
        const int topY = 30;
        w.Append($"<svg class=\"chart\" id=\"{E(id)}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{E(label)}\">");
        w.Append($"<text x=\"{left}\" y=\"18\">{E(label)} per drill{(target is { } tt ? $", {targetKey} {F(tt)}" : "")}</text>");
        w.Append($"<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{width - 10}\" y2=\"{bottom}\" stroke=\"#8c959f\"/><line x1=\"{left}\" y1=\"{topY}\" x2=\"{left}\" y2=\"{bottom}\" stroke=\"#8c959f\"/>");
        var values = points.Where(p => p.Value is not null).ToList();
        if (values.Count == 0)
        {
            w.Append($"<text x=\"{left + 20}\" y=\"{(topY + bottom) / 2}\">no drill measured this</text></svg>");
            return;
        }
        var max = Math.Max(values.Max(p => p.Value!.Value), target ?? 0) * 1.15;
        max = max <= 0 ? 1 : max;
        w.Append($"<text x=\"4\" y=\"{topY + 4}\">{F(max)}</text><text x=\"4\" y=\"{bottom}\">0</text>");
        var slot = (double)(width - 10 - left) / points.Count;
        for (var i = 0; i < points.Count; i++)
        {
            if (points[i].Value is not { } value)
            {
                continue;
            }
            var h = value / max * (bottom - topY);
            var x = left + i * slot + slot * 0.15;
            var fill = points[i].Result == "pass" ? "#0969da" : "#cf222e";
            w.Append($"<rect x=\"{F(x)}\" y=\"{F(bottom - h)}\" width=\"{F(Math.Max(2, slot * 0.7))}\" height=\"{F(Math.Max(1, h))}\" fill=\"{fill}\"><title>{E(ReportRenderer.Time(points[i].Time))}: {F(value)} ({E(points[i].Result)})</title></rect>");
            w.Append($"<text x=\"{F(x)}\" y=\"{bottom + 14}\">{points[i].Time.UtcDateTime.ToString("dd", CultureInfo.InvariantCulture)}</text>");
        }
        if (target is { } t)
        {
            var y = bottom - t / max * (bottom - topY);
            w.Append($"<line x1=\"{left}\" y1=\"{F(y)}\" x2=\"{width - 10}\" y2=\"{F(y)}\" stroke=\"#cf222e\" stroke-dasharray=\"5,4\"/><text x=\"{width - 80}\" y=\"{F(y - 4)}\">target</text>");
        }
        w.Append("</svg>");
    }

    private static void Changes(StringBuilder w, string title, IReadOnlyList<ChangeRow> rows)
    {
        w.Append($"<h3>{E(title)}: {rows.Count}</h3>\n");
        if (rows.Count > 0)
        {
            Table(w, ["record", "time", "action", "detail", "result"], rows.Select(c => new[] { Num(c.Seq), Cell(T(c.Time)), Cell(c.Action), Cell(c.Detail), Result(c.Result) }));
        }
    }

    private static void Events(StringBuilder w, string title, IReadOnlyList<EventRow> rows)
    {
        w.Append($"<h3>{E(title)}: {rows.Count}</h3>\n");
        if (rows.Count > 0)
        {
            Table(w, ["record", "time", "database", "kind", "result", "summary"], rows.Select(e => new[] { Num(e.Seq), Cell(T(e.Time)), Cell(e.Database), Cell(e.Kind), Result(e.Result), Cell(e.Summary) }));
        }
    }

    private static void Card(StringBuilder w, string key, string value, string sub, IReadOnlyList<long> seqs)
        => w.Append($"<div class=\"card\"><div class=\"k\">{E(key)}</div><div class=\"v\">{E(value)}</div><div class=\"s\">{E(sub)}</div><div class=\"seqs\">{E(ReportRenderer.Seqs(seqs))}</div></div>");

    private static void Table(StringBuilder w, string[] headers, IEnumerable<string[]> rows)
    {
        w.Append("<table class=\"sortable\"><thead><tr>");
        foreach (var h in headers)
        {
            w.Append("<th>").Append(E(h)).Append("</th>");
        }
        w.Append("</tr></thead><tbody>");
        foreach (var row in rows)
        {
            w.Append("<tr>").Append(string.Concat(row)).Append("</tr>");
        }
        w.Append("</tbody></table>\n");
    }

    private static string Cell(string text) => $"<td>{E(text)}</td>";

    private static string Num(long value) => $"<td data-v=\"{value}\">{value}</td>";

    private static string Num(double value, string shown) => $"<td data-v=\"{F(value)}\">{E(shown)}</td>";

    private static string Num(long? value, string shown) => $"<td data-v=\"{value?.ToString(CultureInfo.InvariantCulture) ?? ""}\">{E(shown)}</td>";

    private static string Result(string result) => $"<td class=\"{(result is "pass" or "fail" or "error" or "warning" or "critical" ? result : "")}\">{E(result)}</td>";

    private static string S(IReadOnlyList<long> seqs) => $"<span class=\"seqs\">{E(ReportRenderer.Seqs(seqs))}</span>";

    private static string T(DateTimeOffset t) => E(ReportRenderer.Time(t));

    private static string F(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>Every text from a record goes through here: &lt; &gt; &amp; " ' escaped.</summary>
    internal static string E(string s) => WebUtility.HtmlEncode(s);
}
