using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Cairn.Operations.Incidents;

/// <summary>One line of an incident's timeline: a step (or the open and close), its times, outcome and evidence seqs.</summary>
/// <param name="OnRecord">Every seq of the line is a verified <c>incident</c> record of this incident in the evidence log.</param>
public sealed record TimelineEntry(int Number, string Step, string Kind, string Status, DateTimeOffset? Started, DateTimeOffset? Ended, long? StartSeq, long? EndSeq, string? Outcome, int Attempts, bool OnRecord);

public sealed record IncidentReport(IncidentState State, IReadOnlyList<TimelineEntry> Timeline, IReadOnlyList<string> Warnings)
{
    /// <summary>The timeline in Markdown: a table of steps with their evidence seqs, then what each step kept.</summary>
    public string ToMarkdown()
    {
        var s = State;
        var b = new StringBuilder();
        b.Append(CultureInfo.InvariantCulture, $"# Incident {s.Id}\n\n");
        b.Append(CultureInfo.InvariantCulture, $"- type: {IncidentOperation.TypeOf(s)} ({s.Type.ToString().ToLowerInvariant()})\n- database: {s.Database}\n- status: {s.Status}\n- opened: {T(s.Created)} on {s.Host} (evidence {s.OpenSeq})\n");
        if (s.Closed is { } c)
        {
            b.Append(CultureInfo.InvariantCulture, $"- closed: {T(c)} (evidence {s.CloseSeq})\n");
        }
        if (s.At is { } at)
        {
            b.Append(CultureInfo.InvariantCulture, $"- recovery point (--at): {T(at)}\n");
        }
        b.Append("\n| # | step | kind | status | started | ended | evidence | outcome |\n|---|---|---|---|---|---|---|---|\n");
        foreach (var e in Timeline)
        {
            var seqs = e.StartSeq is null ? "" : $"{e.StartSeq}–{(e.EndSeq?.ToString(CultureInfo.InvariantCulture) ?? "…")}{(e.OnRecord ? "" : " (not verified)")}";
            b.Append(CultureInfo.InvariantCulture, $"| {e.Number} | {e.Step} | {e.Kind} | {e.Status}{(e.Attempts > 1 ? $" ({e.Attempts} attempts)" : "")} | {T(e.Started)} | {T(e.Ended)} | {seqs} | {Cell(e.Outcome)} |\n");
        }
        foreach (var step in s.Steps.Where(x => x.Data.Count > 0))
        {
            b.Append(CultureInfo.InvariantCulture, $"\n## {step.Name}\n\n");
            foreach (var (k, v) in step.Data.OrderBy(kv => kv.Key, StringComparer.Ordinal))
            {
                if (v.Contains('\n', StringComparison.Ordinal))
                {
                    b.Append(CultureInfo.InvariantCulture, $"- {k}:\n");
                    foreach (var line in v.Split('\n'))
                    {
                        b.Append(CultureInfo.InvariantCulture, $"  - {line}\n");
                    }
                }
                else
                {
                    b.Append(CultureInfo.InvariantCulture, $"- {k}: {v}\n");
                }
            }
        }
        foreach (var w in Warnings)
        {
            b.Append(CultureInfo.InvariantCulture, $"\n> warning: {w}\n");
        }
        return b.ToString();
    }

    private static string T(DateTimeOffset? t) => t is { } v ? v.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss'Z'", CultureInfo.InvariantCulture) : "";

    private static string Cell(string? text) => (text ?? "").Replace("|", "\\|", StringComparison.Ordinal).Replace('\n', ' ');
}

/// <summary><c>incident report ID</c> and <c>incident list</c>: the stored state, its seqs checked against the verified evidence log.</summary>
public sealed class IncidentReportOperation(OperationContext context)
{
    public async Task<IncidentReport> ReportAsync(string id, CancellationToken ct)
    {
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        var state = await IncidentStore.LoadAsync(repo, id, ct).ConfigureAwait(false);
        var reading = context.Evidence.ReadVerified();
        var mine = new HashSet<long>(reading.Entries.Where(e => e.Kind == "incident" && e.Record?["details"]?["incident"] is JsonValue v && v.TryGetValue<string>(out var i) && i == state.Id).Select(e => e.Seq));
        var warnings = reading.Findings.Where(f => f.State != Monitoring.HealthState.Ok).Select(f => "evidence: " + f.Message).ToList();
        bool On(params long?[] seqs) => seqs.All(s => s is null || mine.Contains(s.Value));
        var timeline = new List<TimelineEntry> { new(0, "open", "open", "done", state.Created, state.Created, state.OpenSeq, null, "incident opened", 1, On(state.OpenSeq)) };
        var n = 1;
        foreach (var s in state.Steps)
        {
            timeline.Add(new TimelineEntry(n++, s.Name, s.Kind.ToString().ToLowerInvariant(), s.Status.ToString().ToLowerInvariant(), s.Started, s.Ended, s.StartSeq, s.EndSeq, s.Outcome, s.Attempts, On(s.StartSeq, s.EndSeq)));
        }
        if (state.Closed is { } closed)
        {
            timeline.Add(new TimelineEntry(n, "close", "close", "done", closed, closed, state.CloseSeq, null, "incident closed", 1, On(state.CloseSeq)));
        }
        if (timeline.Any(e => !e.OnRecord))
        {
            warnings.Add("some of the timeline's evidence seqs are not verified incident records of this incident (a log that does not verify, or records pruned)");
        }
        return new IncidentReport(state, timeline, warnings);
    }

    public async Task<IReadOnlyList<IncidentState>> ListAsync(CancellationToken ct)
    {
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        return await IncidentStore.ListAsync(repo, ct).ConfigureAwait(false);
    }
}
