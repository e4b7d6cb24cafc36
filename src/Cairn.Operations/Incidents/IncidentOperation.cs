using System.Globalization;
using System.Security.Cryptography;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Recording;
using Cairn.Repository;

namespace Cairn.Operations.Incidents;

/// <summary>What a run may do without asking: <see cref="Yes"/> confirms destructive steps (automation), <see cref="At"/> is the
/// operator's recovery point, <see cref="ExecuteSwap"/> runs the swap instead of printing it, <see cref="NewPassphraseFile"/>
/// holds the new repository passphrase for a breach's harden step (a file: never on the command line).</summary>
public sealed record IncidentRunOptions(bool Yes = false, DateTimeOffset? At = null, bool ExecuteSwap = false, string? NewPassphraseFile = null);

/// <summary><c>incident TYPE DATABASE</c>: the plan only unless <see cref="Execute"/>.</summary>
public sealed record IncidentStartRequest(IncidentType Type, DatabaseTarget Database, bool Execute, IncidentRunOptions Options);

/// <summary><c>incident resume ID</c>: continue at the first step not done.</summary>
public sealed record IncidentResumeRequest(string Id, IncidentRunOptions Options);

/// <summary>Why a run stopped.</summary>
public enum IncidentStop
{
    /// <summary>The plan was printed; nothing ran, nothing was recorded.</summary>
    DryRun,
    Closed,
    /// <summary>A destructive step needs a confirmation no one could give (no terminal, no --yes).</summary>
    NeedsConfirmation,
    /// <summary>The operator answered no.</summary>
    Declined,
    /// <summary>A manual step waits for a human.</summary>
    WaitingForHuman,
    StepFailed,
}

/// <summary>The result of a start or resume: the plan, the state as stored, why the run stopped and what to do next.</summary>
public sealed record IncidentRunResult(IncidentType Type, string Database, IReadOnlyList<IncidentStep> Plan, IncidentState? State, IncidentStop Stop, string Message);

/// <summary>How the engine talks to the operator: progress lines, and a yes/no on a terminal.</summary>
public interface IIncidentConsole
{
    /// <summary>Whether a human can answer (stdin and stderr are a terminal).</summary>
    bool CanConfirm { get; }

    bool Confirm(string question);

    void Say(string line);
}

/// <summary>
/// The incident engine: an incident is an ordered list of typed steps (<see cref="IncidentRunbooks"/>), printed as a plan
/// first; run with --execute, each step's start and end go on the evidence log under one incident ID (<c>incident</c>
/// records) and the state is saved in the repository after every change, so <see cref="ResumeAsync"/> continues at the first
/// step not done after a crash, a failure, a refused confirmation or a human's step. Steps are written to be run twice
/// (<see cref="IncidentSteps"/>): what a step made is found again, not made again.
/// </summary>
public sealed class IncidentOperation(OperationContext context)
{
    public async Task<IncidentRunResult> StartAsync(IncidentStartRequest request, IIncidentConsole console, CancellationToken ct)
    {
        var plan = IncidentRunbooks.Plan(request.Type, request.Database, request.Options.ExecuteSwap);
        if (!request.Execute)
        {
            return new IncidentRunResult(request.Type, request.Database.Name, plan, null, IncidentStop.DryRun,
                $"dry run: nothing was changed or recorded; run it with: cairn incident {request.Type.ToString().ToLowerInvariant()} {request.Database.Name} --execute");
        }
        var now = context.Time.GetUtcNow();
        var id = $"inc-{now.UtcDateTime:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";
        var state = new IncidentState(1, id, request.Type, request.Database.Name, now, Environment.MachineName,
            [.. plan.Select(s => new StepState(s.Name, s.Kind, s.Destructive, s.Description))])
        {
            At = request.Options.At,
            ServerDatabase = request.Database.Connection.Database,
        };
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        var seq = Record(state, "open", null, null, "pass");
        state = await IncidentStore.SaveAsync(repo, state with { OpenSeq = seq }, ct).ConfigureAwait(false);
        console.Say($"incident {id} opened ({TypeOf(state)}, {state.Database}); evidence {seq}; resume it with: cairn incident resume {id}");
        await AlertAsync(state, "start", null, $"{TypeOf(state)} incident {id} opened on {state.Database}", ct).ConfigureAwait(false);
        return await RunAsync(repo, state, request.Database, request.Options, console, ct).ConfigureAwait(false);
    }

    public async Task<IncidentRunResult> ResumeAsync(IncidentResumeRequest request, IIncidentConsole console, CancellationToken ct)
    {
        using var repo = await context.OpenRepositoryAsync(ct).ConfigureAwait(false);
        var state = await IncidentStore.LoadAsync(repo, request.Id, ct).ConfigureAwait(false);
        if (state.Status == "closed")
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"incident {state.Id} is closed; 'cairn incident report {state.Id}' prints its timeline");
        }
        var database = context.ResolveDatabase(state.Database);
        var options = request.Options with { At = request.Options.At ?? state.At };
        if (state.Next is { Kind: StepKind.Manual, Status: StepStatus.Waiting } waiting)
        {
            // Resuming is the human's word that their part is done.
            var end = Record(state, "step-end", waiting, "done: the operator resumed the incident", "pass");
            state = await IncidentStore.SaveAsync(repo, state.WithStep(waiting with { Status = StepStatus.Done, Ended = context.Time.GetUtcNow(), EndSeq = end, Outcome = "done (confirmed by 'cairn incident resume')" }), ct).ConfigureAwait(false);
        }
        console.Say($"resuming incident {state.Id} at {state.Next?.Name ?? "its close"}");
        return await RunAsync(repo, state with { Status = "open" }, database, options, console, ct).ConfigureAwait(false);
    }

    private async Task<IncidentRunResult> RunAsync(Repository.Repository repo, IncidentState state, DatabaseTarget database, IncidentRunOptions options, IIncidentConsole console, CancellationToken ct)
    {
        var plan = state.Steps.Select(s => new IncidentStep(s.Name, s.Kind, s.Destructive, s.Description)).ToList();
        var steps = new IncidentSteps(context, database, options, console);
        while (state.Next is { } step)
        {
            if (step.Destructive && !options.Yes)
            {
                var question = $"step {step.Name}: {step.Description}. Run it?";
                if (!console.CanConfirm)
                {
                    var message = $"step {step.Name} changes production and needs confirmation: rerun `cairn incident resume {state.Id} --yes`";
                    state = await PauseAsync(repo, state, step, message, ct).ConfigureAwait(false);
                    return Result(state, plan, IncidentStop.NeedsConfirmation, message);
                }
                if (!console.Confirm(question))
                {
                    var message = $"step {step.Name} was declined; nothing of it ran. Resume when ready: cairn incident resume {state.Id}";
                    state = await PauseAsync(repo, state, step, message, ct).ConfigureAwait(false);
                    return Result(state, plan, IncidentStop.Declined, message);
                }
            }
            var startSeq = Record(state, "step-start", step, null, "pass");
            var running = step with { Status = StepStatus.Running, Started = context.Time.GetUtcNow(), StartSeq = startSeq, Ended = null, EndSeq = null, Outcome = null, Attempts = step.Attempts + 1 };
            state = await IncidentStore.SaveAsync(repo, state.WithStep(running), ct).ConfigureAwait(false);
            console.Say($"[{state.Steps.ToList().FindIndex(s => s.Name == step.Name) + 1}/{state.Steps.Count}] {step.Name}: {step.Description}");
            StepOutcome outcome;
            try
            {
                outcome = await steps.RunAsync(repo, state, running, async s => state = await IncidentStore.SaveAsync(repo, s, ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                outcome = new StepOutcome(StepStatus.Failed, e.Message);
            }
            running = state.Steps.Single(s => s.Name == step.Name);
            var data = new Dictionary<string, string>(running.Data);
            foreach (var (k, v) in outcome.Data ?? new Dictionary<string, string>())
            {
                data[k] = v;
            }
            var ended = running with { Status = outcome.Status, Outcome = outcome.Text, Data = data };
            if (outcome.Status == StepStatus.Waiting)
            {
                state = await IncidentStore.SaveAsync(repo, state.WithStep(ended) with { Status = "paused", Maintenance = outcome.Maintenance ?? state.Maintenance }, ct).ConfigureAwait(false);
                console.Say($"a human's step: {step.Description}");
                return Result(state, plan, IncidentStop.WaitingForHuman, $"step {step.Name} waits for a human: do what it says, then run: cairn incident resume {state.Id}");
            }
            var result = outcome.Status == StepStatus.Failed ? "fail" : "pass";
            var endSeq = Record(state, "step-end", step, $"{outcome.Status.ToString().ToLowerInvariant()}: {outcome.Text}", result);
            ended = ended with { Ended = context.Time.GetUtcNow(), EndSeq = endSeq };
            state = await IncidentStore.SaveAsync(repo, state.WithStep(ended) with { Maintenance = outcome.Maintenance ?? state.Maintenance, Status = outcome.Status == StepStatus.Failed ? "failed" : "open" }, ct).ConfigureAwait(false);
            console.Say($"    {outcome.Status.ToString().ToLowerInvariant()}: {outcome.Text}");
            if (outcome.Status == StepStatus.Failed)
            {
                await AlertAsync(state, "step_failed", step.Name, $"incident {state.Id}: step {step.Name} failed: {outcome.Text}", ct).ConfigureAwait(false);
                return Result(state, plan, IncidentStop.StepFailed, $"step {step.Name} failed: {outcome.Text}. Fix the cause, then run: cairn incident resume {state.Id}");
            }
            if (outcome.Secrets is { } newSecrets)
            {
                // The harden step rotated the passphrase: everything after it (and the open repository's saves) uses the new key.
                context = context.WithSecrets(newSecrets);
                steps = new IncidentSteps(context, database, options, console);
            }
        }
        var closeSeq = Record(state, "close", null, $"closed: {state.Steps.Count(s => s.Status == StepStatus.Done)} steps done, {state.Steps.Count(s => s.Status == StepStatus.Skipped)} skipped", "pass");
        state = await IncidentStore.SaveAsync(repo, state with { Status = "closed", Closed = context.Time.GetUtcNow(), CloseSeq = closeSeq }, ct).ConfigureAwait(false);
        await AlertAsync(state, "end", null, $"incident {state.Id} closed; timeline: cairn incident report {state.Id}", ct).ConfigureAwait(false);
        return Result(state, plan, IncidentStop.Closed, $"incident {state.Id} closed; its timeline: cairn incident report {state.Id}");
    }

    private async Task<IncidentState> PauseAsync(Repository.Repository repo, IncidentState state, StepState step, string message, CancellationToken ct)
    {
        Record(state, "pause", step, message, "pass");
        return await IncidentStore.SaveAsync(repo, state with { Status = "paused" }, ct).ConfigureAwait(false);
    }

    private static IncidentRunResult Result(IncidentState state, IReadOnlyList<IncidentStep> plan, IncidentStop stop, string message) => new(state.Type, state.Database, plan, state, stop, message);

    private long Record(IncidentState state, string action, StepState? step, string? outcome, string result) =>
        context.Evidence.Record(new IncidentEvent(state.Id, TypeOf(state), action, step?.Name, step?.Kind.ToString().ToLowerInvariant(), outcome)
        {
            Repository = context.RepositoryText ?? "",
            Database = state.Database,
            Result = result,
        });

    /// <summary>The runbook's incident_type for Siren.</summary>
    public static string TypeOf(IncidentState state) => SirenType(state.Type);

    public static string SirenType(IncidentType type) => type switch
    {
        IncidentType.Corruption => "database_corruption",
        IncidentType.Catastrophic => "catastrophic_failure",
        _ => "data_breach",
    };

    /// <summary>Sends one incident alert to every configured sink and records each delivery; returns (delivered, failed).</summary>
    internal async Task<(int Delivered, int Failed)> AlertAsync(IncidentState state, string moment, string? step, string message, CancellationToken ct)
    {
        var sinks = context.Config.Alerts;
        if (sinks.Count == 0)
        {
            return (0, 0);
        }
        var severity = state.Type == IncidentType.Corruption ? 2 : 1;
        var incident = new IncidentAlert(state.Id, TypeOf(state), severity, moment == "end" ? "Resolved" : severity == 1 ? "Critical" : "Warning", moment, step);
        var now = context.Time.GetUtcNow();
        var alert = new Alert(state.Database, "incident", moment == "end" ? HealthState.Ok : severity == 1 ? HealthState.Critical : HealthState.Warning, HealthState.Ok, message, now, false) { Incident = incident };
        var alerter = new Alerter(Path.Combine(Path.GetTempPath(), $"cairn-incident-alerts-{Environment.ProcessId}.json"), context.Time, TimeSpan.FromHours(4));
        var (delivered, failed) = (0, 0);
        foreach (var sink in sinks)
        {
            var d = await alerter.SendAsync(sink, alert, ct).ConfigureAwait(false);
            context.Evidence.Record(new AlertEvent(sink.Name, sink.Type, "incident", moment, "", false, d.Attempts, d.Error)
            {
                Repository = context.RepositoryText ?? "",
                Database = state.Database,
                Result = d.Delivered ? "pass" : "fail",
            });
            if (d.Delivered)
            {
                delivered++;
            }
            else
            {
                failed++;
                context.Warn($"incident alert to {sink.Name} failed: {d.Error}");
            }
        }
        return (delivered, failed);
    }

    /// <summary>Parses --at: a date and time, always UTC.</summary>
    public static DateTimeOffset ParseAt(string text) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? t
            : throw new RepositoryException(ErrorKind.InvalidInput, $"--at '{text}' is not a time; write 2026-12-04T09:30Z (UTC)");
}

/// <summary>A step's result: its status and one line; <see cref="Data"/> is kept in the state; <see cref="Maintenance"/> replaces the
/// stored maintenance settings; <see cref="Secrets"/> are the passphrases the rest of the run uses (after a rotation).</summary>
internal sealed record StepOutcome(StepStatus Status, string Text, Dictionary<string, string>? Data = null, SavedMaintenance? Maintenance = null, ISecretSource? Secrets = null);
