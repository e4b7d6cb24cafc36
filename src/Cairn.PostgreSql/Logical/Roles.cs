using System.Text.Json;
using System.Text.Json.Serialization;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>
/// The roles a database references, stored as data (the backup's <c>roles.json</c>), never as SQL: a
/// restore builds each statement itself, quoting every name and value (<see cref="RoleRestorer"/>).
/// </summary>
public sealed record RoleSet
{
    public int Version { get; init; } = 1;

    public List<RoleDefinition> Roles { get; init; } = [];

    public static RoleSet Empty { get; } = new();

    public byte[] ToJson() => JsonSerializer.SerializeToUtf8Bytes(this, RolesJson.Default.RoleSet);

    /// <summary>Reads roles.json; a damaged or foreign file is a <see cref="PgToolException"/> naming the item.</summary>
    public static RoleSet FromJson(ReadOnlySpan<byte> json)
    {
        try
        {
            var set = JsonSerializer.Deserialize(json, RolesJson.Default.RoleSet) ?? throw new JsonException("empty document");
            if (set.Version != 1)
            {
                throw new PgToolException($"roles.json has version {set.Version}; this Cairn reads version 1 (upgrade Cairn, or restore with --no-owner)");
            }
            // Every name the restore quotes into a statement must be there: JSON null is not an empty name.
            if (set.Roles is null || set.Roles.Any(r => r is null || r.Name is null || r.MemberOf is null || r.Settings is null
                || r.MemberOf.Any(m => m is null || m.Role is null) || r.Settings.Any(s => s is null || s.Name is null || s.Value is null)))
            {
                throw new JsonException("a role, its name, a membership or a setting is null");
            }
            return set;
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new PgToolException($"the backup's roles.json is not valid ({e.Message}); restore with --no-owner to skip roles", e);
        }
    }
}

/// <summary>One role as the source server had it. <see cref="Password"/> is a hash, present only with --with-role-passwords.</summary>
public sealed record RoleDefinition
{
    public string Name { get; init; } = "";
    public bool Superuser { get; init; }
    public bool Inherit { get; init; } = true;
    public bool CreateRole { get; init; }
    public bool CreateDb { get; init; }
    public bool Login { get; init; }
    public bool Replication { get; init; }
    public bool BypassRls { get; init; }
    public int ConnectionLimit { get; init; } = -1;

    /// <summary>rolvaliduntil as the server printed it (it may be 'infinity').</summary>
    public string? ValidUntil { get; init; }

    public string? Password { get; init; }

    /// <summary>The platform manages this role (a preset said so): captured, never created or altered by a restore.</summary>
    public bool Managed { get; init; }
    public string? Comment { get; init; }
    public List<RoleMembership> MemberOf { get; init; } = [];
    public List<RoleSetting> Settings { get; init; } = [];
}

/// <summary>Membership in another role. <see cref="Inherit"/> and <see cref="Set"/> exist from PostgreSQL 16 on (null before).</summary>
public sealed record RoleMembership(string Role, bool Admin = false, bool? Inherit = null, bool? Set = null);

/// <summary>A per-role setting (ALTER ROLE ... SET); <see cref="InDatabase"/> when it held only in the backed-up database.</summary>
public sealed record RoleSetting(string Name, string Value, bool InDatabase = false);

/// <summary>
/// Which roles a backup stores: those the database references (and their memberships' roles), plus every role when
/// <paramref name="All"/>, plus <paramref name="Extra"/> by name (a role that owns nothing but logs in, e.g. authenticator).
/// <paramref name="Managed"/> roles are stored marked as managed.
/// </summary>
public sealed record RoleScope(bool All, IReadOnlyList<string> Extra, IReadOnlyList<string> Managed)
{
    public static RoleScope Referenced { get; } = new(false, [], []);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RoleSet))]
internal sealed partial class RolesJson : JsonSerializerContext;

/// <summary>Reads the roles a database references from the catalogs.</summary>
public static class RoleCatalog
{
    /// <summary>
    /// The roles the current database references (owners, grantees, policy roles, default privileges,
    /// the database owner) and, recursively, the roles they are members of; PostgreSQL's predefined
    /// pg_* roles appear only as memberships. Password hashes only when <paramref name="withPasswords"/>
    /// (needs superuser: pg_authid).
    /// </summary>
    public static Task<RoleSet> ReadAsync(NpgsqlConnection c, bool withPasswords, CancellationToken ct) => ReadAsync(c, withPasswords, RoleScope.Referenced, ct);

    public static async Task<RoleSet> ReadAsync(NpgsqlConnection c, bool withPasswords, RoleScope scope, CancellationToken ct)
    {
        int version;
        await using (var v = new NpgsqlCommand("SELECT current_setting('server_version_num')::int", c))
        {
            version = (int)(await v.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        }
        var sql = $$"""
            WITH RECURSIVE refs(oid) AS (
              SELECT relowner FROM pg_class UNION SELECT nspowner FROM pg_namespace
              UNION SELECT proowner FROM pg_proc UNION SELECT typowner FROM pg_type
              UNION SELECT (aclexplode(relacl)).grantee FROM pg_class WHERE relacl IS NOT NULL
              UNION SELECT (aclexplode(attacl)).grantee FROM pg_attribute WHERE attacl IS NOT NULL
              UNION SELECT (aclexplode(nspacl)).grantee FROM pg_namespace WHERE nspacl IS NOT NULL
              UNION SELECT (aclexplode(proacl)).grantee FROM pg_proc WHERE proacl IS NOT NULL
              UNION SELECT (aclexplode(typacl)).grantee FROM pg_type WHERE typacl IS NOT NULL
              UNION SELECT unnest(polroles) FROM pg_policy
              UNION SELECT datdba FROM pg_database WHERE datname = current_database()
              UNION SELECT defaclrole FROM pg_default_acl
              UNION SELECT (aclexplode(defaclacl)).grantee FROM pg_default_acl
              UNION SELECT oid FROM pg_roles WHERE @all OR rolname = ANY(@extra)
            ), closure(oid) AS (
              SELECT oid FROM refs
              UNION SELECT m.roleid FROM pg_auth_members m JOIN closure c ON m.member = c.oid
            )
            SELECT r.oid, r.rolname::text, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin, r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                   r.rolvaliduntil::text, shobj_description(r.oid, 'pg_authid'),
                   {{(withPasswords ? "(SELECT rolpassword FROM pg_authid a WHERE a.oid = r.oid)" : "NULL::text")}}
            FROM pg_roles r WHERE r.oid IN (SELECT oid FROM closure) AND r.rolname !~ '^pg_'
            ORDER BY r.rolname
            """;
        var roles = new Dictionary<uint, RoleDefinition>();
        await using (var cmd = new NpgsqlCommand(sql, c))
        {
            cmd.Parameters.AddWithValue("all", scope.All);
            cmd.Parameters.AddWithValue("extra", scope.Extra.ToArray());
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                roles[r.GetFieldValue<uint>(0)] = new RoleDefinition
                {
                    Name = r.GetString(1),
                    Superuser = r.GetBoolean(2),
                    Inherit = r.GetBoolean(3),
                    CreateRole = r.GetBoolean(4),
                    CreateDb = r.GetBoolean(5),
                    Login = r.GetBoolean(6),
                    Replication = r.GetBoolean(7),
                    BypassRls = r.GetBoolean(8),
                    ConnectionLimit = r.GetInt32(9),
                    ValidUntil = r.IsDBNull(10) ? null : r.GetString(10),
                    Comment = r.IsDBNull(11) ? null : r.GetString(11),
                    Password = r.IsDBNull(12) ? null : r.GetString(12),
                    Managed = scope.Managed.Contains(r.GetString(1), StringComparer.Ordinal),
                };
            }
        }
        var oids = roles.Keys.ToArray();
        var options = version >= 160000 ? "bool_or(m.inherit_option), bool_or(m.set_option)" : "NULL::bool, NULL::bool";
        await using (var cmd = new NpgsqlCommand($"SELECT m.member, g.rolname::text, bool_or(m.admin_option), {options} FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = ANY(@oids) GROUP BY m.member, g.rolname ORDER BY 2", c))
        {
            cmd.Parameters.Add(new NpgsqlParameter("oids", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid) { Value = oids });
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                roles[r.GetFieldValue<uint>(0)].MemberOf.Add(new RoleMembership(r.GetString(1), r.GetBoolean(2), r.IsDBNull(3) ? null : r.GetBoolean(3), r.IsDBNull(4) ? null : r.GetBoolean(4)));
            }
        }
        await using (var cmd = new NpgsqlCommand(
            "SELECT s.setrole, s.setdatabase <> 0, unnest(s.setconfig) FROM pg_db_role_setting s WHERE s.setrole = ANY(@oids) AND s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) ORDER BY 1, 2", c))
        {
            cmd.Parameters.Add(new NpgsqlParameter("oids", NpgsqlTypes.NpgsqlDbType.Array | NpgsqlTypes.NpgsqlDbType.Oid) { Value = oids });
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var text = r.GetString(2);
                var eq = text.IndexOf('=', StringComparison.Ordinal);
                if (eq > 0)
                {
                    roles[r.GetFieldValue<uint>(0)].Settings.Add(new RoleSetting(text[..eq], text[(eq + 1)..], r.GetBoolean(1)));
                }
            }
        }
        return new RoleSet { Roles = [.. roles.Values.OrderBy(x => x.Name, StringComparer.Ordinal)] };
    }
}
