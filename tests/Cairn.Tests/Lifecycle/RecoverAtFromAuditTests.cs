using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

/// <summary><c>recover --table T --at TIME</c> built from a logical backup and the audit trail's row images.</summary>
public class RecoverAtFromAuditTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private const string AuditYaml = """
            audit: { table: public.audit_log, time_column: created_at, entity_column: entity, id_column: entity_id, event_column: event, old_image: "meta->'old'", new_image: "meta->'new'" }

        """;

    // The audit trail as applications write it: every insert, update and delete with its images, stamped with now() (the
    // transaction's start, not its commit), and silent during an erasure (Cairn sets cairn.erasure).
    private const string AuditTrigger = """
        CREATE TABLE audit_log (id bigserial PRIMARY KEY, event text NOT NULL, entity text NOT NULL, entity_id text, meta jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now());
        CREATE FUNCTION audit_row() RETURNS trigger LANGUAGE plpgsql AS $a$
        BEGIN
          IF current_setting('cairn.erasure', true) = 'on' THEN RETURN NULL; END IF;
          INSERT INTO audit_log (event, entity, entity_id, meta)
          VALUES (TG_TABLE_NAME || CASE TG_OP WHEN 'DELETE' THEN '_deleted' WHEN 'INSERT' THEN '_created' ELSE '_updated' END, TG_TABLE_NAME,
                  CASE TG_OP WHEN 'INSERT' THEN NEW.id ELSE OLD.id END::text,
                  CASE TG_OP WHEN 'DELETE' THEN jsonb_build_object('old', to_jsonb(OLD)) WHEN 'INSERT' THEN jsonb_build_object('new', to_jsonb(NEW))
                             ELSE jsonb_build_object('old', to_jsonb(OLD), 'new', to_jsonb(NEW)) END);
          RETURN NULL;
        END $a$;

        """;

    private static string Stamp(DateTime t) => t.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";

    [Fact]
    public async Task Logical_backup_plus_audit_trail_equals_a_physical_point_in_time_restore_of_the_same_moment()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: AuditYaml);
        var (cli, server) = (cluster.Cli, cluster.Server);
        await server.ExecuteAsync(AuditTrigger + """
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL, amount int NOT NULL, note text);
            CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit_row();
            INSERT INTO orders SELECT g, 1 + g % 5, g FROM generate_series(1, 50) g;
            """);
        var (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        // The clock's edge: a transaction that starts before the logical backup and commits after it. Its row is not in the
        // backup, and its audit row's time (the transaction's start) is older than the backup.
        await using (var longTx = await server.OpenAsync())
        {
            await using var tx = await longTx.BeginTransactionAsync();
            await using (var ins = new Npgsql.NpgsqlCommand("INSERT INTO orders VALUES (500, 5, 500, 'across the backup')", longTx, tx))
            {
                await ins.ExecuteNonQueryAsync();
            }
            (code, _, err) = await cli.RunAsync("backup", "app");
            Assert.True(code == 0, err);
            await tx.CommitAsync();
        }
        // After the backup, before TIME: updates, deletes, inserts, a row inserted, changed and deleted in one transaction, a key deleted and used again.
        await server.ExecuteAsync("UPDATE orders SET amount = amount + 1000 WHERE id <= 10");
        await server.ExecuteAsync("DELETE FROM orders WHERE id BETWEEN 11 AND 15");
        await server.ExecuteAsync("INSERT INTO orders VALUES (101, 1, 101, 'new'), (102, 2, 102, NULL)");
        await server.ExecuteAsync("UPDATE orders SET amount = -1, note = 'changed' WHERE id = 101");
        await server.ExecuteAsync("INSERT INTO orders VALUES (103, 3, 103); UPDATE orders SET amount = 7 WHERE id = 103; DELETE FROM orders WHERE id = 103");
        await server.ExecuteAsync("DELETE FROM orders WHERE id = 20; INSERT INTO orders VALUES (20, 4, 2020, 'again')");
        var at = Stamp(await server.ScalarAsync<DateTime>("SELECT clock_timestamp()"));
        await Task.Delay(1200);
        // After TIME: more changes, none of which belongs in the copy.
        await server.ExecuteAsync("DELETE FROM orders WHERE id IN (1, 2, 101, 500)");
        await server.ExecuteAsync("UPDATE orders SET amount = 0 WHERE id BETWEEN 30 AND 40");
        await server.ExecuteAsync("INSERT INTO orders VALUES (200, 1, 200)");
        await cluster.ArchiveAllAsync();

        (code, var pj, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--from", "physical", "--into-schema", "from_physical", "--json");
        Assert.True(code == 0, pj + err);
        Assert.Equal("physical", JsonNode.Parse(pj)!["source"]!.GetValue<string>());
        (code, var lj, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--from", "logical", "--into-schema", "from_logical", "--json");
        Assert.True(code == 0, lj + err);
        var logical = JsonNode.Parse(lj)!;
        Assert.Equal("logical", logical["source"]!.GetValue<string>());
        Assert.Empty(logical["events_not_applied"]!.AsArray());
        Assert.True(logical["events_applied"]!.GetValue<int>() >= 10, lj);

        const string Rows = "SELECT coalesce(string_agg(format('%s:%s:%s:%s', id, profile_id, amount, coalesce(note, '-')), ',' ORDER BY id), '') FROM ";
        var physicalRows = await server.ScalarAsync<string>(Rows + "from_physical.\"public.orders\"");
        var logicalRows = await server.ScalarAsync<string>(Rows + "from_logical.\"public.orders\"");
        Assert.Equal(physicalRows, logicalRows);
        // The copy is the table at TIME: the row written across the backup is there, the one born and gone before TIME is not.
        Assert.Contains("500:5:500:across the backup", logicalRows, StringComparison.Ordinal);
        Assert.Contains("101:1:-1:changed", logicalRows, StringComparison.Ordinal);
        Assert.Contains("20:4:2020:again", logicalRows, StringComparison.Ordinal);
        Assert.DoesNotContain("103:", logicalRows, StringComparison.Ordinal);
        Assert.DoesNotContain("200:", logicalRows, StringComparison.Ordinal);
        Assert.Equal(50L - 5 + 1 + 2, await server.ScalarAsync<long>("SELECT count(*) FROM from_logical.\"public.orders\""));

        // auto: a physical backup and WAL archived past TIME cover it.
        (code, var aj, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--dry-run", "--json");
        Assert.True(code == 0, aj + err);
        Assert.Equal("physical", JsonNode.Parse(aj)!["source"]!.GetValue<string>());
        Assert.StartsWith("auto:", JsonNode.Parse(aj)!["choice"]!.GetValue<string>(), StringComparison.Ordinal);

        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "recover", "--json");
        var sources = JsonNode.Parse(list)!.AsArray().Select(r => r!["details"]!["source"]!.GetValue<string>()).ToList();
        Assert.Equal(new[] { "pitr", "logical-audit" }, sources);
    }

    [Fact]
    public async Task From_logical_on_a_database_with_only_logical_backups_replays_to_time_reports_what_it_could_not_apply_and_merges()
    {
        using var setup = await AppSetup.CreateAsync(pg, "recover_at_logical", """
            CREATE TABLE audit_log (id bigserial PRIMARY KEY, event text NOT NULL, entity text NOT NULL, entity_id text, meta jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL, amount int NOT NULL);
            INSERT INTO orders SELECT g, 1 + g % 5, g FROM generate_series(1, 10) g;
            """, AuditYaml);
        var (cli, db) = (setup.Cli, setup.Database);
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        // The audit trail after the backup, written here with exact times: b is after the backup's snapshot, TIME is b + 100 ms.
        var b = await pg.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", db);
        var at = b.AddMilliseconds(100);
        async Task<long> Event(string evt, int id, string meta, DateTime time)
        {
            await using var c = await pg.Server.OpenAsync(db);
            await using var cmd = new Npgsql.NpgsqlCommand("INSERT INTO audit_log (event, entity, entity_id, meta, created_at) VALUES (@e, 'orders', @i, @m::jsonb, @t) RETURNING id", c);
            cmd.Parameters.AddWithValue("e", evt);
            cmd.Parameters.AddWithValue("i", id.ToString(CultureInfo.InvariantCulture));
            cmd.Parameters.AddWithValue("m", meta);
            cmd.Parameters.AddWithValue("t", DateTime.SpecifyKind(time, DateTimeKind.Utc));
            return (long)(await cmd.ExecuteScalarAsync())!;
        }
        // Before the backup's snapshot time (inside the overlap): a transaction that began before the backup and committed after it.
        await Event("orders_created", 14, """{"new": {"id": 14, "profile_id": 4, "amount": 14}}""", b.AddSeconds(-30));
        await Event("orders_created", 11, """{"new": {"id": 11, "profile_id": 1, "amount": 11}}""", b.AddMilliseconds(1));
        await Event("orders_updated", 2, """{"old": {"id": 2, "profile_id": 3, "amount": 2}, "new": {"id": 2, "profile_id": 3, "amount": 222}}""", b.AddMilliseconds(2));
        await Event("orders_deleted", 3, """{"old": {"id": 3, "profile_id": 4, "amount": 3}}""", b.AddMilliseconds(3));
        var noImage = await Event("orders_updated", 4, "{}", b.AddMilliseconds(4));
        await Event("orders_created", 12, """{"new": {"id": 12, "profile_id": 2, "amount": 12, "coupon": "X1"}}""", b.AddMilliseconds(5));
        var conflict = await Event("orders_created", 13, """{"new": {"id": 13, "profile_id": 2, "amount": "not a number"}}""", b.AddMilliseconds(6));
        await Pg("INSERT INTO audit_log (event, entity, entity_id, meta, created_at) VALUES ('profiles_updated', 'profiles', '1', '{\"new\": {\"id\": 1}}', now())");
        // Exactly TIME is included (as recovery_target_inclusive includes a commit at the target); a microsecond later is not.
        await Event("orders_updated", 5, """{"new": {"id": 5, "profile_id": 1, "amount": 555}}""", at);
        await Event("orders_updated", 6, """{"new": {"id": 6, "profile_id": 2, "amount": 666}}""", at.AddTicks(10));
        // The accident, after TIME: rows 1 and 2 deleted from the live table.
        await Pg("DELETE FROM orders WHERE id IN (1, 2)");
        while (await pg.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", db) <= at)
        {
            await Task.Delay(50);
        }

        (code, var json, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", Stamp(at), "--json");
        Assert.True(code == 0, json + err);
        var r = JsonNode.Parse(json)!;
        Assert.Equal("logical", r["source"]!.GetValue<string>());
        Assert.Contains("no physical backup", r["choice"]!.GetValue<string>(), StringComparison.Ordinal);
        var notApplied = r["events_not_applied"]!.AsArray().ToDictionary(e => e!["audit_key"]!.GetValue<string>(), e => e!["why"]!.GetValue<string>());
        Assert.Equal(2, notApplied.Count);
        Assert.StartsWith("no new image", notApplied[noImage.ToString(CultureInfo.InvariantCulture)], StringComparison.Ordinal);
        Assert.StartsWith("conflict", notApplied[conflict.ToString(CultureInfo.InvariantCulture)], StringComparison.Ordinal);
        Assert.Equal(new[] { "coupon" }, r["unknown_columns"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal(
            "1:2:1,2:3:222,4:5:4,5:1:555,6:2:6,7:3:7,8:4:8,9:5:9,10:1:10,11:1:11,12:2:12,14:4:14",
            await pg.Server.ScalarAsync<string>("SELECT string_agg(format('%s:%s:%s', id, profile_id, amount), ',' ORDER BY id) FROM cairn_recover.\"public.orders\"", db));
        Assert.Equal(5, r["only_then"]!.GetValue<long>()); // 1, 2, 11, 12, 14
        Assert.Equal(1, r["differ"]!.GetValue<long>()); // 5
        Assert.Equal(0, r["merged"]!.GetValue<long>());

        (code, json, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", Stamp(at), "--from", "logical", "--merge", "--json");
        Assert.True(code == 0, json + err);
        Assert.Equal(5, JsonNode.Parse(json)!["merged"]!.GetValue<long>());
        Assert.Equal("1:2:1,2:3:222,3:4:3,4:5:4,5:1:5,6:2:6,7:3:7,8:4:8,9:5:9,10:1:10,11:1:11,12:2:12,14:4:14",
            await pg.Server.ScalarAsync<string>("SELECT string_agg(format('%s:%s:%s', id, profile_id, amount), ',' ORDER BY id) FROM orders", db));
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "recover", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Last()!["details"]!;
        Assert.Equal("logical-audit", record["source"]!.GetValue<string>());
        Assert.Equal(5, record["inserted"]!.GetValue<long>());
        Assert.Equal(2, record["not_applied"]!.GetValue<long>());

        Task Pg(string sql) => pg.Server.ExecuteAsync(sql, db);
    }

    [Fact]
    public async Task An_erased_subject_never_comes_back_through_replayed_images_not_even_two_foreign_keys_away()
    {
        using var setup = await AppSetup.CreateAsync(pg, "recover_at_erased", AuditTrigger + """
            CREATE TABLE profiles (id int PRIMARY KEY, email text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL REFERENCES profiles(id), amount int NOT NULL);
            CREATE TABLE order_notes (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders(id), body text NOT NULL);
            CREATE TRIGGER profiles_audit AFTER INSERT OR UPDATE OR DELETE ON profiles FOR EACH ROW EXECUTE FUNCTION audit_row();
            CREATE TRIGGER orders_audit AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION audit_row();
            CREATE TRIGGER order_notes_audit AFTER INSERT OR UPDATE OR DELETE ON order_notes FOR EACH ROW EXECUTE FUNCTION audit_row();
            INSERT INTO profiles SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 3) g;
            INSERT INTO orders SELECT g, 1 + g % 3, g FROM generate_series(1, 9) g;
            INSERT INTO order_notes SELECT g, g, 'note ' || g FROM generate_series(1, 9) g;
            """, """
                erasure:
                  subject: { table: public.profiles, key: id }

            """ + AuditYaml);
        var (cli, db) = (setup.Cli, setup.Database);
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        // After the backup, only in the audit trail: a new order of subject 3 with a note, and subject 3's orders changed.
        await pg.Server.ExecuteAsync("INSERT INTO orders VALUES (20, 3, 20); INSERT INTO order_notes VALUES (20, 20, 'note of the new order')", db);
        await pg.Server.ExecuteAsync("UPDATE orders SET amount = amount + 100 WHERE profile_id = 3; UPDATE order_notes SET body = body || ' (edited)'", db);
        var at = Stamp(await pg.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", db));
        await Task.Delay(200);
        (code, _, err) = await cli.RunAsync("erase", "app", "3", "--reference", "DSR-1");
        Assert.True(code == 0, err);

        (code, var json, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", at, "--from", "logical", "--json");
        Assert.True(code == 0, json + err);
        Assert.True(JsonNode.Parse(json)!["erased_rows"]!.GetValue<long>() >= 4, json);
        Assert.Equal("1:2:1,3:1:3,4:2:4,6:1:6,7:2:7,9:1:9",
            await pg.Server.ScalarAsync<string>("SELECT string_agg(format('%s:%s:%s', id, profile_id, amount), ',' ORDER BY id) FROM cairn_recover.\"public.orders\"", db));

        (code, json, err) = await cli.RunAsync("recover", "app", "--table", "order_notes", "--at", at, "--from", "logical", "--json");
        Assert.True(code == 0, json + err);
        // Subject 3's orders are 2, 5, 8 and 20 (only in the audit trail); their notes stay erased, reached through orders.
        Assert.Equal("1,3,4,6,7,9",
            await pg.Server.ScalarAsync<string>("SELECT string_agg(id::text, ',' ORDER BY id) FROM cairn_recover.\"public.order_notes\"", db));
        Assert.Equal(6L, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM cairn_recover.\"public.order_notes\" WHERE body LIKE '% (edited)'", db));
    }
}
