using System.Buffers.Binary;
using System.Formats.Tar;
using System.Text;
using Cairn.Fuzz.Targets;
using Cairn.PostgreSql.Logical;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Fuzz;

/// <summary>
/// The seed corpus: small real objects, made by Cairn's own writers (the repository, the evidence log, PostgreSQL's
/// manifest format as Cairn writes it) or in the exact form PostgreSQL writes (backup_label, history files, the
/// pg_basebackup tar layout). Committed under tests/fuzz/corpus/&lt;target&gt;/ by <c>Cairn.Fuzz corpus</c>.
/// </summary>
public static class Corpus
{
    /// <summary>tests/fuzz/corpus of the checkout this assembly was built from.</summary>
    public static string DefaultRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Cairn.slnx")))
            {
                return Path.Combine(dir.FullName, "tests", "fuzz", "corpus");
            }
        }
        return Path.Combine("tests", "fuzz", "corpus");
    }

    /// <summary>The seeds in a folder (sorted, so runs are repeatable), or none when it does not exist.</summary>
    public static List<byte[]> Read(string folder)
        => Directory.Exists(folder) ? [.. Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal).Select(File.ReadAllBytes)] : [];

    public static IEnumerable<(string Target, string Name, byte[] Bytes)> Generate()
    {
        var f = RepositoryFixture.Shared;
        var repo = f.Sealer;
        byte[] Plain(StorageKey k, byte[] context) => repo.OpenObject(f.Objects[k], context, k.Name, k.Name);
        foreach (var (k, _) in f.Objects.Where(o => o.Key.Kind == ObjectKind.Index).OrderBy(o => o.Key.Name, StringComparer.Ordinal))
        {
            yield return ("index", k.Name[..12] + ".json", Plain(k, Aead.IndexContext));
        }
        yield return ("manifest", "logical.json", Plain(new StorageKey(ObjectKind.Snapshot, f.StreamBackup.Id), Aead.SnapshotContext));
        var physical = Plain(new StorageKey(ObjectKind.Snapshot, f.PhysicalBackup.Id), Aead.SnapshotContext);
        yield return ("manifest", "physical.json", physical);
        var bound = Encoding.UTF8.GetString(physical).Replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", "@CANARY@/secret", StringComparison.Ordinal).Replace("/srv/tablespace", "@CANARY@", StringComparison.Ordinal);
        yield return ("physical-restore", "files.json", Encoding.UTF8.GetBytes(bound));

        var victim = f.Objects[RepositoryTargets.VictimPack];
        yield return ("pack", "pack.bin", victim);
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(victim.AsSpan(victim.Length - 4));
        yield return ("pack-header", "header.bin", repo.Aead.Open(victim.AsSpan(victim.Length - 4 - headerLength, headerLength), Aead.PackHeaderContext, "header"));
        foreach (var (k, v) in f.Objects.Where(o => o.Key.Kind == ObjectKind.Named).OrderBy(o => o.Key.Name, StringComparer.Ordinal))
        {
            yield return ("named-file", k.Name.Replace('@', '-') + ".bin", repo.Aead.Open(v, Aead.Concat("cairn-named"u8, Encoding.UTF8.GetBytes(k.Name)), "named"));
        }
        var config = f.Objects[StorageKey.Config];
        yield return ("config-object", "config.bin", config);
        var id = Convert.FromHexString(RepositoryTargets.RepoIdHex);
        yield return ("repo-config", "config.json", repo.Aead.Open(config.AsSpan(7 + 33), Aead.Concat(Aead.ConfigContext, id), "config"));
        yield return ("fingerprint", "fingerprint.json", RepositoryFixture.FingerprintSeed);
        yield return ("key-file", "key.json", f.Objects.First(o => o.Key.Kind == ObjectKind.Key).Value);
        var names = new StringBuilder();
        foreach (var (k, _) in f.Objects.OrderBy(o => o.Key.Path, StringComparer.Ordinal))
        {
            names.Append(k.Kind switch { ObjectKind.Snapshot => "snapshots", ObjectKind.Index => "index", ObjectKind.Data => "data", ObjectKind.Key => "keys", ObjectKind.Named => "wal", _ => "other" }).Append('/').Append(k.Name).Append('\n');
        }
        yield return ("storage-names", "listing.txt", Encoding.UTF8.GetBytes(names.ToString()));
        yield return ("storage-names", "short.txt", "snapshots/abc\nindex/x\ndata/zz\nwal/app@00000001.history\n"u8.ToArray());

        var tar = BaseBackupTarSeed(withLinks: false);
        yield return ("basebackup-tar", "base.tar", tar);
        yield return ("basebackup-tar", "links.tar", BaseBackupTarSeed(withLinks: true));
        yield return ("tar-sniffer", "base.tar", tar);
        yield return ("backup-label", "backup_label", Label);
        yield return ("backup-manifest", "backup_manifest", PostgreSqlTargets.ValidManifest);
        yield return ("wal-names", "names.txt", "000000010000000000000001\n000000010000000000000002\n0000000100000000000000FF\n000000010000000100000000\n00000002.history\n000000010000000000000002.partial\n000000010000000000000002.00000028.backup\n0/2000028\nFFFFFFFF/FFFFFFFF\n16/B374D848\n"u8.ToArray());
        yield return ("wal-history", "00000002.history", "1\t0/3000000\tno recovery target specified\n"u8.ToArray());
        yield return ("wal-history", "00000003.history", "1\t0/3000000\tno recovery target specified\n\n2\t0/5000000\tbefore 2025-01-01 00:00:00+00\n"u8.ToArray());
        yield return ("roles-json", "roles.json", new RoleSet
        {
            Roles =
            [
                new RoleDefinition { Name = "app_owner", Login = true, ConnectionLimit = 10, ValidUntil = "infinity", Comment = "owns app", Settings = [new RoleSetting("search_path", "app, public"), new RoleSetting("work_mem", "64MB", InDatabase: true)] },
                new RoleDefinition { Name = "reader", MemberOf = [new RoleMembership("app_owner", Admin: false, Inherit: true, Set: false)] },
                new RoleDefinition { Name = "we\"ird\nname", Superuser = true, BypassRls = true, Password = "SCRAM-SHA-256$4096:abc" },
            ],
        }.ToJson());
        yield return ("roles-sql", "roles.sql", Encoding.UTF8.GetBytes(
            "-- roles referenced by the database (cairn)\n" +
            "DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE \"app_owner\" NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT -1; END IF; END $cairn$;\n" +
            "DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'it''s') THEN CREATE ROLE \"it's\" NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5 PASSWORD 'md5abc'; END IF; END $cairn$;\n" +
            "GRANT \"app_owner\" TO \"it's\";\n"));
        yield return ("connection", "uri.txt", "postgresql://cairn_backup:secret@db.internal:5432/app?sslmode=require&application_name=cairn"u8.ToArray());
        yield return ("connection", "socket.txt", "postgresql://postgres@/postgres?host=/var/run/postgresql"u8.ToArray());
        yield return ("connection", "kv.txt", "host=db.internal port=5432 dbname='my app' user=cairn password='it\\'s'"u8.ToArray());

        var (folder, _, _) = EvidenceTargets.Log.Value;
        yield return ("evidence-segment", "segment.jsonl", File.ReadAllBytes(EvidenceTargets.SegmentOf(folder)));
        yield return ("evidence-leaves", "segment.leaves", File.ReadAllBytes(EvidenceTargets.LeavesOf(folder)));
        yield return ("checkpoint", "checkpoint", File.ReadAllBytes(Path.Combine(folder, "checkpoint")));
        yield return ("note-key", "evidence.pub", File.ReadAllBytes(Path.Combine(folder, "evidence.pub")));
        yield return ("note-key", "signer.key", File.ReadAllBytes(folder + ".key"));

        yield return ("config", "cairn.yaml", Encoding.UTF8.GetBytes(SampleConfig));
        yield return ("config", "physical.yaml", "compression: zstd:auto\ndatabases:\n  app:\n    connection: \"postgresql://postgres@/postgres?host=/var/run/postgresql\"\n    data_directory: /var/lib/postgresql/15/main\n    compression: zstd:3\n    retention: { keep_within: 30d, keep_last: 7 }\ns3: { endpoint: \"http://127.0.0.1:9000\", region: us-east-1, path_style: true }\n"u8.ToArray());
        yield return ("cron", "daily.txt", "0 3 * * *"u8.ToArray());
        yield return ("cron", "nth.txt", "0 3 * * 0#1"u8.ToArray());
        yield return ("cron", "steps.txt", "*/5 1-5,7 * JAN-MAR MON-FRI"u8.ToArray());
        yield return ("checks", "checks.yaml", "- tables_present: [public.profiles, public.orders]\n- row_counts: { equal_to: fingerprint }\n- rls_enabled: { schema: public }\n- foreign_keys: {}\n- audit_continuity: { table: public.audit_log, time_column: created_at, max_gap: 6h }\n- sql: { name: verified, query: \"SELECT 1\", expect: \">= 1\" }\n- amcheck: { heapallindexed: true }\n- command: { name: smoke, run: \"./smoke.sh\", timeout: 5m }\n"u8.ToArray());
        yield return ("expectation", "ge.txt", ">= 1"u8.ToArray());
        yield return ("expectation", "between.txt", "between -1.5 and 10"u8.ToArray());
        yield return ("expectation", "fingerprint.txt", "= fingerprint"u8.ToArray());
        yield return ("s3-key", "listing.txt", Encoding.UTF8.GetBytes(names.ToString().Replace("\ndata/", "\ndata/ab/", StringComparison.Ordinal) + "config\ndata/ab/abc\nlocks/1\n"));
        yield return ("repo-location", "s3.txt", "s3://backups/cairn/prod"u8.ToArray());
        yield return ("repo-location", "folder.txt", "/var/lib/cairn/repo"u8.ToArray());
        yield return ("repo-location", "relative.txt", "repo"u8.ToArray());
    }

    /// <summary>backup_label as PostgreSQL 15 writes it.</summary>
    internal static readonly byte[] Label = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2025-01-10 03:00:00 UTC\nLABEL: cairn\nSTART TIMELINE: 1\n"u8.ToArray();

    private const string SampleConfig = """
        repository: /var/lib/cairn/repo
        evidence: { path: /var/lib/cairn/evidence }
        work_dir: /var/tmp
        databases:
          app:
            connection: "postgresql://cairn_backup@db.internal:5432/app"
            password_file: /etc/cairn/app.pgpass-password
            retention: { keep_last: 7, keep_daily: 30, keep_weekly: 8, keep_monthly: 12, keep_within: 30d }
            checks:
              - tables_present: [public.profiles, public.orders]
              - row_counts: { equal_to: fingerprint }
              - sql: { name: verified_emails, query: "SELECT count(*) FROM profiles", expect: ">= 1" }
            schedule: { backup: "0 0 * * *", drill: "0 3 * * 0#1", verify_live: "30 0 * * *", prune: "0 5 * * *", check: "*/5 * * * *" }
            monitoring: { backup_warn_after: 24h, backup_critical_after: 26h, drill_critical_after: 35d }
        alerts:
          - { type: webhook, format: siren, url_file: /etc/cairn/siren.url }
          - { type: command, run: /usr/local/bin/page-oncall }

        """;

    /// <summary>The layout pg_basebackup -Ft -D - streams (ustar), optionally with a link out of the target and a hard link.</summary>
    private static byte[] BaseBackupTarSeed(bool withLinks)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
        {
            void Dir(string n) => w.WriteEntry(new UstarTarEntry(TarEntryType.Directory, n) { Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute });
            void FileEntry(string n, byte[] content) => w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, n) { Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite, DataStream = new MemoryStream(content) });
            FileEntry("backup_label", Label);
            FileEntry("PG_VERSION", "15\n"u8.ToArray());
            Dir("base/");
            Dir("base/1/");
            FileEntry("base/1/1259", RepositoryFixture.Rows(3000, 7));
            Dir("global/");
            FileEntry("global/pg_control", RepositoryFixture.Rows(512, 8));
            Dir("pg_wal/");
            if (withLinks)
            {
                w.WriteEntry(new UstarTarEntry(TarEntryType.SymbolicLink, "server.crt") { LinkName = "../canary/secret" });
                w.WriteEntry(new UstarTarEntry(TarEntryType.SymbolicLink, "evil") { LinkName = "../canary" });
                w.WriteEntry(new UstarTarEntry(TarEntryType.HardLink, "base/1/1259_copy") { LinkName = "base/1/1259" });
            }
            FileEntry("backup_manifest", PostgreSqlTargets.ValidManifest);
        }
        return ms.ToArray();
    }
}
