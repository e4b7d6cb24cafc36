namespace Cairn.Operations.Incidents;

/// <summary>
/// The runbook's emergency procedures as ordered steps (docs/runbooks.md maps them one to one). Configured hooks and human
/// steps are inserted after the step they name, in the order written.
/// </summary>
public static class IncidentRunbooks
{
    /// <summary>The built-in steps' names, which configured steps may name in <c>after:</c>.</summary>
    public static readonly IReadOnlyList<string> StepNames = ["isolate", "assess", "communicate", "preserve", "forensics", "notify", "recover", "verify", "swap", "harden", "resume"];

    public const string NotifyText = "Notify legal counsel, the data protection officer and the regulators the law requires (GDPR art. 33: within 72 hours of becoming aware), "
        + "with the incident ID, what the forensics hold and the forensic backup's snapshot ID ('cairn incident report ID' prints them); then run 'cairn incident resume ID'.";

    public static IReadOnlyList<IncidentStep> Plan(IncidentType type, DatabaseTarget database, bool executeSwap)
    {
        var name = database.Name;
        var config = database.Config?.Incident ?? IncidentConfig.Default;
        var isolate = new IncidentStep("isolate", StepKind.Isolate, true, config.Maintenance switch
        {
            MaintenanceMode.ConnectionLimit => $"maintenance mode: ALTER DATABASE {name} CONNECTION LIMIT 0, terminate the application's sessions (not Cairn's{(config.KeepRoles.Count > 0 ? ", not " + string.Join(", ", config.KeepRoles) : "")}); the previous limit is stored",
            MaintenanceMode.RevokeConnect => $"isolate: REVOKE CONNECT ON DATABASE {name} FROM {string.Join(", ", config.RevokeConnect)} (and PUBLIC if it holds CONNECT), terminate their sessions; the previous privileges are stored",
            _ => $"isolate: run the hook `{config.Hook}` (lifted by `{config.LiftHook}`)",
        });
        var assess = new IncidentStep("assess", StepKind.Assess, false, $"cairn assess {name}: sizes, checksum failures, amcheck, invalid indexes, missing files, WAL reach, a repair plan");
        var communicate = new IncidentStep("communicate", StepKind.Communicate, false, "alert every configured sink (Siren fields incident_type, severity, policy_name); failed steps and the end alert too");
        var preserve = new IncidentStep("preserve", StepKind.Preserve, false, $"forensic logical backup now{(database.Config?.DataDirectory is not null ? " and a physical one" : "")}, tagged incident-ID, pinned with the incident ID as reason");
        var forensics = new IncidentStep("forensics", StepKind.Forensics, false, "snapshot of pg_stat_activity, pg_roles (rolvaliduntil), pg_hba_file_rules" + (database.Config?.Audit is { } a ? $" and the last {config.AuditRows} rows of {a.Table.Schema}.{a.Table.Name}" : "") + ", stored encrypted in the repository under the incident");
        var notify = new IncidentStep("notify", StepKind.Manual, false, NotifyText);
        var recover = new IncidentStep("recover", StepKind.Recover, false, $"restore the newest backup that passed a drill (verified evidence) into a NEW database {name}_incident_ID, the erasure ledger re-applied; with --at TIME: a point-in-time restore of a physical backup and its archived WAL on a throwaway server when they cover TIME without a gap, else the newest drilled logical backup before TIME");
        var verify = new IncidentStep("verify", StepKind.Verify, false, $"the full check suite of {name} on the restored copy");
        var swap = new IncidentStep("swap", StepKind.Swap, true, executeSwap
            ? $"swap: rename {name} to {name}_before_ID and the restored copy to {name} (--execute-swap)"
            : $"swap: print the rename pair that puts the restored copy in production (run only with --execute-swap)");
        var harden = new IncidentStep("harden", StepKind.Harden, true, "rotate the repository passphrase (new key from --new-passphrase-file, old key removed) and the evidence signing key (a hand-over record co-signed by the old and the new key, old key removed); list login roles with passwords; checklist of what Cairn cannot rotate");
        var resume = new IncidentStep("resume", StepKind.Resume, false, $"lift maintenance (previous settings restored exactly), verify {name} live, close the incident with its timeline");
        IReadOnlyList<IncidentStep> steps = type switch
        {
            IncidentType.Corruption => [assess, preserve, recover, verify, swap, resume],
            IncidentType.Catastrophic => [isolate, assess, communicate, recover, verify, swap, resume],
            _ => [isolate, preserve, forensics, assess, communicate, notify, recover, verify, swap, harden, resume],
        };
        return WithConfigured(steps, config);
    }

    private static IReadOnlyList<IncidentStep> WithConfigured(IReadOnlyList<IncidentStep> steps, IncidentConfig config)
    {
        var list = steps.ToList();
        var extra = config.Hooks.Select(h => (h.After, Step: new IncidentStep(h.Name, StepKind.Hook, false, $"run the hook `{h.Run}`")))
            .Concat(config.Manual.Select(m => (m.After, Step: new IncidentStep(m.Name, StepKind.Manual, false, m.Text))));
        foreach (var (after, step) in extra)
        {
            var at = list.FindIndex(s => s.Name == after);
            if (at < 0)
            {
                continue; // a step this runbook does not have (e.g. after: harden in a corruption): the configured step is not part of it
            }
            // After the named step and any configured steps already placed after it, so they run in the order written.
            var insert = at + 1;
            while (insert < list.Count && list[insert].Kind is StepKind.Hook or StepKind.Manual && !StepNames.Contains(list[insert].Name))
            {
                insert++;
            }
            list.Insert(insert, step);
        }
        return list;
    }
}
