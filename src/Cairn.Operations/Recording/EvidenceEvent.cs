using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Operations.Checks;

namespace Cairn.Operations.Recording;

/// <summary>
/// One event to put on the record. Each kind of event is its own record type, so the fields an auditor
/// reads are named in one place; <see cref="EvidenceRecorder"/> turns it into the log's JSON shape
/// (docs/evidence.md): <c>kind, result, repository, actor, details{…}, database, snapshot, duration_ms, checks</c>.
/// </summary>
public abstract record EvidenceEvent
{
    /// <summary>The record's <c>kind</c> (backup, restore, drill, verify, prune, key-change, alert, evidence-read, …).</summary>
    public abstract string Kind { get; }

    /// <summary>pass, fail or error.</summary>
    public string Result { get; init; } = "pass";

    /// <summary>The repository the event concerns, as it was given or opened.</summary>
    public required string Repository { get; init; }

    public string? Database { get; init; }

    public string? Snapshot { get; init; }

    public long? DurationMs { get; init; }

    /// <summary>Per-check results, for drills and verifications.</summary>
    public IReadOnlyList<CheckResult>? Checks { get; init; }

    /// <summary>The figures under <c>details</c>.</summary>
    public abstract void Describe(EvidenceDetails details);

    public static string Outcome(bool passed) => passed ? "pass" : "fail";
}

/// <summary>The <c>details</c> object of a record: text stays text, counts are integers.</summary>
public sealed class EvidenceDetails
{
    internal JsonObject Node { get; } = [];

    public EvidenceDetails Text(string key, string value)
    {
        Node[key] = value;
        return this;
    }

    public EvidenceDetails Number(string key, long value)
    {
        Node[key] = value;
        return this;
    }

    /// <summary>A figure that may be unknown: the empty string when it is (as the log has always written it).</summary>
    public EvidenceDetails NumberOrEmpty(string key, long? value) => value is { } v ? Number(key, v) : Text(key, "");

    /// <summary>A list of objects (one per rule, per table, …).</summary>
    public EvidenceDetails List(string key, IEnumerable<EvidenceDetails> items)
    {
        Node[key] = new JsonArray([.. items.Select(i => (JsonNode)i.Node)]);
        return this;
    }

    /// <summary>A list of names (buckets, causes …) as a JSON array, so a reader never splits text that may hold a comma itself.</summary>
    public EvidenceDetails Texts(string key, IEnumerable<string> values)
    {
        Node[key] = new JsonArray([.. values.Select(v => (JsonNode)JsonValue.Create(v))]);
        return this;
    }

    public EvidenceDetails YesNo(string key, bool value) => Text(key, value ? "yes" : "no");

    /// <summary>A run's check counts: passed, failed (failures and errors), skipped, and whether skips were allowed (<c>--allow-skipped</c>).</summary>
    public EvidenceDetails Checks(CheckTally tally, bool allowSkipped) => Number("checks_passed", tally.Passed).Number("checks_failed", tally.Failed)
        .Number("checks_skipped", tally.Skipped).YesNo("allow_skipped", allowSkipped);

    public EvidenceDetails Time(string key, DateTimeOffset value) => Text(key, value.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture));
}

/// <summary>A passphrase was created, added or removed (<c>key-change</c>).</summary>
public sealed record KeyChangeEvent(string Action, string Key, string? RepositoryId = null) : EvidenceEvent
{
    public override string Kind => "key-change";

    public override void Describe(EvidenceDetails details)
    {
        details.Text("action", Action).Text("key", Key);
        if (RepositoryId is not null)
        {
            details.Text("repository_id", RepositoryId);
        }
    }
}

/// <summary>
/// The repository's format was upgraded to switch a feature on (<c>repository-upgrade</c>): by <c>cairn repo upgrade</c>,
/// or by <c>cairn copy</c> giving a copy made before the primary's upgrade the primary's config (<see cref="CarriedFrom"/>:
/// the primary's location; <see cref="EvidenceEvent.Repository"/> is then the copy's).
/// </summary>
public sealed record RepositoryUpgradeEvent(string RepositoryId, int Version, IReadOnlyList<string> Features) : EvidenceEvent
{
    public override string Kind => "repository-upgrade";

    public string? CarriedFrom { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("repository_id", RepositoryId).Number("version", Version).Text("features", string.Join(",", Features));
        if (CarriedFrom is not null)
        {
            details.Text("action", "copy").Text("carried_from", CarriedFrom);
        }
    }
}

/// <summary>The server's user was given the WAL area and one key file (<c>key-change</c>, action archiver-allow).</summary>
public sealed record ArchiverAllowEvent(string Key, string Group, long Gid) : EvidenceEvent
{
    public override string Kind => "key-change";

    public override void Describe(EvidenceDetails details) => details.Text("action", "archiver-allow").Text("key", Key).Text("group", Group).Number("gid", Gid);
}

/// <summary>A file or stream stored with <c>repo put</c> (<c>backup</c>).</summary>
public sealed record FileStoredEvent(string Name, long SizeBytes, long AddedBytes, long ChunksNew, long ChunksTotal) : EvidenceEvent
{
    public override string Kind => "backup";

    public override void Describe(EvidenceDetails details) => details.Text("name", Name).Number("size_bytes", SizeBytes).Number("added_bytes", AddedBytes)
        .Number("chunks_new", ChunksNew).Number("chunks_total", ChunksTotal);
}

/// <summary>A logical backup (<c>backup</c>, type logical).</summary>
public sealed record LogicalBackupEvent(string Source, long SizeBytes, long AddedBytes, long Tables, long Rows, DateTimeOffset BackupTime, string ServerVersion, string Fingerprint) : EvidenceEvent
{
    public override string Kind => "backup";

    /// <summary>The Storage files the backup holds (<c>storage_buckets</c>); written only when configured, so other records keep their shape.</summary>
    public StorageFiles.StorageBackupSummary? Storage { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "logical").Text("source", Source).Number("size_bytes", SizeBytes).Number("added_bytes", AddedBytes)
            .Number("tables", Tables).Number("rows", Rows).Time("backup_time", BackupTime).Text("server_version", ServerVersion).Text("fingerprint", Fingerprint).Text("encrypted", "AES-256-GCM");
        if (Storage is { } s)
        {
            details.Text("storage_endpoint", s.Endpoint).Texts("storage_buckets", s.Buckets.Select(b => b.Name)).Number("storage_objects", s.Objects)
                .Number("storage_bytes", s.Bytes).Number("storage_carried_over", s.CarriedOver).Number("storage_vanished", s.Vanished);
        }
    }
}

/// <summary>Storage files put back into a bucket (<c>restore</c>, type storage).</summary>
public sealed record StorageRestoreEvent(string Endpoint, IReadOnlyList<string> Buckets, long Objects, long Bytes, long Written, long Identical, long Conflicts, long Verified) : EvidenceEvent
{
    public override string Kind => "restore";

    public override void Describe(EvidenceDetails details) => details.Text("type", "storage").Text("endpoint", Endpoint).Texts("buckets", Buckets).Number("objects", Objects).Number("bytes", Bytes)
        .Number("written", Written).Number("identical", Identical).Number("conflicts", Conflicts).Number("verified", Verified);
}

/// <summary>A physical backup (<c>backup</c>, type physical).</summary>
public sealed record PhysicalBackupEvent(string Source, long SizeBytes, long AddedBytes, string StartLsn, string StopLsn, long Timeline, string Method, long ReusedBytes, string? IncrementalFrom) : EvidenceEvent
{
    public override string Kind => "backup";

    /// <summary>Pages with bad checksums (<c>FILE:BLOCK</c>); written only when there are some (the backup holds damage).</summary>
    public IReadOnlyList<string> BadPages { get; init; } = [];

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "physical").Text("source", Source).Number("size_bytes", SizeBytes).Number("added_bytes", AddedBytes)
            .Text("start_lsn", StartLsn).Text("stop_lsn", StopLsn).Number("timeline", Timeline).Text("method", Method).Number("reused_bytes", ReusedBytes)
            .Text("incremental_from", IncrementalFrom ?? "").Text("encrypted", "AES-256-GCM");
        if (BadPages.Count > 0)
        {
            details.Number("bad_pages", BadPages.Count).Text("bad_page_list", string.Join(' ', BadPages.Take(200)));
        }
    }
}

/// <summary>A file or stream read back with <c>repo get</c> (<c>restore</c>).</summary>
public sealed record FileRestoredEvent(string Name, long SizeBytes, string Target) : EvidenceEvent
{
    public override string Kind => "restore";

    public override void Describe(EvidenceDetails details) => details.Text("name", Name).Number("size_bytes", SizeBytes).Text("target", Target);
}

/// <summary>A whole-database logical restore, checked against the fingerprint (<c>restore</c>, type database).</summary>
public sealed record DatabaseRestoreEvent(string Target, long Tables, long Rows, long Mismatches, string RolesCreated) : EvidenceEvent
{
    public override string Kind => "restore";

    /// <summary>Erasures the ledger holds for the database, and those that changed rows of the restored copy.</summary>
    public long ErasuresInLedger { get; init; }

    public long ErasuresReapplied { get; init; }

    /// <summary>Objects left out because the target could not hold them (an extension it lacks, and what depends on it).</summary>
    public IReadOnlyList<Cairn.PostgreSql.Logical.SkippedObject> Skipped { get; init; } = [];

    /// <summary>A copy made from a point-in-time recovery on a throwaway server (an incident's <c>--at</c>): the time and the stop proof.</summary>
    public (DateTimeOffset At, string StopProof)? Pitr { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "database").Text("target", Target).Number("tables", Tables).Number("rows", Rows).Number("mismatches", Mismatches).Text("roles_created", RolesCreated);
        // Only for a copy out of a PITR: restores of logical backups keep their shape.
        if (Pitr is { } p)
        {
            details.Text("source", "pitr").Time("at", p.At).Text("stop_proof", p.StopProof);
        }
        // Only when something was left out: records of complete restores keep their shape.
        if (Skipped.Count > 0)
        {
            details.Number("skipped_objects", Skipped.Count).Texts("skipped_causes", Skipped.Select(s => s.Cause).Distinct().Order(StringComparer.Ordinal));
        }
        if (ErasuresInLedger > 0)
        {
            details.Number("erasures_in_ledger", ErasuresInLedger).Number("erasures_reapplied", ErasuresReapplied);
        }
    }
}

/// <summary>Tables restored beside the live data (<c>restore</c>, type table).</summary>
public sealed record TableRestoreEvent(IReadOnlyList<string> Tables, string StagingSchema, string Merge, long RowsMerged) : EvidenceEvent
{
    public override string Kind => "restore";

    /// <summary>With a merge: erasures the ledger holds for the database, and those the merge's transaction applied again.</summary>
    public long? ErasuresInLedger { get; init; }

    public long? ErasuresReapplied { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "table").Text("tables", string.Join(",", Tables)).Text("staging_schema", StagingSchema).Text("merge", Merge).Number("rows_merged", RowsMerged);
        if (ErasuresInLedger is { } n and > 0)
        {
            details.Number("erasures_in_ledger", n).Number("erasures_reapplied", ErasuresReapplied ?? 0);
        }
    }
}

/// <summary>A physical restore into a data directory (<c>restore</c>, type physical).</summary>
public sealed record PhysicalRestoreEvent(string TargetDirectory, string RecoveryTarget, string? ReachedLsn, bool Started, bool Delta, long? FilesReused) : EvidenceEvent
{
    public override string Kind => "restore";

    /// <summary>Erasures applied after promotion (null when none were), and those left for 'cairn erase --replay'.</summary>
    public long? ErasuresReapplied { get; init; }

    public long ErasuresPending { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "physical").Text("target_dir", TargetDirectory).Text("recovery_target", RecoveryTarget)
            .Text("reached_lsn", ReachedLsn ?? "").YesNo("started", Started).YesNo("delta", Delta).NumberOrEmpty("files_reused", FilesReused);
        // Only when the ledger holds erasures of the database: records of databases that never erased anyone keep their shape.
        if (ErasuresReapplied is not null || ErasuresPending > 0)
        {
            details.NumberOrEmpty("erasures_reapplied", ErasuresReapplied).Number("erasures_pending", ErasuresPending);
        }
    }
}

/// <summary>A restore drill of a logical backup (<c>drill</c>, type logical).</summary>
public sealed record LogicalDrillEvent(long? RtoMs, long? DataAgeSeconds, DateTimeOffset? BackupTime, CheckTally Tally, bool AllowSkipped, string RolesCreated) : EvidenceEvent
{
    public override string Kind => "drill";

    public override void Describe(EvidenceDetails details)
    {
        details.Text("type", "logical").NumberOrEmpty("rto_ms", RtoMs).NumberOrEmpty("data_age_s", DataAgeSeconds);
        if (BackupTime is { } t)
        {
            details.Time("backup_time", t);
        }
        else
        {
            details.Text("backup_time", "");
        }
        details.Checks(Tally, AllowSkipped).Text("roles_created", RolesCreated);
        // Only for drills on a server the user chose: scratch-server drills keep their shape.
        if (On is not null)
        {
            details.Text("on", On);
        }
    }

    /// <summary>The database the drill restored into on a server the user chose (<c>drill: { on: URL }</c>), redacted; null for a scratch server.</summary>
    public string? On { get; init; }
}

/// <summary>A restore drill of a physical backup to a point in time (<c>drill</c>, type physical).</summary>
public sealed record PhysicalDrillEvent(DateTimeOffset? TargetTime, bool RandomTarget, long? RtoMs, long? DataAgeSeconds, CheckTally Tally, bool AllowSkipped) : EvidenceEvent
{
    public override string Kind => "drill";

    public override void Describe(EvidenceDetails details) => details.Text("type", "physical")
        .Text("target_time", TargetTime?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture) ?? "latest").YesNo("random_target", RandomTarget)
        .NumberOrEmpty("rto_ms", RtoMs).NumberOrEmpty("data_age_s", DataAgeSeconds).Checks(Tally, AllowSkipped);
}

/// <summary>A verification of the repository's structure or data (<c>verify</c>).</summary>
public sealed record RepositoryVerifyEvent(string Scope, long Snapshots, long PacksRead, long BytesRead, long DamageFindings, long WalFindings, IReadOnlyList<string> WalDatabases, long ElapsedMs) : EvidenceEvent
{
    public override string Kind => "verify";

    public override void Describe(EvidenceDetails details) => details.Text("scope", Scope).Number("snapshots", Snapshots).Number("packs_read", PacksRead).Number("bytes_read", BytesRead)
        .Number("damage_findings", DamageFindings).Number("wal_findings", WalFindings).Text("wal_databases", string.Join(",", WalDatabases)).Number("duration_ms", ElapsedMs);
}

/// <summary>The configured checks run against the live database (<c>verify</c>, scope live).</summary>
public sealed record LiveVerifyEvent(string Source, CheckTally Tally, bool AllowSkipped) : EvidenceEvent
{
    public override string Kind => "verify";

    public override void Describe(EvidenceDetails details) => details.Text("scope", "live").Text("source", Source).Checks(Tally, AllowSkipped);
}

/// <summary>Retention applied and unused data deleted (<c>prune</c>).</summary>
public sealed record PruneEvent(long SnapshotsForgotten, long WalSegmentsDeleted, long SnapshotsKept, long PacksDeleted, long PacksRepacked, long BytesDeleted, long BytesKept) : EvidenceEvent
{
    public override string Kind => "prune";

    /// <summary>Recovery-window gaps pruned over with --accept-gap (written only when there are some).</summary>
    public IReadOnlyList<string> AcceptedGaps { get; init; } = [];

    public override void Describe(EvidenceDetails details)
    {
        details.Number("snapshots_forgotten", SnapshotsForgotten).Number("wal_segments_deleted", WalSegmentsDeleted)
            .Number("snapshots_kept", SnapshotsKept).Number("packs_deleted", PacksDeleted).Number("packs_repacked", PacksRepacked).Number("bytes_deleted", BytesDeleted).Number("bytes_kept", BytesKept);
        if (AcceptedGaps.Count > 0)
        {
            details.Text("accepted_window_gaps", string.Join("; ", AcceptedGaps));
        }
    }
}

/// <summary>An alert sent (or not delivered) to a receiver (<c>alert</c>).</summary>
public sealed record AlertEvent(string Sink, string SinkType, string Check, string State, string PreviousState, bool Reminder, long Attempts, string? Error) : EvidenceEvent
{
    public override string Kind => "alert";

    public override void Describe(EvidenceDetails details) => details.Text("sink", Sink).Text("type", SinkType).Text("check", Check).Text("state", State).Text("previous_state", PreviousState)
        .YesNo("reminder", Reminder).Number("attempts", Attempts).Text("error", Error ?? "");
}

/// <summary>Someone read the evidence (<c>evidence-read</c>): every read is itself on the record.</summary>
public sealed record EvidenceReadEvent(string Command, string Range, string From, string Who) : EvidenceEvent
{
    public override string Kind => "evidence-read";

    public override void Describe(EvidenceDetails details) => details.Text("command", Command).Text("range", Range).Text("from", From).Text("who", Who);
}

/// <summary>
/// Old record bodies replaced by their leaf hashes (<c>evidence-prune</c>): the log itself writes the details of this
/// statement (before, pruned_below, records, segments) when it signs it.
/// </summary>
/// <summary>
/// The signing key was handed over (<c>evidence-key-rotation</c>): the log adds both keys and the co-signed checkpoint's file to
/// <c>details</c>; here the reason and, when an incident rotated it, the incident's ID.
/// </summary>
public sealed record EvidenceKeyRotationEvent(string Reason, string? Incident) : EvidenceEvent
{
    public override string Kind => Cairn.Evidence.Log.EvidenceLog.HandoverKind;

    public override void Describe(EvidenceDetails details)
    {
        details.Text("reason", Reason);
        if (Incident is not null)
        {
            details.Text("incident", Incident);
        }
    }
}

public sealed record EvidencePruneEvent : EvidenceEvent
{
    public override string Kind => "evidence-prune";

    public override void Describe(EvidenceDetails details)
    {
    }
}

/// <summary>A lock of a process that is gone, removed by the next lock or by <c>unlock</c> (<c>lock-removed</c>).</summary>
public sealed record LockRemovedEvent(string Lock, string Operation, long Pid, string Host, bool Exclusive, DateTimeOffset Created, string? Reason, string RemovedBy) : EvidenceEvent
{
    public override string Kind => "lock-removed";

    public override void Describe(EvidenceDetails details) => details.Text("lock", Lock).Text("operation", Operation).Number("pid", Pid).Text("host", Host).YesNo("exclusive", Exclusive)
        .Text("created", Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)).Text("reason", Reason ?? "").Text("removed_by", RemovedBy);
}

/// <summary>An operation that failed (result error), recorded under the kind it would have had.</summary>
public sealed record FailureEvent(string FailedKind, int ExitCode, string Error) : EvidenceEvent
{
    public override string Kind => FailedKind;

    public override void Describe(EvidenceDetails details) => details.Number("exit_code", ExitCode).Text("error", Error);
}

/// <summary>A retention cleanup run on a live database (<c>cleanup</c>): per rule the cutoff, rows deleted, partitions dropped.</summary>
public sealed record CleanupEvent(string Source, IReadOnlyList<Lifecycle.Cleanup.CleanupRuleReport> Rules, bool Partial, string? Error) : EvidenceEvent
{
    public override string Kind => "cleanup";

    public override void Describe(EvidenceDetails details) => details.Text("source", Source).Number("rows_deleted", Rules.Sum(r => r.RowsDeleted))
        .Number("partitions_dropped", Rules.Sum(r => r.PartitionsDropped)).YesNo("partial", Partial).Text("error", Error ?? "")
        .List("rules", Rules.Select(r => new EvidenceDetails().Number("rule", r.Rule).Text("table", r.Table).Time("cutoff", r.Cutoff).Number("rows_matching", r.RowsMatching)
            .Number("rows_deleted", r.RowsDeleted).Number("partitions_dropped", r.PartitionsDropped).YesNo("done", r.Done)));
}

/// <summary>
/// A data subject erased (<c>erasure</c>): the receipt. It holds a keyed hash of the subject (HMAC under a repository key),
/// never the identifier; the identifier is in the repository's encrypted erasure ledger.
/// </summary>
public sealed record ErasureEvent(string SubjectHash, string? Reference, string Mode, string LedgerEntry, bool SubjectFound, IReadOnlyList<PostgreSql.Lifecycle.ErasureStep> Steps) : EvidenceEvent
{
    public override string Kind => "erasure";

    public override void Describe(EvidenceDetails details) => details.Text("subject_hmac", SubjectHash).Text("reference", Reference ?? "").Text("mode", Mode).Text("ledger_entry", LedgerEntry)
        .YesNo("subject_found", SubjectFound).Number("rows", Steps.Sum(s => s.Rows))
        .List("tables", Steps.Select(s => new EvidenceDetails().Text("table", s.Table).Text("action", s.Action).Number("rows", s.Rows)));
}

/// <summary>The erasure ledger re-applied to a database by <c>cairn erase --replay</c> (<c>erasure-replay</c>).</summary>
public sealed record ErasureReplayEvent(string Target, long Entries, long Reapplied, long Rows) : EvidenceEvent
{
    public override string Kind => "erasure-replay";

    public override void Describe(EvidenceDetails details) => details.Text("target", Target).Number("entries", Entries).Number("reapplied", Reapplied).Number("rows", Rows);
}

/// <summary>Rows brought back (<c>recover</c>): from the audit trail's images, or a table rebuilt as it was at a time.</summary>
public sealed record RecoverEvent(string Source, DateTimeOffset Since, DateTimeOffset? At, long Inserted, long SkippedExisting, long SkippedErased, long NotApplied, long Updated, IReadOnlyList<string> Tables) : EvidenceEvent
{
    public override string Kind => "recover";

    /// <summary><c>logical-audit</c>: the audit events replayed onto the logical backup's copy.</summary>
    public long? EventsApplied { get; init; }

    /// <summary><c>--at</c>: why this source (the option given, or what <c>--from auto</c> found).</summary>
    public string? Choice { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("source", Source).Time("since", Since).Number("inserted", Inserted).Number("skipped_existing", SkippedExisting).Number("skipped_erased", SkippedErased)
            .Number("not_applied", NotApplied).Number("updated", Updated).Text("tables", string.Join(",", Tables));
        if (At is { } at)
        {
            details.Time("at", at);
        }
        if (EventsApplied is { } applied)
        {
            details.Number("events_applied", applied);
        }
        if (Choice is { } choice)
        {
            details.Text("choice", choice);
        }
    }
}

/// <summary>A snapshot pinned or unpinned (<c>pin</c>; action pin or unpin).</summary>
public sealed record PinEvent(string Action, string Reason, DateTimeOffset? Until, string? Incident) : EvidenceEvent
{
    public override string Kind => "pin";

    public override void Describe(EvidenceDetails details)
    {
        details.Text("action", Action).Text("reason", Reason).Text("until", Until is { } u ? u.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture) : "");
        if (Incident is not null)
        {
            details.Text("incident", Incident);
        }
    }
}

/// <summary>
/// A compliance report was written (<c>report</c>): its period, format, SHA-256 and the signed checkpoint it proves
/// against, so the next report can prove that the log still extends this one (reports chain month to month).
/// </summary>
public sealed record ReportEvent(DateTimeOffset From, DateTimeOffset Until, string Format, string Sha256, string FileName, long TreeSize, string Checkpoint) : EvidenceEvent
{
    public override string Kind => "report";

    public override void Describe(EvidenceDetails details) => details.Time("from", From).Time("until", Until).Text("format", Format).Text("sha256", Sha256)
        .Text("file", FileName).Number("tree_size", TreeSize).Text("checkpoint", Checkpoint);
}

/// <summary>The configuration a long-running process (the daemon) loaded or reloaded (<c>config-change</c>): its file and SHA-256.</summary>
public sealed record ConfigLoadedEvent(string Action, string File, string Sha256) : EvidenceEvent
{
    public override string Kind => "config-change";

    public override void Describe(EvidenceDetails details) => details.Text("action", Action).Text("file", File).Text("sha256", Sha256);
}

/// <summary>
/// A damage assessment of a live database (<c>assess</c>): result fail when something is damaged, error when a probe could not
/// run and nothing was found. Each damaged relation with when it was first seen and the backup the plan's first option uses,
/// so a later assess (and an auditor) knows the damage's age.
/// </summary>
public sealed record AssessEvent(Cairn.Operations.Assessment.AssessResult Found) : EvidenceEvent
{
    public override string Kind => Cairn.Operations.Assessment.AssessOperation.Kind;

    public override void Describe(EvidenceDetails details)
    {
        var a = Found;
        details.Number("database_bytes", a.Facts.SizeBytes).YesNo("data_checksums", a.Facts.DataChecksums)
            .NumberOrEmpty("checksum_failures", a.Facts.ChecksumFailures).Text("checksum_last_failure", a.Facts.ChecksumLastFailure is { } t ? t.UtcDateTime.ToString("O", CultureInfo.InvariantCulture) : "")
            .Number("indexes_checked", a.IndexesChecked).Number("heaps_checked", a.HeapsChecked).Number("amcheck_findings", a.AmcheckFindings.Count)
            .Number("invalid_indexes", a.InvalidIndexes.Count).Number("missing_files", a.MissingFiles.Count).Number("incomplete", a.Incomplete.Count)
            .Text("newest_wal", a.Wal?.NewestSegment ?? "")
            .List("damaged", a.Plans.Select(p =>
            {
                var first = p.Options.FirstOrDefault(o => o.Available);
                var d = new EvidenceDetails().Text("relation", p.Relation.Display).Text("sources", string.Join(' ', p.Relation.Sources)).Time("first_seen", p.FirstSeen.Time)
                    .Text("first_option", first?.Method ?? "none").Text("backup", first?.SnapshotId ?? "");
                return first?.DrillSeq is { } seq ? d.Number("drill_seq", seq) : d;
            }));
    }
}

/// <summary>The repository copied to a second repository and the copy verified (<c>copy</c>); <c>check</c> judges a copy's age by the last passing one.</summary>
public sealed record CopyEvent(string Target, long ObjectsCopied, long BytesCopied, long ObjectsPresent, long EvidenceFiles, long SnapshotsInCopy, string Scope, long DamageFindings, IReadOnlyList<string> FirstFindings, string? Error) : EvidenceEvent
{
    public override string Kind => "copy";

    /// <summary>The copy's filter as text (databases, since), null when it took everything.</summary>
    public string? Filter { get; init; }

    /// <summary>The copy is a repository with keys of its own: every object was re-encrypted.</summary>
    public bool Reencrypted { get; init; }

    public override void Describe(EvidenceDetails details)
    {
        details.Text("target", Target).Number("objects_copied", ObjectsCopied).Number("bytes_copied", BytesCopied).Number("objects_present", ObjectsPresent)
            .Number("evidence_files", EvidenceFiles).Number("snapshots_in_copy", SnapshotsInCopy).Text("scope", Scope).Number("damage_findings", DamageFindings);
        if (Filter is not null)
        {
            details.Text("filter", Filter);
        }
        if (Reencrypted)
        {
            details.Text("keys", "re-encrypted");
        }
        if (FirstFindings.Count > 0)
        {
            details.Text("findings", string.Join("; ", FirstFindings));
        }
        if (Error is not null)
        {
            details.Text("error", Error);
        }
    }
}

/// <summary>
/// One moment of an incident (<c>incident</c>): action open, step-start, step-end, pause or close, all under one incident ID;
/// step-end's result is the step's outcome. 'cairn incident report ID' prints the timeline with these records' seqs.
/// </summary>
public sealed record IncidentEvent(string Incident, string IncidentType, string Action, string? Step, string? StepKind, string? StepOutcome) : EvidenceEvent
{
    public override string Kind => "incident";

    public override void Describe(EvidenceDetails details)
    {
        details.Text("incident", Incident).Text("incident_type", IncidentType).Text("action", Action);
        if (Step is not null)
        {
            details.Text("step", Step).Text("step_kind", StepKind ?? "");
        }
        if (StepOutcome is not null)
        {
            details.Text("outcome", StepOutcome);
        }
    }
}
