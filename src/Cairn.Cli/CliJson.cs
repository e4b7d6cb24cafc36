using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Cairn.Cli;

// What --json prints, one record per output, snake_case. A null is written as null (scripts read the key),
// except where marked: those keys are left out when empty, as they always were.

public sealed record ArchiverOutput(string MessageType, string Repository, string Group, uint Gid, string Key, int WalObjects, int Tightened);

public sealed record ErrorOutput(string MessageType, int Code, string Kind, string Message);

public sealed record UpgradeOutput(string RepositoryId, int Version, IReadOnlyList<string> Features, bool Changed);

public sealed record PutOutput(string MessageType, string SnapshotId, string Name, long Size, long AddedBytes, long ChunksTotal, long ChunksNew, double Seconds, double MegabytesPerSecond);

public sealed record SnapshotRow(string Id, string ShortId, DateTimeOffset Time, string Kind, string Name, string Host, long Size, long StoredBytes, long AddedBytes, long DurationMs, int Items, Dictionary<string, string> Meta);

public sealed record KeyRow(string Id, bool Current, DateTimeOffset Created, string Host, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Label, int KdfMemoryKib, int KdfIterations);

public sealed record FindingRow(string Kind, string Object, string Detail, IReadOnlyList<string> AffectedSnapshots, bool Damage);

public sealed record VerifyOutput(string MessageType, bool Ok, int Snapshots, int Indexes, int Packs, int PacksRead, long BytesRead, int Blobs, IReadOnlyList<FindingRow> Findings);

public sealed record PruneSnapshotRow(string Id, string Database, string Time, bool Keep, IReadOnlyList<string> Reasons);

public sealed record PruneOutput(string MessageType, bool DryRun, IReadOnlyList<PruneSnapshotRow> Snapshots, int PacksDeleted, int PacksRepacked, long BytesDeleted, long BytesKept, int OrphanPacks,
    IReadOnlyList<string> WalDeleted, IReadOnlyList<string> DeletedObjects, IReadOnlyList<LockedObjectRow> Locked, int LocksRenewed);

/// <summary>An object prune left because S3 Object Lock retains it until <see cref="Until"/> (ISO 8601, UTC).</summary>
public sealed record LockedObjectRow(string Path, string Until);

public sealed record DoctorCheckRow(string Name, string State, string Detail);

public sealed record DoctorOutput(string MessageType, bool Ok, string Repository, bool AppendOnly, bool RepositoryExists, IReadOnlyList<DoctorCheckRow> Checks);

public sealed record CopyTargetRow(string Target, bool Ok, bool NewCopy, long ObjectsCopied, long BytesCopied, long ObjectsPresent, int EvidenceFiles, int SnapshotsInCopy, string Scope,
    IReadOnlyList<string> Damage, string? Error)
{
    /// <summary>The filter (databases, since) as text; null for a copy of everything.</summary>
    public string? Filter { get; init; }

    /// <summary>The copy is a repository with keys of its own: what was copied was re-encrypted.</summary>
    public bool Reencrypted { get; init; }

    /// <summary>Blob-level copies only (a filter, or other keys): snapshots copied now and already there, blobs written and already there, bytes read from the primary's packs.</summary>
    public int? SnapshotsCopied { get; init; }

    public int? SnapshotsPresent { get; init; }

    public long? BlobsCopied { get; init; }

    public long? BlobsPresent { get; init; }

    public long? BytesRead { get; init; }

    public int? WalCopied { get; init; }

    /// <summary>The size of the primary's packs those blobs came from: what copying them whole would have moved.</summary>
    public long? WholePackBytes { get; init; }
}

public sealed record CopyOutput(string MessageType, bool Ok, IReadOnlyList<CopyTargetRow> Targets);

public sealed record LockRow(string Id, string Host, int Pid, bool Exclusive, string Operation, DateTimeOffset Created, DateTimeOffset Refreshed, bool Stale,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? StaleReason);

public sealed record SchemaPlanRow(string Schema, string Backup, string Reason);

public sealed record BackupPlanOutput(string MessageType, string Database, string Source, string? Preset, List<SchemaPlanRow> Schemas, string Roles, List<string> ManagedRoles, bool RolePasswords,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] StoragePlanOutput? Storage = null)
{
    /// <summary>How the pool mode was learned (pgbouncer_console or server_processes), the mode the console named, and why no console answered.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PoolerPlanOutput? Pooler { get; init; }
}

public sealed record PoolerPlanOutput(string Evidence, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? PoolMode, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? ConsoleUnavailable);

/// <summary>The storage buckets a backup would copy (<c>backup --dry-run --json</c>), each as listed now.</summary>
public sealed record StoragePlanOutput(string Endpoint, List<StorageBucketPlanRow> Buckets);

public sealed record StorageBucketPlanRow(string Bucket, long Objects, long Bytes, List<string> RefusedKeys, string? Error);

/// <summary>What a backup stored of the storage buckets (left out when the database has no storage_buckets).</summary>
public sealed record StorageBackupOutput(string Endpoint, long Objects, long Bytes, long CarriedOver, List<StorageBucketRow> Buckets);

public sealed record StorageBucketRow(string Bucket, long Objects, long Bytes, List<string> Vanished);

public sealed record BackupOutput(string MessageType, string SnapshotId, string Database, string Kind, string BackupTime, long SizeBytes, long AddedBytes, int Tables, long Rows, double Seconds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] StorageBackupOutput? Storage = null);

/// <summary><c>restore --storage --json</c>: counts, and each file that was not written because the bucket held other content.</summary>
public sealed record StorageRestoreOutput(string MessageType, bool Ok, string SnapshotId, string Endpoint, int Files, int Written, int Identical, long BytesWritten, double Seconds, List<StorageFileRow> Conflicts);

public sealed record StorageFileRow(string Bucket, string Key, string ToBucket, long Size);

public sealed record PhysicalBackupOutput(string MessageType, string SnapshotId, string Database, string Kind, string StartLsn, string StopLsn, uint Timeline, long SizeBytes, long AddedBytes, long ReadBytes,
    long ReusedBytes, long ReusedFiles, long ReusedPageBytes, string? IncrementalFrom, string Method, double Seconds,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<string>? BadPages = null)
{
    /// <summary>Changed blocks stored as page patches, and the bytes they stand for.</summary>
    public long PatchedBlocks { get; init; }

    public long PatchedBytes { get; init; }
}

public sealed record BackupRow(string Id, string ShortId, string Database, string Kind, string Time, long SizeBytes, long AddedBytes, long StoredBytes, long DurationMs, Dictionary<string, string> Meta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] PinRow? Pin = null);

/// <summary>A snapshot's pin (<c>snapshots --json</c>, <c>pin --json</c>); <c>holds</c> is false once <c>until</c> has passed.</summary>
public sealed record PinRow(string Snapshot, string Reason, string Created, string Host, string? Until, string? Incident, bool Holds);

/// <summary><see cref="LockedUntil"/>: with S3 Object Lock, the date the pinned snapshot's objects are retained until at least.</summary>
public sealed record PinOutput(string MessageType, string Action, PinRow Pin, long EvidenceSeq, string? LockedUntil = null);

public sealed record MismatchRow(string Table, long Expected, long? Actual, string What);

public sealed record RoleRow(string Name, IReadOnlyList<string> Attributes, IReadOnlyList<string> MemberOf, IReadOnlyList<string> Withheld);

public sealed record RestoreOutput(string MessageType, bool Ok, string SnapshotId, string Database, int Tables, long Rows, double Seconds, IReadOnlyList<MismatchRow> Mismatches, IReadOnlyList<string> Warnings,
    IReadOnlyList<RoleRow> RolesCreated, int ErasuresInLedger, int ErasuresReapplied, IReadOnlyList<SkippedRow> Skipped);

/// <summary>An object the restore left out (the target lacks an extension it depends on, …): what, the cause allow_skipped names, why.</summary>
public sealed record SkippedRow(string Object, string Cause, string Detail);

public sealed record TableDiffRow(string Table, string StagingTable, string Key, long RowsInBackup, long? RowsLive, long OnlyInBackup, long OnlyLive, long Differ, long Merged);

public sealed record PhysicalRestoreOutput(string MessageType, string SnapshotId, string DataDirectory, bool Started, int? Files, long? BytesWritten, int? FilesReused, long? BytesReused, int? Removed,
    bool? InRecovery, string? ReplayLsn, string? Paused, string? LastReplayedTransaction, string? Socket, int? Port, int? ErasuresReapplied = null, int ErasuresPending = 0, string? ReplayCommand = null);

public sealed record CheckRow(string Name, string Kind, string Expected, string Actual, string Result, bool Optional, long DurationMs, string? Detail);

public sealed record DrillOutput(string MessageType, bool Ok, string? SnapshotId, double? RtoSeconds, double? DataAgeSeconds, double TotalSeconds, IReadOnlyList<CheckRow> Checks,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<RoleRow>? RolesCreated = null)
{
    public int ChecksPassed { get; init; }

    public int ChecksFailed { get; init; }

    public int ChecksSkipped { get; init; }

    public bool AllowSkipped { get; init; }
}

public sealed record HealthFindingRow(string Database, string Check, string State, string Message, double? AgeSeconds, string? Last);

public sealed record AlertRow(string Sink, string State, bool Delivered, string? Error);

public sealed record HealthOutput(string MessageType, string State, int ExitCode, string Summary, IReadOnlyList<HealthFindingRow> Findings, IReadOnlyList<AlertRow> Alerts);

public sealed record ScheduleRow(string Database, string Job, string Cron, IReadOnlyList<string> Next);

public sealed record PrunedRecordRow(long Seq, bool Pruned, string LeafHash);

public sealed record EvidenceShowOutput(JsonNode? Record, string LeafHash, int TreeSize, string RootHash, IReadOnlyList<string> InclusionProof, string Checkpoint);

public sealed record EvidenceVerifyOutput(string MessageType, bool Ok, long Records, long Pruned, string RootHash, long CheckpointSize, bool AgainstChecked, IReadOnlyList<string> Problems,
    IReadOnlyList<string> Keys, IReadOnlyList<long> Handovers, long TrustFrom, bool FromRepo = false, string? Published = null);

/// <summary><c>evidence publish --json</c>.</summary>
public sealed record EvidencePublishOutput(string MessageType, string Repository, string Publication, long TreeSize, bool New, int ObjectsWritten, long BytesWritten);

/// <summary><c>evidence pull --json</c>: <c>verified</c> is null when no verifier key was given.</summary>
public sealed record EvidencePullOutput(string MessageType, string Folder, string Repository, string Publication, long TreeSize, int Files, IReadOnlyList<string> Problems, bool? Verified, IReadOnlyList<string> VerifyProblems);

/// <summary><c>evidence rotate-key --json</c>: public keys only; the private key is never printed.</summary>
public sealed record EvidenceRotateKeyOutput(string MessageType, long Seq, string OldKey, string NewKey, string HandoverCheckpoint, string SigningKey, string? KeptOldKey);

public sealed record ReportOutput(string MessageType, string Path, string Format, string Sha256, long EvidenceSeq, string Status, long TreeSize);

public sealed record ReportVerifyOutput(string MessageType, bool Ok, string File, string Format, long TreeSize, int SectionsChecked, IReadOnlyList<string> Problems);

/// <summary>One step of an incident: the plan's fields, then (after a run) where it stands, its times and evidence seqs.</summary>
public sealed record IncidentStepRow(int Number, string Name, string Kind, bool Destructive, string Description, string Status, string? Started, string? Ended, long? StartSeq, long? EndSeq, string? Outcome,
    int Attempts, Dictionary<string, string> Data);

/// <summary><c>incident TYPE DB</c> and <c>incident resume ID</c>: <c>id</c> is null on a dry run; <c>stop</c> says why the run ended.</summary>
public sealed record IncidentRunOutput(string MessageType, string? Id, string Type, string IncidentType, string Database, bool DryRun, string Stop, string Status, string Message, IReadOnlyList<IncidentStepRow> Steps);

public sealed record IncidentReportOutput(string MessageType, string Id, string Type, string IncidentType, string Database, string Status, string Created, string? Closed, long OpenSeq, long? CloseSeq, string? At,
    IReadOnlyList<IncidentStepRow> Steps, IReadOnlyList<string> Warnings);

public sealed record IncidentListRow(string Id, string Type, string Database, string Status, string Created, string? Closed, string? NextStep);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ErrorOutput))]
[JsonSerializable(typeof(PinOutput))]
[JsonSerializable(typeof(ArchiverOutput))]
[JsonSerializable(typeof(PutOutput))]
[JsonSerializable(typeof(UpgradeOutput))]
[JsonSerializable(typeof(List<SnapshotRow>))]
[JsonSerializable(typeof(List<KeyRow>))]
[JsonSerializable(typeof(VerifyOutput))]
[JsonSerializable(typeof(PruneOutput))]
[JsonSerializable(typeof(List<LockRow>))]
[JsonSerializable(typeof(BackupOutput))]
[JsonSerializable(typeof(BackupPlanOutput))]
[JsonSerializable(typeof(PhysicalBackupOutput))]
[JsonSerializable(typeof(List<BackupRow>))]
[JsonSerializable(typeof(RestoreOutput))]
[JsonSerializable(typeof(StorageRestoreOutput))]
[JsonSerializable(typeof(List<TableDiffRow>))]
[JsonSerializable(typeof(PhysicalRestoreOutput))]
[JsonSerializable(typeof(DrillOutput))]
[JsonSerializable(typeof(HealthOutput))]
[JsonSerializable(typeof(List<ScheduleRow>))]
[JsonSerializable(typeof(PrunedRecordRow))]
[JsonSerializable(typeof(List<JsonNode>))]
[JsonSerializable(typeof(EvidenceShowOutput))]
[JsonSerializable(typeof(EvidenceVerifyOutput))]
[JsonSerializable(typeof(EvidencePublishOutput))]
[JsonSerializable(typeof(EvidencePullOutput))]
[JsonSerializable(typeof(EvidenceRotateKeyOutput))]
[JsonSerializable(typeof(CleanupOutput))]
[JsonSerializable(typeof(EraseOutput))]
[JsonSerializable(typeof(EraseReplayOutput))]
[JsonSerializable(typeof(RecoverOutput))]
[JsonSerializable(typeof(RecoverTableOutput))]
[JsonSerializable(typeof(ReplayEventRow))]
[JsonSerializable(typeof(DoctorOutput))]
[JsonSerializable(typeof(CopyOutput))]
[JsonSerializable(typeof(ReportOutput))]
[JsonSerializable(typeof(ReportVerifyOutput))]
[JsonSerializable(typeof(AssessOutput))]
[JsonSerializable(typeof(IncidentRunOutput))]
[JsonSerializable(typeof(IncidentReportOutput))]
[JsonSerializable(typeof(List<IncidentListRow>))]
internal sealed partial class CliJson : JsonSerializerContext;

public sealed record CleanupPartitionRow(string Partition, string Bound, long Rows);

public sealed record CleanupCascadeRow(string Path, string Table, string Action, long Rows);

public sealed record CleanupRuleRow(int Rule, string Table, string TimeColumn, string? Where, DateTimeOffset Cutoff, long RowsMatching, long RowsDeleted, int PartitionsDropped, bool Done, string? Refused,
    IReadOnlyList<CleanupPartitionRow> Partitions, IReadOnlyList<CleanupCascadeRow> Cascades);

public sealed record CleanupOutput(string MessageType, string Database, bool DryRun, DateTimeOffset ServerTime, long RowsDeleted, bool Partial, string? Error, double Seconds, IReadOnlyList<CleanupRuleRow> Rules);

public sealed record ErasureStepRow(string Table, string Action, long Rows);

public sealed record EraseOutput(string MessageType, string Database, bool DryRun, bool SubjectFound, long Rows, IReadOnlyList<ErasureStepRow> Steps, string? SubjectHmac, string? LedgerEntry, long? EvidenceSeq, double Seconds);

public sealed record EraseReplayOutput(string MessageType, string Database, string Target, int Entries, int Reapplied, long Rows);

public sealed record RecoveredRow(string Table, string? EntityId, string Event, DateTimeOffset Time, string Outcome, string? Why);

public sealed record RecoverOutput(string MessageType, string Database, bool DryRun, DateTimeOffset Since, int Inserted, int SkippedExisting, int SkippedErased, int NotApplied, int Updated,
    IReadOnlyList<RecoveredRow> Rows, Dictionary<string, IReadOnlyList<string>> UnknownColumns, double Seconds);

/// <param name="StagingTable">Where the copy as of <c>at</c> stays (null on a dry run: it was dropped).</param>
/// <param name="ErasedRows">Rows of erased subjects the ledger removed from the copy before it was read.</param>
/// <param name="Source">physical (a scratch point-in-time restore) or logical (a logical backup and the audit trail).</param>
/// <param name="Choice">Why that source: the --from given, or what --from auto found.</param>
/// <param name="StopPoint">Physical only: where recovery stopped.</param>
/// <param name="BackupTime">Logical only: the backup's snapshot time; events from <c>replay_from</c> (an overlap before it) to <c>at</c> were replayed.</param>
/// <param name="EventsNotApplied">Logical only: the audit events that could not be applied (no image, columns gone, conflicts), by the audit row's key.</param>
public sealed record RecoverTableOutput(string MessageType, string Database, string Table, DateTimeOffset At, string Source, string Choice, string Snapshot, bool DryRun, bool Merge, string? StagingTable, string Key,
    long RowsThen, long? RowsNow, long OnlyThen, long OnlyNow, long Differ, long Merged, int ErasuresInLedger, int ErasuresReapplied, long ErasedRows, int? ErasuresReappliedInMerge, string? StopPoint,
    DateTimeOffset? BackupTime, DateTimeOffset? ReplayFrom, int? EventsApplied, IReadOnlyList<ReplayEventRow>? EventsNotApplied, IReadOnlyList<string>? UnknownColumns, double Seconds);

/// <param name="AuditKey">The audit row's primary key (its columns joined with commas).</param>
public sealed record ReplayEventRow(string AuditKey, string Table, string? EntityId, string Event, DateTimeOffset Time, string Why);
public sealed record AssessTableRow(string Table, string Kind, long TotalBytes, long HeapBytes);

public sealed record AssessFindingRow(string Relation, string Kind, string Table, long? Block, string Message);

public sealed record AssessMissingRow(string Relation, string Path);

public sealed record AssessArchiverRow(long FailedCount, string? LastFailedWal, string? LastFailedTime, bool Failing);

public sealed record AssessSlotRow(string Name, string Type, bool Active, string? Database, long? RetainedBytes, string? WalStatus);

public sealed record AssessOptionRow(int Rank, string Method, bool Available, string? Snapshot, string? SnapshotTime, long? DrillSeq, IReadOnlyList<string> Commands, string Why);

public sealed record AssessPlanRow(string Relation, string Kind, string Table, bool IndexOnly, IReadOnlyList<string> Sources, IReadOnlyList<string> Details, string FirstSeen, string FirstSeenSource,
    IReadOnlyList<AssessOptionRow> Options);

public sealed record AssessOutput(string MessageType, string Database, bool Damaged, long DatabaseBytes, bool DataChecksums, long? ChecksumFailures, string? ChecksumLastFailure, int IndexesChecked,
    int HeapsChecked, IReadOnlyList<AssessTableRow> Tables, IReadOnlyList<AssessFindingRow> AmcheckFindings, IReadOnlyList<string> InvalidIndexes, IReadOnlyList<AssessMissingRow> MissingFiles,
    AssessArchiverRow? Archiver, IReadOnlyList<AssessSlotRow> ReplicationSlots, string? NewestWal, string? NewestWalArchived, IReadOnlyList<string> BackupsReachingNewestWal,
    IReadOnlyList<AssessPlanRow> Plans, IReadOnlyList<string> Incomplete, IReadOnlyList<string> Warnings, double Seconds, long EvidenceSeq);
