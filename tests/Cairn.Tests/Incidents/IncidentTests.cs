using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cairn.Operations.Incidents;
using Cairn.Tests.Monitoring;
using Cairn.Tests.Support;
using Npgsql;

namespace Cairn.Tests.Incidents;

/// <summary>
/// The incident runbooks end to end on a scratch server: maintenance seen from a second connection (the application's role),
/// the forensic backup pinned, alerts at a local webhook, recovery from the newest drilled backup, resume lifting the block,
/// a failing hook and a killed process resumed where they stopped, and a dry run that changes nothing.
/// </summary>
public sealed partial class IncidentTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private const string Password = "app-pass-1";

    /// <summary>A database with an application role that logs in over TCP with a password (the server's limits bind it: it is no superuser).</summary>
    private async Task<(AppSetup Setup, string Role)> SetUpAsync(Func<string, string> sections, Receiver? receiver = null)
    {
        var role = pg.NewName("app_user");
        await pg.Server.ExecuteAsync($"CREATE ROLE {role} LOGIN PASSWORD '{Password}'");
        var sql = $"CREATE EXTENSION amcheck; CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 3) g; GRANT SELECT ON items TO {role};";
        var common = $"""
                checks:
                  - tables_present: [public.items]
                  - sql: {"{"} name: items_present, query: "SELECT count(*) FROM items", expect: ">= 1" {"}"}
                drill: {"{"} on: "{pg.Server.Url()}" {"}"}

            """;
        var setup = await AppSetup.CreateAsync(pg, "inc", sql, common + sections(role));
        if (receiver is not null)
        {
            var urlFile = setup.Dir.File("webhook.url");
            await File.WriteAllTextAsync(urlFile, receiver.Url);
            var config = setup.Dir.File("cairn.yaml");
            await File.WriteAllTextAsync(config, $"alerts:\n  - {{ type: webhook, format: siren, url_file: \"{urlFile}\" }}\n" + await File.ReadAllTextAsync(config));
        }
        return (setup, role);
    }

    private string AppUrl(string database, string role) => $"Host=127.0.0.1;Port={pg.Server.Port};Username={role};Password={Password};Database={database};Pooling=false;Timeout=5";

    /// <summary>Opens a new connection as the application's role; the error's SQLSTATE when the server refuses it.</summary>
    private async Task<string?> ConnectAsAppAsync(string database, string role)
    {
        try
        {
            await using var c = new NpgsqlConnection(AppUrl(database, role));
            await c.OpenAsync();
            await using var cmd = new NpgsqlCommand("SELECT count(*) FROM items", c);
            await cmd.ExecuteScalarAsync();
            return null;
        }
        catch (PostgresException e)
        {
            return e.SqlState;
        }
    }

    private static async Task<string> BackupAsync(CliRunner cli)
    {
        var (code, json, err) = await cli.RunAsync("backup", "app", "--json");
        Assert.True(code == 0, err);
        return JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();
    }

    private static string IdOf(string output) => IncidentId().Match(output) is { Success: true } m ? m.Value : throw new Xunit.Sdk.XunitException("no incident ID in: " + output);

    private static async Task<JsonObject> ReportAsync(CliRunner cli, string id)
    {
        var (code, json, err) = await cli.RunAsync("incident", "report", id, "--json");
        Assert.True(code == 0, err);
        return JsonNode.Parse(json)!.AsObject();
    }

    private static JsonObject Step(JsonObject report, string name) => report["steps"]!.AsArray().Single(s => s!["name"]!.GetValue<string>() == name)!.AsObject();

    [Fact]
    public async Task Catastrophic_incident_blocks_new_connections_restores_the_newest_drilled_backup_alerts_and_resume_lifts_the_block()
    {
        using var receiver = new Receiver();
        var (setup, role) = await SetUpAsync(_ => """
                incident:
                  manual:
                    - { name: look-from-outside, after: verify, text: "the test connects as the application" }

            """, receiver);
        using var cleanup = setup;
        var (cli, _, db) = setup;
        var drilled = await BackupAsync(cli);
        var (dc, _, de) = await cli.RunAsync("drill", "app");
        Assert.True(dc == 0, de);
        await pg.Server.ExecuteAsync("INSERT INTO items VALUES (4, 'after the drilled backup')", db);
        var undrilled = await BackupAsync(cli);
        Assert.NotEqual(drilled, undrilled);
        await using var appSession = new NpgsqlConnection(AppUrl(db, role));
        await appSession.OpenAsync();

        var (code, output, err) = await cli.RunAsync("incident", "catastrophic", "app", "--execute", "--yes");

        Assert.True(code == 13, output + err); // paused at the human's step, with maintenance on
        var id = IdOf(output);
        Assert.Equal("53300", await ConnectAsAppAsync(db, role)); // too many connections: the limit is 0
        await using (var cmd = new NpgsqlCommand("SELECT 1", appSession))
        {
            await Assert.ThrowsAnyAsync<Exception>(() => cmd.ExecuteScalarAsync()); // the application's session was terminated
        }
        var report = await ReportAsync(cli, id);
        var recover = Step(report, "recover");
        Assert.Equal("done", recover["status"]!.GetValue<string>());
        Assert.Equal(drilled, recover["data"]!["snapshot"]!.GetValue<string>());
        Assert.Contains("1 newer undrilled backup(s) passed over", recover["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
        var restored = recover["data"]!["database"]!.GetValue<string>();
        Assert.StartsWith(db + "_incident_", restored, StringComparison.Ordinal);
        Assert.Equal(3L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM items", restored));
        Assert.Equal("done", Step(report, "verify")["status"]!.GetValue<string>());

        var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes");

        Assert.True(rc == 0, ro + re);
        Assert.Null(await ConnectAsAppAsync(db, role));
        Assert.Equal(-1, await pg.Server.ScalarAsync<int>($"SELECT datconnlimit FROM pg_database WHERE datname = '{db}'"));
        Assert.Contains($"ALTER DATABASE \"{db}\" RENAME TO \"{db}_before_", ro, StringComparison.Ordinal); // the swap is printed, not run
        Assert.Equal(4L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM items", db));
        report = await ReportAsync(cli, id);
        Assert.Equal("closed", report["status"]!.GetValue<string>());
        Assert.All(report["steps"]!.AsArray(), s => Assert.NotNull(s!["end_seq"]));
        var alerts = receiver.Received.Where(a => a["context"]?["incident"]?.GetValue<string>() == id).ToList();
        Assert.Equal(["start", "assessed", "end"], alerts.Select(a => a["context"]!["moment"]!.GetValue<string>()));
        Assert.All(alerts, a => Assert.Equal("catastrophic_failure", a["incident_type"]!.GetValue<string>()));
        Assert.Equal(1, alerts[0]["severity"]!.GetValue<int>());
        Assert.Equal("Critical", alerts[0]["policy_name"]!.GetValue<string>());
        Assert.Equal("Resolved", alerts[2]["policy_name"]!.GetValue<string>());
        var (_, md, _) = await cli.RunAsync("incident", "report", id);
        Assert.Contains("| 1 | isolate | isolate | done |", md, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Breach_isolates_by_revoking_connect_keeps_a_pinned_forensic_backup_and_forensics_rotates_the_passphrase_and_restores_the_privileges()
    {
        var (setup, role) = await SetUpAsync(r => $"""
                retention: {"{"} keep_last: 1 {"}"}
                incident:
                  revoke_connect: [{r}]

            """);
        using var cleanup = setup;
        var (cli, dir, db) = setup;
        await BackupAsync(cli);
        Assert.Equal(0, (await cli.RunAsync("drill", "app")).Item1);
        var aclBefore = await pg.Server.ScalarAsync<string>($"SELECT coalesce(datacl, acldefault('d', datdba))::text FROM pg_database WHERE datname = '{db}'");
        var newPass = dir.File("new-passphrase");
        await File.WriteAllTextAsync(newPass, "a new passphrase after the breach\n");
        var evidenceFolder = dir.File("repo") + "-evidence"; // the log beside the repository
        var evidenceKey = evidenceFolder + ".key";
        var oldSigner = await File.ReadAllTextAsync(evidenceKey);
        var oldPub = dir.File("old-evidence.pub");
        File.Copy(Path.Combine(evidenceFolder, "evidence.pub"), oldPub);

        var (code, output, err) = await cli.RunAsync("incident", "breach", "app", "--execute", "--yes", "--new-passphrase-file", newPass);

        Assert.True(code == 13, output + err); // the notify step waits for a human
        var id = IdOf(output);
        Assert.Equal("42501", await ConnectAsAppAsync(db, role)); // permission denied: CONNECT revoked (from PUBLIC too)
        var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes", "--new-passphrase-file", newPass);
        Assert.True(rc == 0, ro + re);
        Assert.Null(await ConnectAsAppAsync(db, role));
        Assert.Equal(aclBefore, await pg.Server.ScalarAsync<string>($"SELECT coalesce(datacl, acldefault('d', datdba))::text FROM pg_database WHERE datname = '{db}'"));

        // The old passphrase no longer opens the repository; the new one does.
        Assert.Equal(3, (await cli.RunAsync("snapshots")).Item1);
        cli.Env["CAIRN_PASSPHRASE"] = "a new passphrase after the breach";
        var report = await ReportAsync(cli, id);
        Assert.Equal("closed", report["status"]!.GetValue<string>());
        var preserve = Step(report, "preserve")["data"]!;
        var forensic = preserve["logical_backup"]!.GetValue<string>();
        var harden = Step(report, "harden")["data"]!;
        Assert.Contains(role, harden["roles_with_passwords"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.DoesNotContain("signing key", harden["checklist"]!.GetValue<string>(), StringComparison.Ordinal);

        // The evidence signing key was handed over: the record names the incident, the old private key is gone, and a verifier
        // pinning the old key follows the hand-over to the new one.
        var handoverSeq = long.Parse(harden["evidence_handover_seq"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var evidence = new Cairn.Evidence.Log.EvidenceLog(evidenceFolder, null, TimeProvider.System);
        var handover = evidence.ReadEntries(out _)[(int)handoverSeq].Record!;
        Assert.Equal(Cairn.Evidence.Log.EvidenceLog.HandoverKind, handover["kind"]!.GetValue<string>());
        Assert.Equal(id, handover["details"]!["incident"]!.GetValue<string>());
        Assert.Equal(File.ReadAllText(oldPub).Trim(), handover["details"]!["old_key"]!.GetValue<string>());
        Assert.NotEqual(oldSigner, await File.ReadAllTextAsync(evidenceKey));
        Assert.DoesNotContain(oldSigner.Trim(), string.Concat(Directory.GetFiles(dir.Path).Concat(Directory.GetFiles(evidenceFolder, "*", SearchOption.AllDirectories)).Select(File.ReadAllText)), StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.GetFiles(dir.Path), f => f.StartsWith(evidenceKey + ".", StringComparison.Ordinal));
        var (vc, vo, ve) = await cli.RunAsync("evidence", "verify", "--public-key", oldPub);
        Assert.True(vc == 0, vo + ve);
        Assert.Contains("hand-over record(s) " + handoverSeq, vo, StringComparison.Ordinal);
        Assert.Equal("incidents/" + id + ".forensics", Step(report, "forensics")["data"]!["object"]!.GetValue<string>());

        // The forensic backup is pinned: prune with keep_last 1 keeps it beside the newest.
        await BackupAsync(cli);
        var (pc, po, pe) = await cli.RunAsync("prune");
        Assert.True(pc == 0, po + pe);
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Contains(forensic, snaps, StringComparison.Ordinal);

        // The forensics are in the repository, sealed: their plaintext is not on disk.
        var stored = Directory.GetFiles(Path.Combine(dir.File("repo"), "incidents"), id + ".forensics").Single();
        Assert.DoesNotContain(role, System.Text.Encoding.UTF8.GetString(await File.ReadAllBytesAsync(stored)), StringComparison.Ordinal);
        using var repo = await Cairn.Repository.Repository.OpenAsync(new Cairn.Repository.Storage.FileSystemStorage(dir.File("repo")), "a new passphrase after the breach", TimeProvider.System, default);
        var snapshot = JsonNode.Parse(await repo.GetIncidentObjectAsync(id + ".forensics", default))!;
        var roleRow = snapshot["pg_roles"]!.AsArray().Single(r => r!["rolname"]!.GetValue<string>() == role)!;
        Assert.True(roleRow.AsObject().ContainsKey("rolvaliduntil"));
        Assert.NotEmpty(snapshot["pg_hba_file_rules"]!.AsArray());
    }

    [Fact]
    public async Task A_failing_hook_stops_the_run_and_resume_continues_at_that_step_without_repeating_the_steps_done()
    {
        var (setup, _) = await SetUpAsync(_ => """
                incident:
                  hooks:
                    - { name: page-the-dba, after: preserve, run: "echo paging failed >&2; exit 3" }

            """);
        using var cleanup = setup;
        var (cli, dir, _) = setup;
        await BackupAsync(cli);
        Assert.Equal(0, (await cli.RunAsync("drill", "app")).Item1);

        var (code, output, err) = await cli.RunAsync("incident", "corruption", "app", "--execute", "--yes");

        Assert.True(code == 14, output + err);
        var id = IdOf(output);
        var report = await ReportAsync(cli, id);
        Assert.Equal("failed", Step(report, "page-the-dba")["status"]!.GetValue<string>());
        Assert.Contains("paging failed", Step(report, "page-the-dba")["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("pending", Step(report, "recover")["status"]!.GetValue<string>());

        var config = await File.ReadAllTextAsync(dir.File("cairn.yaml"));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), config.Replace("echo paging failed >&2; exit 3", "echo paged", StringComparison.Ordinal));
        var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes");

        Assert.True(rc == 0, ro + re);
        report = await ReportAsync(cli, id);
        Assert.Equal(1, Step(report, "preserve")["attempts"]!.GetValue<int>());
        Assert.Equal(1, Step(report, "assess")["attempts"]!.GetValue<int>());
        Assert.Equal(2, Step(report, "page-the-dba")["attempts"]!.GetValue<int>());
        Assert.Equal("done", Step(report, "page-the-dba")["status"]!.GetValue<string>());
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Single(JsonNode.Parse(snaps)!.AsArray(), s => s!["meta"]?["tags"]?.GetValue<string>() == "incident-" + id);
    }

    [Fact]
    public async Task A_preserve_step_run_again_after_a_crash_finds_its_backup_by_the_tag_and_takes_no_second_one()
    {
        var (setup, _) = await SetUpAsync(_ => """
                incident:
                  hooks:
                    - { name: stop-here, after: preserve, run: "exit 1" }

            """);
        using var cleanup = setup;
        var (cli, dir, _) = setup;
        var (code, output, err) = await cli.RunAsync("incident", "corruption", "app", "--execute", "--yes");
        Assert.True(code == 14, output + err);
        var id = IdOf(output);
        // What a crash after the backup and before the step's end leaves: the step stored as running.
        using (var repo = await Cairn.Repository.Repository.OpenAsync(new Cairn.Repository.Storage.FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            var state = await IncidentStore.LoadAsync(repo, id, default);
            var preserve = state.Steps.Single(s => s.Name == "preserve");
            await IncidentStore.SaveAsync(repo, state.WithStep(preserve with { Status = StepStatus.Running, EndSeq = null, Outcome = null }), default);
        }

        var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes");

        Assert.True(rc == 14, ro + re); // the hook still fails: the run stops there again
        var step = Step(await ReportAsync(cli, id), "preserve");
        Assert.Equal(2, step["attempts"]!.GetValue<int>());
        Assert.Contains("found by its tag", step["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Single(JsonNode.Parse(snaps)!.AsArray(), s => s!["meta"]?["tags"]?.GetValue<string>() == "incident-" + id);
    }

    [Fact]
    public async Task A_process_killed_in_the_middle_resumes_at_the_step_it_was_running_and_the_forensic_backup_is_found_not_taken_again()
    {
        var marker = Path.Combine(Path.GetTempPath(), $"cairn-incident-crash-{Guid.NewGuid():N}");
        // The hook kills the cairn process that runs it (its shell's parent) the first time only.
        var (setup, _) = await SetUpAsync(_ => $$"""
                incident:
                  hooks:
                    - { name: crash-once, after: preserve, run: "[ -e {{marker}} ] || { touch {{marker}}; kill -9 $PPID; }" }

            """);
        using var cleanup = setup;
        var (cli, _, _) = setup;
        try
        {
            await BackupAsync(cli);
            Assert.Equal(0, (await cli.RunAsync("drill", "app")).Item1);

            var (code, output, err) = await CairnProcess.RunAsync(["incident", "corruption", "app", "--execute", "--yes"], cli.Env);

            Assert.True(code == 137 || code < 0 || code > 128, $"exit {code}: {output}{err}");
            var id = IdOf(output);
            var report = await ReportAsync(cli, id);
            Assert.Equal("running", Step(report, "crash-once")["status"]!.GetValue<string>());
            Assert.Equal("done", Step(report, "preserve")["status"]!.GetValue<string>());

            var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes");

            Assert.True(rc == 0, ro + re);
            Assert.Contains("resuming incident " + id + " at crash-once", ro, StringComparison.Ordinal);
            report = await ReportAsync(cli, id);
            Assert.Equal(1, Step(report, "preserve")["attempts"]!.GetValue<int>());
            Assert.Equal(2, Step(report, "crash-once")["attempts"]!.GetValue<int>());
            Assert.Equal("closed", report["status"]!.GetValue<string>());
        }
        finally
        {
            File.Delete(marker);
        }
    }

    [Fact]
    public async Task Without_a_terminal_and_without_yes_a_destructive_step_stops_the_run_before_it_changes_anything()
    {
        var (setup, role) = await SetUpAsync(_ => "");
        using var cleanup = setup;
        var (cli, _, db) = setup;

        var (code, output, err) = await cli.RunAsync("incident", "catastrophic", "app", "--execute");

        Assert.True(code == 13, output + err);
        var id = IdOf(output);
        Assert.Contains($"needs confirmation: rerun `cairn incident resume {id} --yes`", output, StringComparison.Ordinal);
        Assert.Null(await ConnectAsAppAsync(db, role));
        Assert.Equal("pending", Step(await ReportAsync(cli, id), "isolate")["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_dry_run_prints_the_plan_and_changes_no_database_repository_or_evidence()
    {
        var (setup, role) = await SetUpAsync(_ => "");
        using var cleanup = setup;
        var (cli, dir, db) = setup;
        await BackupAsync(cli);
        var evidence = dir.File("repo-evidence");
        var before = Fingerprint(evidence) + Fingerprint(dir.File("repo"));

        var (code, output, err) = await cli.RunAsync("incident", "breach", "app");

        Assert.True(code == 0, err);
        Assert.Contains("incident plan: data_breach on app (dry run)", output, StringComparison.Ordinal);
        Assert.Contains("harden       [confirm]", output, StringComparison.Ordinal);
        Assert.Contains("notify       [human]", output, StringComparison.Ordinal);
        Assert.Equal(before, Fingerprint(evidence) + Fingerprint(dir.File("repo")));
        Assert.False(Directory.Exists(Path.Combine(dir.File("repo"), "incidents")));
        Assert.Null(await ConnectAsAppAsync(db, role));
        Assert.Equal(-1, await pg.Server.ScalarAsync<int>($"SELECT datconnlimit FROM pg_database WHERE datname = '{db}'"));
    }

    [Fact]
    public async Task Corruption_with_execute_swap_puts_the_restored_copy_under_production_s_name_and_keeps_the_old_one()
    {
        var (setup, _) = await SetUpAsync(_ => "");
        using var cleanup = setup;
        var (cli, _, db) = setup;
        await BackupAsync(cli);
        Assert.Equal(0, (await cli.RunAsync("drill", "app")).Item1);
        await pg.Server.ExecuteAsync("DELETE FROM items WHERE id = 2", db);

        var (code, output, err) = await cli.RunAsync("incident", "corruption", "app", "--execute", "--yes", "--execute-swap");

        Assert.True(code == 0, output + err);
        var id = IdOf(output);
        Assert.Equal(3L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM items", db));
        var retired = $"{db}_before_{id["inc-".Length..].Replace('-', '_')}";
        Assert.Equal(2L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM items", retired));
        Assert.Equal(0L, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM pg_database WHERE datname = '{db}_incident_{id["inc-".Length..].Replace('-', '_')}'"));
        await pg.Server.ExecuteAsync($"DROP DATABASE \"{retired}\"");
    }

    [Fact]
    public async Task Maintenance_by_hook_runs_the_hook_with_the_incident_s_facts_and_resume_runs_the_lift_hook_once()
    {
        var log = Path.Combine(Path.GetTempPath(), $"cairn-incident-hooks-{Guid.NewGuid():N}.log");
        var psql = $"/usr/lib/postgresql/15/bin/psql -X -q -h {pg.Server.SocketDirectory} -p {pg.Server.Port} -U postgres -d postgres -c";
        // The hooks isolate for real (the connection limit set by SQL, not by Cairn) and write what Cairn told them.
        var (setup, role) = await SetUpAsync(_ => $$"""
                incident:
                  maintenance: hook
                  hook: "echo isolate $CAIRN_INCIDENT_ID $CAIRN_INCIDENT_STEP $CAIRN_INCIDENT_TYPE >> {{log}}; {{psql}} 'ALTER DATABASE \"DBNAME\" CONNECTION LIMIT 0'"
                  lift_hook: "echo lift $CAIRN_INCIDENT_ID $CAIRN_INCIDENT_STEP >> {{log}}; {{psql}} 'ALTER DATABASE \"DBNAME\" CONNECTION LIMIT -1'"
                  manual:
                    - { name: look, after: isolate, text: "the test connects as the application" }

            """);
        using var cleanup = setup;
        var (cli, dir, db) = setup;
        var config = dir.File("cairn.yaml");
        await File.WriteAllTextAsync(config, (await File.ReadAllTextAsync(config)).Replace("DBNAME", db, StringComparison.Ordinal));
        try
        {
            await BackupAsync(cli);
            Assert.Equal(0, (await cli.RunAsync("drill", "app")).Item1);

            var (code, output, err) = await cli.RunAsync("incident", "catastrophic", "app", "--execute", "--yes");

            Assert.True(code == 13, output + err); // paused at the human's step, with maintenance on
            var id = IdOf(output);
            Assert.Equal("53300", await ConnectAsAppAsync(db, role));
            Assert.Equal([$"isolate {id} isolate catastrophic_failure"], await File.ReadAllLinesAsync(log));

            var (rc, ro, re) = await cli.RunAsync("incident", "resume", id, "--yes");

            Assert.True(rc == 0, ro + re);
            Assert.Null(await ConnectAsAppAsync(db, role));
            Assert.Equal([$"isolate {id} isolate catastrophic_failure", $"lift {id} resume"], await File.ReadAllLinesAsync(log));
            var report = await ReportAsync(cli, id);
            Assert.Contains("maintenance lifted by the lift hook", Step(report, "resume")["outcome"]!.GetValue<string>(), StringComparison.Ordinal);
            Assert.Equal("closed", report["status"]!.GetValue<string>());
        }
        finally
        {
            File.Delete(log);
            await pg.Server.ExecuteAsync($"ALTER DATABASE \"{db}\" CONNECTION LIMIT -1");
        }
    }

    private static string Fingerprint(string folder) => !Directory.Exists(folder) ? "none" : string.Join("\n", Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
        .Select(f => f + ":" + Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f)))));

    [GeneratedRegex("inc-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")]
    private static partial Regex IncidentId();
}
