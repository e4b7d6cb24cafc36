using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Checks;
using Cairn.Operations.Demo;
using Cairn.Operations.Logical;
using Cairn.PostgreSql.Servers;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

public class DrillTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private const string RunbookChecks = """
              - tables_present: [public.profiles, public.orders, public.audit_log, public.wa_messages]
              - row_counts: { equal_to: fingerprint }
              - rls_enabled: { schema: public }
              - foreign_keys: {}
              - audit_continuity: { table: public.audit_log, time_column: created_at, max_gap: 6h }
              - sql: { name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" }
              - sql: { name: recent_activity, query: "SELECT count(*) FROM audit_log WHERE created_at > :backup_time - interval '24 hours'", expect: "> 0" }
              - sql: { name: profile_rows, query: "SELECT count(*) FROM profiles", expect: "= fingerprint" }
        """;

    private async Task<(CliRunner Cli, TempDir Dir, string Db)> SetUpAsync(string checks, string? sourceChanges = null)
    {
        var db = await pg.CreateDatabaseAsync("drill", DemoSchema.Sql(200));
        if (sourceChanges is not null)
        {
            await pg.Server.ExecuteAsync(sourceChanges, db);
        }
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                checks:
            {checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        return (cli, dir, db);
    }

    private static JsonObject ParseDrill(string json) => JsonNode.Parse(json)!.AsObject();

    private static JsonObject CheckOf(JsonObject drill, string name) => drill["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    /// <summary>
    /// Runs the drill as a child process whose TMPDIR is this test's own folder, so the scratch servers it starts are
    /// there and nowhere else: "it left nothing" is a look at one folder, whatever other tests run meanwhile.
    /// </summary>
    private static Task<(int Code, string Out, string Err)> DrillProcessAsync(CliRunner cli, TempDir dir, params string[] args)
        => CairnProcess.RunAsync(args, new Dictionary<string, string>(cli.Env) { ["TMPDIR"] = dir.Tmp });

    private static string[] Leftovers(TempDir dir) => [.. Directory.EnumerateFileSystemEntries(dir.Tmp).Select(Path.GetFileName)!];

    [Fact]
    public async Task Drill_of_a_good_backup_passes_every_check_records_evidence_and_leaves_nothing()
    {
        var (cli, dir, _) = await SetUpAsync(RunbookChecks);
        using var _d = dir;
        DateTimeOffset backupTime;
        using (var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            backupTime = (await LogicalSnapshots.ReadFingerprintAsync(repo, (await repo.ListSnapshotsAsync(default)).Single(), default)).BackupTime;
        }
        var started = TimeProvider.System.GetUtcNow();
        var wall = Stopwatch.StartNew();
        var (code, json, err) = await DrillProcessAsync(cli, dir, "drill", "app", "--json");
        wall.Stop();
        var ended = TimeProvider.System.GetUtcNow();
        Assert.True(code == 0, json + err);
        var drill = ParseDrill(json);
        Assert.True(drill["ok"]!.GetValue<bool>());
        // Every configured check ran and passed: a skipped one is not a pass.
        string[] expected = ["restore", "tables_present", "row_counts", "rls_enabled", "foreign_keys", "audit_continuity public.audit_log", "verified_emails", "recent_activity", "profile_rows"];
        var checks = drill["checks"]!.AsArray().Select(c => c!.AsObject()).ToList();
        Assert.Equal(expected.Order(StringComparer.Ordinal), checks.Select(c => c["name"]!.GetValue<string>()).Order(StringComparer.Ordinal));
        Assert.All(checks, c => Assert.True(c["result"]!.GetValue<string>() == "pass", c.ToJsonString()));

        // Data age is the drill's "now" minus the backup's time (whole seconds); RTO is the time to a restored server
        // answering queries: more than the restore alone (it includes starting the server), at most the whole drill.
        var dataAge = drill["data_age_seconds"]!.GetValue<double>();
        Assert.InRange(dataAge, (started - backupTime).TotalSeconds - 1, (ended - backupTime).TotalSeconds + 1);
        var rto = drill["rto_seconds"]!.GetValue<double>();
        var total = drill["total_seconds"]!.GetValue<double>();
        var restoreSeconds = CheckOf(drill, "restore")["duration_ms"]!.GetValue<long>() / 1000.0;
        Assert.True(rto > restoreSeconds, $"RTO {rto} s is not more than the restore's {restoreSeconds} s");
        Assert.True(rto <= total, $"RTO {rto} s is more than the drill's total {total} s");
        Assert.True(total <= wall.Elapsed.TotalSeconds, $"total {total} s is more than the {wall.Elapsed.TotalSeconds} s the process ran");

        Assert.Empty(Leftovers(dir));
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "drill", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Single()!;
        Assert.Equal("pass", record["result"]!.GetValue<string>());
        Assert.Equal(9, record["checks"]!.AsArray().Count);
    }

    [Fact]
    public async Task Missing_table_fails_the_drill_naming_it()
    {
        var (cli, dir, _) = await SetUpAsync("      - tables_present: [public.profiles, public.payments]");
        using var _d = dir;
        var (code, json, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        Assert.Contains("tables_present", err, StringComparison.Ordinal);
        Assert.Contains("public.payments", CheckOf(ParseDrill(json), "tables_present")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Row_counts_that_differ_from_the_fingerprint_fail_the_drill()
    {
        var (cli, dir, _) = await SetUpAsync("      - row_counts: { tables: [public.orders], equal_to: fingerprint }");
        using var _d = dir;
        // A backup whose data lost rows its fingerprint saw: same dump, fingerprint says 7 more orders.
        using (var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            var snap = (await repo.ListSnapshotsAsync(default)).Single();
            var fp = await LogicalSnapshots.ReadFingerprintAsync(repo, snap, default);
            var changed = fp with { Tables = [.. fp.Tables.Select(t => t.Name == "orders" ? t with { Rows = t.Rows + 7 } : t)] };
            await using var w = repo.BeginWrite();
            foreach (var item in snap.Manifest.Items.Where(i => i.Name != LogicalBackupOperation.FingerprintItem))
            {
                w.AddExistingItem(item);
            }
            var json = JsonSerializer.SerializeToUtf8Bytes(changed, FingerprintJson.Default.Fingerprint);
            await w.AddStreamAsync(LogicalBackupOperation.FingerprintItem, new MemoryStream(json), null, "file", null, default);
            await w.CommitAsync(snap.Manifest.Name, snap.Manifest.Kind, snap.Manifest.Meta, default);
        }
        var (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var drill = ParseDrill(output);
        Assert.Contains("public.orders", CheckOf(drill, "row_counts")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("fail", CheckOf(drill, "restore")["result"]!.GetValue<string>());
        _ = err;
    }

    [Fact]
    public async Task Rls_disabled_on_one_table_fails_the_drill()
    {
        var (cli, dir, _) = await SetUpAsync("      - rls_enabled: { schema: public }", "ALTER TABLE wa_media_signatures DISABLE ROW LEVEL SECURITY");
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        Assert.Contains("public.wa_media_signatures", CheckOf(ParseDrill(json), "rls_enabled")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Orphan_row_behind_a_not_valid_foreign_key_fails_the_drill()
    {
        var (cli, dir, _) = await SetUpAsync("      - foreign_keys: {}", """
            ALTER TABLE orders DROP CONSTRAINT orders_profile_id_fkey;
            INSERT INTO orders (profile_id, status, amount, created_at) VALUES (gen_random_uuid(), 'paid', 10, now());
            ALTER TABLE orders ADD CONSTRAINT orders_profile_id_fkey FOREIGN KEY (profile_id) REFERENCES profiles(id) NOT VALID;
            """);
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var detail = CheckOf(ParseDrill(json), "foreign_keys")["detail"]!.GetValue<string>();
        Assert.Contains("NOT VALID", detail, StringComparison.Ordinal);
        Assert.Contains("1 orphan row", detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Gap_in_the_audit_trail_fails_the_drill()
    {
        var (cli, dir, _) = await SetUpAsync("      - audit_continuity: { table: public.audit_log, time_column: created_at, max_gap: 6h }",
            "INSERT INTO audit_log (actor, event, entity, created_at) SELECT 'system', 'boot', 'host', min(created_at) - interval '10 hours' FROM audit_log");
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var c = CheckOf(ParseDrill(json), "audit_continuity public.audit_log");
        Assert.Equal("largest gap 10h", c["actual"]!.GetValue<string>());
    }

    [Fact]
    public async Task Smoke_command_that_fails_or_times_out_fails_the_drill_and_gets_the_restored_url()
    {
        var (cli, dir, _) = await SetUpAsync("""
                  - command: { name: url_given, run: "test -n \"$CAIRN_RESTORED_URL\" && psql \"$CAIRN_RESTORED_URL\" -Atc 'SELECT 1'" }
                  - command: { name: payments_smoke, run: "echo payment gateway down >&2; exit 3" }
                  - command: { name: slow_smoke, run: "sleep 20", timeout: 1s }
            """);
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var drill = ParseDrill(json);
        Assert.Equal("pass", CheckOf(drill, "url_given")["result"]!.GetValue<string>());
        Assert.Contains("payment gateway down", CheckOf(drill, "payments_smoke")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("timed out after 1s", CheckOf(drill, "slow_smoke")["actual"]!.GetValue<string>());
        // The 20 s command was stopped at its 1 s timeout: the check's own time shows it, whatever the machine's load
        // does to the whole drill's wall time.
        var slow = CheckOf(drill, "slow_smoke")["duration_ms"]!.GetValue<long>();
        Assert.True(slow < 15_000, $"the timed-out check took {slow} ms");
    }

    [Fact]
    public async Task Bad_sql_in_a_check_fails_it_with_the_reason()
    {
        var (cli, dir, _) = await SetUpAsync("""
                  - sql: { name: typo, query: "SELEC count(*) FROM profiles", expect: ">= 1" }
                  - sql: { name: wrong_table, query: "SELECT count(*) FROM no_such_table", expect: ">= 1" }
                  - sql: { name: cannot_write, query: "INSERT INTO siren_events (incident_type, severity, status, created_at) VALUES ('x', 1, 'x', now()) RETURNING 1", expect: "= 1" }
            """);
        using var _d = dir;
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var drill = ParseDrill(json);
        Assert.Equal("error", CheckOf(drill, "typo")["result"]!.GetValue<string>());
        Assert.Contains("no_such_table", CheckOf(drill, "wrong_table")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("read-only", CheckOf(drill, "cannot_write")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_backup_whose_restore_fails_midway_fails_the_drill_and_cleans_up()
    {
        var (cli, dir, _) = await SetUpAsync("      - tables_present: [public.profiles]");
        using var _d = dir;
        var pack = Directory.EnumerateFiles(Path.Combine(dir.File("repo"), "data"), "*", SearchOption.AllDirectories).OrderByDescending(f => new FileInfo(f).Length).First();
        var bytes = await File.ReadAllBytesAsync(pack);
        bytes[bytes.Length / 3] ^= 0xFF;
        await File.WriteAllBytesAsync(pack, bytes);
        var (code, json, _) = await DrillProcessAsync(cli, dir, "drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var restore = CheckOf(ParseDrill(json), "restore");
        Assert.Equal("fail", restore["result"]!.GetValue<string>());
        Assert.Contains("authentication", restore["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Empty(Leftovers(dir));
    }

    [Fact]
    public async Task Drill_interrupted_with_ctrl_c_exits_130_and_leaves_no_server_process_or_folder()
    {
        // A smoke command that writes its PID and then sleeps holds the drill provably mid-way (restored, checks
        // running) for 60 s: the interrupt lands there, not at a guessed moment.
        var (cli, dir, _) = await SetUpAsync("      - tables_present: [public.profiles]");
        using var _d = dir;
        var started = dir.File("smoke.pid");
        // It writes its PID and PGHOST (the restored server's socket folder, inside the scratch server's folder).
        await File.AppendAllTextAsync(dir.File("cairn.yaml"), $"\n      - command: {{ name: hold, run: \"echo $$ $PGHOST > {started}; exec sleep 60\", timeout: 5m }}\n");
        var env = new Dictionary<string, string>(cli.Env) { ["TMPDIR"] = dir.Tmp };
        using var p = Process.Start(CairnProcess.StartInfo(["drill", "app"], env))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await Eventually.UntilAsync(() => p.HasExited || (File.Exists(started) && File.ReadAllText(started).EndsWith('\n')), TimeSpan.FromMinutes(3), "the drill's smoke command starting");
        if (p.HasExited)
        {
            Assert.Fail($"the drill ended before it was interrupted: {await stdout}{await stderr}"); // (awaiting the output first would wait for the drill's end)
        }
        var said = File.ReadAllText(started).Trim().Split(' ');
        var smokePid = int.Parse(said[0], System.Globalization.CultureInfo.InvariantCulture);
        var scratch = Path.GetDirectoryName(said[1].TrimEnd('/'))!;
        Assert.True(Path.GetDirectoryName(scratch) == dir.Tmp, $"the scratch server is in {scratch}, not in the drill's TMPDIR {dir.Tmp} ({string.Join(", ", Leftovers(dir))})");
        var postmasterPid = int.Parse(File.ReadLines(Path.Combine(scratch, "data", "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(Eventually.IsRunning(postmasterPid), "the scratch server should be running while the drill runs its checks");

        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            await kill!.WaitForExitAsync();
        }
        using (var limit = new CancellationTokenSource(TimeSpan.FromSeconds(45)))
        {
            await p.WaitForExitAsync(limit.Token); // well before the 60 s smoke command would have let it finish
        }
        Assert.True(p.ExitCode == ExitCodes.Interrupted, $"exit {p.ExitCode}: {await stdout}{await stderr}");
        Assert.Empty(Leftovers(dir));
        await Eventually.UntilAsync(() => !Eventually.IsRunning(postmasterPid), TimeSpan.FromSeconds(10), $"the scratch server (pid {postmasterPid}) stopping");
        await Eventually.UntilAsync(() => !Eventually.IsRunning(smokePid), TimeSpan.FromSeconds(10), $"the smoke command (pid {smokePid}) stopping");
    }

    [Fact]
    public async Task Amcheck_finds_a_corrupted_index()
    {
        await using var server = await ScratchServer.StartAsync();
        await server.ExecuteAsync("CREATE DATABASE corrupt");
        await server.ExecuteAsync("CREATE EXTENSION amcheck; CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g; CHECKPOINT;", "corrupt");
        var file = Path.Combine(server.DataDirectory, await server.ScalarAsync<string>("SELECT pg_relation_filepath('t_pkey')", "corrupt"));
        await server.StopAsync();
        await using (var fs = new FileStream(file, FileMode.Open, FileAccess.Write))
        {
            fs.Seek(8192 + 100, SeekOrigin.Begin);
            fs.Write(Encoding.ASCII.GetBytes(new string('Z', 4000)));
        }
        await server.RestartAsync();
        using var dir = new TempDir();
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              corrupt:
                connection: "{server.Url("corrupt")}"
                checks:
                  - amcheck: {"{"} heapallindexed: true {"}"}
            """);
        var cli = await CliRunner.WithRepositoryAsync(dir);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, json, err) = await cli.RunAsync("verify", "corrupt", "--live", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var c = CheckOf(ParseDrill(json), "amcheck");
        Assert.True(c["result"]!.GetValue<string>() == "fail", c.ToJsonString());
        Assert.Contains("t_pkey", c["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        _ = err;
    }

    [Fact]
    public async Task Live_verification_mirrors_results_into_backup_verification_log()
    {
        var db = await pg.CreateDatabaseAsync("mirror", DemoSchema.Sql(100));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            evidence: {"{"} mirror_table: true {"}"}
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                checks:
                  - tables_present: [public.profiles]
                  - sql: {"{"} name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" {"}"}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("verify", "app", "--live");
        Assert.True(code == 0, err);
        Assert.Equal(2L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM cairn.backup_verification_log WHERE backup_status = 'pass' AND verified_at > now() - interval '1 hour' AND evidence_seq IS NOT NULL", db));
    }
}

public class CheckParsingTests
{
    [Theory]
    [InlineData("= 5", 5, true)]
    [InlineData(">= 1", 1, true)]
    [InlineData("> 0", 0, false)]
    [InlineData("< 10", 3, true)]
    [InlineData("<= 2", 3, false)]
    [InlineData("between 1 and 5", 5, true)]
    [InlineData("between 1 and 5", 6, false)]
    public void Expectations_hold_as_written(string expect, decimal actual, bool holds)
    {
        Assert.Equal(holds, Expectation.Parse(expect).Holds(actual));
    }

    [Fact]
    public void Fingerprint_expectation_compares_with_the_fingerprint_value()
    {
        var e = Expectation.Parse("= fingerprint");
        Assert.True(e.Fingerprint);
        Assert.True(e.Holds(42, 42));
        Assert.False(e.Holds(41, 42));
    }

    [Fact]
    public void Unknown_expectation_and_check_kind_are_config_errors_with_line()
    {
        Assert.Throws<FormatException>(() => Expectation.Parse("about 5"));
        var e = Assert.Throws<Cairn.Operations.Configuration.ConfigException>(() => Cairn.Operations.Configuration.CairnConfig.Parse("databases:\n  app:\n    connection: x\n    checks:\n      - tables_presnt: [a]\n", "c.yaml"));
        Assert.Contains("c.yaml:5", e.Message, StringComparison.Ordinal);
        Assert.Contains("tables_presnt", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Backup_time_binds_without_touching_casts()
    {
        Assert.Equal("SELECT @backup_time::timestamptz - interval '1 day', x::text", CheckRunner.BindBackupTime("SELECT :backup_time - interval '1 day', x::text"));
    }
}
