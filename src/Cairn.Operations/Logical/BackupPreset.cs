namespace Cairn.Operations.Logical;

/// <summary>What a logical backup does with one schema.</summary>
public enum SchemaChoice
{
    /// <summary>Definitions and data.</summary>
    Full,

    /// <summary>The rows are the customer's, the definitions the platform's: backed up (with definitions, so a plain PostgreSQL can hold the rows), marked data-only.</summary>
    DataOnly,

    /// <summary>Not in the backup (pg_dump --exclude-schema; no fingerprint).</summary>
    Skipped,
}

/// <summary>One schema's choice and why (shown by <c>cairn backup --dry-run</c>).</summary>
public sealed record SchemaDecision(string Schema, SchemaChoice Choice, string Reason);

/// <summary>Which roles a backup stores: those the database references, every role, or the referenced ones plus a list.</summary>
public sealed record RoleSelection(bool All, IReadOnlyList<string> Extra)
{
    public static RoleSelection Referenced { get; } = new(false, []);

    public static RoleSelection Everyone { get; } = new(true, []);

    public override string ToString() => All ? "all" : Extra.Count == 0 ? "referenced" : $"referenced + {string.Join(", ", Extra)}";
}

/// <summary>
/// A named set of choices for a managed platform's database (<c>preset:</c> in cairn.yaml). Schemas it does not
/// name are the customer's and are backed up in full.
/// </summary>
public sealed record BackupPreset(string Name, IReadOnlyDictionary<string, (SchemaChoice Choice, string Reason)> Schemas, IReadOnlyList<string> ManagedRoles)
{
    public static IReadOnlyList<string> Names => ["supabase"];

    public static BackupPreset? Find(string name) => name == "supabase" ? Supabase : null;

    /// <summary>
    /// Supabase, after what <c>supabase db dump</c> leaves out and what a project recreates by itself. The reasons
    /// are the documentation (README "Supabase").
    /// </summary>
    public static BackupPreset Supabase { get; } = new("supabase", new Dictionary<string, (SchemaChoice, string)>(StringComparer.Ordinal)
    {
        ["public"] = (SchemaChoice.Full, "the app's own tables, functions and policies"),
        ["supabase_migrations"] = (SchemaChoice.Full, "the project's migration history (supabase db push reads it)"),
        ["extensions"] = (SchemaChoice.Full, "where the project's extensions live; CREATE EXTENSION needs the schema"),
        ["auth"] = (SchemaChoice.DataOnly, "users, identities and sessions are the app's data; the tables belong to Supabase Auth, which creates and migrates them"),
        ["storage"] = (SchemaChoice.DataOnly, "bucket and object rows are the app's data (the files themselves live in Storage, not in the database); the tables belong to Supabase Storage"),
        ["realtime"] = (SchemaChoice.Skipped, "Supabase Realtime's internals (subscriptions, its migrations); recreated by the project, skipped by supabase db dump"),
        ["_realtime"] = (SchemaChoice.Skipped, "Supabase Realtime's tenant settings; platform internals"),
        ["supabase_functions"] = (SchemaChoice.Skipped, "database webhooks' internals and migrations; recreated by the project"),
        ["graphql"] = (SchemaChoice.Skipped, "pg_graphql's schema; the extension recreates it"),
        ["graphql_public"] = (SchemaChoice.Skipped, "pg_graphql's entry point; the extension recreates it"),
        ["pgsodium"] = (SchemaChoice.Skipped, "encryption keys' metadata; the root key lives outside the database, so a copy could not decrypt anything (and the customer role cannot read it)"),
        ["pgsodium_masks"] = (SchemaChoice.Skipped, "pgsodium's generated views; recreated by the extension"),
        ["vault"] = (SchemaChoice.Skipped, "secrets encrypted with pgsodium's root key, which no backup holds; keep secrets' sources elsewhere (the customer role cannot read them)"),
        ["net"] = (SchemaChoice.Skipped, "pg_net's request queue; transient"),
        ["cron"] = (SchemaChoice.Skipped, "pg_cron's schema; the extension recreates it (its jobs are dumped with the extension's configuration tables)"),
        ["pgbouncer"] = (SchemaChoice.Skipped, "the pooler's auth function; platform internals"),
        ["_analytics"] = (SchemaChoice.Skipped, "Supabase's log analytics internals"),
        ["pgtle"] = (SchemaChoice.Skipped, "pg_tle's internals; the extension recreates them"),
        ["_supavisor"] = (SchemaChoice.Skipped, "the pooler's internals"),
    }, [
        "supabase_admin", "supabase_auth_admin", "supabase_storage_admin", "supabase_realtime_admin", "supabase_replication_admin",
        "supabase_read_only_user", "supabase_functions_admin", "supabase_etl_admin", "supabase_privileged_role", "dashboard_user",
        "pgbouncer", "pgsodium_keyholder", "pgsodium_keyiduser", "pgsodium_keymaker", "authenticator", "anon", "authenticated", "service_role", "postgres", "pgtle_admin",
    ]);
}

/// <summary>Turns a database's schemas and its configuration (preset, include_schemas, exclude_schemas) into one decision per schema.</summary>
public static class SchemaPlanner
{
    public static IReadOnlyList<SchemaDecision> Plan(IEnumerable<string> schemas, BackupPreset? preset, IReadOnlyList<string> include, IReadOnlyList<string> exclude)
    {
        var list = new List<SchemaDecision>();
        foreach (var s in schemas.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            if (exclude.Contains(s, StringComparer.Ordinal))
            {
                list.Add(new SchemaDecision(s, SchemaChoice.Skipped, "exclude_schemas"));
            }
            else if (include.Contains(s, StringComparer.Ordinal))
            {
                list.Add(new SchemaDecision(s, SchemaChoice.Full, "include_schemas"));
            }
            else if (preset is not null && preset.Schemas.TryGetValue(s, out var d))
            {
                list.Add(new SchemaDecision(s, d.Choice, d.Reason));
            }
            else
            {
                list.Add(new SchemaDecision(s, SchemaChoice.Full, preset is null ? "every schema is backed up" : "not managed by " + preset.Name + ": the customer's own"));
            }
        }
        return list;
    }
}
