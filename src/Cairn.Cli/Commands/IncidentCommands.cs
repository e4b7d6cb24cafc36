using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Operations.Incidents;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn incident corruption|catastrophic|breach DB</c>, <c>resume ID</c>, <c>report ID</c>, <c>list</c>: the runbook's emergency procedures.</summary>
internal static class IncidentCommands
{
    public static Command Build(CliContext ctx)
    {
        var cmd = new Command("incident", "Run the runbook's emergency procedures as resumable runbooks, every step on the evidence log under one incident ID; the plan first, nothing runs without --execute (e.g. 'cairn incident catastrophic app'). Exit 13 paused for a human, 14 a step failed");
        cmd.Subcommands.Add(Start(ctx, IncidentType.Corruption, "Database corruption: assess, preserve (forensic backup, pinned), recover from the backup assess's plan names into a new database, verify, swap (printed), resume"));
        cmd.Subcommands.Add(Start(ctx, IncidentType.Catastrophic, "Catastrophic failure: maintenance mode, assess, communicate (alerts), recover from the newest drilled backup into a new database, verify, swap (printed), resume"));
        cmd.Subcommands.Add(Start(ctx, IncidentType.Breach, "Data breach: isolate, preserve (forensic backup + forensics snapshot), assess, communicate, notify (a human's step), recover from a verified backup, verify, swap, harden (passphrase rotation, checklist), resume"));
        cmd.Subcommands.Add(Resume(ctx));
        cmd.Subcommands.Add(Report(ctx));
        cmd.Subcommands.Add(List(ctx));
        return cmd;
    }

    private static (Option<bool> Yes, Option<string?> At, Option<bool> ExecuteSwap, Option<string?> NewPassphraseFile) RunOptions() => (
        new Option<bool>("--yes", "-y") { Description = "Run destructive steps without asking (automation); without it and without a terminal, such a step pauses the incident" },
        new Option<string?>("--at") { Description = "Recover as of this time (UTC, e.g. 2026-12-04T09:30Z): a point-in-time restore of a physical backup and its archived WAL when they cover it without a gap, else the newest drilled logical backup taken at or before it" },
        new Option<bool>("--execute-swap") { Description = "Run the swap (rename production away, the restored copy into its name) instead of printing it" },
        new Option<string?>("--new-passphrase-file") { Description = "Breach: a file holding the new repository passphrase for the harden step (never on the command line)" });

    private static Command Start(CliContext ctx, IncidentType type, string description)
    {
        var name = type.ToString().ToLowerInvariant();
        var db = new Argument<string>("DATABASE") { Description = "The database in cairn.yaml" };
        var execute = new Option<bool>("--execute") { Description = "Run the runbook (default: print the plan and change nothing)" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Print the plan only (the default)" };
        var (yes, at, swap, passFile) = RunOptions();
        var cmd = new Command(name, $"""
            {description}.

            Example:
              cairn incident {name} app                    # print the plan; nothing changes
              cairn incident {name} app --execute --yes    # run every step without asking
            """)
        {
            db, execute, dryRun, yes, at, swap, passFile,
        };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            if (p.GetValue(execute) && p.GetValue(dryRun))
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, "--execute and --dry-run contradict each other; give one");
            }
            var target = inv.ResolveDatabase(p.GetValue(db)!);
            if (target.Config is null)
            {
                throw new Repository.RepositoryException(Repository.ErrorKind.InvalidInput, $"an incident runs on a database named in cairn.yaml (its checks, maintenance mode and hooks come from there), not on a connection string");
            }
            var options = Options(p, yes, at, swap, passFile);
            var r = await new IncidentOperation(inv.Operations).StartAsync(new IncidentStartRequest(type, target, p.GetValue(execute), options), new Prompt(inv), ct).ConfigureAwait(false);
            return Render(inv, r);
        }, "incident");
        return cmd;
    }

    private static IncidentRunOptions Options(ParseResult p, Option<bool> yes, Option<string?> at, Option<bool> swap, Option<string?> passFile) =>
        new(p.GetValue(yes), p.GetValue(at) is { } a ? IncidentOperation.ParseAt(a) : null, p.GetValue(swap), p.GetValue(passFile) is { } f ? Path.GetFullPath(f) : null);

    private static Command Resume(CliContext ctx)
    {
        var id = new Argument<string>("ID") { Description = "The incident ID (cairn incident list)" };
        var (yes, at, swap, passFile) = RunOptions();
        var cmd = new Command("resume", """
            Continue an incident at its first step not done: after a crash, a failed step (fix the cause first), a declined or
            unconfirmed destructive step, or a human's step (resuming says it is done). Completed steps are not run again.

            Example:
              cairn incident resume inc-20261205-031500-3fa2c1 --yes
            """)
        {
            id, yes, at, swap, passFile,
        };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new IncidentOperation(inv.Operations).ResumeAsync(new IncidentResumeRequest(p.GetValue(id)!, Options(p, yes, at, swap, passFile)), new Prompt(inv), ct).ConfigureAwait(false);
            return Render(inv, r);
        }, "incident");
        return cmd;
    }

    private static Command Report(CliContext ctx)
    {
        var id = new Argument<string>("ID") { Description = "The incident ID (cairn incident list)" };
        var cmd = new Command("report", """
            Print an incident's timeline in Markdown (--json: JSON): each step's times, outcome and evidence sequence numbers,
            checked against the verified evidence log, then what each step kept (backups, the restored database, the checklist).

            Example:
              cairn incident report inc-20261205-031500-3fa2c1 > incident.md
            """)
        {
            id,
        };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new IncidentReportOperation(inv.Operations).ReportAsync(p.GetValue(id)!, ct).ConfigureAwait(false);
            if (inv.Json)
            {
                var s = r.State;
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new IncidentReportOutput("incident_report", s.Id, s.Type.ToString().ToLowerInvariant(), IncidentOperation.TypeOf(s), s.Database, s.Status, Iso(s.Created)!, Iso(s.Closed),
                    s.OpenSeq, s.CloseSeq, Iso(s.At), Rows(s.Steps), r.Warnings), CliJson.Default.IncidentReportOutput));
            }
            else
            {
                inv.Console.Out.Write(r.ToMarkdown());
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static Command List(CliContext ctx)
    {
        var cmd = new Command("list", """
            List the incidents in the repository, newest first, with where each stands.

            Example:
              cairn incident list
            """);
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var list = await new IncidentReportOperation(inv.Operations).ListAsync(ct).ConfigureAwait(false);
            var rows = list.Select(s => new IncidentListRow(s.Id, s.Type.ToString().ToLowerInvariant(), s.Database, s.Status, Iso(s.Created)!, Iso(s.Closed), s.Next?.Name)).ToList();
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListIncidentListRow));
            }
            else if (rows.Count == 0)
            {
                inv.Console.Out.WriteLine("no incidents");
            }
            else
            {
                foreach (var r in rows)
                {
                    inv.Console.Out.WriteLine($"{r.Id}  {r.Type,-12}  {r.Database,-16}  {r.Status,-7}  opened {r.Created}{(r.NextStep is { } n ? $"  next: {n}" : "")}");
                }
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    private static int Render(Invocation inv, IncidentRunResult r)
    {
        var s = r.State;
        if (inv.Json)
        {
            List<IncidentStepRow> steps = s is null
                ? [.. r.Plan.Select((x, i) => new IncidentStepRow(i + 1, x.Name, x.Kind.ToString().ToLowerInvariant(), x.Destructive, x.Description, "planned", null, null, null, null, null, 0, []))]
                : Rows(s.Steps);
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new IncidentRunOutput("incident", s?.Id, r.Type.ToString().ToLowerInvariant(), IncidentOperation.SirenType(r.Type), r.Database, r.Stop == IncidentStop.DryRun,
                Stop(r.Stop), s?.Status ?? "planned", r.Message, steps), CliJson.Default.IncidentRunOutput));
        }
        else
        {
            var o = inv.Console.Out;
            if (r.Stop == IncidentStop.DryRun)
            {
                o.WriteLine($"incident plan: {IncidentOperation.SirenType(r.Type)} on {r.Database} (dry run)");
                var n = 1;
                foreach (var x in r.Plan)
                {
                    o.WriteLine($"  {n++,2}. {x.Name,-12} {(x.Destructive ? "[confirm] " : x.Kind == StepKind.Manual ? "[human]   " : "          ")}{x.Description}");
                }
            }
            else if (s is not null)
            {
                o.WriteLine($"incident {s.Id}: {s.Status}");
                var n = 1;
                foreach (var x in s.Steps)
                {
                    o.WriteLine($"  {n++,2}. {x.Name,-12} {x.Status.ToString().ToLowerInvariant(),-8} {(x.StartSeq is { } a ? $"evidence {a}–{x.EndSeq?.ToString(CultureInfo.InvariantCulture) ?? "…"}" : ""),-18} {x.Outcome}");
                }
            }
            o.WriteLine(r.Message);
        }
        return r.Stop switch
        {
            IncidentStop.DryRun or IncidentStop.Closed => ExitCodes.Ok,
            IncidentStop.StepFailed => ExitCodes.IncidentStepFailed,
            _ => ExitCodes.IncidentPaused,
        };
    }

    private static string Stop(IncidentStop stop) => stop switch
    {
        IncidentStop.DryRun => "dry_run",
        IncidentStop.Closed => "closed",
        IncidentStop.NeedsConfirmation => "needs_confirmation",
        IncidentStop.Declined => "declined",
        IncidentStop.WaitingForHuman => "waiting_for_human",
        _ => "step_failed",
    };

    private static List<IncidentStepRow> Rows(IReadOnlyList<StepState> steps) => [.. steps.Select((x, i) => new IncidentStepRow(i + 1, x.Name, x.Kind.ToString().ToLowerInvariant(), x.Destructive, x.Description,
        x.Status.ToString().ToLowerInvariant(), Iso(x.Started), Iso(x.Ended), x.StartSeq, x.EndSeq, x.Outcome, x.Attempts, x.Data))];

    private static string? Iso(DateTimeOffset? t) => t?.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);

    /// <summary>Progress lines (stdout, or stderr under --json) and a yes/no on a terminal.</summary>
    private sealed class Prompt(Invocation inv) : IIncidentConsole
    {
        public bool CanConfirm => inv.Console.InputIsTerminal && inv.Console.ErrorIsTerminal;

        public bool Confirm(string question) => inv.Console.AnsiError.Prompt(new ConfirmationPrompt(Markup.Escape(question)) { DefaultValue = false });

        public void Say(string line) => (inv.Json ? inv.Console.Error : inv.Console.Out).WriteLine(line);
    }
}
