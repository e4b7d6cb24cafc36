using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>A role a restore created, with what it was given and what it was not given (and why).</summary>
/// <param name="Attributes">Attributes the role was created with (LOGIN, INHERIT, CONNECTION LIMIT 5, SUPERUSER when asked for...).</param>
/// <param name="MemberOf">Roles it was made a member of.</param>
/// <param name="Withheld">What the source role had and this restore did not grant: powerful attributes and
/// memberships in roles the restore did not create (granted only with --with-role-attributes), settings Cairn never restores.</param>
public sealed record CreatedRole(string Name, IReadOnlyList<string> Attributes, IReadOnlyList<string> MemberOf, IReadOnlyList<string> Withheld);

/// <summary>What a restore did to the target's roles. <see cref="Existing"/> roles were left exactly as they were.</summary>
public sealed record RoleReport(List<CreatedRole> Created, List<string> Existing, List<string> Warnings)
{
    public static RoleReport None() => new([], [], []);
}

/// <summary>
/// Creates the roles a backup references on the restore target, building every statement from data
/// (names as quoted identifiers, values as literals, one statement per command). The rules:
/// a role that exists is never changed (no attributes, memberships, settings or comment); a role the backup marks as
/// managed by the platform (a preset) is never created;
/// SUPERUSER, CREATEROLE, CREATEDB, REPLICATION and BYPASSRLS, and memberships in roles this restore did
/// not create (PostgreSQL's predefined pg_* roles included), are granted only when asked for
/// (<c>--with-role-attributes</c>); everything withheld is reported.
/// </summary>
public static partial class RoleRestorer
{
    /// <summary>Settings that would load code or change who the restoring session is: never restored.</summary>
    private static bool NeverRestored(string setting) =>
        setting.Equals("role", StringComparison.OrdinalIgnoreCase) || setting.Equals("session_authorization", StringComparison.OrdinalIgnoreCase)
        || setting.EndsWith("preload_libraries", StringComparison.OrdinalIgnoreCase);

    [GeneratedRegex(@"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)*\z")]
    private static partial Regex SettingName();

    /// <summary>Creates the missing roles, their memberships, cluster-wide settings and comments.</summary>
    public static Task<RoleReport> CreateAsync(NpgsqlConnection c, RoleSet set, bool withAttributes, CancellationToken ct) => CreateAsync(c, set, withAttributes, false, ct);

    /// <param name="createManaged">Create each missing role the platform manages as an empty NOLOGIN role (<c>--create-missing-roles</c>), so
    /// grants, default privileges, policies and ownership naming it can be restored; nothing else of it is (no attributes, memberships or settings).</param>
    public static async Task<RoleReport> CreateAsync(NpgsqlConnection c, RoleSet set, bool withAttributes, bool createManaged, CancellationToken ct)
    {
        var report = RoleReport.None();
        var valid = new List<RoleDefinition>();
        foreach (var role in set.Roles)
        {
            if (!ValidName(role.Name))
            {
                report.Warnings.Add($"role {Catalog.Display(role.Name)} skipped: not a valid role name (1 to 63 bytes, no NUL)");
                continue;
            }
            valid.Add(role);
        }
        int version;
        await using (var v = new NpgsqlCommand("SELECT current_setting('server_version_num')::int", c))
        {
            version = (int)(await v.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
        }
        var existing = await ExistingAsync(c, [.. valid.Select(r => r.Name), .. valid.SelectMany(r => r.MemberOf.Select(m => m.Role)).Where(ValidName)], ct).ConfigureAwait(false);
        var created = new Dictionary<string, (RoleDefinition Role, List<string> Attributes, List<string> Withheld)>(StringComparer.Ordinal);
        foreach (var role in valid)
        {
            if (existing.Contains(role.Name) || created.ContainsKey(role.Name))
            {
                report.Existing.Add(role.Name);
                continue;
            }
            if (role.Managed && createManaged)
            {
                try
                {
                    await Catalog.ExecuteOneAsync(c, $"CREATE ROLE {Catalog.Quote(role.Name)} NOLOGIN", ct).ConfigureAwait(false);
                    report.Created.Add(new CreatedRole(role.Name, ["NOLOGIN"], [], ["everything else: the platform manages this role (--create-missing-roles creates it empty)"]));
                }
                catch (PostgresException e)
                {
                    report.Warnings.Add($"role {Catalog.Display(role.Name)} not created: {e.MessageText}");
                }
                continue;
            }
            if (role.Managed)
            {
                // The platform creates its own roles with attributes and grants a copy could not match; a restore into one of its projects finds them there.
                report.Warnings.Add($"role {Catalog.Display(role.Name)} not created: the platform manages it (preset); restore into a project that has it, or create it first");
                continue;
            }
            var (sql, attributes, withheld) = CreateStatement(role, withAttributes);
            try
            {
                await Catalog.ExecuteOneAsync(c, sql, ct).ConfigureAwait(false);
                created[role.Name] = (role, attributes, withheld);
            }
            catch (PostgresException e)
            {
                report.Warnings.Add($"role {Catalog.Display(role.Name)} not created: {e.MessageText}");
            }
        }
        foreach (var (name, (role, attributes, withheld)) in created)
        {
            var memberOf = new List<string>();
            foreach (var m in role.MemberOf)
            {
                if (!created.ContainsKey(m.Role) && !(withAttributes && existing.Contains(m.Role)))
                {
                    withheld.Add(existing.Contains(m.Role) ? $"membership in {Catalog.Display(m.Role)}" : $"membership in {Catalog.Display(m.Role)} (no such role here)");
                    continue;
                }
                var options = new List<string>();
                if (version >= 160000)
                {
                    options.Add(m.Admin ? "ADMIN TRUE" : "ADMIN FALSE");
                    if (m.Inherit is { } inherit)
                    {
                        options.Add(inherit ? "INHERIT TRUE" : "INHERIT FALSE");
                    }
                    if (m.Set is { } canSet)
                    {
                        options.Add(canSet ? "SET TRUE" : "SET FALSE");
                    }
                }
                else if (m.Inherit == false || m.Set == false)
                {
                    // PostgreSQL 15 and older cannot grant a membership without INHERIT or SET: it would give more than the source had.
                    withheld.Add($"membership in {Catalog.Display(m.Role)} (its INHERIT/SET FALSE options need PostgreSQL 16)");
                    continue;
                }
                else if (m.Admin)
                {
                    options.Add("ADMIN OPTION");
                }
                try
                {
                    await Catalog.ExecuteOneAsync(c, $"GRANT {Catalog.Quote(m.Role)} TO {Catalog.Quote(name)}{(options.Count > 0 ? " WITH " + string.Join(", ", options) : "")}", ct).ConfigureAwait(false);
                    memberOf.Add(m.Role);
                }
                catch (PostgresException e)
                {
                    report.Warnings.Add($"membership of {Catalog.Display(name)} in {Catalog.Display(m.Role)} not granted: {e.MessageText}");
                }
            }
            foreach (var s in role.Settings.Where(s => !s.InDatabase))
            {
                await ApplySettingAsync(c, name, null, s, withheld, report.Warnings, ct).ConfigureAwait(false);
            }
            if (role.Comment is { } comment)
            {
                try
                {
                    await Catalog.ExecuteOneAsync(c, $"COMMENT ON ROLE {Catalog.Quote(name)} IS {Catalog.Literal(comment)}", ct).ConfigureAwait(false);
                }
                catch (PostgresException e)
                {
                    report.Warnings.Add($"comment on role {Catalog.Display(name)} not restored: {e.MessageText}");
                }
            }
            report.Created.Add(new CreatedRole(name, attributes, memberOf, withheld));
        }
        return report;
    }

    /// <summary>Settings that held only in the backed-up database, for the roles this restore created, now in <paramref name="database"/>.</summary>
    public static async Task ApplyDatabaseSettingsAsync(NpgsqlConnection c, RoleSet set, RoleReport report, string database, CancellationToken ct)
    {
        foreach (var created in report.Created.ToList())
        {
            var role = set.Roles.First(r => r.Name == created.Name);
            var withheld = created.Withheld.ToList();
            foreach (var s in role.Settings.Where(s => s.InDatabase))
            {
                await ApplySettingAsync(c, created.Name, database, s, withheld, report.Warnings, ct).ConfigureAwait(false);
            }
            report.Created[report.Created.IndexOf(created)] = created with { Withheld = withheld };
        }
    }

    /// <summary>The CREATE ROLE statement for <paramref name="r"/>, with what it grants and what it withholds.</summary>
    public static (string Sql, List<string> Attributes, List<string> Withheld) CreateStatement(RoleDefinition r, bool withAttributes)
    {
        var attributes = new List<string>();
        var withheld = new List<string>();
        var sql = new StringBuilder("CREATE ROLE ").Append(Catalog.Quote(r.Name)).Append(" WITH");
        void Power(bool has, string yes, string no)
        {
            var grant = has && withAttributes;
            sql.Append(' ').Append(grant ? yes : no);
            if (grant)
            {
                attributes.Add(yes);
            }
            else if (has)
            {
                withheld.Add(yes);
            }
        }
        Power(r.Superuser, "SUPERUSER", "NOSUPERUSER");
        Power(r.CreateRole, "CREATEROLE", "NOCREATEROLE");
        Power(r.CreateDb, "CREATEDB", "NOCREATEDB");
        Power(r.Replication, "REPLICATION", "NOREPLICATION");
        Power(r.BypassRls, "BYPASSRLS", "NOBYPASSRLS");
        attributes.Insert(0, r.Login ? "LOGIN" : "NOLOGIN");
        attributes.Insert(1, r.Inherit ? "INHERIT" : "NOINHERIT");
        sql.Append(r.Login ? " LOGIN" : " NOLOGIN").Append(r.Inherit ? " INHERIT" : " NOINHERIT");
        if (r.ConnectionLimit != -1)
        {
            var limit = r.ConnectionLimit.ToString(CultureInfo.InvariantCulture);
            sql.Append(" CONNECTION LIMIT ").Append(limit);
            attributes.Add("CONNECTION LIMIT " + limit);
        }
        if (r.ValidUntil is { } until)
        {
            sql.Append(" VALID UNTIL ").Append(Catalog.Literal(until));
            attributes.Add("VALID UNTIL " + until);
        }
        if (r.Password is { } password)
        {
            sql.Append(" PASSWORD ").Append(Catalog.Literal(password));
            attributes.Add("PASSWORD (hash from the backup)");
        }
        return (sql.ToString(), attributes, withheld);
    }

    private static async Task ApplySettingAsync(NpgsqlConnection c, string role, string? database, RoleSetting s, List<string> withheld, List<string> warnings, CancellationToken ct)
    {
        if (NeverRestored(s.Name) || !SettingName().IsMatch(s.Name))
        {
            withheld.Add($"setting {Catalog.Display(s.Name)}");
            return;
        }
        // The server itself turns the stored text back into a value (lists such as search_path included):
        // set it for this transaction only, then store the current value for the role.
        var name = string.Join('.', s.Name.Split('.').Select(Catalog.Quote));
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        try
        {
            await using (var set = new NpgsqlCommand("SELECT set_config(@n, @v, true)", c, tx))
            {
                set.Parameters.AddWithValue("n", s.Name);
                set.Parameters.AddWithValue("v", s.Value);
                await set.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            await Catalog.ExecuteOneAsync(c, $"ALTER ROLE {Catalog.Quote(role)}{(database is null ? "" : " IN DATABASE " + Catalog.Quote(database))} SET {name} FROM CURRENT", tx, ct).ConfigureAwait(false);
            await tx.CommitAsync(ct).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            await tx.RollbackAsync(ct).ConfigureAwait(false);
            warnings.Add($"setting {Catalog.Display(s.Name)} of role {Catalog.Display(role)} not restored: {e.MessageText}");
        }
    }

    private static bool ValidName(string name) => name.Length > 0 && !name.Contains('\0', StringComparison.Ordinal) && Encoding.UTF8.GetByteCount(name) <= 63;

    private static async Task<HashSet<string>> ExistingAsync(NpgsqlConnection c, IEnumerable<string> names, CancellationToken ct)
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        await using var cmd = new NpgsqlCommand("SELECT rolname::text FROM pg_roles WHERE rolname = ANY(@names)", c);
        cmd.Parameters.AddWithValue("names", names.Distinct().ToArray());
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add(r.GetString(0));
        }
        return result;
    }
}
