using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>A table whose restored rows differ from the fingerprint.</summary>
public sealed record CountMismatch(string Table, long Expected, long? Actual, string What);

/// <summary>Restores a pg_dump directory into a new database and checks it against the fingerprint.</summary>
public static class LogicalRestorer
{
    /// <summary>Number of user tables in a database, or null when it does not exist.</summary>
    public static async Task<long?> UserTableCountAsync(PgConnection server, string database, CancellationToken ct)
    {
        await using (var c = await server.WithDatabase(MaintenanceDb(server)).OpenAsync(ct).ConfigureAwait(false))
        await using (var cmd = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @d", c))
        {
            cmd.Parameters.AddWithValue("d", database);
            if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is null)
            {
                return null;
            }
        }
        await using var db = await server.WithDatabase(database).OpenAsync(ct).ConfigureAwait(false);
        await using var count = new NpgsqlCommand("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%'", db);
        return (long)(await count.ExecuteScalarAsync(ct).ConfigureAwait(false))!;
    }

    /// <summary>
    /// Creates the referenced roles (<see cref="RoleRestorer"/>: nothing powerful unless <paramref name="withRoleAttributes"/>)
    /// and the database. An existing database is dropped and replaced only with <paramref name="clean"/>, even when
    /// it holds no tables: the only database a restore writes into without --clean is the one it has just created
    /// (CREATE DATABASE fails if another appeared meanwhile).
    /// </summary>
    public static Task<RoleReport> PrepareDatabaseAsync(PgConnection server, string database, Fingerprint fingerprint, RoleSet? roles, bool withRoleAttributes, bool clean, CancellationToken ct)
        => PrepareDatabaseAsync(server, database, fingerprint, roles, withRoleAttributes, clean, false, ct);

    /// <param name="createMissingRoles">Create the platform's missing roles empty and NOLOGIN (<see cref="RoleRestorer.CreateAsync(NpgsqlConnection, RoleSet, bool, bool, CancellationToken)"/>).</param>
    public static async Task<RoleReport> PrepareDatabaseAsync(PgConnection server, string database, Fingerprint fingerprint, RoleSet? roles, bool withRoleAttributes, bool clean, bool createMissingRoles, CancellationToken ct)
    {
        var existing = await UserTableCountAsync(server, database, ct).ConfigureAwait(false);
        if (existing is not null && !clean)
        {
            throw new PgToolException($"database {database} already exists on {server.Redacted} ({(existing > 0 ? $"it holds {existing} relation(s)" : "it holds no tables, but may hold other objects")}); choose another --to-database, or pass --clean to drop and replace it");
        }
        await using var c = await server.WithDatabase(MaintenanceDb(server)).OpenAsync(ct).ConfigureAwait(false);
        var report = roles is null ? RoleReport.None() : await RoleRestorer.CreateAsync(c, roles, withRoleAttributes, createMissingRoles, ct).ConfigureAwait(false);
        if (existing is not null)
        {
            await Catalog.ExecuteOneAsync(c, $"DROP DATABASE {Catalog.Quote(database)} WITH (FORCE)", ct).ConfigureAwait(false);
        }
        var owner = fingerprint.Owner;
        bool ownerExists;
        await using (var check = new NpgsqlCommand("SELECT 1 FROM pg_roles WHERE rolname = @r", c))
        {
            check.Parameters.AddWithValue("r", owner ?? "");
            ownerExists = await check.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null;
        }
        var create = $"CREATE DATABASE {Catalog.Quote(database)} TEMPLATE template0 ENCODING {Catalog.Literal(fingerprint.Encoding)}" + (ownerExists && owner is not null ? $" OWNER {Catalog.Quote(owner)}" : "");
        await Catalog.ExecuteOneAsync(c, create, ct).ConfigureAwait(false);
        if (roles is not null)
        {
            await RoleRestorer.ApplyDatabaseSettingsAsync(c, roles, report, database, ct).ConfigureAwait(false);
        }
        return report;
    }

    /// <summary>What pg_restore reported (its non-fatal error lines) and what it was told to leave out.</summary>
    public sealed record PgRestoreOutcome(IReadOnlyList<string> Warnings, IReadOnlyList<SkippedObject> Skipped);

    /// <summary>
    /// Runs pg_restore -Fd -j into the database, leaving out what the target cannot hold (<see cref="RestorePlan"/>:
    /// extensions it lacks and every object depending on them; event triggers unless the role is a superuser), which is
    /// returned, never silently lost. Throws with pg_restore's own words when it reports errors.
    /// </summary>
    /// <param name="privateParent">An existing private folder for the password file pg_restore may need and the list file (deleted when it exits).</param>
    public static async Task<PgRestoreOutcome> PgRestoreAsync(PgConnection database, string dumpDirectory, int jobs, bool noOwner, string privateParent, string? postgresBin, CancellationToken ct)
    {
        var bin = PgBinaries.Find(null, postgresBin);
        var listing = await PgProcess.RunAsync(bin["pg_restore"], ["--list", "--verbose", dumpDirectory], null, ct).ConfigureAwait(false);
        if (listing.ExitCode != 0)
        {
            throw new PgToolException($"pg_restore could not read the backup's table of contents: {PgProcess.Tail(listing.StandardError)}");
        }
        var available = new HashSet<string>(StringComparer.Ordinal);
        var superusers = new HashSet<string>(StringComparer.Ordinal);
        bool superuser;
        await using (var c = await database.OpenAsync(ct).ConfigureAwait(false))
        {
            await using (var cmd = new NpgsqlCommand("SELECT name FROM pg_available_extensions", c))
            await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    available.Add(r.GetString(0));
                }
            }
            await using (var su = new NpgsqlCommand("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", c))
            {
                superuser = await su.ExecuteScalarAsync(ct).ConfigureAwait(false) is true;
            }
            await using var all = new NpgsqlCommand("SELECT rolname FROM pg_roles WHERE rolsuper", c);
            await using var rs = await all.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await rs.ReadAsync(ct).ConfigureAwait(false))
            {
                superusers.Add(rs.GetString(0));
            }
        }
        // With --no-owner every object belongs to the restoring role: the owners in the list do not matter then.
        var plan = RestorePlan.Decide(listing.StandardOutput, available, superuser, noOwner ? null : superusers);
        var roles = new HashSet<string>(StringComparer.Ordinal);
        MissingRoles.RolePlan? rolePlan = null;
        if (!noOwner)
        {
            await using (var c = await database.OpenAsync(ct).ConfigureAwait(false))
            await using (var cmd = new NpgsqlCommand("SELECT rolname FROM pg_roles", c))
            await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
            {
                while (await r.ReadAsync(ct).ConfigureAwait(false))
                {
                    roles.Add(r.GetString(0));
                }
            }
            rolePlan = await PlanRolesAsync(bin["pg_restore"], dumpDirectory, plan, roles, privateParent, ct).ConfigureAwait(false);
            if (rolePlan.TakenOut.Count > 0)
            {
                plan = plan.Without(rolePlan.TakenOut, rolePlan.Skipped);
            }
        }
        var listFile = Path.Combine(privateParent, "restore.list");
        await File.WriteAllTextAsync(listFile, plan.List, ct).ConfigureAwait(false);
        // pg_restore runs as the invoking user (the list file is ours, 0600 under a private folder).
        var args = new List<string> { "--format=directory", $"--jobs={Math.Max(1, jobs)}", "--dbname", database.Database, "--use-list", listFile };
        if (noOwner)
        {
            args.Add("--no-owner");
            args.Add("--no-acl");
        }
        args.Add(dumpDirectory);
        ProcessResult r2;
        using (var env = database.ProgramEnvironment(privateParent))
        {
            r2 = await PgProcess.RunAsync(bin["pg_restore"], args, env.Variables, ct).ConfigureAwait(false);
        }
        var errors = r2.StandardError.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => l.Contains("error:", StringComparison.Ordinal) || l.StartsWith("pg_restore: error", StringComparison.Ordinal)).ToList();
        var skipped = plan.Skipped;
        if (r2.ExitCode != 0)
        {
            // Only an owner that does not exist here is forgiven (the object stays the restoring role's, and is listed).
            var owners = noOwner ? null : MissingRoles.AcceptableOwnerErrors(r2.StandardError, role => !roles.Contains(role));
            if (owners is null)
            {
                throw new PgToolException($"pg_restore into {database.Redacted} reported errors (exit {r2.ExitCode}): {PgProcess.Tail(string.Join('\n', errors.Count > 0 ? errors : [r2.StandardError]))}");
            }
            skipped = [.. skipped, .. owners];
            errors = [];
        }
        if (rolePlan is { Statements.Count: > 0 })
        {
            // The grants of the entries taken out of the list, without those naming a missing role: one statement per command.
            await using var c = await database.OpenAsync(ct).ConfigureAwait(false);
            await Catalog.ExecuteOneAsync(c, "SELECT pg_catalog.set_config('search_path', '', false)", ct).ConfigureAwait(false);
            foreach (var statement in rolePlan.Statements)
            {
                try
                {
                    await Catalog.ExecuteOneAsync(c, statement, ct).ConfigureAwait(false);
                }
                catch (PostgresException e)
                {
                    throw new PgToolException($"restoring the grants into {database.Redacted} failed: {e.MessageText} (statement: {(statement.Length > 200 ? statement[..200] + "…" : statement)})");
                }
            }
        }
        return new PgRestoreOutcome(errors, skipped);
    }

    /// <summary>
    /// The ACL, default ACL and policy entries pg_restore would run (not already left out), read as SQL through pg_restore's
    /// own script output, and what <see cref="MissingRoles"/> does with those that name roles the target lacks.
    /// </summary>
    private static async Task<MissingRoles.RolePlan> PlanRolesAsync(string pgRestore, string dumpDirectory, RestorePlan.Plan plan, IReadOnlySet<string> roles, string privateParent, CancellationToken ct)
    {
        var entries = RestorePlan.Parse(plan.List);
        var candidates = RestorePlan.ActiveLines(plan.List).Where(l => MissingRoles.IsCandidate(l.Entry.Description)).ToList();
        if (candidates.Count == 0)
        {
            return new MissingRoles.RolePlan(new HashSet<int>(), [], []);
        }
        var listFile = Path.Combine(privateParent, "acl.list");
        await File.WriteAllTextAsync(listFile, string.Join('\n', candidates.Select(c => c.Line)) + "\n", ct).ConfigureAwait(false);
        var script = await PgProcess.RunAsync(pgRestore, ["--file=-", "--verbose", "--use-list", listFile, dumpDirectory], null, ct).ConfigureAwait(false);
        if (script.ExitCode != 0)
        {
            throw new PgToolException($"pg_restore could not print the backup's grants and policies: {PgProcess.Tail(script.StandardError)}");
        }
        return MissingRoles.Decide(entries, MissingRoles.SplitScript(script.StandardOutput), roles.Contains);
    }

    /// <summary>Compares the restored database with the fingerprint: every table present with the same rows (and content hash, if taken).</summary>
    public static Task<List<CountMismatch>> CheckAsync(PgConnection database, Fingerprint fingerprint, CancellationToken ct) => CheckAsync(database, fingerprint, (IEnumerable<string>?)null, ct);

    /// <summary>
    /// Like <see cref="CheckAsync(PgConnection, Fingerprint, CancellationToken)"/>, except tables the restore was told to
    /// leave out (<paramref name="skipped"/>): those are reported as skipped objects, and <c>restore_complete</c> judges them.
    /// </summary>
    public static async Task<List<CountMismatch>> CheckRestoredAsync(PgConnection database, Fingerprint fingerprint, IReadOnlyList<SkippedObject> skipped, CancellationToken ct)
    {
        var all = await CheckAsync(database, fingerprint, (IEnumerable<string>?)null, ct).ConfigureAwait(false);
        var left = fingerprint.Tables.Where(t => skipped.Any(s => s.IsTable(t.Schema, t.Name))).Select(t => t.QualifiedName).ToHashSet(StringComparer.Ordinal);
        return [.. all.Where(m => !(m.What == "missing" && left.Contains(m.Table)))];
    }

    /// <summary>Like <see cref="CheckAsync(PgConnection, Fingerprint, CancellationToken)"/>, for <paramref name="onlyTables"/> only (schema.table).</summary>
    public static async Task<List<CountMismatch>> CheckAsync(PgConnection database, Fingerprint fingerprint, IEnumerable<string>? onlyTables, CancellationToken ct)
    {
        var only = onlyTables?.ToHashSet(StringComparer.Ordinal);
        var result = new List<CountMismatch>();
        await using var c = await database.OpenAsync(ct).ConfigureAwait(false);
        var present = (await Catalog.TablesAsync(c, ct).ConfigureAwait(false)).Select(t => $"{t.Schema}.{t.Name}").ToHashSet(StringComparer.Ordinal);
        foreach (var t in fingerprint.Tables)
        {
            if (only is not null && !only.Contains(t.QualifiedName))
            {
                continue;
            }
            if (!present.Contains(t.QualifiedName))
            {
                result.Add(new CountMismatch(t.QualifiedName, t.Rows, null, "missing"));
                continue;
            }
            var rows = await Catalog.CountAsync(c, t.Schema, t.Name, ct).ConfigureAwait(false);
            if (rows != t.Rows)
            {
                result.Add(new CountMismatch(t.QualifiedName, t.Rows, rows, "row count"));
            }
            else if (t.ContentHash is not null && await Catalog.ContentHashAsync(c, t.Schema, t.Name, ct).ConfigureAwait(false) != t.ContentHash)
            {
                result.Add(new CountMismatch(t.QualifiedName, t.Rows, rows, "content hash"));
            }
        }
        return result;
    }

    /// <summary>Drops <paramref name="database"/> on the server, ending its sessions; nothing when it does not exist.</summary>
    public static async Task DropDatabaseAsync(PgConnection server, string database, CancellationToken ct)
    {
        await using var c = await server.WithDatabase(MaintenanceDb(server)).OpenAsync(ct).ConfigureAwait(false);
        await Catalog.ExecuteOneAsync(c, $"DROP DATABASE IF EXISTS {Catalog.Quote(database)} WITH (FORCE)", ct).ConfigureAwait(false);
    }

    public static string MaintenanceDb(PgConnection server) => server.Database == "template1" ? "template1" : "postgres";
}
