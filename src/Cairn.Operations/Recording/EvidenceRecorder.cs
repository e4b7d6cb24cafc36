using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Operations.Monitoring;
using Cairn.Repository.Locks;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Recording;

/// <summary>
/// The one way operations put themselves on the record (see Cairn.Evidence and docs/evidence.md), and the
/// one way they read it back. The log's folder: --evidence, else CAIRN_EVIDENCE, else <c>evidence.path</c>
/// in cairn.yaml, else <c>REPO-evidence</c> beside a local repository. The first record creates the log.
/// </summary>
/// <param name="folder">The evidence folder when one is set (option, environment or config).</param>
/// <param name="signingKey">The signing key path when one is set; default: the folder's path + ".key".</param>
/// <param name="repository">The repository location, for the default folder beside it (asked only when needed).</param>
/// <param name="tool">The tool and version written into each record.</param>
/// <param name="notice">Told when a record creates the log, with where its signing key is.</param>
/// <param name="publicKey">A verifier key file pinned for reading the log (CAIRN_EVIDENCE_PUBLIC_KEY or evidence.public_key).</param>
public sealed class EvidenceRecorder(string? folder, string? signingKey, Func<RepositoryLocation?> repository, TimeProvider time, string tool, Action<string>? notice = null, string? publicKey = null)
{
    /// <summary>The verifier key file pinned for reading the log, if any (see <see cref="EvidenceLog.TrustedPublicKey"/>).</summary>
    public string? PinnedPublicKey => publicKey;

    /// <summary>The log (which may not exist yet).</summary>
    public EvidenceLog Open()
    {
        var evidenceFolder = folder;
        if (string.IsNullOrEmpty(evidenceFolder))
        {
            evidenceFolder = repository() switch
            {
                LocalLocation local => local.Path.TrimEnd('/') + "-evidence",
                null => throw new EvidenceException("no evidence folder: pass --evidence DIR, set CAIRN_EVIDENCE, or give --repo (the log then lives beside the repository)"),
                var other => throw new EvidenceException($"no evidence folder for the repository {other.Display}: set evidence.path in cairn.yaml (or --evidence DIR / CAIRN_EVIDENCE); a log lives beside a repository only when it is a local folder"),
            };
        }
        return new EvidenceLog(evidenceFolder, signingKey, time);
    }

    /// <summary>The log, which must exist.</summary>
    public EvidenceLog OpenExisting()
    {
        var log = Open();
        if (!log.Exists)
        {
            throw new EvidenceException($"no evidence log at {log.Folder}; it is created by 'cairn init' or 'cairn evidence init' (or pass --evidence DIR)");
        }
        return log;
    }

    /// <summary>
    /// The records anything may act on (monitoring, the scheduler, restores): only those a checkpoint that verifies
    /// covers, with the finding that says whether the log verified (see <see cref="EvidenceHealth"/>). None when there
    /// is no log yet.
    /// </summary>
    public EvidenceReading ReadVerified() => EvidenceHealth.Read(Open(), publicKey);

    /// <summary>Creates the log and its signing key when it does not exist; true when it did not.</summary>
    public bool EnsureCreated(out EvidenceLog log)
    {
        log = Open();
        if (log.Exists)
        {
            return false;
        }
        log.Init();
        return true;
    }

    /// <summary>Appends one record and returns its sequence number. Creates the log (and its signing key) the first time.</summary>
    public long Record(EvidenceEvent e)
    {
        if (EnsureCreated(out var log))
        {
            notice?.Invoke($"created the evidence log at {log.Folder} (signing key {log.SigningKeyPath}; keep a copy of it)");
        }
        return log.Append(NewRecord(e), tool).Seq;
    }

    /// <summary>Puts each removed lock on the record (<c>lock-removed</c>).</summary>
    public void RecordLockRemoval(StaleLockRemoval removal, string repository)
    {
        foreach (var l in removal.Removed)
        {
            Record(new LockRemovedEvent(l.Id, l.Data.Operation, l.Data.Pid, l.Data.Host, l.Data.Exclusive, l.Data.Created, l.StaleReason, removal.RemovedBy) { Repository = repository });
        }
    }

    /// <summary>
    /// Prunes the bodies of records older than <paramref name="before"/>; the log signs its own <c>evidence-prune</c>
    /// statement (pruned below N) before any body goes.
    /// </summary>
    public (int Segments, int Records) Prune(EvidenceLog log, DateTimeOffset before, string repository)
        => log.Prune(before, NewRecord(new EvidencePruneEvent { Repository = repository }), tool);

    /// <summary>Hands the log over to a new signing key; the hand-over record is <paramref name="e"/> plus both keys (see <see cref="EvidenceLog.RotateKey"/>).</summary>
    public EvidenceLog.KeyRotation RotateKey(EvidenceLog log, EvidenceKeyRotationEvent e, bool keepOld) => log.RotateKey(NewRecord(e), tool, keepOld);

    /// <summary>The record of an event in the log's shape, not yet appended.</summary>
    private static JsonObject NewRecord(EvidenceEvent e)
    {
        var details = new EvidenceDetails();
        e.Describe(details);
        var record = new JsonObject
        {
            ["kind"] = e.Kind,
            ["result"] = e.Result,
            ["repository"] = e.Repository,
            ["actor"] = Environment.UserName,
            ["details"] = details.Node,
        };
        if (e.Database is not null)
        {
            record["database"] = e.Database;
        }
        if (e.Snapshot is not null)
        {
            record["snapshot"] = e.Snapshot;
        }
        if (e.DurationMs is not null)
        {
            record["duration_ms"] = e.DurationMs.Value;
        }
        if (e.Checks is not null)
        {
            record["checks"] = CheckRecords(e.Checks);
        }
        return record;
    }

    /// <summary>Per-check results as the log (and <c>--json</c>) write them.</summary>
    public static JsonArray CheckRecords(IEnumerable<Checks.CheckResult> results) => new([.. results.Select(r => (JsonNode)new JsonObject
    {
        ["name"] = r.Name,
        ["kind"] = r.Kind,
        ["expected"] = r.Expected,
        ["actual"] = r.Actual,
        ["result"] = r.Status.ToString().ToLowerInvariant(),
        ["duration_ms"] = (long)r.Duration.TotalMilliseconds,
        ["optional"] = r.Optional,
        ["detail"] = r.Detail,
    })]);
}
