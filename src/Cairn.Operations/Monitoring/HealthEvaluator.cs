using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Sessions;
using Cairn.Repository.Locks;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Monitoring;

/// <summary>Health of one database (default: every configured one, else every one on record).</summary>
public sealed record HealthRequest(string? Database = null);

/// <summary>The findings, the overall state (the worst finding) and the Prometheus metrics built from them.</summary>
public sealed record HealthReport(IReadOnlyList<HealthFinding> Findings, string Metrics, HealthState Overall);

/// <summary>
/// Health (freshness) without the passphrase: backups, drills and live verifications from the evidence log judged
/// against each database's thresholds; the newest archived WAL segment from the repository's storage; whether each
/// configured server answers and its archiver works; stale locks. Reads only: alerts are <see cref="HealthOperation"/>'s.
/// </summary>
public sealed class HealthEvaluator(OperationContext context)
{
    public async Task<HealthReport> EvaluateAsync(HealthRequest request, CancellationToken cancellationToken)
    {
        var log = context.Evidence.Open();
        var missingLog = log.Exists ? null : new HealthFinding("-", "evidence", HealthState.Unknown, $"no evidence log at {log.Folder}", null, null);
        return await EvaluateAsync(request, context.Evidence.ReadVerified(), missingLog, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Evaluates against <paramref name="evidence"/>: the records a verified checkpoint covers (oldest first) and the
    /// finding on whether the log verified. Forged "pass" lines outside a checkpoint silence nothing.
    /// </summary>
    public async Task<HealthReport> EvaluateAsync(HealthRequest request, EvidenceReading evidence, HealthFinding? missingLog, CancellationToken cancellationToken)
    {
        var entries = evidence.Entries;
        var config = context.Config;
        var databases = request.Database is { } only ? [only] : config.Databases.Keys.ToList();
        if (databases.Count == 0)
        {
            databases = [.. entries.Select(e => e.Record?["database"]?.GetValue<string>()).OfType<string>().Distinct()];
        }
        var now = context.Time.GetUtcNow();
        var findings = Freshness.Evaluate(entries, databases, config.ThresholdsOf, now, expectDrills: true);
        findings.AddRange(Reports.ReportSchedule.MissingReports(entries, config, databases, now));
        findings.AddRange(evidence.Findings);
        findings.AddRange(CopyHealth.Evaluate(entries, config.Copies, now));
        if (databases.Count == 0)
        {
            findings.Add(new HealthFinding("-", "config", HealthState.Unknown, "no databases configured and none on record; nothing to check", null, null));
        }
        if (missingLog is not null)
        {
            findings.Add(missingLog);
        }
        var storage = await RepositoryStorageAsync(cancellationToken).ConfigureAwait(false);
        long? repoBytes = null;
        int? stale = null;
        // One listing of wal/ for every database and the repository's size (an archive of years holds 100,000 objects and more).
        var (walByDb, walBytes) = storage is null
            ? (new Dictionary<string, List<WalObject>>(StringComparer.Ordinal), 0L)
            : await WalArchive.ListAllAsync(storage, cancellationToken).ConfigureAwait(false);
        if (storage is not null)
        {
            repoBytes = walBytes;
            foreach (var kind in Enum.GetValues<ObjectKind>().Where(k => k != ObjectKind.Named))
            {
                await foreach (var o in storage.ListAsync(kind, cancellationToken).ConfigureAwait(false))
                {
                    repoBytes += o.Size;
                }
            }
            var locks = await RepositoryLock.ListAsync(storage, context.Time, cancellationToken).ConfigureAwait(false);
            stale = locks.Count(l => l.IsStale);
            if (stale > 0)
            {
                findings.Add(new HealthFinding("-", "locks", HealthState.Warning, $"{stale} stale lock(s) in the repository; run 'cairn unlock'", null, null));
            }
            if (await PublishedFindingAsync(storage, now, cancellationToken).ConfigureAwait(false) is { } published)
            {
                findings.Add(published);
            }
        }
        var walLag = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var db in databases.Where(config.Databases.ContainsKey))
        {
            // WAL freshness: the newest segment archived into the repository (when this database archives through Cairn).
            var thresholds = config.ThresholdsOf(db);
            if (storage is not null && WalArchive.NewestSegment(walByDb.GetValueOrDefault(db) ?? []) is { } newest)
            {
                var age = now - newest.LastModified;
                walLag[db] = age.TotalSeconds;
                findings.Add(new HealthFinding(db, "wal", age > thresholds.WalCritical ? HealthState.Critical : HealthState.Ok,
                    $"newest archived WAL {newest.Name} {Freshness.Ago(age)} ago (critical after {Freshness.Ago(thresholds.WalCritical)})", age.TotalSeconds, newest.LastModified));
            }
            if (storage is not null && config.Databases[db].Retention.KeepWithin is { } within)
            {
                var present = new HashSet<string>(StringComparer.Ordinal);
                await foreach (var o in storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
                {
                    present.Add(o.Key.Name);
                }
                var archived = (walByDb.GetValueOrDefault(db) ?? []).Select(w => w.Name).ToList();
                if (WindowHealth.Evaluate(db, within, entries, present, archived, now) is { } windowFinding)
                {
                    findings.Add(windowFinding);
                }
            }
            // An unreachable database is itself a CRITICAL finding, not a crash.
            var conn = context.ResolveDatabase(db).Connection;
            try
            {
                await using var s = await ServerStatus.ReachAsync(conn, TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
                findings.Add(new HealthFinding(db, "reachable", HealthState.Ok, $"{conn.Redacted} answers", null, null));
                if (walLag.ContainsKey(db) && await ServerStatus.ArchiverAsync(s, cancellationToken).ConfigureAwait(false) is { Failing: true } arch)
                {
                    // The server's own view of archiving: failures since the last success are CRITICAL.
                    findings.Add(new HealthFinding(db, "archiver", HealthState.Critical, $"pg_stat_archiver: archiving {arch.LastFailedWal} failed at {arch.LastFailedTime:u} ({arch.FailedCount} failures in all); see the server log for cairn wal-push's message", null, null));
                }
            }
            catch (Exception e) when (e is PgToolException or CheckQueryException or System.Data.Common.DbException)
            {
                findings.Add(new HealthFinding(db, "reachable", HealthState.Critical, e.Message, null, null));
            }
        }
        var metrics = Metrics.Render(entries, findings, databases, now, repoBytes, stale, walLag);
        var overall = findings.Count == 0 ? HealthState.Ok : findings.Max(f => f.State);
        return new HealthReport(findings, metrics, overall);
    }

    /// <summary>
    /// The evidence log off the host: the newest publication in the repository must be a prefix of the local log (CRITICAL
    /// when not), and every passing backup, drill and prune record must be in it (WARNING when one is not). No passphrase:
    /// publications carry their checkpoint in clear text. Null when this host keeps no log.
    /// </summary>
    private async Task<HealthFinding?> PublishedFindingAsync(IStorage storage, DateTimeOffset now, CancellationToken cancellationToken)
    {
        try
        {
            var log = context.Evidence.Open();
            if (!log.Exists)
            {
                return null;
            }
            var key = log.TrustedPublicKey(context.Evidence.PinnedPublicKey).Key;
            return EvidencePublishing.Finding(await EvidencePublishing.CompareAsync(log, key, storage, cancellationToken).ConfigureAwait(false), now);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or Repository.RepositoryException or EvidenceException or InvalidDataException)
        {
            return new HealthFinding("-", "evidence-published", HealthState.Warning, $"the evidence log published in {storage.Location} could not be compared with the local one: {e.Message}", null, null);
        }
    }

    /// <summary>The repository's storage when one is given and holds a repository; null otherwise (health then has no repository figures).</summary>
    private async Task<IStorage?> RepositoryStorageAsync(CancellationToken cancellationToken)
    {
        if (context.RepositoryText is null)
        {
            return null;
        }
        var storage = context.OpenStorage();
        return await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false) ? storage : null;
    }
}

public sealed record HealthCheckResult(HealthReport Report, IReadOnlyList<Delivery> Deliveries);

/// <summary>
/// <c>check</c>: health, then alerts to the configured receivers on state changes (one per change, reminders after
/// CAIRN_ALERT_REMINDER, default 4h), each delivery on the record. Scrapes of /metrics use the evaluator alone.
/// </summary>
public sealed class HealthOperation(OperationContext context)
{
    public async Task<HealthCheckResult> RunAsync(HealthRequest request, CancellationToken cancellationToken)
    {
        var report = await new HealthEvaluator(context).EvaluateAsync(request, cancellationToken).ConfigureAwait(false);
        var sinks = context.Config.Alerts;
        var log = context.Evidence.Open();
        if (sinks.Count == 0 || !log.Exists)
        {
            return new HealthCheckResult(report, []);
        }
        var stateFile = context.Environment("CAIRN_STATE_FILE") ?? Path.Combine(log.Folder + "-state", "alerts.json");
        var reminder = context.Environment("CAIRN_ALERT_REMINDER") is { } r && CairnConfig.TryParseDuration(r, out var d) ? d : TimeSpan.FromHours(4);
        var deliveries = await new Alerter(stateFile, context.Time, reminder).ProcessAsync(report.Findings, sinks, cancellationToken).ConfigureAwait(false);
        foreach (var delivery in deliveries)
        {
            context.Evidence.Record(new AlertEvent(delivery.Sink.Name, delivery.Sink.Type, delivery.Alert.Aspect, Word(delivery.Alert.State), Word(delivery.Alert.Previous), delivery.Alert.Reminder, delivery.Attempts, delivery.Error)
            {
                Repository = context.RepositoryText ?? "",
                Result = delivery.Delivered ? "pass" : "error",
                Database = delivery.Alert.Database,
            });
        }
        return new HealthCheckResult(report, deliveries);
    }

    private static string Word(HealthState s) => s.ToString().ToUpperInvariant();
}

public sealed record AlertTestRequest(string? Sink);

public sealed record AlertTestResult(IReadOnlyList<Delivery> Deliveries)
{
    public int Failed => Deliveries.Count(d => !d.Delivered);
}

/// <summary><c>alert test</c>: a test alert to every configured receiver (or the one named by name or type).</summary>
public sealed class AlertTestOperation(OperationContext context)
{
    public async Task<AlertTestResult> RunAsync(AlertTestRequest request, CancellationToken cancellationToken)
    {
        var sinks = context.Config.Alerts.Where(s => request.Sink is not { } n || s.Name == n || s.Type == n).ToList();
        if (sinks.Count == 0)
        {
            throw new Repository.RepositoryException(Repository.ErrorKind.NotFound, "no alert receivers configured (alerts: in cairn.yaml)" + (request.Sink is { } n ? $" named {n}" : ""));
        }
        var alerter = new Alerter(Path.Combine(Path.GetTempPath(), $"cairn-alert-test-{Environment.ProcessId}.json"), context.Time, TimeSpan.FromHours(4));
        var deliveries = new List<Delivery>();
        foreach (var s in sinks)
        {
            deliveries.Add(await alerter.SendAsync(s, new Alert("test", "alert_test", HealthState.Warning, HealthState.Ok, "this is a test alert from 'cairn alert test'", context.Time.GetUtcNow(), false, Test: true), cancellationToken).ConfigureAwait(false));
        }
        return new AlertTestResult(deliveries);
    }
}
