using System.Text.Json;
using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Operations.Logical;
using Cairn.PostgreSql.Logical;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary>The check kinds supabase_auth and storage_objects, in drills of a Supabase-like project.</summary>
public class SupabaseCheckTests(SupabaseFixture supa) : IClassFixture<SupabaseFixture>
{
    // The drill server's supabase_admin is not a superuser (the restore withholds it), so Supabase's DDL-watching
    // event trigger cannot be given to it: left out, and allowed here.
    private const string Checks = """
              - supabase_auth: {}
              - storage_objects: {}
              - restore_complete: { allow_skipped: [event trigger] }
        """;

    private static JsonObject CheckOf(string json, string name)
        => JsonNode.Parse(json)!["checks"]!.AsArray().Select(c => c!.AsObject()).Single(c => c["name"]!.GetValue<string>() == name);

    private async Task<(CliRunner Cli, TempDir Dir)> BackUpAsync(string db)
    {
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{supa.Server.Url(db)}"
                checks:
            {Checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        return (cli, dir);
    }

    [Fact]
    public async Task Supabase_auth_passes_on_a_good_drill_and_fails_when_a_user_was_deleted_behind_a_profile()
    {
        var db = await supa.CreateProjectAsync("auth");
        var (cli, dir) = await BackUpAsync(db);
        using var _d = dir;
        var (code, json, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, json + err);
        var auth = CheckOf(json, "supabase_auth");
        Assert.Equal("pass", auth["result"]!.GetValue<string>());
        // 3 users; the 4 policies calling auth.uid() (profiles x2, messages, storage.objects) were found by their dependencies.
        Assert.Equal("3 users, 4 policies calling auth.uid()/auth.jwt()", auth["actual"]!.GetValue<string>());
        Assert.Equal("pass", CheckOf(json, "storage_objects")["result"]!.GetValue<string>());
        Assert.Equal("2 buckets, 3 objects", CheckOf(json, "storage_objects")["actual"]!.GetValue<string>());
        Assert.Contains("pgrst_ddl_watch", CheckOf(json, "restore_complete")["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // A user deleted behind a profile (the foreign key was dropped first): the next backup's drill fails on it.
        await supa.Server.ExecuteAsync("ALTER TABLE public.profiles DROP CONSTRAINT profiles_id_fkey; DELETE FROM auth.users WHERE email = 'edsger@example.com'", db);
        (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        auth = CheckOf(json, "supabase_auth");
        Assert.Equal("fail", auth["result"]!.GetValue<string>());
        Assert.Contains("1 row(s) of public.profiles name a user (id) that auth.users does not have", auth["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Storage_objects_fails_when_a_bucket_has_other_rows_than_the_backup_had()
    {
        var db = await supa.CreateProjectAsync("stor");
        var (cli, dir) = await BackUpAsync(db);
        using var _d = dir;
        // The backup's own figures say avatars had 3 objects (the dump holds 2): the restored copy does not match them.
        using (var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            var snap = (await repo.ListSnapshotsAsync(default)).Single();
            var fp = await LogicalSnapshots.ReadFingerprintAsync(repo, snap, default);
            // Kept as JSON (a bucket id or policy name may hold a comma); the tampered value below is in the comma-joined
            // form of older backups, which is still read.
            Assert.Equal("""{"avatars": 2, "invoices": 1}""", fp.CheckValues!["cairn:storage_objects:buckets"]);
            Assert.StartsWith("""["public.""", fp.CheckValues!["cairn:supabase_auth:policies"], StringComparison.Ordinal);
            var changed = fp with { CheckValues = new Dictionary<string, string>(fp.CheckValues) { ["cairn:storage_objects:buckets"] = "avatars=3,invoices=1" } };
            await using var w = repo.BeginWrite();
            foreach (var item in snap.Manifest.Items.Where(i => i.Name != LogicalBackupOperation.FingerprintItem))
            {
                w.AddExistingItem(item);
            }
            await w.AddStreamAsync(LogicalBackupOperation.FingerprintItem, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(changed, FingerprintJson.Default.Fingerprint)), null, "file", null, default);
            await w.CommitAsync(snap.Manifest.Name, snap.Manifest.Kind, snap.Manifest.Meta, default);
        }
        var (code, json, _) = await cli.RunAsync("drill", "app", "--json");
        Assert.Equal(ExitCodes.ChecksFailed, code);
        var storage = CheckOf(json, "storage_objects");
        Assert.Equal("fail", storage["result"]!.GetValue<string>());
        Assert.Equal("bucket avatars: 2 objects, the backup had 3", storage["detail"]!.GetValue<string>());
        Assert.Equal("pass", CheckOf(json, "supabase_auth")["result"]!.GetValue<string>());
    }
}
