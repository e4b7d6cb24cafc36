using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <summary>Per table: how the backup's rows compare with the live rows, by primary key.</summary>
public sealed record TableDiff(string Table, string StagingTable, long RowsInBackup, long? RowsLive, long OnlyInBackup, long OnlyLive, long Differ, string Key, long Merged = 0);

/// <summary>
/// Restores single tables from a pg_dump directory beside the live data: into a staging schema of the
/// target database, then compares them with the live tables by primary key, and on request inserts
/// the rows that exist only in the backup, in one transaction, parents before children.
/// Nothing live changes without a merge: the staging schema is never a restored table's own schema nor a
/// system schema, it belongs to the restoring user, each table stages under a name of its own
/// (<see cref="StagingName"/>), and the only tables ever dropped are staging copies Cairn made (marked
/// with a comment naming their source).
/// </summary>
public static partial class TableRestorer
{
    /// <summary>
    /// The staging copy's table name: <c>schema.table</c> (one identifier with a dot in it), so the same
    /// table name in two schemas never shares a copy; a name with dots of its own, or too long for
    /// PostgreSQL's 63 bytes, becomes <c>cairn_</c> and a hash of both parts (such names hold no dot, so
    /// the two forms never meet).
    /// </summary>
    public static string StagingName(string schema, string table)
    {
        var plain = $"{schema}.{table}";
        if (!schema.Contains('.', StringComparison.Ordinal) && !table.Contains('.', StringComparison.Ordinal) && System.Text.Encoding.UTF8.GetByteCount(plain) <= 63)
        {
            return plain;
        }
        var hash = System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(schema + "\0" + table));
        return "cairn_" + Convert.ToHexStringLower(hash)[..24];
    }

    /// <summary>The comment that marks a staging copy as Cairn's, naming its source table.</summary>
    public static string StagingMarker(string schema, string table) => $"cairn staging copy of {Catalog.Qualified(schema, table)}";

    /// <summary>Why <paramref name="stagingSchema"/> cannot hold staging copies of <paramref name="tables"/>, or null.</summary>
    public static string? StagingSchemaProblem(string stagingSchema, IEnumerable<(string Schema, string Name)> tables)
    {
        if (string.IsNullOrWhiteSpace(stagingSchema) || stagingSchema.Contains('\0', StringComparison.Ordinal) || System.Text.Encoding.UTF8.GetByteCount(stagingSchema) > 63)
        {
            return $"--into-schema '{stagingSchema}' is not a schema name PostgreSQL accepts (1 to 63 bytes)";
        }
        if (stagingSchema is "information_schema" || stagingSchema.StartsWith("pg_", StringComparison.Ordinal))
        {
            return $"--into-schema {Catalog.Display(stagingSchema)} is a system schema; choose a schema of its own for the staging copies (e.g. cairn_restore)";
        }
        var live = tables.FirstOrDefault(t => t.Schema == stagingSchema);
        if (live != default)
        {
            return $"--into-schema {Catalog.Display(stagingSchema)} holds the live table {Catalog.Display(live.Schema)}.{Catalog.Display(live.Name)}, which a staging copy would replace; choose a schema of its own for the staging copies (e.g. cairn_restore)";
        }
        return null;
    }

    /// <summary>
    /// Refuses a staging schema owned by another role (its owner could swap the copies before a merge) and any
    /// existing table under a staging name that Cairn did not make; creates the schema when it is missing.
    /// </summary>
    private static async Task PrepareStagingAsync(NpgsqlConnection to, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema, CancellationToken ct)
    {
        if (StagingSchemaProblem(stagingSchema, tables) is { } problem)
        {
            throw new PgToolException(problem);
        }
        await using (var owner = new NpgsqlCommand("SELECT pg_get_userbyid(nspowner)::text, nspowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) FROM pg_namespace WHERE nspname = @s", to))
        {
            owner.Parameters.AddWithValue("s", stagingSchema);
            await using var r = await owner.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (await r.ReadAsync(ct).ConfigureAwait(false) && !r.GetBoolean(1))
            {
                throw new PgToolException($"schema {Catalog.Display(stagingSchema)} exists and belongs to role {Catalog.Display(r.GetString(0))}, not to the restoring user; choose a new --into-schema (Cairn creates it) or one you own");
            }
        }
        foreach (var (schema, name) in tables)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT c.relkind::text, obj_description(c.oid, 'pg_class'), pg_has_role(c.relowner, 'USAGE') FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = @s AND c.relname = @t", to);
            cmd.Parameters.AddWithValue("s", stagingSchema);
            cmd.Parameters.AddWithValue("t", StagingName(schema, name));
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            if (await r.ReadAsync(ct).ConfigureAwait(false) && (r.GetString(0) != "r" || r.IsDBNull(1) || r.GetString(1) != StagingMarker(schema, name) || !r.GetBoolean(2)))
            {
                throw new PgToolException($"{Catalog.Qualified(stagingSchema, StagingName(schema, name))} exists and was not created by Cairn as the staging copy of {Catalog.Display(schema)}.{Catalog.Display(name)}; Cairn drops only its own staging copies. Rename or drop it yourself, or choose another --into-schema");
            }
        }
        await Catalog.ExecuteOneAsync(to, $"CREATE SCHEMA IF NOT EXISTS {Catalog.Quote(stagingSchema)}", ct).ConfigureAwait(false);
    }
    /// <summary>Maps "schema.table" to its data file (dump ID) by listing the dump's table of contents.</summary>
    public static async Task<Dictionary<string, string>> DataFilesAsync(string dumpDirectoryWithToc, string? postgresBin, CancellationToken ct)
    {
        var bin = PgBinaries.Find(null, postgresBin);
        var r = await PgProcess.RunAsync(bin["pg_restore"], ["--list", dumpDirectoryWithToc], null, ct).ConfigureAwait(false);
        if (r.ExitCode != 0)
        {
            throw new PgToolException($"pg_restore could not read the backup's table of contents: {PgProcess.Tail(r.StandardError)}");
        }
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in r.StandardOutput.Split('\n'))
        {
            var m = TableDataLine().Match(line);
            if (m.Success)
            {
                map[$"{m.Groups[2].Value}.{m.Groups[3].Value}"] = m.Groups[1].Value + ".dat";
            }
        }
        return map;
    }

    [GeneratedRegex(@"^(\d+); \d+ \d+ TABLE DATA (\S+) (\S+) ")]
    private static partial Regex TableDataLine();

    /// <summary>Restores <paramref name="tables"/> into <paramref name="stagingSchema"/> of the target and diffs them.</summary>
    /// <param name="privateParent">An existing private folder for the password file pg_restore may need (deleted when it exits).</param>
    public static Task<List<TableDiff>> RestoreAsync(PgConnection target, string dumpDirectory, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema, string privateParent, string? postgresBin, CancellationToken ct)
        => RestoreAsync(target, dumpDirectory, tables, [], stagingSchema, privateParent, postgresBin, null, ct);

    /// <summary>
    /// Restores <paramref name="tables"/> (staged and diffed) and <paramref name="helpers"/> (restored only) into a throwaway
    /// database on the target's server that has every definition of the backup but no constraints, lets
    /// <paramref name="beforeStaging"/> change them there (a replay of the audit trail, the erasure ledger), then stages
    /// <paramref name="tables"/> beside the live data and diffs them.
    /// </summary>
    public static async Task<List<TableDiff>> RestoreAsync(PgConnection target, string dumpDirectory, IReadOnlyList<(string Schema, string Name)> tables, IReadOnlyList<(string Schema, string Name)> helpers,
        string stagingSchema, string privateParent, string? postgresBin, Func<PgConnection, Task>? beforeStaging, CancellationToken ct)
    {
        await using (var check = await target.OpenAsync(ct).ConfigureAwait(false))
        {
            await PrepareStagingAsync(check, tables, stagingSchema, ct).ConfigureAwait(false);
        }
        var stageDb = $"cairn_stage_{Guid.NewGuid():N}"[..24];
        var maintenance = target.WithDatabase(LogicalRestorer.MaintenanceDb(target));
        await using (var c = await maintenance.OpenAsync(ct).ConfigureAwait(false))
        await using (var cmd = new NpgsqlCommand($"CREATE DATABASE {Catalog.Quote(stageDb)} TEMPLATE template0 ENCODING 'UTF8'", c))
        {
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        try
        {
            var stage = target.WithDatabase(stageDb);
            var bin = PgBinaries.Find(null, postgresBin);
            using var env = stage.ProgramEnvironment(privateParent);
            // Every definition (types, tables) but no data, indexes, constraints or policies: fast, and no roles needed.
            await PgProcess.RunAsync(bin["pg_restore"], ["--format=directory", "--section=pre-data", "--no-owner", "--no-acl", "--dbname", stageDb, dumpDirectory], env.Variables, ct).ConfigureAwait(false);
            foreach (var (schema, name) in tables.Concat(helpers).Distinct())
            {
                var r = await PgProcess.RunAsync(bin["pg_restore"], ["--format=directory", "--section=data", "--no-owner", "--no-acl", "--schema", schema, "--table", name, "--dbname", stageDb, dumpDirectory], env.Variables, ct).ConfigureAwait(false);
                if (r.ExitCode != 0)
                {
                    throw new PgToolException($"restoring the rows of {schema}.{name} from the backup failed: {PgProcess.Tail(r.StandardError)}");
                }
            }
            if (beforeStaging is not null)
            {
                await beforeStaging(stage).ConfigureAwait(false);
            }
            return await StageFromAsync(stage, target, tables, stagingSchema, ct).ConfigureAwait(false);
        }
        finally
        {
            await using var c = await maintenance.OpenAsync(CancellationToken.None).ConfigureAwait(false);
            await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Catalog.Quote(stageDb)} WITH (FORCE)", c);
            await drop.ExecuteNonQueryAsync(CancellationToken.None).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Copies <paramref name="tables"/> from <paramref name="source"/> (a copy of the database: a staging database, a
    /// scratch point-in-time restore) into staging copies in <paramref name="stagingSchema"/> of the target, and diffs
    /// each with its live table.
    /// </summary>
    public static async Task<List<TableDiff>> StageFromAsync(PgConnection source, PgConnection target, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema, CancellationToken ct)
    {
        await using var from = await source.OpenAsync(ct).ConfigureAwait(false);
        await using var to = await target.OpenAsync(ct).ConfigureAwait(false);
        await PrepareStagingAsync(to, tables, stagingSchema, ct).ConfigureAwait(false);
        var result = new List<TableDiff>();
        foreach (var (schema, name) in tables)
        {
            // Generated columns are derived data (and cannot be listed in COPY): the staging copy leaves them out.
            var columns = (await ColumnsAsync(from, schema, name, ct).ConfigureAwait(false)).Where(c => !c.Generated).ToList();
            if (columns.Count == 0)
            {
                throw new PgToolException($"table {schema}.{name} is not in this backup");
            }
            // PrepareStagingAsync made sure a table under this name is Cairn's own copy of this very table.
            var staging = Catalog.Qualified(stagingSchema, StagingName(schema, name));
            await Exec(to, $"DROP TABLE IF EXISTS {staging}", ct).ConfigureAwait(false);
            await Exec(to, $"CREATE TABLE {staging} ({string.Join(", ", columns.Select(c => $"{Catalog.Quote(c.Name)} {c.Type}"))})", ct).ConfigureAwait(false);
            await Exec(to, $"COMMENT ON TABLE {staging} IS {Catalog.Literal(StagingMarker(schema, name))}", ct).ConfigureAwait(false);
            var colList = string.Join(", ", columns.Select(c => Catalog.Quote(c.Name)));
            using (var reader = await from.BeginTextExportAsync($"COPY {Catalog.Qualified(schema, name)} ({colList}) TO STDOUT", ct).ConfigureAwait(false))
            await using (var writer = await to.BeginTextImportAsync($"COPY {staging} ({colList}) FROM STDIN", ct).ConfigureAwait(false))
            {
                var buffer = new char[1 << 16];
                int n;
                while ((n = await reader.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await writer.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                }
            }
            result.Add(await DiffAsync(to, schema, name, stagingSchema, ct).ConfigureAwait(false));
        }
        return result;
    }

    /// <summary>Drops the staging copies of <paramref name="tables"/> (a dry run keeps none); only Cairn's own copies, as PrepareStagingAsync checked.</summary>
    public static async Task DropStagingAsync(PgConnection target, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema, CancellationToken ct)
    {
        await using var to = await target.OpenAsync(ct).ConfigureAwait(false);
        foreach (var (schema, name) in tables)
        {
            await using var cmd = new NpgsqlCommand(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = @s AND c.relname = @t AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') = @m", to);
            cmd.Parameters.AddWithValue("s", stagingSchema);
            cmd.Parameters.AddWithValue("t", StagingName(schema, name));
            cmd.Parameters.AddWithValue("m", StagingMarker(schema, name));
            if (await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null)
            {
                await Exec(to, $"DROP TABLE {Catalog.Qualified(stagingSchema, StagingName(schema, name))}", ct).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Inserts the rows that exist only in the staging copies, parents before children, in one transaction.</summary>
    /// <param name="beforeCommit">Runs in the merge's transaction after the inserts (the erasure ledger is re-applied there, so erased rows never commit).</param>
    public static async Task<List<TableDiff>> MergeMissingAsync(PgConnection target, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema,
        Func<NpgsqlConnection, NpgsqlTransaction, Task>? beforeCommit, CancellationToken ct)
    {
        if (StagingSchemaProblem(stagingSchema, tables) is { } problem)
        {
            throw new PgToolException(problem);
        }
        await using var c = await target.OpenAsync(ct).ConfigureAwait(false);
        var ordered = await ForeignKeyOrderAsync(c, tables, ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        var merged = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (schema, name) in ordered)
        {
            var key = await KeyColumnsAsync(c, schema, name, ct).ConfigureAwait(false);
            var common = await CommonColumnsAsync(c, schema, name, stagingSchema, insertableOnly: true, ct).ConfigureAwait(false);
            var cols = string.Join(", ", common.Select(Catalog.Quote));
            var match = string.Join(" AND ", key.Select(k => $"l.{Catalog.Quote(k)} = s.{Catalog.Quote(k)}"));
            var sql = $"INSERT INTO {Catalog.Qualified(schema, name)} ({cols}) OVERRIDING SYSTEM VALUE SELECT {string.Join(", ", common.Select(x => "s." + Catalog.Quote(x)))} FROM {Catalog.Qualified(stagingSchema, StagingName(schema, name))} s WHERE NOT EXISTS (SELECT 1 FROM {Catalog.Qualified(schema, name)} l WHERE {match})";
            merged[$"{schema}.{name}"] = await Catalog.ExecuteOneAsync(c, sql, tx, ct).ConfigureAwait(false);
        }
        if (beforeCommit is not null)
        {
            await beforeCommit(c, tx).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
        var result = new List<TableDiff>();
        foreach (var (schema, name) in tables)
        {
            result.Add(await DiffAsync(c, schema, name, stagingSchema, ct).ConfigureAwait(false) with { Merged = merged[$"{schema}.{name}"] });
        }
        return result;
    }

    private static async Task<TableDiff> DiffAsync(NpgsqlConnection c, string schema, string name, string stagingSchema, CancellationToken ct)
    {
        var staging = Catalog.Qualified(stagingSchema, StagingName(schema, name));
        var live = Catalog.Qualified(schema, name);
        var inBackup = await ScalarLong(c, $"SELECT count(*) FROM {staging}", ct).ConfigureAwait(false);
        if (!await ExistsAsync(c, schema, name, ct).ConfigureAwait(false))
        {
            return new TableDiff($"{schema}.{name}", staging, inBackup, null, inBackup, 0, 0, "(live table missing)");
        }
        var key = await KeyColumnsAsync(c, schema, name, ct).ConfigureAwait(false);
        var common = await CommonColumnsAsync(c, schema, name, stagingSchema, insertableOnly: true, ct).ConfigureAwait(false);
        var match = string.Join(" AND ", key.Select(k => $"l.{Catalog.Quote(k)} = s.{Catalog.Quote(k)}"));
        var nonKey = common.Where(x => !key.Contains(x)).ToList();
        var liveRows = await ScalarLong(c, $"SELECT count(*) FROM {live}", ct).ConfigureAwait(false);
        var onlyBackup = await ScalarLong(c, $"SELECT count(*) FROM {staging} s WHERE NOT EXISTS (SELECT 1 FROM {live} l WHERE {match})", ct).ConfigureAwait(false);
        var onlyLive = await ScalarLong(c, $"SELECT count(*) FROM {live} l WHERE NOT EXISTS (SELECT 1 FROM {staging} s WHERE {match})", ct).ConfigureAwait(false);
        long differ = 0;
        if (nonKey.Count > 0)
        {
            var a = string.Join(", ", nonKey.Select(x => $"s.{Catalog.Quote(x)}::text"));
            var b = string.Join(", ", nonKey.Select(x => $"l.{Catalog.Quote(x)}::text"));
            differ = await ScalarLong(c, $"SELECT count(*) FROM {staging} s JOIN {live} l ON {match} WHERE ROW({a}) IS DISTINCT FROM ROW({b})", ct).ConfigureAwait(false);
        }
        return new TableDiff($"{schema}.{name}", staging, inBackup, liveRows, onlyBackup, onlyLive, differ, string.Join(", ", key));
    }

    /// <summary>The live table's primary key, else its first unique index, else every column.</summary>
    private static async Task<List<string>> KeyColumnsAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            """
            SELECT a.attname FROM pg_index i
            JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = (quote_ident(@s) || '.' || quote_ident(@t))::regclass
              AND i.indexrelid = (SELECT indexrelid FROM pg_index WHERE indrelid = i.indrelid AND (indisprimary OR indisunique) AND indpred IS NULL AND indexprs IS NULL ORDER BY indisprimary DESC, indexrelid LIMIT 1)
            ORDER BY k.ord
            """, c);
        cmd.Parameters.AddWithValue("s", schema);
        cmd.Parameters.AddWithValue("t", name);
        var key = new List<string>();
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                key.Add(r.GetString(0));
            }
        }
        return key.Count > 0 ? key : [.. (await ColumnsAsync(c, schema, name, ct).ConfigureAwait(false)).Select(x => x.Name)];
    }

    private static async Task<List<(string Name, string Type, bool Generated, bool Identity)>> ColumnsAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated <> '', a.attidentity <> ''
            FROM pg_attribute a JOIN pg_class t ON t.oid = a.attrelid JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE n.nspname = @s AND t.relname = @t AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
            """, c);
        cmd.Parameters.AddWithValue("s", schema);
        cmd.Parameters.AddWithValue("t", name);
        var result = new List<(string, string, bool, bool)>();
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        while (await r.ReadAsync(ct).ConfigureAwait(false))
        {
            result.Add((r.GetString(0), r.GetString(1), r.GetBoolean(2), r.GetBoolean(3)));
        }
        return result;
    }

    private static async Task<List<string>> CommonColumnsAsync(NpgsqlConnection c, string schema, string name, string stagingSchema, bool insertableOnly, CancellationToken ct)
    {
        var live = await ColumnsAsync(c, schema, name, ct).ConfigureAwait(false);
        var staged = (await ColumnsAsync(c, stagingSchema, StagingName(schema, name), ct).ConfigureAwait(false)).Select(x => x.Name).ToHashSet(StringComparer.Ordinal);
        return [.. live.Where(x => staged.Contains(x.Name) && (!insertableOnly || !x.Generated)).Select(x => x.Name)];
    }

    private static async Task<bool> ExistsAsync(NpgsqlConnection c, string schema, string name, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand("SELECT 1 FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = @s AND t.relname = @t AND t.relkind IN ('r','p')", c);
        cmd.Parameters.AddWithValue("s", schema);
        cmd.Parameters.AddWithValue("t", name);
        return await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false) is not null;
    }

    /// <summary>Orders tables so that a table comes after the tables it references (among those given).</summary>
    private static async Task<List<(string Schema, string Name)>> ForeignKeyOrderAsync(NpgsqlConnection c, IReadOnlyList<(string Schema, string Name)> tables, CancellationToken ct)
    {
        var names = tables.Select(t => $"{t.Schema}.{t.Name}").ToHashSet(StringComparer.Ordinal);
        var deps = names.ToDictionary(n => n, _ => new HashSet<string>(StringComparer.Ordinal), StringComparer.Ordinal);
        await using (var cmd = new NpgsqlCommand(
            "SELECT cn.nspname || '.' || cl.relname, fn.nspname || '.' || fl.relname FROM pg_constraint k JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace JOIN pg_class fl ON fl.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = fl.relnamespace WHERE k.contype = 'f'", c))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                var (child, parent) = (r.GetString(0), r.GetString(1));
                if (names.Contains(child) && names.Contains(parent) && child != parent)
                {
                    deps[child].Add(parent);
                }
            }
        }
        var ordered = new List<(string, string)>();
        var done = new HashSet<string>(StringComparer.Ordinal);
        while (done.Count < names.Count)
        {
            var next = tables.Where(t => !done.Contains($"{t.Schema}.{t.Name}") && deps[$"{t.Schema}.{t.Name}"].All(done.Contains)).ToList();
            if (next.Count == 0)
            {
                next = [tables.First(t => !done.Contains($"{t.Schema}.{t.Name}"))]; // a cycle: take one; the transaction fails cleanly if it must
            }
            foreach (var t in next)
            {
                ordered.Add(t);
                done.Add($"{t.Schema}.{t.Name}");
            }
        }
        return ordered;
    }

    private static Task Exec(NpgsqlConnection c, string sql, CancellationToken ct) => Catalog.ExecuteOneAsync(c, sql, ct);

    private static async Task<long> ScalarLong(NpgsqlConnection c, string sql, CancellationToken ct)
    {
        await using var cmd = new NpgsqlCommand(sql, c);
        return Convert.ToInt64(await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false), CultureInfo.InvariantCulture);
    }
}
