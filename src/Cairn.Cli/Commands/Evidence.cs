using System.Globalization;
using System.Reflection;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;

namespace Cairn.Cli.Commands;

/// <summary>The one call every operation makes to put itself on the record (see Cairn.Evidence).</summary>
internal static class Evidence
{
    public static string ToolVersion => "cairn " + (typeof(Evidence).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0");

    /// <summary>The evidence folder: --evidence, else CAIRN_EVIDENCE, else beside the repository (REPO-evidence).</summary>
    public static EvidenceLog Open(CliContext ctx, string? repositoryPath)
    {
        var folder = ctx.EvidenceOption ?? ctx.Env("CAIRN_EVIDENCE") ?? ctx.Config.Evidence.Path;
        if (string.IsNullOrEmpty(folder))
        {
            if (string.IsNullOrEmpty(repositoryPath))
            {
                throw new EvidenceException("no evidence folder: pass --evidence DIR, set CAIRN_EVIDENCE, or give --repo (the log then lives beside the repository)");
            }
            folder = Path.GetFullPath(repositoryPath).TrimEnd('/') + "-evidence";
        }
        return new EvidenceLog(folder, ctx.Env("CAIRN_EVIDENCE_KEY") ?? ctx.Config.Evidence.SigningKey, ctx.Time);
    }

    /// <summary>
    /// The records monitoring and restores may act on (covered by a checkpoint that verifies) and the
    /// finding about the log. The key: CAIRN_EVIDENCE_PUBLIC_KEY, else evidence.public_key in cairn.yaml,
    /// else the signing key's public half, else evidence.pub.
    /// </summary>
    public static Cairn.Operations.Monitoring.EvidenceReading ReadVerified(CliContext ctx, EvidenceLog log)
        => Cairn.Operations.Monitoring.EvidenceHealth.Read(log, ctx.Env("CAIRN_EVIDENCE_PUBLIC_KEY") ?? ctx.Config.Evidence.PublicKey);

    /// <summary>Records one event. Creates the log (and its signing key) the first time.</summary>
    public static Task<long> RecordAsync(CliContext ctx, string repository, string kind, string result, Dictionary<string, string> figures, CancellationToken cancellationToken,
        string? database = null, string? snapshot = null, long? durationMs = null, JsonArray? checks = null)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var log = Open(ctx, repository);
        if (!log.Exists)
        {
            log.Init();
            ctx.Console.Info($"created the evidence log at {log.Folder} (signing key {log.SigningKeyPath}; keep a copy of it)");
        }
        var (seq, _) = log.Append(NewRecord(repository, kind, result, figures, database, snapshot, durationMs, checks), ToolVersion);
        return Task.FromResult(seq);
    }

    /// <summary>
    /// Before a restore: warns when the verified evidence log knows successful backups of
    /// <paramref name="database"/> newer than the newest snapshot the repository still holds (their
    /// manifests were deleted), or when the log does not verify so that cannot be told.
    /// </summary>
    public static async Task WarnIfNewerBackupsKnownAsync(CliContext ctx, Repository.Repository repo, string database, CancellationToken cancellationToken)
    {
        var log = Open(ctx, repo.Storage.Location);
        if (!log.Exists)
        {
            return;
        }
        var reading = ReadVerified(ctx, log);
        if (reading.Findings.FirstOrDefault(f => f.State != Cairn.Operations.Monitoring.HealthState.Ok) is { } bad)
        {
            ctx.Console.Error.WriteLine($"cairn: warning: cannot tell from the evidence whether newer backups of {database} were deleted: {bad.Message}");
        }
        var snapshots = (await repo.ListSnapshotsAsync(cancellationToken).ConfigureAwait(false)).Where(s => s.Manifest.Name == database).ToList();
        var missing = EvidenceQueries.NewerBackupsMissing(reading.Entries, database, snapshots.Select(s => s.Id).ToHashSet(StringComparer.Ordinal),
            snapshots.Count == 0 ? null : snapshots.Max(s => s.Manifest.Time));
        if (missing.Count > 0)
        {
            var shown = string.Join(", ", missing.TakeLast(5).Select(e => $"{e.Record?["snapshot"]?.GetValue<string>()?[..8]} at {e.Time:yyyy-MM-dd HH:mm}Z (evidence {e.Seq})"));
            ctx.Console.Error.WriteLine($"cairn: warning: the evidence log records {missing.Count} successful backup(s) of {database} newer than any snapshot left in the repository ({shown}); their manifests were deleted. This restores an older state than the newest backup: find out who removed them ('cairn evidence list --database {database}')");
        }
    }

    /// <summary>Puts each lock a command removed on record (kind <c>lock-removed</c>) and says so on stderr.</summary>
    public static async Task RecordLockRemovalAsync(CliContext ctx, string repository, Cairn.Repository.Locks.StaleLockRemoval removal, CancellationToken cancellationToken, bool announce = true)
    {
        foreach (var l in removal.Removed)
        {
            if (announce)
            {
                ctx.Console.Error.WriteLine($"cairn: removed the lock {l.Id[..Math.Min(8, l.Id.Length)]} of {l.Data.Operation} (pid {l.Data.Pid} on {l.Data.Host}): {l.StaleReason}");
            }
            await RecordAsync(ctx, repository, "lock-removed", "pass", new()
            {
                ["lock"] = l.Id,
                ["operation"] = l.Data.Operation,
                ["pid"] = l.Data.Pid.ToString(CultureInfo.InvariantCulture),
                ["host"] = l.Data.Host,
                ["exclusive"] = l.Data.Exclusive ? "yes" : "no",
                ["created"] = l.Data.Created.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                ["reason"] = l.StaleReason ?? "",
                ["removed_by"] = removal.RemovedBy,
            }, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>A record's common fields: kind, result, repository, actor, details (numbers stay numbers) and the optional ones.</summary>
    public static JsonObject NewRecord(string repository, string kind, string result, Dictionary<string, string> figures,
        string? database = null, string? snapshot = null, long? durationMs = null, JsonArray? checks = null)
    {
        var details = new JsonObject();
        foreach (var (k, v) in figures.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            details[k] = long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? JsonValue.Create(n) : JsonValue.Create(v);
        }
        var record = new JsonObject
        {
            ["kind"] = kind,
            ["result"] = result,
            ["repository"] = repository,
            ["actor"] = Environment.UserName,
            ["details"] = details,
        };
        if (database is not null)
        {
            record["database"] = database;
        }
        if (snapshot is not null)
        {
            record["snapshot"] = snapshot;
        }
        if (durationMs is not null)
        {
            record["duration_ms"] = durationMs.Value;
        }
        if (checks is not null)
        {
            record["checks"] = checks;
        }
        return record;
    }
}
