using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

public class RecoverTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task The_demo_schemas_own_audit_events_name_their_tables_and_replay_onto_a_logical_backup_without_a_miss()
    {
        using var setup = await AppSetup.CreateAsync(pg, "demoaudit", DemoSchema.Sql(40), """
                audit: { table: public.audit_log, time_column: created_at, entity_column: entity, id_column: entity_id, event_column: event, old_image: "meta->'old'", new_image: "meta->'new'" }
            """);
        var (cli, db) = (setup.Cli, setup.Database);
        // An event naming an application table carries the image a replay needs; a login names the user, not a table of the app.
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("""
            SELECT count(*) FROM audit_log
            WHERE entity IN ('orders', 'profiles', 'wa_messages', 'public.orders', 'public.profiles', 'public.wa_messages')
              AND NOT CASE WHEN event LIKE '%\_deleted' THEN meta ? 'old' ELSE meta ? 'new' END
            """, db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit_log WHERE event = 'login' AND entity <> 'auth.users'", db));
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        var at = (await pg.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()", db)).ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture) + "+00";
        await Task.Delay(50);

        (code, var json, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--from", "logical", "--dry-run", "--json");
        Assert.True(code == 0, json + err);
        var r = JsonNode.Parse(json)!;
        Assert.Empty(r["events_not_applied"]!.AsArray());
        // The events of the last ten minutes before the backup (the replay's overlap) hold one order event per profile.
        Assert.True(r["events_applied"]!.GetValue<int>() >= 40, json);
        Assert.Equal(0, r["only_then"]!.GetValue<long>());
        Assert.Equal(0, r["only_now"]!.GetValue<long>());
        Assert.Equal(0, r["differ"]!.GetValue<long>());
    }

    [Fact]
    public async Task Rows_deleted_by_an_audited_delete_come_back_in_foreign_key_order_conflicts_skipped_and_erased_subjects_stay_erased()
    {
        using var setup = await AppSetup.CreateAsync(pg, "recover", DemoSchema.Sql(30), """
                erasure:
                  subject: { table: public.profiles, key: id }
                audit: { table: public.audit_log, time_column: created_at, entity_column: entity, id_column: entity_id, event_column: event, old_image: "meta->'old'", new_image: "meta->'new'" }
            """);
        var (cli, db) = (setup.Cli, setup.Database);
        var ids = (await pg.Server.ScalarAsync<string>("SELECT string_agg(id::text, ',' ORDER BY id) FROM (SELECT id FROM profiles ORDER BY id LIMIT 3) x", db)).Split(',');
        var (p, q, e) = (ids[0], ids[1], ids[2]);
        var pOrders = await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{p}'", db);
        var pMessages = await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM wa_messages WHERE profile_id = '{p}'", db);
        var pEmail = await pg.Server.ScalarAsync<string>($"SELECT email::text FROM profiles WHERE id = '{p}'", db);
        var qOrder = await pg.Server.ScalarAsync<long>($"SELECT min(id) FROM orders WHERE profile_id = '{q}'", db);
        // The accident: P's orders, then P (its messages cascade); one of Q's orders, written again since; E's orders, then E is erased.
        await pg.Server.ExecuteAsync($"""
            DELETE FROM wa_media_signatures WHERE message_id IN (SELECT id FROM wa_messages WHERE profile_id = '{p}');
            DELETE FROM orders WHERE profile_id = '{p}';
            DELETE FROM profiles WHERE id = '{p}';
            DELETE FROM orders WHERE id = {qOrder};
            INSERT INTO orders (id, profile_id, status, amount, created_at) VALUES ({qOrder}, '{q}', 'paid', 1.23, now());
            DELETE FROM orders WHERE profile_id = '{e}';
            """, db);
        var (code, _, err) = await cli.RunAsync("erase", "app", e);
        Assert.True(code == 0, err);
        // The schema moved on: a column dropped (reported), a new one (takes its default).
        await pg.Server.ExecuteAsync("ALTER TABLE orders DROP COLUMN currency, ADD COLUMN note text NOT NULL DEFAULT 'recovered'", db);

        (code, var plan, err) = await cli.RunAsync("recover", "app", "--from-audit", "--since", "1h", "--dry-run", "--json");
        Assert.True(code == 0, plan + err);
        var dry = JsonNode.Parse(plan)!;
        Assert.Equal(1 + pOrders + pMessages, dry["inserted"]!.GetValue<int>());
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{p}'", db));

        (code, var run, err) = await cli.RunAsync("recover", "app", "--from-audit", "--since", "1h", "--json");
        Assert.True(code == 0, run + err);
        var done = JsonNode.Parse(run)!;
        Assert.Equal(1 + pOrders + pMessages, done["inserted"]!.GetValue<int>());
        Assert.Equal(1, done["skipped_existing"]!.GetValue<int>());
        Assert.True(done["skipped_erased"]!.GetValue<int>() >= 4, run);
        Assert.Contains("currency", done["unknown_columns"]!["public.orders"]!.AsArray().Select(x => x!.GetValue<string>()));
        Assert.Equal(pEmail, await pg.Server.ScalarAsync<string>($"SELECT email::text FROM profiles WHERE id = '{p}'", db));
        Assert.Equal(pOrders, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{p}' AND note = 'recovered'", db));
        Assert.Equal(pMessages, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM wa_messages WHERE profile_id = '{p}'", db));
        Assert.Equal(1.23m, await pg.Server.ScalarAsync<decimal>($"SELECT amount FROM orders WHERE id = {qOrder}", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{e}'", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{e}'", db));
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "recover", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Single()!;
        Assert.Equal(1 + pOrders + pMessages, record["details"]!["inserted"]!.GetValue<long>());
    }

    [Fact]
    public async Task Undo_updates_puts_rows_back_to_their_old_image_and_names_the_columns_that_differed()
    {
        using var setup = await AppSetup.CreateAsync(pg, "recover_upd", DemoSchema.Sql(10), """
                audit: { table: public.audit_log, time_column: created_at, entity_column: entity, id_column: entity_id, event_column: event, old_image: "meta->'old'" }
            """);
        var (cli, db) = (setup.Cli, setup.Database);
        var before = await pg.Server.ScalarAsync<string>("SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders", db);
        await pg.Server.ExecuteAsync("UPDATE orders SET amount = 0 WHERE id % 2 = 0; UPDATE orders SET amount = 1 WHERE id % 4 = 0", db);
        var (code, run, err) = await cli.RunAsync("recover", "app", "--from-audit", "--since", "1h", "--undo-updates", "--json");
        Assert.True(code == 0, run + err);
        Assert.Equal(before, await pg.Server.ScalarAsync<string>("SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders", db));
        Assert.Contains("differed: amount", run, StringComparison.Ordinal);
    }
}
