using System.Diagnostics;
using System.Text.Json.Nodes;
using Cairn.Operations.Assessment;
using Cairn.Operations.Keys;
using Cairn.Operations.Lifecycle.Erasure;
using Cairn.Operations.Lifecycle.Recovery;
using Cairn.Operations.Logical;
using Cairn.Operations.Physical;
using Cairn.Operations.Recording;
using Cairn.Operations.Pins;
using Cairn.Operations.Snapshots;
using Cairn.Operations.Verification;
using Cairn.PostgreSql.Incidents;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Incidents;

/// <summary>
/// What each step kind does. Every step is written to be run again after a crash or a failure without doing harm twice:
/// maintenance keeps the settings it stored first, a forensic backup is found by its tag before one is taken, the restore
/// target is the incident's own database, the new key is found by its ID, and lifting reads the stored settings.
/// </summary>
internal sealed class IncidentSteps(OperationContext context, DatabaseTarget database, IncidentRunOptions options, IIncidentConsole console)
{
    /// <summary>Production's name on its server.</summary>
    private string ProductionName => database.Connection.Database;

    public Task<StepOutcome> RunAsync(Repository.Repository repo, IncidentState state, StepState step, Func<IncidentState, Task> save, CancellationToken ct) => step.Kind switch
    {
        StepKind.Isolate => IsolateAsync(state, save, ct),
        StepKind.Assess => AssessAsync(ct),
        StepKind.Communicate => CommunicateAsync(state, ct),
        StepKind.Preserve => PreserveAsync(repo, state, ct),
        StepKind.Forensics => ForensicsAsync(repo, state, ct),
        StepKind.Recover => RecoverAsync(repo, state, ct),
        StepKind.Verify => VerifyAsync(state, ct),
        StepKind.Swap => SwapAsync(state, ct),
        StepKind.Harden => HardenAsync(repo, state, step, save, ct),
        StepKind.Resume => ResumeAsync(state, ct),
        StepKind.Hook => HookAsync(state, step, ct),
        _ => Task.FromResult(new StepOutcome(StepStatus.Waiting, step.Description)),
    };

    private IncidentConfig Config => database.Config?.Incident ?? IncidentConfig.Default;

    private async Task<StepOutcome> IsolateAsync(IncidentState state, Func<IncidentState, Task> save, CancellationToken ct)
    {
        var conn = database.Connection;
        var name = ProductionName;
        var saved = state.Maintenance;
        if (saved is null)
        {
            // Stored before anything changes: a crash after the change must not make the changed value look like the old one.
            var before = await Isolation.ReadAsync(conn, name, ct).ConfigureAwait(false);
            IReadOnlyList<string> revokeFrom = Config.Maintenance == MaintenanceMode.RevokeConnect ? await Isolation.ConnectGranteesAsync(conn, name, Config.RevokeConnect, ct).ConfigureAwait(false) : [];
            saved = new SavedMaintenance(Mode(Config.Maintenance), before.ConnectionLimit, before.EffectiveAcl, revokeFrom, false);
            await save(state with { Maintenance = saved }).ConfigureAwait(false);
        }
        switch (Config.Maintenance)
        {
            case MaintenanceMode.ConnectionLimit:
                await Isolation.SetConnectionLimitAsync(conn, name, 0, ct).ConfigureAwait(false);
                var n = await Isolation.TerminateSessionsAsync(conn, name, Config.KeepRoles, null, ct).ConfigureAwait(false);
                return new StepOutcome(StepStatus.Done, $"connection limit 0 on {name} (was {saved.ConnectionLimit}); {n} session(s) terminated", new() { ["previous_connection_limit"] = saved.ConnectionLimit?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "", ["terminated"] = n.ToString(System.Globalization.CultureInfo.InvariantCulture) }, saved);
            case MaintenanceMode.RevokeConnect:
                await Isolation.SetConnectAsync(conn, name, saved.RevokedFrom, grant: false, ct).ConfigureAwait(false);
                var t = await Isolation.TerminateSessionsAsync(conn, name, Config.KeepRoles, Config.RevokeConnect, ct).ConfigureAwait(false);
                return new StepOutcome(StepStatus.Done, $"CONNECT on {name} revoked from {string.Join(", ", saved.RevokedFrom.Select(g => g.Length == 0 ? "PUBLIC" : g))}; {t} session(s) terminated", new() { ["revoked_from"] = string.Join(",", saved.RevokedFrom.Select(g => g.Length == 0 ? "PUBLIC" : g)) }, saved);
            default:
                var (code, output) = await IncidentHooks.RunAsync(Config.Hook!, state, "isolate", ct).ConfigureAwait(false);
                return code == 0
                    ? new StepOutcome(StepStatus.Done, $"hook ran: {output}", null, saved)
                    : new StepOutcome(StepStatus.Failed, $"the maintenance hook exited {code}: {output}", null, saved);
        }
    }

    private static string Mode(MaintenanceMode m) => m switch { MaintenanceMode.ConnectionLimit => "connection_limit", MaintenanceMode.RevokeConnect => "revoke_connect", _ => "hook" };

    private async Task<StepOutcome> AssessAsync(CancellationToken ct)
    {
        var r = await new AssessOperation(context).RunAsync(new AssessRequest(database), null, ct).ConfigureAwait(false);
        var data = new Dictionary<string, string> { ["assess_seq"] = r.EvidenceSeq.ToString(System.Globalization.CultureInfo.InvariantCulture), ["damaged"] = r.Plans.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        // The backup the plan's table restores use, the oldest of them: it was taken before every relation's damage was first seen.
        var planned = r.Plans.Select(p => p.Options.FirstOrDefault(o => o.Available && o.Method == "table_restore")).OfType<RepairOption>().OrderBy(o => o.SnapshotTime).FirstOrDefault();
        if (planned?.SnapshotId is { } snap)
        {
            data["plan_backup"] = snap;
        }
        var text = r.Damaged
            ? $"{r.Plans.Count} damaged relation(s): {string.Join(", ", r.Plans.Take(5).Select(p => p.Relation.Display))}{(planned is null ? "" : $"; plan: backup {planned.SnapshotShortId}")} (evidence {r.EvidenceSeq})"
            : $"no damage found{(r.Incomplete.Count > 0 ? $"; {r.Incomplete.Count} probe(s) could not run: {r.Incomplete[0]}" : "")} (evidence {r.EvidenceSeq})";
        return new StepOutcome(StepStatus.Done, text, data);
    }

    private async Task<StepOutcome> CommunicateAsync(IncidentState state, CancellationToken ct)
    {
        if (context.Config.Alerts.Count == 0)
        {
            return new StepOutcome(StepStatus.Skipped, "no alert receivers are configured (alerts: in cairn.yaml): tell the stakeholders yourself");
        }
        var assessed = state.Steps.FirstOrDefault(s => s.Kind == StepKind.Assess && s.Status == StepStatus.Done)?.Outcome;
        var (delivered, failed) = await new IncidentOperation(context).AlertAsync(state, "assessed", "communicate",
            $"{IncidentOperation.TypeOf(state)} incident {state.Id} on {state.Database}{(assessed is null ? "" : ": " + assessed)}", ct).ConfigureAwait(false);
        return delivered == 0
            ? new StepOutcome(StepStatus.Failed, $"no alert receiver took the alert ({failed} failed); fix the receivers ('cairn alert test') and resume")
            : new StepOutcome(StepStatus.Done, $"alerted {delivered} receiver(s){(failed > 0 ? $", {failed} failed" : "")}");
    }

    private async Task<StepOutcome> PreserveAsync(Repository.Repository repo, IncidentState state, CancellationToken ct)
    {
        var mine = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(s => s.Manifest.Name == database.Name && BackupTags.Of(s).Contains(state.Tag)).ToList();
        var lines = new List<string>();
        var data = new Dictionary<string, string>();
        var logical = mine.FirstOrDefault(s => s.Manifest.Kind == BackupKinds.Logical);
        if (logical is null)
        {
            var b = await new LogicalBackupOperation(context).RunAsync(new LogicalBackupRequest(database) { Tags = [state.Tag] }, null, ct).ConfigureAwait(false);
            logical = b.Snapshot;
            lines.Add($"logical backup {logical.ShortId} taken");
        }
        else
        {
            lines.Add($"logical backup {logical.ShortId} found by its tag (taken before a re-run)");
        }
        data["logical_backup"] = logical.Id;
        var held = new List<Snapshot> { logical };
        if (database.Config?.DataDirectory is not null)
        {
            var physical = mine.FirstOrDefault(s => s.Manifest.Kind == BackupKinds.Physical);
            if (physical is null)
            {
                var b = await new PhysicalBackupOperation(context).RunAsync(new PhysicalBackupRequest(database, new FileBackupOptions(Environment.ProcessorCount, TimeSpan.FromMinutes(5)) { Tags = [state.Tag] }), null, ct).ConfigureAwait(false);
                physical = b.Backup.Snapshot;
                lines.Add($"physical backup {physical.ShortId} taken");
            }
            else
            {
                lines.Add($"physical backup {physical.ShortId} found by its tag");
            }
            data["physical_backup"] = physical.Id;
            held.Add(physical);
        }
        var pins = await repo.ListPinsAsync(ct).ConfigureAwait(false);
        foreach (var s in held)
        {
            if (pins.TryGetValue(s.Id, out var pin) && pin.Incident == state.Id && pin.HoldsAt(context.Time.GetUtcNow()))
            {
                continue;
            }
            var p = await new PinOperation(context).PinAsync(new PinRequest(s.Id, $"incident {state.Id}: forensic {s.Manifest.Kind} backup of {state.Database}", null, state.Id), ct).ConfigureAwait(false);
            lines.Add($"{s.ShortId} pinned (evidence {p.EvidenceSeq})");
        }
        return new StepOutcome(StepStatus.Done, string.Join("; ", lines), data);
    }

    private async Task<StepOutcome> ForensicsAsync(Repository.Repository repo, IncidentState state, CancellationToken ct)
    {
        var name = IncidentStore.ForensicsName(state.Id);
        if ((await repo.ListIncidentObjectsAsync(ct).ConfigureAwait(false)).Contains(name))
        {
            return new StepOutcome(StepStatus.Done, $"forensic snapshot incidents/{name} already stored (before a re-run)", new() { ["object"] = "incidents/" + name });
        }
        var audit = database.Config?.Audit is { } a ? (a.Table.Schema, a.Table.Name, a.TimeColumn) : ((string, string, string)?)null;
        var snap = await Isolation.ForensicSnapshotAsync(database.Connection, audit, Config.AuditRows, ct).ConfigureAwait(false);
        snap["incident"] = state.Id;
        snap["database"] = state.Database;
        var bytes = System.Text.Encoding.UTF8.GetBytes(snap.ToJsonString());
        await repo.PutIncidentObjectAsync(name, bytes, ct).ConfigureAwait(false);
        static string Count(JsonNode? n) => n is JsonArray arr ? arr.Count.ToString(System.Globalization.CultureInfo.InvariantCulture) : "unreadable";
        return new StepOutcome(StepStatus.Done,
            $"stored incidents/{name} (encrypted, {bytes.Length} bytes): {Count(snap["pg_stat_activity"])} sessions, {Count(snap["pg_roles"])} roles, {Count(snap["pg_hba_file_rules"])} pg_hba rules{(audit is null ? ", no audit table configured" : $", {Count(snap["audit_tail"])} audit rows")}",
            new() { ["object"] = "incidents/" + name });
    }

    private async Task<StepOutcome> RecoverAsync(Repository.Repository repo, IncidentState state, CancellationToken ct)
    {
        var target = state.RecoveryDatabase;
        if (target.Length > 63)
        {
            return new StepOutcome(StepStatus.Failed, $"the recovery database's name {target} is longer than PostgreSQL's 63 bytes; name the database shorter in cairn.yaml");
        }
        var step = state.Steps.Single(s => s.Kind == StepKind.Recover);
        if (step.Data.GetValueOrDefault("restored") == "yes")
        {
            return new StepOutcome(StepStatus.Done, $"already restored into {target}");
        }
        // The target is the incident's own database: after a crash mid-restore it is dropped and written again, never production.
        var exists = await Isolation.DatabaseExistsAsync(database.Connection, target, ct).ConfigureAwait(false);
        string? notPhysical = null;
        if (options.At is { } at)
        {
            // The rule recover --table --at --from auto uses: a physical backup before TIME and gap-free WAL archived past it.
            var coverage = await ScratchPitr.CoverageAsync(repo, database.Name, at, ct).ConfigureAwait(false);
            if (coverage.Backup is { } physical)
            {
                return await RecoverPhysicalAsync(repo, physical, at, coverage.Why, target, exists, ct).ConfigureAwait(false);
            }
            notPhysical = coverage.Why;
        }
        var (snapshot, why) = await ChooseAsync(repo, state, ct).ConfigureAwait(false);
        if (notPhysical is not null)
        {
            why = $"logical, because {notPhysical}; {why}";
        }
        if (snapshot is null)
        {
            return new StepOutcome(StepStatus.Failed, why);
        }
        var r = await new LogicalRestoreOperation(context).RunAsync(new DatabaseRestoreRequest(database, snapshot.Id, target, Clean: exists), null, ct).ConfigureAwait(false);
        var data = new Dictionary<string, string> { ["source"] = "logical", ["snapshot"] = snapshot.Id, ["database"] = target, ["why"] = why, ["erasures_reapplied"] = r.Erasures.Reapplied.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        if (!r.Restore.Ok)
        {
            return new StepOutcome(StepStatus.Failed, $"restored {snapshot.ShortId} into {target}, but {r.Restore.Mismatches.Count} table(s) differ from the backup's fingerprint", data);
        }
        data["restored"] = "yes";
        return new StepOutcome(StepStatus.Done, $"{why}: backup {snapshot.ShortId} ({snapshot.Manifest.Time.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z) restored into {target}: {r.Restore.Fingerprint.Tables.Count} tables, {r.Restore.Fingerprint.TotalRows} rows as fingerprinted; erasure ledger: {r.Erasures.Reapplied} of {r.Erasures.Entries} re-applied", data);
    }

    /// <summary>
    /// Physical PITR into a throwaway server (proved stopped at --at), the erasure ledger applied there before a row leaves it,
    /// then the database dumped from it and restored into the incident's database on production's server and checked against
    /// the dump's row counts. The scratch server and its folder are removed afterwards.
    /// </summary>
    private async Task<StepOutcome> RecoverPhysicalAsync(Repository.Repository repo, Snapshot physical, DateTimeOffset at, string why, string target, bool exists, CancellationToken ct)
    {
        var server = database.Connection;
        var started = Stopwatch.StartNew();
        return await ScratchPitr.RunAsync(context, repo, database.Name, physical.Id, at, ProductionName, async (snap, copy, proof) =>
        {
            // Erased subjects never come back: the copy is erased before a row of it is read.
            var erasures = await ErasureReplay.ApplyAsync(repo, database.Name, copy, ct).ConfigureAwait(false);
            var work = context.Toolchain.NewWorkFolder("cairn-incident");
            try
            {
                Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
                await using var dump = await LogicalDump.BeginAsync(copy, new DumpOptions(Jobs: 2, WorkDirectory: work), context.Toolchain.PostgresBin, ct).ConfigureAwait(false);
                await dump.RunAsync((_, _) => Task.CompletedTask, null, ct).ConfigureAwait(false);
                await LogicalRestorer.PrepareDatabaseAsync(server, target, dump.Fingerprint, dump.Roles, withRoleAttributes: false, clean: exists, ct).ConfigureAwait(false);
                var restored = server.WithDatabase(target);
                var outcome = await LogicalRestorer.PgRestoreAsync(restored, dump.DumpDirectory, 2, noOwner: false, work, context.Toolchain.PostgresBin, ct).ConfigureAwait(false);
                var mismatches = await LogicalRestorer.CheckRestoredAsync(restored, dump.Fingerprint, outcome.Skipped, ct).ConfigureAwait(false);
                var fp = dump.Fingerprint;
                // On the record as the logical path's restore is (kind restore, type database), with the PITR's time and stop proof.
                var restoreSeq = context.Evidence.Record(new DatabaseRestoreEvent(restored.Redacted, fp.Tables.Count, fp.TotalRows, mismatches.Count, "")
                {
                    Skipped = outcome.Skipped,
                    ErasuresInLedger = erasures.Entries,
                    ErasuresReapplied = erasures.Reapplied,
                    Pitr = (at, proof.Detail ?? proof.Actual),
                    Repository = repo.Storage.Location,
                    Result = EvidenceEvent.Outcome(mismatches.Count == 0),
                    Database = database.Name,
                    Snapshot = snap.Id,
                    DurationMs = (long)started.Elapsed.TotalMilliseconds,
                });
                var data = new Dictionary<string, string>
                {
                    ["source"] = "physical", ["snapshot"] = snap.Id, ["database"] = target, ["why"] = "physical PITR: " + why, ["stop_proof"] = proof.Detail ?? proof.Actual,
                    ["erasures_reapplied"] = erasures.Reapplied.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["restore_seq"] = restoreSeq.ToString(System.Globalization.CultureInfo.InvariantCulture),
                };
                if (mismatches.Count > 0)
                {
                    return new StepOutcome(StepStatus.Failed, $"recovered {snap.ShortId} to {at.UtcDateTime:yyyy-MM-dd HH:mm:ss.ffffff}Z and copied it into {target}, but {mismatches.Count} table(s) differ from the scratch copy's row counts", data);
                }
                data["restored"] = "yes";
                return new StepOutcome(StepStatus.Done,
                    $"physical PITR ({why}): backup {snap.ShortId} and archived WAL recovered to {at.UtcDateTime:yyyy-MM-dd HH:mm:ss.ffffff}Z on a throwaway server ({proof.Detail ?? proof.Actual}), erasure ledger: {erasures.Reapplied} of {erasures.Entries} re-applied there, then copied into {target}: {fp.Tables.Count} tables, {fp.TotalRows} rows checked",
                    data);
            }
            finally
            {
                LogicalSnapshots.TryDelete(work);
            }
        }, "or resume with a --at the archived WAL reaches, or without --at to restore the newest drilled logical backup", ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The backup to recover from: for a corruption, the one assess's plan names; else the newest logical backup that passed a
    /// drill according to verified evidence (at or before --at when given). Never the incident's own forensic backups.
    /// </summary>
    private async Task<(Snapshot? Snapshot, string Why)> ChooseAsync(Repository.Repository repo, IncidentState state, CancellationToken ct)
    {
        var all = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(s => s.Manifest.Name == database.Name && s.Manifest.Kind == BackupKinds.Logical && !BackupTags.Of(s).Contains(state.Tag)).ToList();
        var reading = context.Evidence.ReadVerified();
        var drilled = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var e in reading.Entries)
        {
            if (e.Kind == "drill" && e.Record is { } r && Text(r, "database") == database.Name && Text(r, "result") == "pass" && Text(r, "snapshot") is { } snap)
            {
                drilled[snap] = e.Seq;
            }
        }
        if (state.Type == IncidentType.Corruption && options.At is null
            && state.Steps.FirstOrDefault(s => s.Kind == StepKind.Assess)?.Data.GetValueOrDefault("plan_backup") is { } planned && all.FirstOrDefault(s => s.Id == planned) is { } p)
        {
            return (p, $"assess's plan (drill evidence {(drilled.TryGetValue(p.Id, out var ps) ? ps : 0)})");
        }
        var candidates = all.Where(s => drilled.ContainsKey(s.Id) && (options.At is not { } at || s.Manifest.Time <= at)).OrderByDescending(s => s.Manifest.Time).ToList();
        if (candidates.Count == 0)
        {
            var newer = all.Count(s => !drilled.ContainsKey(s.Id));
            return (null, $"no logical backup of {database.Name}{(options.At is { } t ? $" taken at or before {t.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z" : "")} passed a drill according to verified evidence ({all.Count} backup(s), {newer} never drilled); drill one ('cairn drill {database.Name} --snapshot ID') and resume");
        }
        var chosen = candidates[0];
        var skipped = all.Count(s => s.Manifest.Time > chosen.Manifest.Time && !drilled.ContainsKey(s.Id));
        return (chosen, $"newest drilled backup (drill evidence {drilled[chosen.Id]}{(skipped > 0 ? $"; {skipped} newer undrilled backup(s) passed over" : "")})");
    }

    private static string? Text(JsonObject r, string key) => r[key] is JsonValue v && v.TryGetValue<string>(out var s) ? s : null;

    private async Task<StepOutcome> VerifyAsync(IncidentState state, CancellationToken ct)
    {
        if (database.Checks.Count == 0)
        {
            return new StepOutcome(StepStatus.Skipped, $"no checks are configured for {database.Name} (checks: in cairn.yaml): only the restore's row counts against the fingerprint were compared");
        }
        var copy = database with { Connection = database.Connection.WithDatabase(state.RecoveryDatabase) };
        var r = await new LiveVerifyOperation(context).RunAsync(new LiveVerifyRequest(copy), ct).ConfigureAwait(false);
        var t = r.Tally;
        return new StepOutcome(r.Passed ? StepStatus.Done : StepStatus.Failed, $"{state.RecoveryDatabase}: {t.Passed} check(s) passed, {t.Failed} failed, {t.Skipped} skipped");
    }

    private async Task<StepOutcome> SwapAsync(IncidentState state, CancellationToken ct)
    {
        var statements = Isolation.SwapStatements(ProductionName, state.RecoveryDatabase, state.RetiredDatabase);
        var data = new Dictionary<string, string> { ["commands"] = string.Join("\n", statements) };
        if (!options.ExecuteSwap)
        {
            console.Say("    the swap, to run on the server from another database (e.g. psql -d postgres) once sessions on both are gone:");
            foreach (var s in statements)
            {
                console.Say("      " + s + ";");
            }
            return new StepOutcome(StepStatus.Done, "printed the swap commands (not run: --execute-swap runs them)", data);
        }
        var conn = database.Connection;
        var restoredExists = await Isolation.DatabaseExistsAsync(conn, state.RecoveryDatabase, ct).ConfigureAwait(false);
        var retiredExists = await Isolation.DatabaseExistsAsync(conn, state.RetiredDatabase, ct).ConfigureAwait(false);
        if (!restoredExists && retiredExists)
        {
            return new StepOutcome(StepStatus.Done, $"already swapped: {ProductionName} is the restored copy, the old one is {state.RetiredDatabase}", data);
        }
        if (!restoredExists)
        {
            return new StepOutcome(StepStatus.Failed, $"the restored database {state.RecoveryDatabase} does not exist; the recover step must run first", data);
        }
        await Isolation.SwapAsync(conn, ProductionName, state.RecoveryDatabase, state.RetiredDatabase, ct).ConfigureAwait(false);
        data["executed"] = "yes";
        return new StepOutcome(StepStatus.Done, $"swapped: {ProductionName} is now the restored copy; the old database is {state.RetiredDatabase}", data);
    }

    private async Task<StepOutcome> HardenAsync(Repository.Repository repo, IncidentState state, StepState step, Func<IncidentState, Task> save, CancellationToken ct)
    {
        if (options.NewPassphraseFile is not { } file)
        {
            return new StepOutcome(StepStatus.Failed, $"harden rotates the repository passphrase and needs the new one in a file: resume with `cairn incident resume {state.Id} --new-passphrase-file FILE`");
        }
        string newPassphrase;
        try
        {
            newPassphrase = (await File.ReadAllTextAsync(file, ct).ConfigureAwait(false)).TrimEnd('\r', '\n');
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new StepOutcome(StepStatus.Failed, $"cannot read --new-passphrase-file {file}: {e.Message}");
        }
        if (newPassphrase.Length < 8)
        {
            return new StepOutcome(StepStatus.Failed, $"the new passphrase in {file} is shorter than 8 characters; write a longer one");
        }
        var data = new Dictionary<string, string>(step.Data);
        var keys = await repo.ListKeysAsync(ct).ConfigureAwait(false);
        var lines = new List<string>();
        var newContext = context.WithSecrets(new FixedSecrets(newPassphrase, newPassphrase));
        if (!(data.TryGetValue("new_key", out var newKey) && keys.Any(k => k.Id == newKey)))
        {
            var current = keys.First(k => k.Id == repo.KeyId).Data;
            var adding = context.WithSecrets(new FixedSecrets(context.Secrets.Passphrase(), newPassphrase));
            newKey = (await new KeyAddOperation(adding).RunAsync(new KeyAddRequest(new KdfParameters(current.MemoryKib, current.Iterations, KdfParameters.Default.Parallelism), $"incident {state.Id}"), ct).ConfigureAwait(false)).KeyId;
            data["new_key"] = newKey;
            // Saved before the old keys go: a crash between the two must find the new key again, not add a third.
            await save(state.WithStep(step with { Data = data })).ConfigureAwait(false);
            lines.Add($"new key {newKey[..8]} added");
        }
        var removed = new List<string>();
        foreach (var k in keys.Where(k => k.Id != newKey))
        {
            await new KeyRemoveOperation(newContext).RunAsync(new KeyRemoveRequest(k.Id), ct).ConfigureAwait(false);
            removed.Add(k.Id[..8]);
        }
        lines.Add(removed.Count > 0 ? $"old key(s) {string.Join(", ", removed)} removed" : "no old key left to remove");
        lines.Add(RotateEvidenceKey(state, data));
        var roles = await Isolation.LoginRolesWithPasswordsAsync(database.Connection, ct).ConfigureAwait(false);
        var checklist = new List<string>
        {
            roles is null ? "change the passwords of every login role (Cairn could not read pg_authid: not a superuser)" : roles.Count == 0 ? "no login role has a password in pg_authid" : $"change the passwords of the login roles with passwords: {string.Join(", ", roles)}",
            "rotate the application's secrets that Cairn cannot see (database URLs with passwords, service credentials)",
            "rotate the JWT secret (Supabase: then the anon and service_role keys derived from it) and revoke issued sessions",
            "rotate API keys and third-party tokens the application holds",
            "point CAIRN_PASSPHRASE_FILE (and every host's, the daemon's and archive_command's) at the new repository passphrase; re-run 'cairn archiver allow' if the server's user had its own key",
        };
        data["checklist"] = string.Join("\n", checklist);
        data["roles_with_passwords"] = roles is null ? "unreadable" : string.Join(",", roles);
        foreach (var c in checklist)
        {
            console.Say("    [ ] " + c);
        }
        console.Say("    the repository passphrase changed: later commands need the new one");
        return new StepOutcome(StepStatus.Done, string.Join("; ", lines) + $"; checklist of {checklist.Count} items for people", data, Secrets: new FixedSecrets(newPassphrase, newPassphrase));
    }

    /// <summary>
    /// The evidence signing key handed over to a new one (a hand-over record co-signed by both keys; the old private key removed),
    /// once per incident: a re-run after a crash finds the incident's hand-over in the verified log and does not rotate again.
    /// </summary>
    private string RotateEvidenceKey(IncidentState state, Dictionary<string, string> data)
    {
        var done = context.Evidence.ReadVerified().Entries.LastOrDefault(e => e.Kind == Cairn.Evidence.Log.EvidenceLog.HandoverKind && e.Record?["details"]?["incident"] is JsonValue v && v.TryGetValue<string>(out var i) && i == state.Id);
        if (done is not null)
        {
            data["evidence_handover_seq"] = done.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture);
            return $"evidence signing key already handed over at record {done.Seq}";
        }
        var r = new Recording.EvidenceRotateKeyOperation(context).Run(new Recording.EvidenceRotateKeyRequest(KeepOld: false, Reason: $"{TypeName(state.Type)} incident {state.Id}", Incident: state.Id));
        data["evidence_handover_seq"] = r.Seq.ToString(System.Globalization.CultureInfo.InvariantCulture);
        data["evidence_old_key"] = r.OldKey;
        data["evidence_new_key"] = r.NewKey;
        console.Say($"    evidence signing key rotated: hand-over record {r.Seq}, co-signed by the old and the new key; the old private key was removed");
        console.Say($"    new verifier key: {r.NewKey} (verifiers pinning the old key follow the hand-over)");
        return $"evidence signing key handed over at record {r.Seq} (old private key removed)";
    }

    private static string TypeName(IncidentType t) => t switch { IncidentType.Breach => "data breach", IncidentType.Corruption => "corruption", _ => "catastrophic failure" };

    private async Task<StepOutcome> ResumeAsync(IncidentState state, CancellationToken ct)
    {
        var lines = new List<string>();
        var saved = state.Maintenance;
        if (saved is { Lifted: false })
        {
            var conn = database.Connection;
            var name = ProductionName;
            switch (saved.Mode)
            {
                case "connection_limit":
                    await Isolation.SetConnectionLimitAsync(conn, name, saved.ConnectionLimit ?? -1, ct).ConfigureAwait(false);
                    break;
                case "revoke_connect":
                    await Isolation.SetConnectAsync(conn, name, saved.RevokedFrom, grant: true, ct).ConfigureAwait(false);
                    break;
                default:
                    var (code, output) = await IncidentHooks.RunAsync(Config.LiftHook ?? throw new RepositoryException(ErrorKind.InvalidInput, "maintenance was a hook, and no lift_hook is configured to undo it"), state, "resume", ct).ConfigureAwait(false);
                    if (code != 0)
                    {
                        return new StepOutcome(StepStatus.Failed, $"the lift hook exited {code}: {output}");
                    }
                    break;
            }
            if (saved.Mode != "hook")
            {
                var now = await Isolation.ReadAsync(conn, name, ct).ConfigureAwait(false);
                if (now.ConnectionLimit != saved.ConnectionLimit || now.EffectiveAcl != saved.EffectiveAcl)
                {
                    return new StepOutcome(StepStatus.Failed, $"maintenance lifted, but {name}'s settings differ from before: connection limit {now.ConnectionLimit} (was {saved.ConnectionLimit}), privileges {now.EffectiveAcl} (were {saved.EffectiveAcl})",
                        null, saved with { Lifted = true });
                }
                lines.Add($"maintenance lifted: connection limit {now.ConnectionLimit}, privileges {now.EffectiveAcl} as before");
            }
            else
            {
                lines.Add("maintenance lifted by the lift hook");
            }
            saved = saved with { Lifted = true };
        }
        else
        {
            lines.Add(saved is null ? "no maintenance to lift" : "maintenance already lifted");
        }
        if (database.Checks.Count == 0)
        {
            lines.Add($"live verification not run: no checks are configured for {database.Name}");
            return new StepOutcome(StepStatus.Done, string.Join("; ", lines), null, saved);
        }
        var r = await new LiveVerifyOperation(context).RunAsync(new LiveVerifyRequest(database), ct).ConfigureAwait(false);
        lines.Add($"live verification: {r.Tally.Passed} passed, {r.Tally.Failed} failed, {r.Tally.Skipped} skipped");
        return new StepOutcome(r.Passed ? StepStatus.Done : StepStatus.Failed, string.Join("; ", lines), null, saved);
    }

    private async Task<StepOutcome> HookAsync(IncidentState state, StepState step, CancellationToken ct)
    {
        var hook = Config.Hooks.FirstOrDefault(h => h.Name == step.Name);
        if (hook is null)
        {
            return new StepOutcome(StepStatus.Failed, $"the hook {step.Name} is no longer configured under databases.{database.Name}.incident.hooks; add it back, or the incident cannot go on");
        }
        var (code, output) = await IncidentHooks.RunAsync(hook.Run, state, step.Name, ct).ConfigureAwait(false);
        return code == 0 ? new StepOutcome(StepStatus.Done, $"exit 0{(output.Length > 0 ? ": " + output : "")}") : new StepOutcome(StepStatus.Failed, $"the hook exited {code}{(output.Length > 0 ? ": " + output : "")}");
    }
}

/// <summary>Passphrases fixed for the rest of a run (after a rotation).</summary>
internal sealed class FixedSecrets(string passphrase, string newPassphrase) : ISecretSource
{
    public string Passphrase(bool confirm = false) => passphrase;

    public string NewPassphrase() => newPassphrase;
}

/// <summary>Runs a configured incident command through /bin/sh with the allow-listed child environment and the incident's facts.</summary>
internal static class IncidentHooks
{
    public static async Task<(int Code, string Output)> RunAsync(string command, IncidentState state, string step, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        Cairn.PostgreSql.Programs.ChildEnvironment.Apply(psi, server: false, new Dictionary<string, string>
        {
            ["CAIRN_INCIDENT_ID"] = state.Id,
            ["CAIRN_INCIDENT_TYPE"] = IncidentOperation.TypeOf(state),
            ["CAIRN_INCIDENT_DATABASE"] = state.Database,
            ["CAIRN_INCIDENT_STEP"] = step,
        });
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {command}");
        p.StandardInput.Close();
        var err = p.StandardError.ReadToEndAsync(ct);
        var output = p.StandardOutput.ReadToEndAsync(ct);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(TimeSpan.FromMinutes(10));
        try
        {
            await p.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        var text = ((await output.ConfigureAwait(false)) + (await err.ConfigureAwait(false))).Trim().Replace('\n', ' ');
        return (p.ExitCode, text.Length > 300 ? text[..300] + "…" : text);
    }
}
