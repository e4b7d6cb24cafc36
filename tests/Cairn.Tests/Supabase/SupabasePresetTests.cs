using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary><c>preset: supabase</c>, include/exclude_schemas, <c>roles:</c>, and a backup taken as the non-superuser customer role.</summary>
public class SupabasePresetTests(SupabaseFixture supa) : IClassFixture<SupabaseFixture>
{
    private async Task<CliRunner> CliWithAsync(TempDir dir, string database, string settings)
    {
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{supa.CustomerUrl(database)}"
                password_file: {supa.PasswordFile}
            {string.Join('\n', settings.Split('\n').Select(l => "    " + l))}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return cli;
    }

    [Fact]
    public async Task Without_the_preset_the_customer_role_cannot_back_up_a_Supabase_project()
    {
        var db = await supa.CreateProjectAsync();
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, db, "");
        var work = dir.File("work");
        Directory.CreateDirectory(work);
        await File.AppendAllTextAsync(dir.File("cairn.yaml"), $"\nwork_dir: {work}\n");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.NotEqual(0, code);
        Assert.Empty(Directory.EnumerateFileSystemEntries(work)); // the refused dump's work folder is gone too
        // The cause and the fix, not pg_dump's "could not import the requested snapshot": the holder's transaction is never aborted.
        Assert.True(err.Contains("cannot read 4 table(s) or sequence(s)", StringComparison.Ordinal), err);
        Assert.Contains("pgsodium.key, realtime.subscription_id_seq, supabase_functions.hooks_id_seq, vault.secrets", err, StringComparison.Ordinal);
        Assert.Contains("exclude_schemas: [pgsodium, realtime, supabase_functions, vault]", err, StringComparison.Ordinal);
        Assert.Contains("preset: supabase", err, StringComparison.Ordinal);
        Assert.DoesNotContain("snapshot", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Dry_run_shows_every_schema_s_choice_with_its_reason_and_the_overrides_win()
    {
        var db = await supa.CreateProjectAsync();
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, db, """
            preset: supabase
            include_schemas: [realtime]
            exclude_schemas: [supabase_migrations]
            roles: [app_worker]
            """);
        var (code, output, err) = await cli.RunAsync("backup", "app", "--dry-run");
        Assert.True(code == 0, output + err);
        Assert.Contains("preset supabase", output, StringComparison.Ordinal);
        Assert.Matches(@"(?m)^public\s+full\s+the app's own", output);
        Assert.Matches(@"(?m)^auth\s+data only\s+users", output);
        Assert.Matches(@"(?m)^storage\s+data only\s+", output);
        Assert.Matches(@"(?m)^vault\s+skipped\s+secrets", output);
        Assert.Matches(@"(?m)^pgsodium\s+skipped\s+", output);
        Assert.Matches(@"(?m)^graphql\s+skipped\s+", output);
        Assert.Matches(@"(?m)^realtime\s+full\s+include_schemas", output);
        Assert.Matches(@"(?m)^supabase_migrations\s+skipped\s+exclude_schemas", output);
        Assert.Contains("roles: referenced + app_worker", output, StringComparison.Ordinal);
        Assert.Contains("authenticator", output, StringComparison.Ordinal);
        Assert.Contains("nothing was written", output, StringComparison.Ordinal);
        (code, var snaps, _) = await cli.RunAsync("snapshots", "--json");
        Assert.Empty(JsonNode.Parse(snaps)!.AsArray());

        (code, var json, err) = await cli.RunAsync("backup", "app", "--dry-run", "--json");
        Assert.True(code == 0, err);
        var rows = JsonNode.Parse(json)!["schemas"]!.AsArray();
        Assert.Equal("data_only", rows.Single(r => r!["schema"]!.GetValue<string>() == "auth")!["backup"]!.GetValue<string>());
    }

    [Fact]
    public async Task Backup_as_the_customer_role_restores_data_and_roles_with_their_settings_and_leaves_managed_roles_alone()
    {
        var db = await supa.CreateProjectAsync();
        using var dir = new TempDir();
        var cli = await CliWithAsync(dir, db, """
            preset: supabase
            roles: [app_worker]
            """);
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        var snap = JsonNode.Parse((await cli.RunAsync("snapshots", "--json")).Out)!.AsArray().Single()!;
        Assert.Contains("vault", snap["meta"]!["schemas_skipped"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("auth,storage", snap["meta"]!["schemas_data_only"]!.GetValue<string>());

        // The target is a fresh server with the platform's roles (as a new Supabase project has them), not the customer's own.
        await using var target = await ScratchServer.StartAsync();
        await target.ExecuteAsync(SupabaseFixture.RolesSql("other-" + Guid.NewGuid().ToString("N")));
        await target.ExecuteAsync("DROP ROLE app_worker");
        await target.ExecuteAsync("DROP ROLE app_reporter");
        await target.ExecuteAsync("ALTER ROLE anon SET statement_timeout TO '5s'");
        await target.ExecuteAsync("DROP ROLE authenticator"); // a managed role the backup holds (the customer is a member) that this target lacks
        (code, output, err) = await cli.RunAsync("restore", "app", "--on", target.Url(), "--to-database", "restored");
        Assert.True(code == 0, output + err);
        Assert.Contains("every row count equals the fingerprint", output, StringComparison.Ordinal);
        Assert.Contains("role authenticator not created: the platform manages it", output + err, StringComparison.Ordinal);
        Assert.False(await target.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator')"));

        Assert.Equal(3L, await target.ScalarAsync<long>("SELECT count(*) FROM auth.users u JOIN public.profiles p USING (id)", "restored"));
        Assert.Equal(3L, await target.ScalarAsync<long>("SELECT count(*) FROM storage.objects", "restored"));
        Assert.False(await target.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname IN ('vault', 'pgsodium', 'realtime'))", "restored"));
        // The customer's roles, with per-role and per-database settings, memberships, comments and limits.
        Assert.Equal("reads the dashboards", await target.ScalarAsync<string>("SELECT shobj_description('app_reporter'::regrole, 'pg_authid')"));
        Assert.Equal("work_mem=16MB", await target.ScalarAsync<string>("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setrole = 'app_reporter'::regrole AND setdatabase = 0"));
        Assert.Equal("statement_timeout=45s", await target.ScalarAsync<string>("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE setrole = 'app_reporter'::regrole AND d.datname = 'restored'"));
        Assert.Equal("search_path=public, extensions,statement_timeout=30s", await target.ScalarAsync<string>("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setrole = 'app_worker'::regrole AND setdatabase = 0"));
        Assert.Equal(4, await target.ScalarAsync<int>("SELECT rolconnlimit FROM pg_roles WHERE rolname = 'app_worker'"));
        Assert.True(await target.ScalarAsync<bool>("SELECT pg_has_role('app_worker', 'app_reporter', 'MEMBER')"));
        // A managed role is never altered: the target's own setting stays.
        Assert.Equal("statement_timeout=5s", await target.ScalarAsync<string>("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setrole = 'anon'::regrole AND setdatabase = 0"));
    }
}
