using System.Globalization;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;
using Npgsql;

namespace Cairn.PostgreSql.Logical;

/// <param name="FingerprintQueries">Named scalar queries evaluated in the backup's snapshot (parameter @backup_time) and kept in the fingerprint.</param>
public sealed record DumpOptions(bool ContentFingerprint = false, bool WithRolePasswords = false, int Jobs = 2, string? WorkDirectory = null, IReadOnlyList<(string Name, string Query)>? FingerprintQueries = null)
{
    /// <summary>Schemas left out of the dump and the fingerprint (pg_dump --exclude-schema, each name quoted as a pattern).</summary>
    public IReadOnlyList<string> ExcludeSchemas { get; init; } = [];

    /// <summary>Which roles roles.json holds besides the referenced ones, and which of them the platform manages.</summary>
    public RoleScope Roles { get; init; } = RoleScope.Referenced;
}

/// <summary>
/// One logical backup of one database, consistent in one snapshot: a REPEATABLE READ transaction
/// exports its snapshot; pg_dump (directory format, uncompressed so the repository can deduplicate,
/// one file per table so one table can be restored alone, <c>-j</c> workers) runs with
/// <c>--snapshot</c>, and the fingerprint (exact row counts, optionally content hashes) is taken in
/// the same transaction while pg_dump runs. Files are handed to the caller as pg_dump finishes them.
/// </summary>
public sealed class LogicalDump : IAsyncDisposable
{
    private readonly PgConnection _connection;
    private readonly PgBinaries _bin;
    private readonly DumpOptions _options;
    private readonly NpgsqlConnection _holder;
    private readonly string _work;

    private LogicalDump(PgConnection connection, PgBinaries bin, DumpOptions options, NpgsqlConnection holder, string work)
    {
        _connection = connection;
        _bin = bin;
        _options = options;
        _holder = holder;
        _work = work;
    }

    public Fingerprint Fingerprint { get; private set; } = new();

    /// <summary>The roles the database references, read in the backup's snapshot once the dump is done.</summary>
    public RoleSet Roles { get; private set; } = RoleSet.Empty;

    public string DumpDirectory => Path.Combine(_work, "dump");

    public static async Task<LogicalDump> BeginAsync(PgConnection connection, DumpOptions options, string? postgresBin, CancellationToken cancellationToken)
    {
        await PoolerProbe.RefuseTransactionPoolerAsync(connection, postgresBin, cancellationToken).ConfigureAwait(false);
        var holder = await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        string? work = null;
        try
        {
            int versionNum;
            await using (var cmd = new NpgsqlCommand("SHOW server_version_num", holder))
            {
                versionNum = int.Parse((string)(await cmd.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!, CultureInfo.InvariantCulture);
            }
            var bin = PgBinaries.Find(versionNum / 10000, postgresBin);
            work = Path.Combine(options.WorkDirectory ?? Path.GetTempPath(), $"cairn-dump-{Guid.NewGuid():N}"[..26]);
            Directory.CreateDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            var dump = new LogicalDump(connection, bin, options, holder, work);
            await dump.OpenSnapshotAsync(versionNum, cancellationToken).ConfigureAwait(false);
            await dump.RefuseUnreadableAsync(cancellationToken).ConfigureAwait(false);
            return dump;
        }
        catch
        {
            await holder.DisposeAsync().ConfigureAwait(false);
            // A refusal before pg_dump started (a table the role cannot read, a pooler) leaves no work folder behind.
            if (work is not null && Directory.Exists(work))
            {
                try
                {
                    Directory.Delete(work, recursive: true);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                }
            }
            throw;
        }
    }

    private async Task OpenSnapshotAsync(int versionNum, CancellationToken ct)
    {
        await using (var begin = new NpgsqlCommand("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", _holder))
        {
            await begin.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await using var cmd = new NpgsqlCommand(
            """
            SELECT pg_export_snapshot(), now(), current_database(), current_setting('server_version'),
                   pg_encoding_to_char(d.encoding), pg_get_userbyid(d.datdba),
                   coalesce((SELECT array_agg(extname || ' ' || extversion ORDER BY extname) FROM pg_extension), '{}')
            FROM pg_database d WHERE d.datname = current_database()
            """, _holder);
        await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
        await r.ReadAsync(ct).ConfigureAwait(false);
        Fingerprint = new Fingerprint
        {
            Snapshot = r.GetString(0),
            BackupTime = r.GetFieldValue<DateTimeOffset>(1),
            Database = r.GetString(2),
            ServerVersion = r.GetString(3),
            ServerVersionNum = versionNum,
            Encoding = r.GetString(4),
            Owner = r.GetString(5),
            Extensions = [.. r.GetFieldValue<string[]>(6)],
            Mode = _options.ContentFingerprint ? "content" : "rows",
        };
    }

    /// <summary>
    /// Refuses, before pg_dump starts, a dump the role cannot read whole: a table it may not SELECT (or whose schema it
    /// may not use) would abort the snapshot's transaction half-way, and pg_dump would then fail with "could not import
    /// the requested snapshot … the source process is not running anymore", which names nothing the user can fix.
    /// </summary>
    private async Task RefuseUnreadableAsync(CancellationToken ct)
    {
        var unreadable = new List<string>();
        await using (var cmd = new NpgsqlCommand(Catalog.UnreadableTablesQuery, _holder))
        {
            cmd.Parameters.AddWithValue("excluded", _options.ExcludeSchemas.ToArray());
            await using var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                unreadable.Add(Catalog.Display(r.GetString(0)) + "." + Catalog.Display(r.GetString(1)));
            }
        }
        if (unreadable.Count == 0)
        {
            return;
        }
        var schemas = unreadable.Select(t => t[..t.IndexOf('.', StringComparison.Ordinal)]).Distinct(StringComparer.Ordinal).ToList();
        throw new PgToolException(
            $"{_connection.User} cannot read {unreadable.Count} table(s) or sequence(s) of {_connection.Redacted} (permission denied): {string.Join(", ", unreadable.Take(8))}{(unreadable.Count > 8 ? ", …" : "")}. " +
            $"Back up as a role that can read them, or leave their schemas out: exclude_schemas: [{string.Join(", ", schemas)}] in cairn.yaml " +
            "(a Supabase project: preset: supabase); no backup was recorded");
    }

    /// <summary>
    /// Runs pg_dump and the fingerprint in parallel; calls <paramref name="onFile"/> with each file
    /// (relative name, full path) once complete, <c>toc.dat</c> last. Throws with pg_dump's own words on failure.
    /// </summary>
    public async Task RunAsync(Func<string, string, Task> onFile, IProgress<string>? progress, CancellationToken cancellationToken)
    {
        using var env = _connection.ProgramEnvironment(_work);
        var args = new List<string>
        {
            "--format=directory", "--compress=0", "--no-sync", $"--jobs={Math.Max(1, _options.Jobs)}",
            $"--snapshot={Fingerprint.Snapshot}", "--file", DumpDirectory, "--dbname", _connection.Database,
        };
        foreach (var schema in _options.ExcludeSchemas)
        {
            // A pattern in double quotes matches the name literally (no *, ?, . or case folding); a quote is doubled.
            args.Add("--exclude-schema=\"" + schema.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"");
        }
        var psi = PgProcess.StartInfo(_bin["pg_dump"], args, env.Variables);
        using var pgDump = PgProcess.Start(psi, "pg_dump");
        pgDump.StandardInput.Close();
        var stderr = pgDump.StandardError.ReadToEndAsync(cancellationToken);
        _ = pgDump.StandardOutput.ReadToEndAsync(cancellationToken);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var fingerprint = Task.Run(() => FingerprintAsync(progress, cts.Token), cts.Token);
        var handed = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            // Hand over table files as soon as pg_dump has closed them, so ingestion overlaps the dump.
            while (!pgDump.HasExited)
            {
                await Task.Delay(150, cancellationToken).ConfigureAwait(false);
                foreach (var f in CompleteFiles(handed, pgDump.Id))
                {
                    handed.Add(f);
                    await onFile(f, Path.Combine(DumpDirectory, f)).ConfigureAwait(false);
                }
            }
            await pgDump.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
            if (pgDump.ExitCode != 0)
            {
                throw new PgToolException($"pg_dump of {_connection.Redacted} failed (exit {pgDump.ExitCode}): {PgProcess.Tail(await stderr.ConfigureAwait(false))}; no backup was recorded");
            }
            var rest = Directory.EnumerateFiles(DumpDirectory).Select(Path.GetFileName).OfType<string>()
                .Where(f => !handed.Contains(f)).OrderBy(f => f == "toc.dat" ? 1 : 0).ThenBy(f => f, StringComparer.Ordinal).ToList();
            foreach (var f in rest)
            {
                await onFile(f, Path.Combine(DumpDirectory, f)).ConfigureAwait(false);
            }
            Fingerprint = await fingerprint.ConfigureAwait(false);
            Roles = await RoleCatalog.ReadAsync(_holder, _options.WithRolePasswords, _options.Roles, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            PgProcess.Kill(pgDump);
            await cts.CancelAsync().ConfigureAwait(false);
            try
            {
                await fingerprint.ConfigureAwait(false);
            }
            catch (Exception)
            {
                // the first error is reported
            }
            throw;
        }
    }

    private async Task<Fingerprint> FingerprintAsync(IProgress<string>? progress, CancellationToken ct)
    {
        var tables = (await Catalog.TablesAsync(_holder, ct).ConfigureAwait(false)).Where(t => !_options.ExcludeSchemas.Contains(t.Schema, StringComparer.Ordinal)).ToList();
        var list = new List<TableFingerprint>(tables.Count);
        foreach (var (schema, name, kind) in tables)
        {
            ct.ThrowIfCancellationRequested();
            var rows = await Catalog.CountAsync(_holder, schema, name, ct).ConfigureAwait(false);
            var hash = _options.ContentFingerprint ? await Catalog.ContentHashAsync(_holder, schema, name, ct).ConfigureAwait(false) : null;
            list.Add(new TableFingerprint { Schema = schema, Name = name, Kind = kind, Rows = rows, ContentHash = hash });
            progress?.Report($"{schema}.{name}");
        }
        var fks = new List<string>();
        await using (var cmd = new NpgsqlCommand("SELECT n.nspname || '.' || c.relname || '.' || k.conname FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE k.contype = 'f' AND k.conparentid = 0 ORDER BY 1", _holder))
        await using (var r = await cmd.ExecuteReaderAsync(ct).ConfigureAwait(false))
        {
            while (await r.ReadAsync(ct).ConfigureAwait(false))
            {
                fks.Add(r.GetString(0));
            }
        }
        Dictionary<string, string>? values = null;
        foreach (var (name, query) in _options.FingerprintQueries ?? [])
        {
            values ??= new Dictionary<string, string>(StringComparer.Ordinal);
            await using (var sp = new NpgsqlCommand("SAVEPOINT cairn_check", _holder))
            {
                await sp.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            try
            {
                await using var cmd = new NpgsqlCommand(query, _holder);
                cmd.Parameters.AddWithValue("backup_time", Fingerprint.BackupTime);
                var v = await cmd.ExecuteScalarAsync(ct).ConfigureAwait(false);
                if (v is not null and not DBNull)
                {
                    values[name] = Convert.ToString(v, CultureInfo.InvariantCulture) ?? "";
                }
                await using var release = new NpgsqlCommand("RELEASE SAVEPOINT cairn_check", _holder);
                await release.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
            catch (PostgresException)
            {
                await using var rollback = new NpgsqlCommand("ROLLBACK TO SAVEPOINT cairn_check", _holder);
                await rollback.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
            }
        }
        return Fingerprint with { Tables = list, ForeignKeys = fks, CheckValues = values };
    }

    /// <summary>Files in the dump folder that no process holds open any more (pg_dump finished writing them).</summary>
    private IEnumerable<string> CompleteFiles(HashSet<string> handed, int writerPid)
    {
        if (!Directory.Exists(DumpDirectory))
        {
            return [];
        }
        var present = Directory.EnumerateFiles(DumpDirectory).Select(Path.GetFileName).OfType<string>()
            .Where(f => f != "toc.dat" && !handed.Contains(f)).ToList();
        if (present.Count == 0)
        {
            return [];
        }
        // Unknown (procfs unreadable) means none is known complete: they are all handed over once pg_dump exits.
        if (OpenFiles.Under(DumpDirectory, writerPid) is not { } open)
        {
            return [];
        }
        return present.Where(f => !open.Contains(Path.Combine(DumpDirectory, f))).Order(StringComparer.Ordinal).ToList();
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await using (var rollback = new NpgsqlCommand("ROLLBACK", _holder))
            {
                await rollback.ExecuteNonQueryAsync().ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
        {
        }
        await _holder.DisposeAsync().ConfigureAwait(false);
        try
        {
            Directory.Delete(_work, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
