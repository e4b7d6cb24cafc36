using System.Text.Json.Serialization;

namespace Cairn.Operations.Incidents;

/// <summary>The runbook's emergency procedures that Cairn can run.</summary>
public enum IncidentType
{
    Corruption,
    Catastrophic,
    Breach,
}

/// <summary>What a step does; each is a Cairn operation, a configured command, or a human's part.</summary>
public enum StepKind
{
    /// <summary>Maintenance mode / isolate: connection limit 0, CONNECT revoked, or a hook (databases.X.incident.maintenance).</summary>
    Isolate,
    /// <summary>assess (AssessOperation).</summary>
    Assess,
    /// <summary>Alerts through the configured sinks with Siren's incident fields.</summary>
    Communicate,
    /// <summary>A forensic logical backup (and physical with data_directory), tagged incident-ID and pinned.</summary>
    Preserve,
    /// <summary>Breach only: pg_stat_activity, roles, pg_hba rules and the audit tail, stored encrypted under the incident.</summary>
    Forensics,
    /// <summary>Restore the newest drilled backup (or the one before --at) into DB_incident_ID, the erasure ledger re-applied.</summary>
    Recover,
    /// <summary>The database's full check suite on the restored copy.</summary>
    Verify,
    /// <summary>The rename pair that puts the restored copy in production: printed, run only with --execute-swap.</summary>
    Swap,
    /// <summary>Breach only: rotate the repository passphrase, list roles whose passwords should change, the checklist.</summary>
    Harden,
    /// <summary>Lift maintenance (previous values restored exactly), verify live, close the incident.</summary>
    Resume,
    /// <summary>A configured command (databases.X.incident.hooks).</summary>
    Hook,
    /// <summary>A human's part: instructions printed, the run waits for 'cairn incident resume ID'.</summary>
    Manual,
}

/// <summary>Where a step stands.</summary>
public enum StepStatus
{
    Pending,
    Running,
    Done,
    Failed,
    Waiting,
    Skipped,
}

/// <summary>One step of a plan: its name (unique in the plan), what it does, whether it changes production (then it is confirmed).</summary>
public sealed record IncidentStep(string Name, StepKind Kind, bool Destructive, string Description);

/// <summary>
/// One step's progress as stored in the incident's state: times, the evidence sequence numbers of its start and end records,
/// its outcome, and what it found or made (snapshot IDs, the database it restored into) that later steps and a re-run need.
/// </summary>
public sealed record StepState(string Name, StepKind Kind, bool Destructive, string Description)
{
    public StepStatus Status { get; init; } = StepStatus.Pending;

    public DateTimeOffset? Started { get; init; }

    public DateTimeOffset? Ended { get; init; }

    public long? StartSeq { get; init; }

    public long? EndSeq { get; init; }

    /// <summary>One line: what happened (or why it failed, or what the human is asked to do).</summary>
    public string? Outcome { get; init; }

    /// <summary>How many times the step was started (a re-run after a crash or a failure counts).</summary>
    public int Attempts { get; init; }

    public Dictionary<string, string> Data { get; init; } = [];
}

/// <summary>The database's connection settings before maintenance, restored exactly when it is lifted.</summary>
public sealed record SavedMaintenance(string Mode, int? ConnectionLimit, string? EffectiveAcl, IReadOnlyList<string> RevokedFrom, bool Lifted);

/// <summary>
/// An incident's whole state, stored sealed in the repository (docs/repository-format.md, "Incidents") after every change,
/// so 'cairn incident resume ID' continues at the first step not done after a crash, a failure or a human's step.
/// </summary>
public sealed record IncidentState(int Version, string Id, IncidentType Type, string Database, DateTimeOffset Created, string Host, IReadOnlyList<StepState> Steps)
{
    /// <summary>The state object's version number (<c>ID.state.NNNNNN</c>): each save writes the next one, create-only.</summary>
    public int Revision { get; init; }

    /// <summary>open, paused (a confirmation or a human's step), failed (a step failed), closed.</summary>
    public string Status { get; init; } = "open";

    public DateTimeOffset? Closed { get; init; }

    /// <summary>The operator's recovery point (--at), if one was given.</summary>
    public DateTimeOffset? At { get; init; }

    public SavedMaintenance? Maintenance { get; init; }

    public long OpenSeq { get; init; }

    /// <summary>The production database's name on its server (the config's name may differ).</summary>
    public string ServerDatabase { get; init; } = "";

    public long? CloseSeq { get; init; }

    /// <summary>The first step not done (null when every step is).</summary>
    [JsonIgnore]
    public StepState? Next => Steps.FirstOrDefault(s => s.Status is not (StepStatus.Done or StepStatus.Skipped));

    /// <summary>The tag the forensic backups carry.</summary>
    [JsonIgnore]
    public string Tag => "incident-" + Id;

    /// <summary>The new database recovery restores into: DB_incident_ID (never production's name).</summary>
    [JsonIgnore]
    public string RecoveryDatabase => $"{ServerDatabase}_incident_{Id["inc-".Length..].Replace('-', '_')}";

    /// <summary>What production is renamed to by the swap, kept for forensics.</summary>
    [JsonIgnore]
    public string RetiredDatabase => $"{ServerDatabase}_before_{Id["inc-".Length..].Replace('-', '_')}";

    public IncidentState WithStep(StepState step) => this with { Steps = [.. Steps.Select(s => s.Name == step.Name ? step : s)] };
}

/// <summary>The state's JSON (snake_case, enums by name), source-generated for NativeAOT.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, UseStringEnumConverter = true, WriteIndented = false)]
[JsonSerializable(typeof(IncidentState))]
internal sealed partial class IncidentJson : JsonSerializerContext;
