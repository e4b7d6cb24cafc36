using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Scheduling;
using Cairn.Repository;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn check</c>, <c>cairn alert test</c>, <c>cairn schedule</c>.</summary>
internal static class MonitoringCommands
{
    public static Command Check(CliContext ctx)
    {
        var db = new Argument<string?>("DATABASE") { Description = "Only this database (default: all configured)", Arity = ArgumentArity.ZeroOrOne };
        var nagios = new Option<bool>("--nagios") { Description = "One status line with performance data, as monitoring plugins print" };
        var textfile = new Option<string?>("--prometheus-textfile") { Description = "Also write the metrics to this file (atomically), for node_exporter's textfile collector" };
        var cmd = new Command("check", "Freshness of backups, drills and live verifications against thresholds; alerts on state changes. Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN") { db, nagios, textfile };
        // Not through the command runner: monitoring systems read the plugin codes 0-3, and a problem is UNKNOWN.
        cmd.SetAction((ParseResult p, CancellationToken ct) => CheckAsync(new Invocation(ctx, CommandRunner.Globals(p)), new HealthRequest(p.GetValue(db)), p.GetValue(nagios), p.GetValue(textfile), ct));
        return cmd;
    }

    public static async Task<int> CheckAsync(Invocation inv, HealthRequest request, bool nagios, string? textfile, CancellationToken ct)
    {
        HealthCheckResult outcome;
        try
        {
            outcome = await new HealthOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ConfigException or EvidenceException or RepositoryException or IOException)
        {
            inv.Console.Out.WriteLine($"CAIRN UNKNOWN - {e.Message}");
            return (int)HealthState.Unknown;
        }
        var report = outcome.Report;
        if (textfile is not null)
        {
            Metrics.WriteTextfile(textfile, report.Metrics);
        }
        var bad = report.Findings.Where(f => f.State != HealthState.Ok).OrderByDescending(f => f.State).ToList();
        var summary = $"CAIRN {Word(report.Overall)} - " + (bad.Count == 0 ? $"{report.Findings.Count} checks OK" : string.Join("; ", bad.Select(f => $"{f.Database} {f.Aspect}: {f.Message}")));
        if (inv.Json)
        {
            var o = new HealthOutput("summary", Word(report.Overall), (int)report.Overall, summary,
                [.. report.Findings.Select(f => new HealthFindingRow(f.Database, f.Aspect, Word(f.State), f.Message, f.AgeSeconds is { } a ? Math.Round(a) : null, f.Last?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture)))],
                [.. outcome.Deliveries.Select(d => new AlertRow(d.Sink.Name, Word(d.Alert.State), d.Delivered, d.Error))]);
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(o, CliJson.Default.HealthOutput));
        }
        else if (nagios)
        {
            var perf = string.Join(' ', report.Findings.Where(f => f.AgeSeconds is not null).Select(f => $"'{f.Database}_{f.Aspect}_age'={f.AgeSeconds:0}s"));
            inv.Console.Out.WriteLine(summary + (perf.Length > 0 ? " | " + perf : ""));
        }
        else
        {
            inv.Console.Out.WriteLine(summary);
            var t = new Table().AddColumns("Database", "Check", "State", "Detail");
            foreach (var f in report.Findings)
            {
                var color = f.State switch { HealthState.Ok => "green", HealthState.Warning => "yellow", _ => "red" };
                t.AddRow(Markup.Escape(f.Database), f.Aspect, $"[{color}]{Word(f.State)}[/]", Markup.Escape(f.Message));
            }
            inv.Console.Ansi.Write(t);
            foreach (var d in outcome.Deliveries)
            {
                inv.Console.Out.WriteLine($"alert {(d.Delivered ? "sent" : "NOT delivered")} to {d.Sink.Name}: {d.Alert.Database} {d.Alert.Aspect} {Word(d.Alert.Previous)} -> {Word(d.Alert.State)}{(d.Error is not null ? $" ({d.Error}; retried {d.Attempts}x, will retry next run)" : "")}");
            }
        }
        return (int)report.Overall;
    }

    private static string Word(HealthState s) => s.ToString().ToUpperInvariant();

    public static Command Alert(CliContext ctx)
    {
        var sink = new Argument<string?>("SINK") { Description = "Name or type of the alert receiver (default: all)", Arity = ArgumentArity.ZeroOrOne };
        var test = new Command("test", "Send a test alert to the configured receivers") { sink };
        test.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new AlertTestOperation(inv.Operations).RunAsync(new AlertTestRequest(p.GetValue(sink)), ct).ConfigureAwait(false);
            foreach (var d in r.Deliveries)
            {
                inv.Console.Out.WriteLine(d.Delivered ? $"sent a test alert to {d.Sink.Name}" : $"could not deliver to {d.Sink.Name}: {d.Error}");
            }
            return r.Failed == 0 ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return new Command("alert", "Alert receivers (webhook/siren, slack, pagerduty, command)") { test };
    }

    public static Command Schedule(CliContext ctx)
    {
        var count = new Option<int>("--count", "-n") { Description = "Next runs to show per job", DefaultValueFactory = _ => 3 };
        var cmd = new Command("schedule", "Print the next run times (UTC) of every scheduled job in cairn.yaml") { count };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            var r = new ScheduleOperation(inv.Operations).Run(new ScheduleRequest(p.GetValue(count)));
            if (inv.Json)
            {
                var rows = r.Runs.Select(x => new ScheduleRow(x.Job.Database, x.Job.Job, x.Job.Expression, [.. x.Next.Select(n => n.UtcDateTime.ToString("O", CultureInfo.InvariantCulture))])).ToList();
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListScheduleRow));
                return Task.FromResult(ExitCodes.Ok);
            }
            if (r.Runs.Count == 0)
            {
                inv.Console.Out.WriteLine("no schedules configured: add schedule: { backup: \"0 0 * * *\", drill: \"0 3 * * 0#1\", … } under a database in cairn.yaml");
                return Task.FromResult(ExitCodes.Ok);
            }
            var t = new Table().AddColumns("Database", "Job", "Cron (UTC)", "Next runs (UTC)");
            foreach (var x in r.Runs)
            {
                t.AddRow(Markup.Escape(x.Job.Database), Markup.Escape(x.Job.CopyTarget is { } target ? $"copy to {target}" : x.Job.Job), Markup.Escape(x.Job.Expression), string.Join(", ", x.Next.Select(Format.Time)));
            }
            inv.Console.Ansi.Write(t);
            return Task.FromResult(ExitCodes.Ok);
        });
        return cmd;
    }
}
