using Cairn.Tests.Support;

namespace Cairn.Tests.Supabase;

/// <summary>The fixture itself has the shape the Supabase tests rely on (a fixture that silently lost a part would make them pass for nothing).</summary>
public class SupabaseFixtureTests(SupabaseFixture supa) : IClassFixture<SupabaseFixture>
{
    [Fact]
    public async Task The_project_has_Supabase_s_managed_schemas_roles_settings_trigger_publication_and_policies()
    {
        var db = await supa.CreateProjectAsync();
        var s = supa.Server;
        Assert.False(await s.ScalarAsync<bool>($"SELECT rolsuper FROM pg_roles WHERE rolname = '{SupabaseFixture.Customer}'"));
        Assert.Equal(SupabaseFixture.Customer, await s.ScalarAsync<string>("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'public'", db));
        Assert.Equal(SupabaseFixture.ManagedSchemas.Length, await s.ScalarAsync<long>($"SELECT count(*) FROM pg_namespace WHERE nspowner = 'supabase_admin'::regrole AND nspname = ANY('{{{string.Join(',', SupabaseFixture.ManagedSchemas)}}}')", db));
        Assert.Equal("statement_timeout=3s", await s.ScalarAsync<string>("SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setrole = 'anon'::regrole AND setdatabase = 0"));
        Assert.Equal(1L, await s.ScalarAsync<long>("SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE setrole = 'authenticated'::regrole AND d.datname = current_database()", db));
        Assert.Equal("pgrst_ddl_watch", await s.ScalarAsync<string>("SELECT evtname::text FROM pg_event_trigger", db));
        Assert.Equal("messages", await s.ScalarAsync<string>("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'supabase_realtime'", db));
        Assert.Equal(4L, await s.ScalarAsync<long>("SELECT count(*) FROM pg_policies WHERE coalesce(qual, '') || coalesce(with_check, '') LIKE '%auth.uid()%'", db));
        Assert.Equal(3L, await s.ScalarAsync<long>("SELECT count(*) FROM storage.objects", db));
        Assert.Equal(3L, await s.ScalarAsync<long>("SELECT count(*) FROM public.profiles p JOIN auth.users u USING (id)", db));
        // The customer logs in over TCP with its password and cannot read the secrets, as on Supabase.
        await using var c = await supa.CustomerConnection(db).OpenAsync(default);
        await using var cmd = new Npgsql.NpgsqlCommand("SELECT count(*) FROM vault.secrets", c);
        var e = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => cmd.ExecuteScalarAsync());
        Assert.Equal("42501", e.SqlState);
    }
}
