using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.PostgreSql.Programs;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

public class LogicalBackupTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private async Task<string> PlainDumpAsync(string database)
    {
        var bin = pg.Server.Binaries;
        var r = await PgProcess.RunAsync(bin["pg_dump"], ["--format=plain", "--no-sync", "--dbname", database],
            new Dictionary<string, string> { ["PGHOST"] = pg.Server.SocketDirectory, ["PGPORT"] = pg.Server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), ["PGUSER"] = "postgres" }, default);
        Assert.True(r.ExitCode == 0, r.StandardError);
        // Large-object OIDs differ between servers' restores only in comments; drop comment lines.
        return string.Join('\n', r.StandardOutput.Split('\n').Where(l => !l.StartsWith("--", StringComparison.Ordinal) && !l.StartsWith("\\restrict", StringComparison.Ordinal) && !l.StartsWith("\\unrestrict", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Backup_then_restore_gives_the_same_schema_and_data_as_the_source_at_backup_time()
    {
        var db = await pg.CreateDatabaseAsync("app", DemoSchema.Sql(600));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var (code, json, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--json");
        Assert.True(code == 0, err);
        var summary = JsonNode.Parse(json)!;
        Assert.True(summary["rows"]!.GetValue<long>() > 10000);
        var expected = await PlainDumpAsync(db);

        // Change the source after the backup: the restore must show the data as it was.
        await pg.Server.ExecuteAsync("DELETE FROM wa_media_signatures; UPDATE profiles SET full_name = 'changed'", db);

        var target = pg.NewName("restored");
        (code, var output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", target);
        Assert.True(code == 0, output + err);
        Assert.Contains("every row count equals the fingerprint", output, StringComparison.Ordinal);
        Assert.Equal(expected, await PlainDumpAsync(target));

        // A second restore into the same (now non-empty) database is refused without --clean.
        (code, _, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", target);
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("--clean", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", target, "--clean", "--jobs", "2");
        Assert.True(code == 0, err);
    }

    [Fact]
    public async Task Unchanged_tables_deduplicate_on_the_second_backup()
    {
        var db = await pg.CreateDatabaseAsync("dedup", DemoSchema.Sql(2000));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var (code, first, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--json");
        Assert.True(code == 0, err);
        await pg.Server.ExecuteAsync("INSERT INTO siren_events (incident_type, severity, status, created_at) VALUES ('latency', 2, 'open', now())", db);
        (code, var second, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--json");
        Assert.True(code == 0, err);
        var a = JsonNode.Parse(first)!["added_bytes"]!.GetValue<long>();
        var b = JsonNode.Parse(second)!["added_bytes"]!.GetValue<long>();
        Assert.True(b < a / 5, $"second backup added {b} bytes, the first {a}");
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal(2, JsonNode.Parse(snaps)!.AsArray().Count);
    }

    [Fact]
    public async Task Content_fingerprint_catches_a_changed_row_with_the_same_count()
    {
        var db = await pg.CreateDatabaseAsync("content", DemoSchema.Sql(300));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var (code, _, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--fingerprint", "content");
        Assert.True(code == 0, err);
        using var repo = await Repo.OpenAsync(new Cairn.Repository.Storage.FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default);
        var snap = await Cairn.Operations.Logical.LogicalSnapshots.SelectAsync(repo, db, "latest", default);
        var fp = await Cairn.Operations.Logical.LogicalSnapshots.ReadFingerprintAsync(repo, snap, default);
        Assert.All(fp.Tables, t => Assert.NotNull(t.ContentHash));
        // Same row count, different content: the content hash differs.
        await pg.Server.ExecuteAsync("UPDATE siren_events SET status = 'open' WHERE id = 1", db);
        var conn = Cairn.PostgreSql.Connections.PgConnection.Parse(pg.Server.Url(db));
        var mismatches = await Cairn.PostgreSql.Logical.LogicalRestorer.CheckAsync(conn, fp, default);
        Assert.Contains(mismatches, m => m.Table == "public.siren_events" && m.What == "content hash");
    }

    [Fact]
    public async Task Table_restore_shows_the_difference_and_merge_brings_back_deleted_rows()
    {
        var db = await pg.CreateDatabaseAsync("tables", DemoSchema.Sql(500));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        var before = await pg.Server.ScalarAsync<long>("SELECT count(*) FROM orders", db);
        await pg.Server.ExecuteAsync("DELETE FROM orders WHERE id % 10 = 0; UPDATE orders SET amount = amount + 1 WHERE id % 10 = 1; INSERT INTO orders (profile_id, status, amount, created_at) SELECT id, 'paid', 1, now() FROM profiles LIMIT 3", db);
        var deleted = before + 3 - await pg.Server.ScalarAsync<long>("SELECT count(*) FROM orders", db);

        var (code, json, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--into-schema", "cairn_restore", "--json");
        Assert.True(code == 0, err);
        var d = JsonNode.Parse(json)!.AsArray().Single()!;
        Assert.Equal(before, d["rows_in_backup"]!.GetValue<long>());
        Assert.Equal(deleted, d["only_in_backup"]!.GetValue<long>());
        Assert.Equal(3, d["only_live"]!.GetValue<long>());
        Assert.True(d["differ"]!.GetValue<long>() > 0);
        Assert.Equal(before + 3 - deleted, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM orders", db));

        (code, json, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--table", "public.orders", "--table", "public.profiles", "--into-schema", "cairn_restore", "--merge", "missing", "--json");
        Assert.True(code == 0, err);
        var merged = JsonNode.Parse(json)!.AsArray().Single(x => x!["table"]!.GetValue<string>() == "public.orders")!;
        Assert.Equal(deleted, merged["merged"]!.GetValue<long>());
        Assert.Equal(before + 3, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM orders", db));
        Assert.Equal(0, merged["only_in_backup"]!.GetValue<long>());
    }

    [Fact]
    public async Task Unreachable_server_is_a_clear_error_and_records_a_failure()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var (code, _, err) = await cli.RunAsync("backup", "postgresql://nobody@127.0.0.1:1/app");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("cannot connect", err, StringComparison.Ordinal);
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--json");
        Assert.Contains(JsonNode.Parse(list)!.AsArray(), r => r!["kind"]!.GetValue<string>() == "backup" && r["result"]!.GetValue<string>() == "error");
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Empty(JsonNode.Parse(snaps)!.AsArray());
    }

    [Fact]
    public async Task Wrong_password_is_a_clear_error_and_the_password_is_never_printed()
    {
        await pg.Server.ExecuteAsync("DO $$ BEGIN CREATE ROLE pw_user LOGIN PASSWORD 'right-password'; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        var pwFile = dir.File("pw");
        await File.WriteAllTextAsync(pwFile, "WrongSecret123\n");
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "postgresql://pw_user@127.0.0.1:{pg.Server.Port}/postgres"
                password_file: {pwFile}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("wrong password", err, StringComparison.Ordinal);
        Assert.DoesNotContain("WrongSecret123", output + err, StringComparison.Ordinal);
        var log = string.Concat(Directory.EnumerateFiles(dir.File("repo-evidence"), "*.jsonl", SearchOption.AllDirectories).Select(File.ReadAllText));
        Assert.DoesNotContain("WrongSecret123", log, StringComparison.Ordinal);

        await File.WriteAllTextAsync(pwFile, "right-password\n");
        (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
    }

    [Fact]
    public async Task Dump_that_fails_midway_leaves_no_backup()
    {
        var db = await pg.CreateDatabaseAsync("midway", DemoSchema.Sql(300));
        // Large enough that the dump is still copying it when the killer looks, even on a loaded machine (300,000 rows
        // once finished before the killer saw its COPY: exit 0).
        await pg.Server.ExecuteAsync("CREATE TABLE big AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 1000000) g", db);
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        // Kill pg_dump's server connections while it copies data: the dump fails in the middle.
        using var cts = new CancellationTokenSource();
        var killer = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                await pg.Server.ExecuteAsync($"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE 'COPY%'");
                await Task.Delay(5);
            }
        });
        var (code, _, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--jobs", "1");
        await cts.CancelAsync();
        await killer;
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("pg_dump", err, StringComparison.Ordinal);
        var (_, snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Empty(JsonNode.Parse(snaps)!.AsArray());
        Assert.Equal(0, (await cli.RunAsync("verify", "--read-data")).Code);
    }

    [Fact]
    public async Task Missing_pg_dump_is_a_clear_error()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        Directory.CreateDirectory(dir.File("empty-bin"));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"postgres_bin: {dir.File("empty-bin")}\n");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("backup", pg.Server.Url());
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains($"no PostgreSQL programs (pg_dump) in the configured folder {dir.File("empty-bin")}", err, StringComparison.Ordinal);
    }
}

public class RetentionPruneTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task Prune_applies_keep_last_and_frees_the_data_of_forgotten_backups()
    {
        var db = await pg.CreateDatabaseAsync("ret", Cairn.Operations.Demo.DemoSchema.Sql(200));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{pg.Server.Url(db)}"
                retention: {"{"} keep_last: 2 {"}"}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        for (var i = 0; i < 4; i++)
        {
            await pg.Server.ExecuteAsync($"TRUNCATE siren_events; INSERT INTO siren_events (incident_type, severity, status, context, created_at) SELECT 'x', 1, 'open', jsonb_build_object('pad', repeat(md5(random()::text), 20)), now() FROM generate_series(1, 3000) g", db);
            Assert.Equal(0, (await cli.RunAsync("backup", "app")).Code);
        }
        var (code, dry, err) = await cli.RunAsync("prune", "--dry-run", "--json");
        Assert.True(code == 0, err);
        var plan = System.Text.Json.Nodes.JsonNode.Parse(dry)!["snapshots"]!.AsArray();
        Assert.Equal(2, plan.Count(s => s!["keep"]!.GetValue<bool>()));
        var (_, before, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal(4, System.Text.Json.Nodes.JsonNode.Parse(before)!.AsArray().Count);
        (code, var real, err) = await cli.RunAsync("prune", "--json");
        Assert.True(code == 0, err);
        Assert.True(System.Text.Json.Nodes.JsonNode.Parse(real)!["bytes_deleted"]!.GetValue<long>() > 0);
        var (_, after, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Equal(2, System.Text.Json.Nodes.JsonNode.Parse(after)!.AsArray().Count);
        Assert.Equal(0, (await cli.RunAsync("verify", "--read-data")).Code);
        var target = pg.NewName("ret_restored");
        Assert.Equal(0, (await cli.RunAsync("restore", "app", "--to-database", target)).Code);
    }
}
