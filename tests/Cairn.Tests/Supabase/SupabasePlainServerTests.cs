using System.Text.Json.Nodes;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary>
/// A <c>preset: supabase</c> backup restored onto a plain PostgreSQL that has none of the platform's roles (anon,
/// authenticated, service_role, supabase_admin, …): grants, default privileges and policies naming them are left out and
/// listed (cause <c>role NAME</c>), ownership by them falls to the restoring role, and everything else is restored.
/// </summary>
public class SupabasePlainServerTests(SupabaseFixture supa) : IClassFixture<SupabaseFixture>
{
    private static readonly string[] MissingRoleCauses = ["role anon", "role authenticated", "role service_role", "role supabase_admin", "role supabase_auth_admin", "role supabase_storage_admin", "role dashboard_user"];

    private async Task<(CliRunner Cli, TempDir Dir)> BackUpAsync(string db, string checks = "")
    {
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"""
            databases:
              app:
                connection: "{supa.CustomerUrl(db)}"
                password_file: {supa.PasswordFile}
                preset: supabase
            {checks}
            """);
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, output, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, output + err);
        return (cli, dir);
    }

    [Fact]
    public async Task A_preset_backup_restores_onto_a_plain_server_leaving_out_and_listing_what_names_missing_roles()
    {
        var db = await supa.CreateProjectAsync("plain");
        var (cli, dir) = await BackUpAsync(db);
        using var _d = dir;
        await using var plain = await ScratchServer.StartAsync();
        Assert.False(await plain.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role', 'supabase_admin'))"));

        var (code, output, err) = await cli.RunAsync("restore", "app", "--on", plain.Url(), "--to-database", "restored", "--json");
        Assert.True(code == 0, output + err);
        var json = JsonNode.Parse(output)!;
        var skipped = json["skipped"]!.AsArray().Select(x => (Object: x!["object"]!.GetValue<string>(), Cause: x["cause"]!.GetValue<string>())).ToList();
        // A grant to a missing role is left out, statement by statement; the same object's grants to roles that exist are made.
        Assert.Contains(skipped, s => s.Cause == "role anon" && s.Object.Contains("GRANT SELECT ON TABLE storage.objects TO anon", StringComparison.Ordinal));
        Assert.Contains(skipped, s => s.Cause == "role service_role" && s.Object.StartsWith("ACL storage TABLE objects", StringComparison.Ordinal));
        Assert.True(await plain.ScalarAsync<bool>($"SELECT has_table_privilege('{SupabaseFixture.Customer}', 'storage.objects', 'INSERT')", "restored"));
        // A policy TO a missing role is left out whole.
        Assert.Contains(skipped, s => s.Cause == "role authenticated" && s.Object.StartsWith("POLICY storage objects owners read their files", StringComparison.Ordinal));
        Assert.False(await plain.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polname = 'owners read their files')", "restored"));
        // Owned by a missing role: restored, owned by the restoring role, listed.
        Assert.Contains(skipped, s => s.Cause == "role supabase_auth_admin");
        Assert.Equal(3L, await plain.ScalarAsync<long>("SELECT count(*) FROM auth.users", "restored"));
        Assert.Equal(3L, await plain.ScalarAsync<long>("SELECT count(*) FROM storage.objects", "restored"));
        Assert.True(json["ok"]!.GetValue<bool>());
        // Nothing of the platform's was created.
        Assert.False(await plain.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role', 'supabase_admin'))"));

        // The same restore's record lists the causes.
        (code, output, err) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.True(code == 0, output + err);
        var causes = JsonNode.Parse(output)!.AsArray().Single()!["details"]!["skipped_causes"]!.AsArray().Select(c => c!.GetValue<string>()).ToList();
        Assert.Contains("role anon", causes);
        Assert.Equal(causes.Order(StringComparer.Ordinal), causes);

        // With --create-missing-roles the roles are created empty (NOLOGIN) and nothing names a missing role any more.
        (code, output, err) = await cli.RunAsync("restore", "app", "--on", plain.Url(), "--to-database", "restored2", "--create-missing-roles", "--json");
        Assert.True(code == 0, output + err);
        Assert.DoesNotContain(JsonNode.Parse(output)!["skipped"]!.AsArray(), x => x!["cause"]!.GetValue<string>().StartsWith("role ", StringComparison.Ordinal));
        Assert.True(await plain.ScalarAsync<bool>("SELECT EXISTS (SELECT 1 FROM pg_policy WHERE polname = 'owners read their files')", "restored2"));
        Assert.False(await plain.ScalarAsync<bool>("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'authenticated'"));
        Assert.True(await plain.ScalarAsync<bool>("SELECT has_table_privilege('anon', 'storage.objects', 'SELECT')", "restored2"));
    }

    [Fact]
    public async Task A_drill_on_the_plain_scratch_server_fails_on_missing_roles_until_restore_complete_allows_them()
    {
        var db = await supa.CreateProjectAsync("plaindrill");
        var (cli, dir) = await BackUpAsync(db, """
                checks:
                  - row_counts: { equal_to: fingerprint }
                  - restore_complete: { allow_skipped: [event trigger] }
            """);
        using var _d = dir;
        var (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 12, output + err);
        var check = JsonNode.Parse(output)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "restore_complete")!;
        Assert.Equal("fail", check["result"]!.GetValue<string>());
        Assert.Contains("(role anon)", check["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("role * for every missing role", check["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("pass", JsonNode.Parse(output)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "restore")!["result"]!.GetValue<string>());

        var yaml = await File.ReadAllTextAsync(dir.File("cairn.yaml"));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), yaml.Replace("allow_skipped: [event trigger]", $"allow_skipped: [event trigger, {string.Join(", ", MissingRoleCauses)}]", StringComparison.Ordinal));
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, output + err);
    }

    [Fact]
    public async Task A_drill_on_the_plain_scratch_server_passes_with_role_wildcards_and_a_narrower_wildcard_still_names_the_rest()
    {
        var db = await supa.CreateProjectAsync("plainwild");
        var (cli, dir) = await BackUpAsync(db, """
                checks:
                  - row_counts: { equal_to: fingerprint }
                  - restore_complete: { allow_skipped: [event trigger, "role supabase_*"] }
            """);
        using var _d = dir;
        var (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 12, output + err);
        var detail = JsonNode.Parse(output)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "restore_complete")!["detail"]!.GetValue<string>();
        var split = detail.IndexOf("skipped as allowed", StringComparison.Ordinal);
        Assert.True(split > 0, detail);
        Assert.Contains("(role anon)", detail[..split], StringComparison.Ordinal);
        Assert.Contains("(role dashboard_user)", detail[..split], StringComparison.Ordinal);
        Assert.DoesNotContain("(role supabase_", detail[..split], StringComparison.Ordinal);
        Assert.Contains("(role supabase_admin)", detail[split..], StringComparison.Ordinal);

        var yaml = await File.ReadAllTextAsync(dir.File("cairn.yaml"));
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), yaml.Replace("\"role supabase_*\"", "\"role *\"", StringComparison.Ordinal));
        (code, output, err) = await cli.RunAsync("drill", "app", "--json");
        Assert.True(code == 0, output + err);
        Assert.Contains("(role anon)", JsonNode.Parse(output)!["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == "restore_complete")!["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("GRANT SELECT ON TABLE public.t TO anon", "anon")]
    [InlineData("GRANT ALL ON TABLE public.\"to\" TO \"Mixed Case\" WITH GRANT OPTION", "Mixed Case")]
    [InlineData("REVOKE ALL ON FUNCTION public.f(integer) FROM PUBLIC", "")]
    [InlineData("ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public GRANT ALL ON TABLES TO postgres", "supabase_admin,postgres")]
    [InlineData("SET SESSION AUTHORIZATION supabase_admin", "supabase_admin")]
    [InlineData("CREATE POLICY \"read own\" ON public.t FOR SELECT TO authenticated, \"Other\" USING ((owner = auth.uid()))", "authenticated,Other")]
    [InlineData("CREATE POLICY p ON public.t USING ((x = 'to anon'))", "")]
    public void Roles_named_by_a_statement_are_found_and_nothing_else(string sql, string expected)
        => Assert.Equal(expected, string.Join(',', MissingRoles.RolesOf(sql)));

    [Fact]
    public void Statements_split_at_top_level_semicolons_only()
    {
        var parts = SqlText.Statements("-- comment; here\nGRANT SELECT ON TABLE public.\"a;b\" TO anon;\nCREATE POLICY p ON t USING ((x = 'a;b'));\n/* c; */ SELECT $x$;$x$;");
        Assert.Equal(new[] { "GRANT SELECT ON TABLE public.\"a;b\" TO anon", "CREATE POLICY p ON t USING ((x = 'a;b'))", "SELECT $x$;$x$" }, parts);
    }

    [Fact]
    public void Only_owner_errors_of_missing_roles_are_forgiven()
    {
        const string owner = "pg_restore: while PROCESSING TOC:\npg_restore: from TOC entry 215; 1259 16390 TABLE users supabase_auth_admin\npg_restore: error: could not execute query: ERROR:  role \"supabase_auth_admin\" does not exist\nCommand was: ALTER TABLE auth.users OWNER TO supabase_auth_admin;\n\npg_restore: warning: errors ignored on restore: 1\n";
        var ok = MissingRoles.AcceptableOwnerErrors(owner, r => r == "supabase_auth_admin");
        Assert.Equal("role supabase_auth_admin", Assert.Single(ok!).Cause);
        Assert.Null(MissingRoles.AcceptableOwnerErrors(owner, r => false));
        const string other = "pg_restore: from TOC entry 9; 0 16390 TABLE DATA users x\npg_restore: error: could not execute query: ERROR:  duplicate key value violates unique constraint\nCommand was: COPY auth.users FROM stdin;\n";
        Assert.Null(MissingRoles.AcceptableOwnerErrors(owner + other, r => true));
    }
}
