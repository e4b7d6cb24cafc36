using System.Text;
using Cairn.Operations.Physical;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// What PostgreSQL, its programs and the server's user hand Cairn: the pg_basebackup tar, backup_label and
/// backup_manifest, WAL names and timeline histories (archived by the server's user), roles.json and the old
/// roles.sql of a backup, connection strings, and a file-level backup's manifest as the restore reads it.
/// </summary>
internal static class PostgreSqlTargets
{
    private static readonly Type[] PgErrors = [typeof(PgToolException)];
    private static readonly Type[] RestoreErrors = [typeof(PgToolException), typeof(RepositoryException), typeof(AuthenticationFailedException)];

    public static IEnumerable<FuzzTarget> All()
    {
        yield return new FuzzTarget("basebackup-tar", "a pg_basebackup tar -> BaseBackupTar.ExtractAsync into a scratch folder with a canary beside it", BaseBackupTarTarget, PgErrors) { Timeout = TimeSpan.FromSeconds(30) };
        yield return new FuzzTarget("tar-sniffer", "a tar stream -> TarSniffer (backup_label and backup_manifest captured as they pass)", TarSnifferTarget, PgErrors);
        yield return new FuzzTarget("backup-label", "backup_label text (with a valid backup_manifest) -> BaseBackup.Describe", Label, PgErrors) { Dictionary = ["START WAL LOCATION: ", "START TIMELINE: ", "(file ", ")", "0/", "FFFFFFFF/FFFFFFFF"] };
        yield return new FuzzTarget("backup-manifest", "PostgreSQL's backup_manifest JSON (with a backup_label naming no start) -> BaseBackup.Describe", ManifestJson, PgErrors) { Dictionary = ["\"WAL-Ranges\"", "\"Timeline\"", "\"Start-LSN\"", "\"End-LSN\"", "\"Files\"", "\"Path\"", "\"0/0\"", "[]", "{}"] };
        yield return new FuzzTarget("wal-names", "WAL file names and LSNs, one per line -> WalNames (IsValid, ParseLsn, SegmentOf), WalContinuity (Next, Missing)", WalNamesTarget, [typeof(FormatException)]) { Dictionary = ["000000010000000000000001", ".history", ".partial", ".backup", "/", "FFFFFFFF"] };
        yield return new FuzzTarget("wal-history", "a timeline history file archived by the server's user (wal/DB@00000002.history) -> RecoveryWindow.ComputeAsync, WalArchive.MissingAsync (WalContinuity.ParseHistory, RecoveryPath, Missing)", WalHistory, RestoreErrors) { Dictionary = ["\t", "0/3000000", "FFFFFFFF/FFFFFFFF", "no recovery target specified", "#"] };
        yield return new FuzzTarget("roles-json", "a backup's roles.json -> RoleSet.FromJson and every field the restore reads", RolesJsonTarget, PgErrors) { Dictionary = ["\"roles\"", "\"name\"", "\"member_of\"", "\"settings\"", "\"role\"", "\"value\"", "\"superuser\"", "\"version\"", "null"] };
        yield return new FuzzTarget("roles-sql", "an old backup's roles.sql -> LegacyRolesSql.Parse (read as data, never run)", RolesSql, PgErrors) { Dictionary = ["DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ", ") THEN CREATE ROLE ", "; END IF; END $cairn$;", "GRANT ", " TO ", "'", "\"", "E'", "CONNECTION LIMIT ", "PASSWORD "] };
        yield return new FuzzTarget("connection", "a connection string (URI or key=value, from cairn.yaml) -> PgConnection.Parse, Redacted, the program environment", Connection, PgErrors) { Dictionary = ["postgresql://", "host=", "port=", "user=", "dbname=", "password=", "@", ":", "?", "&", "%", "'", "\\"] };
        yield return new FuzzTarget("physical-restore", "a file-level backup's manifest (sealed) -> PhysicalBackups.RestoreAsync into a scratch folder with a canary beside it", PhysicalRestore, RestoreErrors) { Timeout = TimeSpan.FromSeconds(30), Dictionary = ["\"@CANARY@\"", "\"pg_tblspc/1\"", "\"../canary/secret\"", "\"link\"", "\"dir\"", "\"file\"", "\"mode\"", "\"target\"", "\"04755\"", "\"evil/x\"", "\"evil\""] };
    }

    private static void BaseBackupTarTarget(byte[] input)
    {
        using var scratch = new Scratch("tar");
        try
        {
            BaseBackupTar.ExtractAsync(new MemoryStream(input), scratch.Target, force: false, CancellationToken.None).GetAwaiter().GetResult();
        }
        finally
        {
            scratch.AssertNothingOutside();
        }
    }

    private static void TarSnifferTarget(byte[] input)
    {
        var sniffer = new TarSniffer(new MemoryStream(input), new HashSet<string>(StringComparer.Ordinal) { "backup_label", "backup_manifest" });
        sniffer.CopyTo(Stream.Null);
        if (sniffer.Captured.TryGetValue("backup_label", out var label) && sniffer.Captured.TryGetValue("backup_manifest", out var manifest))
        {
            BaseBackup.Describe(label, manifest, "150000", DateTimeOffset.UnixEpoch);
        }
    }

    internal static readonly byte[] ValidManifest = BackupManifest.Build([new ManifestFile("PG_VERSION", 3, DateTimeOffset.UnixEpoch, "aabbccdd")], 1, "0/2000028", "0/2000100");

    private static void Label(byte[] input) => BaseBackup.Describe(input, ValidManifest, "150000", DateTimeOffset.UnixEpoch);

    private static void ManifestJson(byte[] input) => BaseBackup.Describe("LABEL: cairn\n"u8.ToArray(), input, "150000", DateTimeOffset.UnixEpoch);

    private static void WalNamesTarget(byte[] input)
    {
        var lines = Encoding.UTF8.GetString(input).Split('\n').Take(256).ToList();
        var segments = new List<string>();
        foreach (var l in lines)
        {
            _ = WalNames.IsValid(l);
            if (WalNames.IsSegment(l))
            {
                segments.Add(l);
                _ = WalContinuity.Next(l);
            }
            else if (l.Contains('/', StringComparison.Ordinal))
            {
                try
                {
                    var lsn = WalNames.ParseLsn(l);
                    _ = WalNames.SegmentOf(1, lsn);
                }
                catch (FormatException)
                {
                }
            }
        }
        if (segments.Count > 0)
        {
            _ = WalContinuity.Missing(lines, segments[0]);
        }
    }

    private static void WalHistory(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        foreach (var name in new[] { "app@00000002.history", "app@00000003.history" })
        {
            storage.PutAsync(new StorageKey(ObjectKind.Named, name), RepositoryTargets.SealNamed(name, NamedPlain(input)), CancellationToken.None).GetAwaiter().GetResult();
        }
        foreach (var segment in new[] { "app@000000020000000000000003", "app@000000030000000000000005" })
        {
            storage.PutAsync(new StorageKey(ObjectKind.Named, segment), f.Objects[new StorageKey(ObjectKind.Named, RepositoryTargets.WalName)], CancellationToken.None).GetAwaiter().GetResult();
        }
        using var repo = RepositoryFixture.Open(storage);
        var snapshots = repo.ListSnapshotsAsync(CancellationToken.None).GetAwaiter().GetResult();
        Cairn.Operations.Physical.RecoveryWindow.ComputeAsync(repo, snapshots, CancellationToken.None).GetAwaiter().GetResult();
        new Cairn.Operations.Physical.WalArchive(repo, "app").MissingAsync("000000010000000000000002", CancellationToken.None).GetAwaiter().GetResult();
    }

    /// <summary>A named file's plaintext: SHA-256 of the file, then the file compressed.</summary>
    private static byte[] NamedPlain(byte[] file) => [.. System.Security.Cryptography.SHA256.HashData(file), .. Cairn.Repository.Compression.Zstd.Compress(file, 1)];

    private static void RolesJsonTarget(byte[] input)
    {
        var set = RoleSet.FromJson(input);
        // Every field the restore reads: a null list or name must have been refused by FromJson.
        foreach (var r in set.Roles)
        {
            _ = r.Name.Length + (r.ValidUntil?.Length ?? 0) + (r.Comment?.Length ?? 0) + (r.Password?.Length ?? 0);
            foreach (var m in r.MemberOf)
            {
                _ = m.Role.Length;
            }
            foreach (var s in r.Settings)
            {
                _ = s.Name.Length + s.Value.Length;
            }
        }
    }

    private static void RolesSql(byte[] input) => LegacyRolesSql.Parse(Encoding.UTF8.GetString(input));

    private static void Connection(byte[] input)
    {
        var c = PgConnection.Parse(Encoding.UTF8.GetString(input));
        _ = c.Redacted;
        _ = c.Database;
        using var env = c.ProgramEnvironment();
    }

    private static void PhysicalRestore(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        using var scratch = new Scratch("restore");
        var json = scratch.Bind(input);
        var storage = f.Copy(k => k.Kind != ObjectKind.Snapshot);
        var (name, bytes) = f.SealObject(ObjectKind.Snapshot, json);
        storage.PutAsync(new StorageKey(ObjectKind.Snapshot, name), bytes, CancellationToken.None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        try
        {
            var snap = repo.LoadSnapshotAsync(name, CancellationToken.None).GetAwaiter().GetResult();
            var map = new Dictionary<string, string> { ["1"] = Path.Combine(scratch.Folder, "ts1"), ["16384"] = Path.Combine(scratch.Folder, "ts16384") };
            PhysicalBackups.RestoreAsync(repo, snap, scratch.Target, new FileRestoreOptions(Force: false, Delta: false, Jobs: 2, TablespaceMap: map), null, CancellationToken.None).GetAwaiter().GetResult();
        }
        finally
        {
            // Tablespaces land in the mapped folders (or TARGET-tablespaces) beside the target: theirs to write.
            foreach (var ts in Directory.EnumerateDirectories(scratch.Folder).Where(d => Path.GetFileName(d) is "target-tablespaces" || Path.GetFileName(d).StartsWith("ts", StringComparison.Ordinal)))
            {
                Directory.Delete(ts, recursive: true);
            }
            scratch.AssertNothingOutside();
        }
    }

    internal static Snapshot PhysicalSnapshot => RepositoryFixture.Shared.PhysicalBackup;
}
