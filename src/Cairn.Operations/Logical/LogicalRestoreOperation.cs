using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Logical;

/// <param name="Roles">The roles the restore created (with what it withheld) and those it found and left alone.</param>
public sealed record RestoreResult(string Database, Fingerprint Fingerprint, IReadOnlyList<CountMismatch> Mismatches, IReadOnlyList<string> Warnings, TimeSpan Duration, RoleReport Roles)
{
    public bool Ok => Mismatches.Count == 0;
}

/// <summary>Restores logical backups: a whole database, or single tables beside the live data.</summary>
public static class LogicalRestoreOperation
{
    /// <summary>The snapshot "latest" or an ID prefix, among the logical backups of <paramref name="name"/>.</summary>
    public static async Task<Snapshot> FindAsync(Repository.Repository repo, string name, string? snapshot, CancellationToken ct)
    {
        if (snapshot is not null && snapshot != "latest")
        {
            var s = await repo.FindSnapshotAsync(snapshot, ct).ConfigureAwait(false);
            if (s.Manifest.Kind != LogicalBackupOperation.Kind)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"snapshot {s.ShortId} is a {s.Manifest.Kind} backup, not a logical one");
            }
            return s;
        }
        var all = await repo.ListSnapshotsAsync(ct).ConfigureAwait(false);
        return all.LastOrDefault(s => s.Manifest.Kind == LogicalBackupOperation.Kind && s.Manifest.Name == name)
            ?? throw new RepositoryException(ErrorKind.NotFound, $"no logical backup of {name} yet; take one with 'cairn backup {name}'");
    }

    public static async Task<Fingerprint> ReadFingerprintAsync(Repository.Repository repo, Snapshot s, CancellationToken ct)
    {
        var item = s.Manifest.Items.FirstOrDefault(i => i.Name == LogicalBackupOperation.FingerprintItem)
            ?? throw new DataDamagedException($"snapshot {s.ShortId} has no fingerprint");
        var ms = new MemoryStream();
        await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
        return JsonSerializer.Deserialize(ms.ToArray(), FingerprintJson.Default.Fingerprint) ?? throw new DataDamagedException("empty fingerprint");
    }

    /// <summary>Writes the dump items (all, or those named) into a folder pg_restore can read.</summary>
    public static async Task MaterializeAsync(Repository.Repository repo, Snapshot s, string folder, Func<string, bool>? which, CancellationToken ct)
    {
        Directory.CreateDirectory(folder);
        var items = s.Manifest.Items.Where(i => i.Name.StartsWith(LogicalBackupOperation.DumpPrefix, StringComparison.Ordinal))
            .Where(i => which is null || which(i.Name[LogicalBackupOperation.DumpPrefix.Length..])).ToList();
        await Parallel.ForEachAsync(items, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = ct }, async (item, token) =>
        {
            var path = Path.Combine(folder, Path.GetFileName(item.Name));
            await using var fs = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
            await repo.ReadItemAsync(item, fs, null, token).ConfigureAwait(false);
        }).ConfigureAwait(false);
    }

    /// <summary>
    /// The snapshot's roles: roles.json, or the roles.sql an older Cairn wrote (parsed as data, never run;
    /// a file not in the form Cairn wrote refuses the restore), or none.
    /// </summary>
    public static async Task<RoleSet> ReadRolesAsync(Repository.Repository repo, Snapshot s, CancellationToken ct)
    {
        if (s.Manifest.Items.FirstOrDefault(i => i.Name == LogicalBackupOperation.RolesItem) is { } item)
        {
            var ms = new MemoryStream();
            await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
            return RoleSet.FromJson(ms.ToArray());
        }
        var legacy = await ReadTextItemAsync(repo, s, LogicalBackupOperation.LegacyRolesItem, ct).ConfigureAwait(false);
        return legacy.Length == 0 ? RoleSet.Empty : LegacyRolesSql.Parse(legacy);
    }

    public static async Task<string> ReadTextItemAsync(Repository.Repository repo, Snapshot s, string name, CancellationToken ct)
    {
        var item = s.Manifest.Items.FirstOrDefault(i => i.Name == name);
        if (item is null)
        {
            return "";
        }
        var ms = new MemoryStream();
        await repo.ReadItemAsync(item, ms, null, ct).ConfigureAwait(false);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Full restore into a new database on <paramref name="server"/>, then checks every table against the fingerprint.</summary>
    /// <param name="withRoleAttributes">Grant SUPERUSER, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS and memberships in
    /// roles the restore did not create, as the source had them (by default they are withheld and reported).</param>
    public static async Task<RestoreResult> RestoreDatabaseAsync(Repository.Repository repo, Snapshot s, PgConnection server, string database, bool clean, int jobs, bool noOwner,
        IProgress<string>? progress, CancellationToken ct, string? workDir = null, string? postgresBin = null, bool withRoleAttributes = false)
    {
        var sw = Stopwatch.StartNew();
        var fp = await ReadFingerprintAsync(repo, s, ct).ConfigureAwait(false);
        var roles = noOwner ? null : await ReadRolesAsync(repo, s, ct).ConfigureAwait(false);
        var work = Path.Combine(workDir ?? Path.GetTempPath(), $"cairn-restore-{Guid.NewGuid():N}"[..28]);
        try
        {
            progress?.Report("preparing database and roles");
            var report = await LogicalRestorer.PrepareDatabaseAsync(server, database, fp, roles, withRoleAttributes, clean, ct).ConfigureAwait(false);
            var warnings = new List<string>(report.Warnings);
            progress?.Report("reading the backup");
            await MaterializeAsync(repo, s, Path.Combine(work, "dump"), null, ct).ConfigureAwait(false);
            progress?.Report("pg_restore");
            var target = server.WithDatabase(database);
            warnings.AddRange(await LogicalRestorer.PgRestoreAsync(target, Path.Combine(work, "dump"), jobs, noOwner, work, ct, postgresBin).ConfigureAwait(false));
            progress?.Report("checking rows against the fingerprint");
            var mismatches = await LogicalRestorer.CheckAsync(target, fp, ct).ConfigureAwait(false);
            return new RestoreResult(database, fp, mismatches, warnings, sw.Elapsed, report);
        }
        finally
        {
            TryDelete(work);
        }
    }

    /// <summary>Table-level restore: only the table of contents and the named tables' files are read from the repository.</summary>
    public static async Task<List<TableDiff>> RestoreTablesAsync(Repository.Repository repo, Snapshot s, PgConnection target, IReadOnlyList<(string Schema, string Name)> tables, string stagingSchema, bool mergeMissing,
        CancellationToken ct, string? workDir = null, string? postgresBin = null)
    {
        var problem = TableRestorer.StagingSchemaProblem(stagingSchema, tables);
        if (problem is not null)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, problem);
        }
        var work = Path.Combine(workDir ?? Path.GetTempPath(), $"cairn-tables-{Guid.NewGuid():N}"[..27]);
        try
        {
            var dir = Path.Combine(work, "dump");
            await MaterializeAsync(repo, s, dir, f => f == "toc.dat", ct).ConfigureAwait(false);
            var files = await TableRestorer.DataFilesAsync(dir, ct, postgresBin).ConfigureAwait(false);
            var needed = new HashSet<string>(StringComparer.Ordinal);
            foreach (var (schema, name) in tables)
            {
                if (!files.TryGetValue($"{schema}.{name}", out var f))
                {
                    throw new PgToolException($"table {schema}.{name} is not in backup {s.ShortId} (it has {files.Count} tables with data)");
                }
                needed.Add(f);
            }
            await MaterializeAsync(repo, s, dir, needed.Contains, ct).ConfigureAwait(false);
            var diffs = await TableRestorer.RestoreAsync(target, dir, tables, stagingSchema, work, ct, postgresBin).ConfigureAwait(false);
            if (mergeMissing)
            {
                diffs = await TableRestorer.MergeMissingAsync(target, tables, stagingSchema, ct).ConfigureAwait(false);
            }
            return diffs;
        }
        finally
        {
            TryDelete(work);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }

}
