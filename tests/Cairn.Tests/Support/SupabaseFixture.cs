using System.Globalization;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Servers;

namespace Cairn.Tests.Support;

/// <summary>
/// A Supabase-like server for the tests of one class: a scratch server (TCP on 127.0.0.1, SCRAM passwords) with
/// Supabase's cluster roles, and <see cref="CreateProjectAsync"/> building a project database the way Supabase's
/// init scripts shape one: managed schemas owned by <c>supabase_admin</c> (auth, storage, realtime, extensions,
/// graphql, graphql_public, vault, pgsodium, supabase_functions), their tables owned by the service roles, the API
/// roles with <c>ALTER ROLE … SET</c>, an event trigger, the <c>supabase_realtime</c> publication, RLS policies
/// calling <c>auth.uid()</c>, storage buckets and objects, auth.users and public.profiles. The customer's role is
/// <see cref="Customer"/> (Supabase's <c>postgres</c>; here <c>postgres</c> is the scratch superuser): LOGIN,
/// CREATEROLE, CREATEDB, BYPASSRLS, no superuser, owner of the database and of public, no access to vault and
/// pgsodium — so a backup that tries to read every schema fails there, as it does on Supabase.
/// Roles are cluster-wide: a class that changes roles takes its own fixture (IClassFixture does).
/// </summary>
public sealed class SupabaseFixture : IAsyncLifetime
{
    public const string Customer = "customer_admin";

    /// <summary>The managed roles the fixture creates (Supabase's names).</summary>
    public static readonly string[] ManagedRoles =
    [
        "supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "supabase_realtime_admin", "supabase_functions_admin",
        "dashboard_user", "pgsodium_keyholder", "anon", "authenticated", "service_role", "authenticator",
    ];

    /// <summary>The schemas Supabase manages, owned by supabase_admin here as there.</summary>
    public static readonly string[] ManagedSchemas = ["auth", "storage", "realtime", "extensions", "graphql", "graphql_public", "vault", "pgsodium", "supabase_functions"];

    private readonly TempDir _dir = new("supa");
    private int _counter;

    public ScratchServer Server { get; private set; } = null!;

    /// <summary>A 0600 file holding <see cref="Customer"/>'s password (password_file in cairn.yaml).</summary>
    public string PasswordFile => _dir.File("customer.pw");

    /// <summary>The password of <see cref="Customer"/> and of authenticator (test-only, random per run).</summary>
    public string Password { get; } = "pw-" + Guid.NewGuid().ToString("N")[..16];

    /// <summary>The TCP URL of <paramref name="database"/> as the customer role, without the password (it is in <see cref="PasswordFile"/>).</summary>
    public string CustomerUrl(string database, int? port = null, string host = "127.0.0.1")
        => $"postgresql://{Customer}@{host}:{(port ?? Server.Port).ToString(CultureInfo.InvariantCulture)}/{Uri.EscapeDataString(database)}?sslmode=disable";

    public PgConnection CustomerConnection(string database, int? port = null) => PgConnection.Parse(CustomerUrl(database, port), PasswordFile);

    public async Task InitializeAsync()
    {
        File.WriteAllText(PasswordFile, Password + "\n");
        File.SetUnixFileMode(PasswordFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                Server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["listen_addresses"] = "'127.0.0.1'", ["max_connections"] = "60" });
                break;
            }
            catch (Cairn.PostgreSql.PgToolException e) when (attempt < 3 && (e.Message.Contains("already in use", StringComparison.Ordinal) || e.Message.Contains("could not bind", StringComparison.Ordinal)))
            {
            }
        }
        await Server.ExecuteAsync(RolesSql(Password));
    }

    public async Task DisposeAsync()
    {
        await Server.DisposeAsync();
        _dir.Dispose();
    }

    /// <summary>
    /// A new project database (unique name) owned by the customer, with the managed schemas, their objects and
    /// a small app: 3 users, 3 profiles, 2 buckets, 3 storage objects, 5 messages.
    /// </summary>
    public async Task<string> CreateProjectAsync(string prefix = "supa")
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _counter)}_{Environment.ProcessId % 1000}";
        await Server.ExecuteAsync($"CREATE DATABASE \"{name}\" OWNER {Customer}");
        await Server.ExecuteAsync(ProjectSql(name), name);
        return name;
    }

    /// <summary>Cluster roles as Supabase's init scripts create them (attributes, memberships, settings, comments).</summary>
    public static string RolesSql(string password) => $"""
        CREATE ROLE supabase_admin SUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS NOLOGIN;
        CREATE ROLE supabase_auth_admin NOINHERIT CREATEROLE LOGIN NOREPLICATION;
        CREATE ROLE supabase_storage_admin NOINHERIT CREATEROLE LOGIN NOREPLICATION;
        CREATE ROLE supabase_realtime_admin NOINHERIT NOLOGIN;
        CREATE ROLE supabase_functions_admin NOINHERIT CREATEROLE LOGIN;
        CREATE ROLE dashboard_user CREATEROLE CREATEDB REPLICATION NOLOGIN;
        CREATE ROLE pgsodium_keyholder NOLOGIN;
        CREATE ROLE anon NOLOGIN NOINHERIT;
        CREATE ROLE authenticated NOLOGIN NOINHERIT;
        CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
        CREATE ROLE authenticator LOGIN NOINHERIT PASSWORD '{password}';
        GRANT anon, authenticated, service_role TO authenticator;
        ALTER ROLE anon SET statement_timeout TO '3s';
        ALTER ROLE authenticated SET statement_timeout TO '8s';
        ALTER ROLE authenticator SET statement_timeout TO '8s';
        ALTER ROLE authenticator SET lock_timeout TO '8s';
        ALTER ROLE supabase_auth_admin SET search_path TO auth;
        ALTER ROLE supabase_auth_admin SET idle_in_transaction_session_timeout TO 60000;
        ALTER ROLE supabase_storage_admin SET search_path TO storage;
        COMMENT ON ROLE authenticator IS 'PostgREST logs in as this role';
        CREATE ROLE {Customer} LOGIN CREATEROLE CREATEDB BYPASSRLS NOSUPERUSER PASSWORD '{password}';
        GRANT anon, authenticated, service_role TO {Customer} WITH ADMIN OPTION;
        GRANT authenticator TO {Customer};
        GRANT supabase_auth_admin, supabase_storage_admin TO {Customer};
        COMMENT ON ROLE {Customer} IS 'the customer''s own superuser-like role';
        -- The customer's own roles: one that owns objects, one that only logs in (no object references it).
        CREATE ROLE app_reporter NOLOGIN;
        COMMENT ON ROLE app_reporter IS 'reads the dashboards';
        ALTER ROLE app_reporter SET work_mem TO '16MB';
        CREATE ROLE app_worker LOGIN NOINHERIT CONNECTION LIMIT 4;
        GRANT app_reporter TO app_worker;
        ALTER ROLE app_worker SET search_path TO public, extensions;
        ALTER ROLE app_worker SET statement_timeout TO '30s';
        """;

    /// <summary>The project database's objects, run as the scratch superuser in <paramref name="database"/>.</summary>
    public static string ProjectSql(string database) => $$"""
        ALTER ROLE authenticated IN DATABASE "{{database}}" SET search_path TO public, extensions;
        ALTER ROLE app_reporter IN DATABASE "{{database}}" SET statement_timeout TO '45s';
        ALTER SCHEMA public OWNER TO {{Customer}};

        CREATE SCHEMA extensions AUTHORIZATION supabase_admin;
        CREATE EXTENSION pgcrypto WITH SCHEMA extensions;
        CREATE EXTENSION "uuid-ossp" WITH SCHEMA extensions;
        GRANT USAGE ON SCHEMA extensions TO {{Customer}}, anon, authenticated, service_role;

        CREATE SCHEMA auth AUTHORIZATION supabase_admin;
        GRANT ALL ON SCHEMA auth TO supabase_auth_admin;
        CREATE TABLE auth.users (id uuid PRIMARY KEY, email text UNIQUE, raw_user_meta_data jsonb NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE auth.schema_migrations (version text PRIMARY KEY);
        CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$;
        CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('request.jwt.claim.role', true), '')::text $$;
        CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$;
        ALTER TABLE auth.users OWNER TO supabase_auth_admin;
        ALTER TABLE auth.schema_migrations OWNER TO supabase_auth_admin;
        ALTER FUNCTION auth.uid() OWNER TO supabase_auth_admin;
        ALTER FUNCTION auth.role() OWNER TO supabase_auth_admin;
        ALTER FUNCTION auth.jwt() OWNER TO supabase_auth_admin;
        GRANT USAGE ON SCHEMA auth TO {{Customer}}, anon, authenticated, service_role, dashboard_user;
        GRANT ALL ON ALL TABLES IN SCHEMA auth TO {{Customer}}, dashboard_user;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO anon, authenticated, service_role;
        INSERT INTO auth.schema_migrations VALUES ('20221208132122'), ('20230131181311');
        INSERT INTO auth.users (id, email) VALUES
          ('00000000-0000-0000-0000-000000000001', 'ada@example.com'),
          ('00000000-0000-0000-0000-000000000002', 'grace@example.com'),
          ('00000000-0000-0000-0000-000000000003', 'edsger@example.com');

        CREATE SCHEMA storage AUTHORIZATION supabase_admin;
        GRANT ALL ON SCHEMA storage TO supabase_storage_admin;
        CREATE TABLE storage.buckets (id text PRIMARY KEY, name text NOT NULL UNIQUE, owner uuid, public boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE storage.objects (id uuid PRIMARY KEY DEFAULT extensions.gen_random_uuid(), bucket_id text REFERENCES storage.buckets (id), name text NOT NULL,
          owner uuid, metadata jsonb, created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (bucket_id, name));
        CREATE TABLE storage.migrations (id integer PRIMARY KEY, name text NOT NULL UNIQUE, executed_at timestamptz DEFAULT now());
        ALTER TABLE storage.buckets OWNER TO supabase_storage_admin;
        ALTER TABLE storage.objects OWNER TO supabase_storage_admin;
        ALTER TABLE storage.migrations OWNER TO supabase_storage_admin;
        ALTER TABLE storage.objects ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "owners read their files" ON storage.objects FOR SELECT TO authenticated USING (owner = auth.uid());
        GRANT USAGE ON SCHEMA storage TO {{Customer}}, anon, authenticated, service_role, dashboard_user;
        GRANT ALL ON ALL TABLES IN SCHEMA storage TO {{Customer}}, service_role, dashboard_user;
        GRANT SELECT ON storage.objects, storage.buckets TO anon, authenticated;
        INSERT INTO storage.migrations (id, name) VALUES (0, 'create-migrations-table'), (1, 'initialmigration');
        INSERT INTO storage.buckets (id, name, public) VALUES ('avatars', 'avatars', true), ('invoices', 'invoices', false);
        INSERT INTO storage.objects (bucket_id, name, owner, metadata) VALUES
          ('avatars', 'ada.png', '00000000-0000-0000-0000-000000000001', '{"size": 5}'),
          ('avatars', 'grace.png', '00000000-0000-0000-0000-000000000002', '{"size": 7}'),
          ('invoices', '2026/11/0001.pdf', '00000000-0000-0000-0000-000000000001', '{"size": 11}');

        CREATE SCHEMA realtime AUTHORIZATION supabase_admin;
        GRANT ALL ON SCHEMA realtime TO supabase_realtime_admin;
        CREATE TABLE realtime.schema_migrations (version bigint PRIMARY KEY, inserted_at timestamp);
        CREATE TABLE realtime.subscription (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, subscription_id uuid NOT NULL, entity regclass NOT NULL, created_at timestamp NOT NULL DEFAULT now());
        ALTER TABLE realtime.schema_migrations OWNER TO supabase_realtime_admin;
        ALTER TABLE realtime.subscription OWNER TO supabase_realtime_admin;
        GRANT USAGE ON SCHEMA realtime TO {{Customer}}, anon, authenticated, service_role;
        GRANT SELECT ON ALL TABLES IN SCHEMA realtime TO {{Customer}};
        INSERT INTO realtime.schema_migrations VALUES (20211116024918, now());

        CREATE SCHEMA graphql AUTHORIZATION supabase_admin;
        CREATE SCHEMA graphql_public AUTHORIZATION supabase_admin;
        CREATE FUNCTION graphql.resolve(query text) RETURNS jsonb LANGUAGE sql AS $$ SELECT jsonb_build_object('query', query) $$;
        CREATE FUNCTION graphql_public.graphql(query text) RETURNS jsonb LANGUAGE sql AS $$ SELECT graphql.resolve(query) $$;
        GRANT USAGE ON SCHEMA graphql_public TO {{Customer}}, anon, authenticated, service_role;
        GRANT USAGE ON SCHEMA graphql TO {{Customer}}, anon, authenticated, service_role;

        CREATE SCHEMA supabase_functions AUTHORIZATION supabase_admin;
        GRANT ALL ON SCHEMA supabase_functions TO supabase_functions_admin;
        CREATE TABLE supabase_functions.migrations (version text PRIMARY KEY, inserted_at timestamptz NOT NULL DEFAULT now());
        CREATE TABLE supabase_functions.hooks (id bigserial PRIMARY KEY, hook_table_id integer NOT NULL, hook_name text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        ALTER TABLE supabase_functions.migrations OWNER TO supabase_functions_admin;
        ALTER TABLE supabase_functions.hooks OWNER TO supabase_functions_admin;
        INSERT INTO supabase_functions.migrations (version) VALUES ('initial');
        GRANT USAGE ON SCHEMA supabase_functions TO {{Customer}};
        GRANT SELECT ON ALL TABLES IN SCHEMA supabase_functions TO {{Customer}};

        -- Secrets: the customer role cannot read these (no USAGE), as on Supabase.
        CREATE SCHEMA pgsodium AUTHORIZATION supabase_admin;
        CREATE TABLE pgsodium.key (id uuid PRIMARY KEY, name text, raw_key bytea);
        INSERT INTO pgsodium.key VALUES ('00000000-0000-0000-0000-0000000000aa', 'default', '\x00');
        CREATE SCHEMA vault AUTHORIZATION supabase_admin;
        CREATE TABLE vault.secrets (id uuid PRIMARY KEY, name text UNIQUE, secret text NOT NULL, key_id uuid REFERENCES pgsodium.key (id));
        INSERT INTO vault.secrets VALUES ('00000000-0000-0000-0000-0000000000bb', 'stripe', 'encrypted-bytes', '00000000-0000-0000-0000-0000000000aa');

        -- Supabase's DDL watchers are event triggers owned by supabase_admin.
        CREATE FUNCTION extensions.pgrst_ddl_watch() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NOTIFY pgrst, 'reload schema'; END $$;
        ALTER FUNCTION extensions.pgrst_ddl_watch() OWNER TO supabase_admin;
        CREATE EVENT TRIGGER pgrst_ddl_watch ON ddl_command_end EXECUTE FUNCTION extensions.pgrst_ddl_watch();
        ALTER EVENT TRIGGER pgrst_ddl_watch OWNER TO supabase_admin;

        -- The customer's app, in public, owned by the customer.
        SET ROLE {{Customer}};
        CREATE TABLE public.profiles (id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE, username text UNIQUE, avatar_url text, updated_at timestamptz DEFAULT now());
        ALTER TABLE public.profiles ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "profiles are public" ON public.profiles FOR SELECT TO anon, authenticated USING (true);
        CREATE POLICY "users update their own profile" ON public.profiles FOR UPDATE TO authenticated USING (auth.uid() = id);
        CREATE POLICY "users insert their own profile" ON public.profiles FOR INSERT TO authenticated WITH CHECK (auth.uid() = id);
        CREATE TABLE public.messages (id bigserial PRIMARY KEY, profile_id uuid NOT NULL REFERENCES public.profiles (id), body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
        ALTER TABLE public.messages ENABLE ROW LEVEL SECURITY;
        CREATE POLICY "read own messages" ON public.messages FOR SELECT TO authenticated USING ((SELECT auth.uid()) = profile_id);
        GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
        GRANT ALL ON ALL TABLES IN SCHEMA public TO anon, authenticated, service_role;
        GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO anon, authenticated, service_role;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
        GRANT SELECT ON public.profiles, public.messages TO app_reporter;
        INSERT INTO public.profiles (id, username) VALUES
          ('00000000-0000-0000-0000-000000000001', 'ada'),
          ('00000000-0000-0000-0000-000000000002', 'grace'),
          ('00000000-0000-0000-0000-000000000003', 'edsger');
        INSERT INTO public.messages (profile_id, body) SELECT id, 'hello from ' || username FROM public.profiles;
        INSERT INTO public.messages (profile_id, body) VALUES ('00000000-0000-0000-0000-000000000001', 'second'), ('00000000-0000-0000-0000-000000000002', 'third');
        CREATE SCHEMA supabase_migrations;
        CREATE TABLE supabase_migrations.schema_migrations (version text PRIMARY KEY, statements text[], name text);
        INSERT INTO supabase_migrations.schema_migrations VALUES ('20261101000000', ARRAY['create table profiles'], 'profiles');
        RESET ROLE;

        CREATE PUBLICATION supabase_realtime;
        ALTER PUBLICATION supabase_realtime OWNER TO {{Customer}};
        ALTER PUBLICATION supabase_realtime ADD TABLE public.messages;
        """;
}
