using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations;
using Cairn.Operations.Configuration;
using Cairn.Operations.Demo;
using Cairn.Operations.Lifecycle.Cleanup;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

public class CleanupTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private const string RunbookRules = """
            cleanup:
              - { table: public.audit_log, time_column: created_at, older_than: 20m }
              - { table: public.wa_media_signatures, time_column: expires_at, older_than: 1d }
              - { table: public.wa_automation_flows, time_column: updated_at, older_than: 30d, where: "status = 'completed'" }
              - { table: public.siren_events, time_column: created_at, older_than: 90d, where: "status IN ('sent','failed','cancelled')" }
        """;

    private async Task<(CliRunner Cli, TempDir Dir)> CliAsync(string db, string rules)
    {
        var setup = await AppSetup.ForDatabaseAsync(pg, db, rules, withRepository: false);
        return (setup.Cli, setup.Dir);
    }

    private static JsonObject Rule(JsonNode output, int n) => output["rules"]!.AsArray().Single(r => r!["rule"]!.GetValue<int>() == n)!.AsObject();

    [Fact]
    public async Task Dry_run_counts_equal_what_the_run_deletes_and_the_run_is_one_evidence_record()
    {
        var db = await pg.CreateDatabaseAsync("cleanup", DemoSchema.Sql(300));
        var (cli, dir) = await CliAsync(db, RunbookRules);
        using var _d = dir;
        var (code, plan, err) = await cli.RunAsync("cleanup", "app", "--dry-run", "--json");
        Assert.True(code == 0, plan + err);
        var dry = JsonNode.Parse(plan)!;
        var expected = Enumerable.Range(1, 4).Select(n => Rule(dry, n)["rows_matching"]!.GetValue<long>()).ToArray();
        Assert.All(expected, e => Assert.True(e > 0, "every runbook rule has rows to delete in the demo data"));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit_log WHERE false", db));
        (code, var run, err) = await cli.RunAsync("cleanup", "app", "--json");
        Assert.True(code == 0, run + err);
        var done = JsonNode.Parse(run)!;
        for (var n = 1; n <= 4; n++)
        {
            Assert.Equal(expected[n - 1], Rule(done, n)["rows_deleted"]!.GetValue<long>());
        }
        var cutoff = Rule(done, 1)["cutoff"]!.GetValue<DateTimeOffset>();
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM audit_log WHERE created_at < '{cutoff:O}'", db));
        Assert.True(await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit_log", db) > 0, "rows newer than the cutoff stay");
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM siren_events WHERE created_at < now() - interval '90 days' AND status IN ('sent','failed','cancelled')", db));
        Assert.True(await pg.Server.ScalarAsync<long>("SELECT count(*) FROM siren_events WHERE created_at < now() - interval '91 days' AND status = 'open'", db) > 0, "rows the where clause excludes stay");
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "cleanup", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Single()!;
        Assert.Equal("pass", record["result"]!.GetValue<string>());
        Assert.Equal(expected.Sum(), record["details"]!["rows_deleted"]!.GetValue<long>());
        Assert.Equal(4, record["details"]!["rules"]!.AsArray().Count);
    }

    [Fact]
    public async Task Nothing_newer_than_the_cutoff_is_deleted_while_inserts_continue_during_the_run()
    {
        var db = await pg.CreateDatabaseAsync("cleanup_race", """
            CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL, tag text NOT NULL);
            INSERT INTO events (created_at, tag) SELECT now() - g * interval '1 second', 'seed' FROM generate_series(1, 40000) g;
            CREATE TABLE seed_copy AS SELECT id, created_at FROM events;
            """);
        var (cli, dir) = await CliAsync(db, "    cleanup:\n      - { table: public.events, time_column: created_at, older_than: 5h, batch_size: 500 }");
        using var _d = dir;
        using var stop = new CancellationTokenSource();
        // Rows straddling the cutoff while the run goes on: one second newer than it (kept), and one hour older (may go).
        // Each 'new' row's id and time are kept: a row inserted before the CLI computed its cutoff may be more than a
        // second older than the cutoff (a slow start on a busy machine) and then rightly goes; every later one must stay.
        var inserter = Task.Run(async () =>
        {
            var inserted = new List<(long Id, DateTimeOffset CreatedAt)>();
            await using var c = await pg.Server.OpenAsync(db);
            while (!stop.IsCancellationRequested)
            {
                await using var cmd = new Npgsql.NpgsqlCommand("INSERT INTO events (created_at, tag) VALUES (clock_timestamp() - interval '5 hours' + interval '1 second', 'new'), (clock_timestamp() - interval '6 hours', 'old') RETURNING id, created_at, tag", c);
                await using var r = await cmd.ExecuteReaderAsync();
                while (await r.ReadAsync())
                {
                    if (r.GetString(2) == "new")
                    {
                        inserted.Add((r.GetInt64(0), r.GetFieldValue<DateTimeOffset>(1)));
                    }
                }
                await Task.Delay(5);
            }
            return inserted;
        });
        await Task.Delay(300);
        var (code, run, err) = await cli.RunAsync("cleanup", "app", "--json", "--pause", "5ms");
        await stop.CancelAsync();
        var inserted = await inserter;
        Assert.True(code == 0, run + err);
        var cutoff = Rule(JsonNode.Parse(run)!, 1)["cutoff"]!.GetValue<DateTimeOffset>();
        var mustStay = inserted.Where(i => i.CreatedAt >= cutoff).Select(i => i.Id).ToList();
        Assert.True(mustStay.Count > 10, $"the inserter ran during the cleanup ({mustStay.Count} rows newer than the cutoff of {inserted.Count})");
        Assert.Equal(mustStay.Count, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM events WHERE tag = 'new' AND id IN ({string.Join(',', mustStay)})", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM seed_copy s WHERE s.created_at >= '{cutoff:O}' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.id = s.id)", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM events WHERE created_at < '{cutoff:O}' AND tag = 'seed'", db));
        Assert.InRange(await pg.Server.ScalarAsync<long>("SELECT count(*) FROM events WHERE tag = 'seed'", db), 17000, 18000);
    }

    [Fact]
    public async Task A_partitioned_audit_log_drops_whole_partitions_and_deletes_rows_only_in_the_boundary_partition()
    {
        var db = await pg.CreateDatabaseAsync("cleanup_parts", """
            CREATE TABLE audit (id bigserial, created_at timestamptz NOT NULL, what text, PRIMARY KEY (id, created_at)) PARTITION BY RANGE (created_at);
            CREATE TABLE audit_2000s PARTITION OF audit FOR VALUES FROM (MINVALUE) TO ('2010-01-01');
            CREATE TABLE audit_2010s PARTITION OF audit FOR VALUES FROM ('2010-01-01') TO ('2020-01-01');
            CREATE TABLE audit_now PARTITION OF audit FOR VALUES FROM ('2020-01-01') TO (MAXVALUE);
            INSERT INTO audit (created_at, what) SELECT '2005-01-01'::timestamptz + g * interval '1 day', 'a' FROM generate_series(1, 300) g;
            INSERT INTO audit (created_at, what) SELECT '2015-01-01'::timestamptz + g * interval '1 day', 'b' FROM generate_series(1, 400) g;
            INSERT INTO audit (created_at, what) SELECT '2021-01-01'::timestamptz + g * interval '1 day', 'c' FROM generate_series(1, 100) g;
            INSERT INTO audit (created_at, what) SELECT now() - g * interval '1 hour', 'd' FROM generate_series(1, 50) g;
            """);
        var (cli, dir) = await CliAsync(db, "    cleanup:\n      - { table: public.audit, time_column: created_at, older_than: 1y }");
        using var _d = dir;
        var (code, plan, err) = await cli.RunAsync("cleanup", "app", "--dry-run");
        Assert.True(code == 0, plan + err);
        Assert.Contains("partition public.audit_2000s (300 rows) lies wholly before the cutoff: would be detached and dropped", plan, StringComparison.Ordinal);
        Assert.Contains("partition public.audit_2010s (400 rows)", plan, StringComparison.Ordinal);
        Assert.DoesNotContain("partition public.audit_now", plan, StringComparison.Ordinal);
        Assert.Contains("800 rows would go", plan, StringComparison.Ordinal);
        (code, var run, err) = await cli.RunAsync("cleanup", "app", "--json");
        Assert.True(code == 0, run + err);
        var rule = Rule(JsonNode.Parse(run)!, 1);
        Assert.Equal(2, rule["partitions_dropped"]!.GetValue<int>());
        Assert.Equal(800, rule["rows_deleted"]!.GetValue<long>());
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM pg_class WHERE relname IN ('audit_2000s', 'audit_2010s')", db));
        Assert.Equal(50, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit", db));
        Assert.Equal(1, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit'::regclass", db));
    }

    [Fact]
    public async Task A_rule_that_would_cascade_into_a_table_it_does_not_name_is_refused_unless_it_says_cascade_true()
    {
        var db = await pg.CreateDatabaseAsync("cleanup_cascade", DemoSchema.Sql(200));
        var before = await pg.Server.ScalarAsync<long>("SELECT count(*) FROM wa_messages", db);
        var (cli, dir) = await CliAsync(db, "    cleanup:\n      - { table: public.wa_messages, time_column: created_at, older_than: 20d }");
        using var _d = dir;
        var (code, plan, err) = await cli.RunAsync("cleanup", "app", "--dry-run");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("foreign key public.wa_messages → public.wa_media_signatures: cascade", plan, StringComparison.Ordinal);
        Assert.Contains("REFUSED: cleanup rule 1 (public.wa_messages) would cascade into public.wa_media_signatures", plan, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("cleanup", "app");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("cascade: true", err, StringComparison.Ordinal);
        Assert.Equal(before, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM wa_messages", db));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), (await File.ReadAllTextAsync(dir.File("cairn.yaml"))).Replace("older_than: 20d }", "older_than: 20d, cascade: true }", StringComparison.Ordinal));
        (code, _, err) = await cli.RunAsync("cleanup", "app");
        Assert.True(code == 0, err);
        Assert.True(await pg.Server.ScalarAsync<long>("SELECT count(*) FROM wa_messages", db) < before);
    }

    [Fact]
    public async Task Ctrl_C_between_batches_stops_the_run_and_the_evidence_record_says_partial_with_what_was_done()
    {
        var db = await pg.CreateDatabaseAsync("cleanup_cancel", """
            CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL);
            INSERT INTO events (created_at) SELECT now() - interval '2 days' - g * interval '1 second' FROM generate_series(1, 10000) g;
            """);
        using var dir = new TempDir();
        var config = CairnConfig.Parse($"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                cleanup:
                  - {"{"} table: events, time_column: created_at, older_than: 1d, batch_size: 1000 {"}"}
            """, dir.File("cairn.yaml"));
        var context = new OperationContext(config, TimeProvider.System, new NoSecrets(), new NoStorage(), _ => null, dir.File("repo"), dir.File("evidence"));
        using var cts = new CancellationTokenSource();
        var progress = new CancelAfter(cts, 3);
        var result = await new CleanupOperation(context).RunAsync(new CleanupRequest(context.ResolveDatabase("app")), progress, cts.Token);
        Assert.True(result.Partial);
        Assert.Equal(3000, result.RowsDeleted);
        Assert.False(result.Rules[0].Done);
        Assert.Equal(7000, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM events", db));
        var record = context.Evidence.OpenExisting().ReadEntries(out _).Last().Record!;
        Assert.Equal("cleanup", record["kind"]!.GetValue<string>());
        Assert.Equal("yes", record["details"]!["partial"]!.GetValue<string>());
        Assert.Equal(3000, record["details"]!["rows_deleted"]!.GetValue<long>());
        Assert.Equal("error", record["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_batch_that_cannot_get_its_lock_stops_on_the_configured_lock_timeout_and_the_error_names_the_value_and_the_key_to_raise()
    {
        var db = await pg.CreateDatabaseAsync("cleanup_locked", """
            CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL);
            INSERT INTO events (created_at) SELECT now() - interval '3 days' - g * interval '1 second' FROM generate_series(1, 100) g;
            """);
        var (cli, dir) = await CliAsync(db, """
                cleanup_timeouts: { lock_timeout: 400ms, statement_timeout: 2m }
                cleanup:
                  - { table: events, time_column: created_at, older_than: 1d, lock_timeout: 300ms }
                  - { table: events, time_column: created_at, older_than: 2d }
            """);
        using var _d = dir;
        // Another session holds a lock that lets the plan read (ACCESS SHARE) but blocks every DELETE (ROW EXCLUSIVE).
        await using var holder = await pg.Server.OpenAsync(db);
        await using var tx = await holder.BeginTransactionAsync();
        await using (var lockCmd = new Npgsql.NpgsqlCommand("LOCK TABLE events IN SHARE MODE", holder, tx))
        {
            await lockCmd.ExecuteNonQueryAsync();
        }
        // Each run must stop on its own short timeout, before the 5 s default could have run out.
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var (code, json, err) = await cli.RunAsync("cleanup", "app", "--rule", "1", "--json");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4.8), $"rule 1 stopped on its 300ms lock_timeout, not the 5 s default ({sw.Elapsed})");
        Assert.True(code == ExitCodes.Database, json + err);
        var error = JsonNode.Parse(json)!["error"]!.GetValue<string>();
        Assert.Contains("lock_timeout 300ms", error, StringComparison.Ordinal);
        Assert.Contains("raise databases.app.cleanup[1].lock_timeout", error, StringComparison.Ordinal);
        // The rule without its own timeout takes the database's.
        sw.Restart();
        (code, json, err) = await cli.RunAsync("cleanup", "app", "--rule", "2", "--json");
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(4.8), $"rule 2 stopped on the database's 400ms lock_timeout, not the 5 s default ({sw.Elapsed})");
        Assert.True(code == ExitCodes.Database, json + err);
        error = JsonNode.Parse(json)!["error"]!.GetValue<string>();
        Assert.Contains("lock_timeout 400ms", error, StringComparison.Ordinal);
        Assert.Contains("raise databases.app.cleanup_timeouts.lock_timeout", error, StringComparison.Ordinal);
        await tx.RollbackAsync();
        Assert.Equal(100, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM events", db));

        // A timeout of zero would mean none at all: refused at load, naming the key.
        var bad = Assert.Throws<ConfigException>(() => CairnConfig.Parse($"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                cleanup:
                  - {"{"} table: events, time_column: created_at, older_than: 1d, statement_timeout: 0s {"}"}
            """, dir.File("bad.yaml")));
        Assert.Contains("databases.app.cleanup[1].statement_timeout must be a duration from 1ms to 1d", bad.Message, StringComparison.Ordinal);
    }

    private sealed class CancelAfter(CancellationTokenSource cts, int batches) : IProgress<CleanupProgress>
    {
        private int _seen;

        public void Report(CleanupProgress value)
        {
            if (++_seen == batches)
            {
                cts.Cancel();
            }
        }
    }

    private sealed class NoSecrets : ISecretSource
    {
        public string Passphrase(bool confirm = false) => throw new InvalidOperationException("cleanup needs no passphrase");

        public string NewPassphrase() => throw new InvalidOperationException();
    }

    private sealed class NoStorage : IStorageFactory
    {
        public IStorage Create(RepositoryLocation location) => throw new InvalidOperationException("cleanup needs no repository");
    }
}
