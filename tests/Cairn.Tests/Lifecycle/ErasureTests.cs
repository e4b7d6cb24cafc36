using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

public class ErasureTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private const string PlanConfig = """
            erasure:
              subject: { table: public.profiles, key: id }
              delete: [ { table: public.wa_messages, column: profile_id } ]
              anonymize: [ { table: public.audit_log, match_column: actor, set: { actor: deleted_user }, remove_json_keys: { meta: [email, phone, name] } } ]
        """;

    private const string FunctionConfig = """
            erasure:
              subject: { table: public.profiles, key: id }
              function: public.delete_user_data
        """;

    private const string DeleteUserData = """
        CREATE FUNCTION delete_user_data(user_id uuid) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE audit_log SET actor = 'deleted_user', meta = meta - 'email' WHERE actor = user_id::text;
          DELETE FROM orders WHERE profile_id = user_id;
          DELETE FROM wa_messages WHERE profile_id = user_id;
          DELETE FROM wa_automation_flows WHERE profile_id = user_id;
          DELETE FROM profiles WHERE id = user_id;
        END $$;
        """;

    private async Task<(CliRunner Cli, TempDir Dir, string Db, string Subject)> SetUpAsync(string erasure, string? extraSql = null)
    {
        var (cli, dir, db) = await AppSetup.CreateAsync(pg, "erase", DemoSchema.Sql(60) + (extraSql ?? ""), erasure);
        // A subject with rows in every related table: orders, messages, media signatures, automation flows, the audit log.
        var subject = await pg.Server.ScalarAsync<string>("""
            SELECT p.id::text FROM profiles p
            WHERE EXISTS (SELECT 1 FROM wa_automation_flows f WHERE f.profile_id = p.id)
              AND EXISTS (SELECT 1 FROM wa_messages m JOIN wa_media_signatures s ON s.message_id = m.id WHERE m.profile_id = p.id)
            ORDER BY p.id LIMIT 1
            """, db);
        return (cli, dir, db, subject);
    }

    private async Task<long[]> FootprintAsync(string db, string id) =>
    [
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{id}'", db),
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{id}'", db),
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM wa_messages WHERE profile_id = '{id}'", db),
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM wa_media_signatures s JOIN wa_messages m ON m.id = s.message_id WHERE m.profile_id = '{id}'", db),
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM wa_automation_flows WHERE profile_id = '{id}'", db),
        await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM audit_log WHERE actor = '{id}'", db),
    ];

    [Fact]
    public async Task Erase_removes_the_subject_from_every_related_table_in_one_transaction_and_the_evidence_holds_no_identifier()
    {
        var (cli, dir, db, id) = await SetUpAsync(PlanConfig);
        using var _d = dir;
        var before = await FootprintAsync(db, id);
        Assert.All(before, n => Assert.True(n > 0, "the subject has rows in every related table"));
        var (code, plan, err) = await cli.RunAsync("erase", "app", id, "--dry-run", "--json");
        Assert.True(code == 0, plan + err);
        Assert.Equal(before, await FootprintAsync(db, id));
        var planned = JsonNode.Parse(plan)!["steps"]!.AsArray().Select(s => s!["table"]!.GetValue<string>()).ToHashSet();
        Assert.Superset(new HashSet<string> { "public.profiles", "public.orders", "public.wa_messages", "public.wa_media_signatures", "public.wa_automation_flows", "public.audit_log" }, planned);

        (code, var run, err) = await cli.RunAsync("erase", "app", id, "--reference", "DSR-2026-042", "--json");
        Assert.True(code == 0, run + err);
        Assert.All((await FootprintAsync(db, id)).Take(5), n => Assert.Equal(0, n));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM audit_log WHERE actor = '{id}' OR meta::text LIKE '%{id}%'", db));
        Assert.Equal(before[5], await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit_log WHERE actor = 'deleted_user' AND NOT meta ? 'email'", db));
        Assert.True(await pg.Server.ScalarAsync<long>("SELECT count(*) FROM profiles", db) == 59, "only the subject's profile went");

        var hmac = JsonNode.Parse(run)!["subject_hmac"]!.GetValue<string>();
        Assert.Matches("^[0-9a-f]{64}$", hmac);
        foreach (var f in Directory.EnumerateFiles(dir.File("repo-evidence"), "*", SearchOption.AllDirectories).Concat(Directory.EnumerateFiles(dir.File("repo"), "*", SearchOption.AllDirectories)))
        {
            Assert.DoesNotContain(id, await File.ReadAllTextAsync(f), StringComparison.OrdinalIgnoreCase);
        }
        Assert.Single(Directory.GetFiles(dir.File("repo/ledger")));
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "erasure", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Single()!;
        Assert.Equal(hmac, record["details"]!["subject_hmac"]!.GetValue<string>());
        Assert.Equal("DSR-2026-042", record["details"]!["reference"]!.GetValue<string>());
    }

    [Fact]
    public async Task The_receipt_holds_only_the_keyed_hash_reference_rows_and_time_and_verifies_against_the_signed_checkpoint()
    {
        var (cli, dir, db, id) = await SetUpAsync(PlanConfig);
        using var _d = dir;
        var personal = (await pg.Server.ScalarAsync<string>($"SELECT concat_ws('|', email::text, full_name, phone) FROM profiles WHERE id = '{id}'", db)).Split('|').Append(id).ToList();
        var (code, run, err) = await cli.RunAsync("erase", "app", id, "--reference", "DSR-2026-077", "--json");
        Assert.True(code == 0, run + err);
        var erased = JsonNode.Parse(run)!;
        var seq = erased["evidence_seq"]!.GetValue<long>().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var hmac = erased["subject_hmac"]!.GetValue<string>();

        (code, var text, err) = await cli.RunAsync("erase", "app", "--receipt", seq);
        Assert.True(code == 0, text + err);
        Assert.Contains("=== Erasure receipt ===", text, StringComparison.Ordinal);
        Assert.Contains("Reference:       DSR-2026-077", text, StringComparison.Ordinal);
        Assert.Contains($"Subject (HMAC):  {hmac}", text, StringComparison.Ordinal);
        Assert.Matches(@"public\.profiles: delete[^\n]*: 1 rows", text);
        (code, var json, err) = await cli.RunAsync("erase", "app", "--receipt", seq, "--json");
        Assert.True(code == 0, json + err);
        foreach (var value in personal.Where(v => v.Length > 0))
        {
            Assert.DoesNotContain(value, text, StringComparison.OrdinalIgnoreCase);
            Assert.DoesNotContain(value, json, StringComparison.OrdinalIgnoreCase);
        }
        // What the issue allows and nothing else: the keyed hash, the reference, rows per table, the time (and how it was erased, where it is on record).
        var receipt = JsonNode.Parse(json)!;
        var record = receipt["record"]!;
        Assert.Equal(["ledger_entry", "mode", "reference", "rows", "subject_found", "subject_hmac", "tables"], record["details"]!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal));
        Assert.All(record["details"]!["tables"]!.AsArray(), t => Assert.Equal(["action", "rows", "table"], t!.AsObject().Select(p => p.Key).Order(StringComparer.Ordinal)));
        Assert.Equal("erasure", record["kind"]!.GetValue<string>());
        Assert.False(string.IsNullOrEmpty(record["time"]?.GetValue<string>()));

        // It verifies: the record is the leaf, the leaf is in the tree, the tree's root is in a checkpoint signed by the log's key.
        var leaf = Cairn.Evidence.Merkle.MerkleTree.LeafHash(Cairn.Evidence.Canonical.JsonCanonicalizer.Canonicalize(record));
        Assert.Equal(receipt["leaf_hash"]!.GetValue<string>(), Convert.ToHexStringLower(leaf));
        var size = receipt["tree_size"]!.GetValue<int>();
        var root = Convert.FromBase64String(receipt["root_hash"]!.GetValue<string>());
        var proof = receipt["inclusion_proof"]!.AsArray().Select(p => Convert.FromBase64String(p!.GetValue<string>())).ToList();
        Assert.True(Cairn.Evidence.Merkle.MerkleTree.VerifyInclusion(leaf, long.Parse(seq, System.Globalization.CultureInfo.InvariantCulture), size, proof, root));
        var (_, publicKey, _) = await cli.RunAsync("evidence", "public-key");
        var checkpoint = Cairn.Evidence.Notes.Checkpoint.Parse(Cairn.Evidence.Notes.SignedNote.Open(receipt["checkpoint"]!.GetValue<string>(), Cairn.Evidence.Notes.NoteKey.ParseVerifier(publicKey.Trim())));
        Assert.Equal(root, checkpoint.Root);
        Assert.Equal(size, checkpoint.Size);
        // A receipt whose record was edited (another reference) no longer verifies.
        record["details"]!["reference"] = "DSR-2026-078";
        var forged = Cairn.Evidence.Merkle.MerkleTree.LeafHash(Cairn.Evidence.Canonical.JsonCanonicalizer.Canonicalize(record));
        Assert.False(Cairn.Evidence.Merkle.MerkleTree.VerifyInclusion(forged, long.Parse(seq, System.Globalization.CultureInfo.InvariantCulture), size, proof, root));

        // Only erasures have receipts.
        (code, _, err) = await cli.RunAsync("erase", "app", "--receipt", "0");
        Assert.Equal(ExitCodes.Usage, code);
        Assert.Contains("is not an erasure", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failure_in_the_middle_of_an_erasure_leaves_everything_as_it_was_and_nothing_in_the_ledger()
    {
        var (cli, dir, db, id) = await SetUpAsync(PlanConfig, """
            CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'flows are kept for the regulator'; END $$;
            CREATE TRIGGER keep_flows BEFORE DELETE ON wa_automation_flows FOR EACH ROW EXECUTE FUNCTION refuse();
            """);
        using var _d = dir;
        var before = await FootprintAsync(db, id);
        var (code, _, err) = await cli.RunAsync("erase", "app", id);
        Assert.Equal(ExitCodes.Database, code);
        Assert.Contains("rolled back, nothing changed: flows are kept for the regulator", err, StringComparison.Ordinal);
        Assert.Equal(before, await FootprintAsync(db, id));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM audit_log WHERE actor = 'deleted_user'", db));
        Assert.False(Directory.Exists(dir.File("repo/ledger")) && Directory.GetFiles(dir.File("repo/ledger")).Length > 0, "a rolled-back erasure is not in the ledger");
    }

    [Fact]
    public async Task Erase_refuses_to_run_when_the_ledger_cannot_be_written()
    {
        var (cli, dir, db, id) = await SetUpAsync(PlanConfig);
        using var _d = dir;
        var before = await FootprintAsync(db, id);
        cli.Env["CAIRN_PASSPHRASE"] = "not the passphrase";
        var (code, _, _) = await cli.RunAsync("erase", "app", id);
        Assert.Equal(ExitCodes.WrongPassphrase, code);
        cli.Env["CAIRN_REPOSITORY"] = dir.File("no-such-repo");
        (code, _, _) = await cli.RunAsync("erase", "app", id);
        Assert.Equal(ExitCodes.NotFound, code);
        Assert.Equal(before, await FootprintAsync(db, id));
    }

    [Fact]
    public async Task A_backup_taken_before_the_erasure_restored_fully_or_merged_by_table_never_brings_the_subject_back()
    {
        var (cli, dir, db, id) = await SetUpAsync(PlanConfig);
        using var _d = dir;
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        (code, _, err) = await cli.RunAsync("erase", "app", id);
        Assert.True(code == 0, err);

        var copy = pg.NewName("erase_copy");
        (code, var restored, err) = await cli.RunAsync("restore", "app", "--to-database", copy, "--json");
        Assert.True(code == 0, restored + err);
        Assert.Equal(1, JsonNode.Parse(restored)!["erasures_reapplied"]!.GetValue<int>());
        Assert.All((await FootprintAsync(copy, id)).Take(5), n => Assert.Equal(0, n));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM audit_log WHERE actor = '{id}'", copy));
        Assert.Equal(60 - 1, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM profiles", copy));
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.Equal(1, JsonNode.Parse(list)!.AsArray().Last()!["details"]!["erasures_reapplied"]!.GetValue<long>());

        // Lose another profile's orders, then merge orders and profiles back from the backup: the erased subject's rows stay out.
        await pg.Server.ExecuteAsync("DELETE FROM orders WHERE profile_id = (SELECT id FROM profiles ORDER BY id DESC LIMIT 1)", db);
        (code, var merged, err) = await cli.RunAsync("restore", "app", "--table", "public.profiles", "--table", "public.orders", "--into-schema", "cairn_restore", "--merge", "missing");
        Assert.True(code == 0, merged + err);
        Assert.Contains("erasure ledger: 1 erasure(s) applied again in the merge's transaction", merged, StringComparison.Ordinal);
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{id}'", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{id}'", db));
        Assert.Equal(4, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM orders WHERE profile_id = (SELECT id FROM profiles ORDER BY id DESC LIMIT 1)", db));
    }

    [Fact]
    public async Task The_application_function_mode_erases_through_the_function_and_a_restore_calls_it_again()
    {
        var (cli, dir, db, id) = await SetUpAsync(FunctionConfig, DeleteUserData);
        using var _d = dir;
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        (code, var run, err) = await cli.RunAsync("erase", "app", id, "--json");
        Assert.True(code == 0, run + err);
        var steps = JsonNode.Parse(run)!["steps"]!.AsArray().Select(s => s!["table"]!.GetValue<string>()).ToList();
        Assert.Contains("public.profiles", steps);
        Assert.Contains("public.audit_log_current", steps);
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{id}'", db));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM audit_log WHERE actor = '{id}'", db));
        var copy = pg.NewName("erase_fn_copy");
        (code, var restored, err) = await cli.RunAsync("restore", "app", "--to-database", copy, "--json");
        Assert.True(code == 0, restored + err);
        Assert.Equal(1, JsonNode.Parse(restored)!["erasures_reapplied"]!.GetValue<int>());
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM profiles WHERE id = '{id}'", copy));
        Assert.Equal(0, await pg.Server.ScalarAsync<long>($"SELECT count(*) FROM orders WHERE profile_id = '{id}'", copy));
    }
}
