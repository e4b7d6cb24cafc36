namespace Cairn.Operations.Reports;

// The compliance report as data. Every figure carries the evidence sequence numbers it was computed from
// (Seqs), so a reader can open each record ('cairn evidence show SEQ') and 'cairn report verify' can recompute
// the figure. The three renderers (HTML, Markdown, JSON) read only this model.

/// <summary>What the report was computed with besides the records: the period, and each database's schedules and targets then.</summary>
public sealed record ReportInputs(DateTimeOffset From, DateTimeOffset Until, DateTimeOffset AsOf, string? Database, long TreeSize, IReadOnlyList<DatabaseInputs> Databases);

/// <param name="BackupSchedules">Cron expressions (UTC) of the database's <c>backup</c> job; none when backups are not scheduled.</param>
/// <param name="BackupWarnSeconds">The freshness threshold (monitoring.backup_warn_after) the SLA is measured against.</param>
public sealed record DatabaseInputs(string Name, IReadOnlyList<string> BackupSchedules, long BackupWarnSeconds, long? RtoTargetSeconds, long? RpoTargetSeconds);

public sealed record ComplianceReport(
    int FormatVersion,
    string Title,
    DateTimeOffset GeneratedAt,
    string Origin,
    ReportInputs Inputs,
    ReportStatus Status,
    IReadOnlyList<DatabaseReport> Databases,
    RepositoryVerifications Verifications,
    IReadOnlyList<AlertEpisode> Alerts,
    IReadOnlyList<ChangeRow> KeyChanges,
    IReadOnlyList<ChangeRow> ConfigChanges,
    IReadOnlyList<CleanupRow> Cleanups,
    ErasureSummary Erasures,
    IReadOnlyList<EventRow> Incidents,
    IReadOnlyList<EventRow> Pins,
    IReadOnlyList<ControlRow> Controls,
    ReportProof Proof);

/// <summary>The banner: ok, warning or critical, and why.</summary>
public sealed record ReportStatus(string Level, IReadOnlyList<string> Reasons);

public sealed record DatabaseReport(string Name, BackupFigures Backups, FreshnessFigures Freshness, WalFigures Wal, DrillFigures Drills, IReadOnlyList<CheckKindRow> Checks, RestoreFigures Restores);

/// <param name="Expected">Runs the backup schedules had in the period (null when no backup job is scheduled).</param>
/// <param name="LongestGapSeconds">The longest time between successful backups, counted from the last one before the period (or its start) to the period's end.</param>
/// <param name="GapSeqs">The successful backups that bound the longest gap (one or none at the period's edges).</param>
public sealed record BackupFigures(long? Expected, long Taken, long Failed, long LongestGapSeconds, DateTimeOffset LongestGapStart, DateTimeOffset LongestGapEnd, IReadOnlyList<string> DaysWithout,
    IReadOnlyList<DayCell> Calendar, IReadOnlyList<long> TakenSeqs, IReadOnlyList<long> FailedSeqs, IReadOnlyList<long> GapSeqs);

/// <summary>One UTC day of the period: successful and failed backups.</summary>
public sealed record DayCell(string Date, long Taken, long Failed);

/// <summary>The share of the period's time the newest successful backup was younger than the warning threshold.</summary>
public sealed record FreshnessFigures(double SlaPercent, long WarnAfterSeconds, long SecondsOverThreshold, IReadOnlyList<long> Seqs);

/// <param name="RecoveryKind">pitr (a physical backup with WAL verified continuous after it), backup (restore to the newest backup) or none.</param>
public sealed record WalFigures(long Verifications, long WithFindings, IReadOnlyList<long> Seqs, string RecoveryKind, DateTimeOffset? RecoverableFrom, DateTimeOffset? RecoverableTo, string RecoveryNote, IReadOnlyList<long> RecoverySeqs);

public sealed record DrillFigures(long Run, long Passed, long Failed, IReadOnlyList<DrillRow> Rows, DurationStats Rto, DurationStats DataAge, long? RtoTargetSeconds, long? RpoTargetSeconds,
    long RtoMet, long RpoMet, string RtoTrend, string DataAgeTrend);

public sealed record DrillRow(long Seq, DateTimeOffset Time, string Type, string Result, long? RtoMs, long? DataAgeSeconds, long ChecksPassed, long ChecksFailed);

/// <summary>Median and worst of a duration over the drills that measured it (milliseconds for RTO, seconds for data age).</summary>
public sealed record DurationStats(long? Median, long? Worst, IReadOnlyList<long> Seqs);

/// <param name="Source">drill or verify --live.</param>
public sealed record CheckKindRow(string Source, string Kind, long Pass, long Fail, long Error, long Skip, IReadOnlyList<long> Seqs);

/// <param name="ErasuresReapplied">Erasures restores re-applied, as their records state (details.erasures_reapplied).</param>
public sealed record RestoreFigures(long Count, long Failed, long ErasuresReapplied, IReadOnlyList<long> Seqs);

/// <param name="ExpectedReadCoveragePercent">1 − Π(1 − share read) over the period's read-data runs: the expected share of the data read at least once.</param>
public sealed record RepositoryVerifications(long Runs, long Passed, long Failed, double ExpectedReadCoveragePercent, IReadOnlyList<VerifyRow> Rows);

public sealed record VerifyRow(long Seq, DateTimeOffset Time, string Scope, string Result, double ReadPercent, long DamageFindings, long WalFindings);

/// <summary>An alert raised (a state other than ok) for one database and check, and when an ok alert resolved it.</summary>
public sealed record AlertEpisode(string Database, string Check, string State, DateTimeOffset Raised, DateTimeOffset? Resolved, long? SecondsToResolve, IReadOnlyList<long> Seqs);

/// <summary>A key change (action, key name) or a configuration loaded (action, SHA-256).</summary>
public sealed record ChangeRow(long Seq, DateTimeOffset Time, string Action, string Detail, string Result);

/// <summary>Cleanups per database and rule: runs and rows.</summary>
public sealed record CleanupRow(string Database, string Rule, long Runs, long Rows, IReadOnlyList<long> Seqs);

/// <summary>Erasures as counts only: identifiers never appear in a report.</summary>
public sealed record ErasureSummary(long Requests, long Rows, long ReappliedOnRestores, IReadOnlyList<long> Seqs);

/// <summary>One incident or pin record, in time order (the timeline); text from its details is shown escaped.</summary>
public sealed record EventRow(long Seq, DateTimeOffset Time, string Database, string Kind, string Result, string Summary);

/// <summary>One row of the control mapping (controls.json): what the report shows for a framework's control.</summary>
public sealed record ControlRow(string Framework, string Control, string Title, string Section, string Shows);

/// <summary>
/// The proof: the signed checkpoint at the end of the period, the consistency proof from the previous report's
/// checkpoint, and inclusion proofs for the drills (hashes in hex).
/// </summary>
public sealed record ReportProof(string Checkpoint, long TreeSize, string RootHex, string VerifierKey, long? FirstSeq, long? LastSeq, PreviousReport? Previous, IReadOnlyList<InclusionRow> Inclusions);

/// <param name="Seq">The previous report's own <c>report</c> record.</param>
public sealed record PreviousReport(long Seq, DateTimeOffset From, DateTimeOffset Until, string Sha256, string Checkpoint, long TreeSize, IReadOnlyList<string> ConsistencyProof);

public sealed record InclusionRow(long Seq, string LeafHash, IReadOnlyList<string> AuditPath);
