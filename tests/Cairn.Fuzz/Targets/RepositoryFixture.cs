using System.Text;
using System.Text.Json;
using Cairn.Repository;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// A small real repository made once per process with Cairn's own writer: a logical-style stream backup, a
/// file-level physical backup (folders, files, a link, a tablespace link) and archived WAL. Targets copy its
/// objects into fresh storage, replace one object by the fuzz input — sealed with the repository key, so the
/// input reaches the parser behind the authentication, as a forger holding a passphrase would — and run the
/// code that reads it.
/// </summary>
internal sealed class RepositoryFixture
{
    public const string Passphrase = "fuzz";

    /// <summary>The cheapest key file the bounds allow: opening per input costs microseconds, not an Argon2 run.</summary>
    public static readonly KdfParameters CheapKdf = new(8, 1, 1);

    private static readonly Lazy<RepositoryFixture> Instance = new(() => CreateAsync().GetAwaiter().GetResult());

    private RepositoryFixture(Dictionary<StorageKey, byte[]> objects, Repository.Repository sealer, Snapshot stream, Snapshot physical)
    {
        Objects = objects;
        Sealer = sealer;
        StreamBackup = stream;
        PhysicalBackup = physical;
    }

    public static RepositoryFixture Shared => Instance.Value;

    /// <summary>Every stored object of the repository, by key.</summary>
    public IReadOnlyDictionary<StorageKey, byte[]> Objects { get; }

    /// <summary>An open repository over the original objects: its key seals fuzz inputs.</summary>
    public Repository.Repository Sealer { get; }

    public Snapshot StreamBackup { get; }

    public Snapshot PhysicalBackup { get; }

    public static readonly RepositoryOptions Options = new()
    {
        Kdf = CheapKdf,
        Chunker = new ChunkerParameters(1024, 4096, 16 * 1024),
        PackSize = 32 * 1024,
        Workers = 1,
    };

    private static async Task<RepositoryFixture> CreateAsync()
    {
        var storage = new InMemoryStorage();
        var repo = await Repository.Repository.InitAsync(storage, Passphrase, Options, TimeProvider.System, CancellationToken.None);
        Snapshot stream;
        await using (var w = repo.BeginWrite(Options))
        {
            await w.AddStreamAsync("toc.dat", new MemoryStream(Rows(20_000, 1)), null, CancellationToken.None);
            await w.AddStreamAsync("3001.dat", new MemoryStream(Rows(50_000, 2)), null, CancellationToken.None);
            await w.AddStreamAsync("empty.dat", new MemoryStream([]), null, CancellationToken.None);
            await w.AddStreamAsync("fingerprint.json", new MemoryStream(FingerprintSeed), null, CancellationToken.None);
            stream = await w.CommitAsync("app", "logical", new() { ["format"] = "directory" }, CancellationToken.None);
        }
        Snapshot physical;
        await using (var w = repo.BeginWrite(Options))
        {
            foreach (var dir in new[] { "base", "base/1", "global", "pg_wal", "pg_tblspc" })
            {
                w.AddExistingItem(new ManifestItem { Name = dir, Type = "dir", Meta = new() { ["mode"] = "0700" } });
            }
            await w.AddStreamAsync("PG_VERSION", new MemoryStream("15\n"u8.ToArray()), null, "file", new() { ["mode"] = "0600" }, CancellationToken.None);
            await w.AddStreamAsync("base/1/1259", new MemoryStream(Rows(40_000, 3)), null, "file", new() { ["mode"] = "0600" }, CancellationToken.None);
            await w.AddStreamAsync("global/pg_control", new MemoryStream(Rows(8192, 4)), null, "file", new() { ["mode"] = "0600" }, CancellationToken.None);
            w.AddExistingItem(new ManifestItem { Name = "server.crt", Type = "link", Meta = new() { ["target"] = "/etc/ssl/certs/ssl-cert-snakeoil.pem" } });
            w.AddExistingItem(new ManifestItem { Name = "pg_tblspc/16384", Type = "link", Meta = new() { ["target"] = "/srv/tablespace" } });
            physical = await w.CommitAsync("app", "physical", new()
            {
                ["format"] = "files", ["start_wal"] = "000000010000000000000002", ["stop_wal"] = "000000010000000000000002", ["start_lsn"] = "0/2000028", ["stop_lsn"] = "0/2000100",
                ["timeline"] = "1", ["start_time"] = "2025-01-10T03:00:00.0000000Z", ["stop_time"] = "2025-01-10T03:00:05.0000000Z", ["system_identifier"] = "7312345678901234567",
            }, CancellationToken.None);
        }
        await NamedFiles.PutAsync(repo, "app@000000010000000000000002", Rows(16 * 1024, 5), CancellationToken.None);
        await NamedFiles.PutAsync(repo, "app@00000002.history", "1\t0/3000000\tno recovery target specified\n"u8.ToArray(), CancellationToken.None);
        var objects = new Dictionary<StorageKey, byte[]>();
        foreach (var kind in Enum.GetValues<ObjectKind>())
        {
            await foreach (var o in storage.ListAsync(kind, CancellationToken.None))
            {
                objects[o.Key] = await storage.GetAllAsync(o.Key, CancellationToken.None);
            }
        }
        return new RepositoryFixture(objects, repo, stream, physical);
    }

    /// <summary>A fresh storage holding the repository's objects, except those <paramref name="keep"/> refuses.</summary>
    public InMemoryStorage Copy(Func<StorageKey, bool>? keep = null)
    {
        var s = new InMemoryStorage();
        foreach (var (k, v) in Objects)
        {
            if (keep is null || keep(k))
            {
                s.PutAsync(k, v, CancellationToken.None).GetAwaiter().GetResult();
            }
        }
        return s;
    }

    /// <summary>A metadata object (index or manifest) as the writer stores it: zstd, sealed, named by its SHA-256.</summary>
    public (string Name, byte[] Bytes) SealObject(ObjectKind kind, byte[] json)
    {
        var context = kind == ObjectKind.Index ? Aead.IndexContext : Aead.SnapshotContext;
        var sealedBytes = Sealer.Aead.Seal(Zstd.Compress(json, 3), context);
        return (ContentId.Sha256(sealedBytes).ToHex(), sealedBytes);
    }

    public static Repository.Repository Open(IStorage storage)
        => Repository.Repository.OpenAsync(storage, Passphrase, TimeProvider.System, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Opens as wal-push and wal-fetch do: no index.</summary>
    public static Repository.Repository Repo(IStorage storage)
        => Repository.Repository.OpenForNamedFilesAsync(storage, Passphrase, TimeProvider.System, CancellationToken.None).GetAwaiter().GetResult();

    public static byte[] Json<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> info) => JsonSerializer.SerializeToUtf8Bytes(value, info);

    /// <summary>A logical backup's fingerprint.json as the backup writes it.</summary>
    public static readonly byte[] FingerprintSeed = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(new Cairn.PostgreSql.Logical.Fingerprint
    {
        Database = "app",
        BackupTime = new DateTimeOffset(2025, 1, 10, 3, 0, 0, TimeSpan.Zero),
        ServerVersionNum = 150010,
        ServerVersion = "15.10",
        Snapshot = "00000003-00000002-1",
        Tables = [new() { Schema = "public", Name = "orders", Rows = 1200, ContentHash = "123456789" }, new() { Schema = "public", Name = "profiles", Rows = 40 }],
        Extensions = ["plpgsql"],
        ForeignKeys = ["public.orders.orders_profile_fkey"],
        CheckValues = new() { ["verified"] = "40" },
    }, Cairn.Operations.Logical.FingerprintJson.Default.Fingerprint);

    public static byte[] Rows(int size, int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(size + 100);
        var i = 0;
        while (sb.Length < size)
        {
            sb.Append(i++).Append('\t').Append(rng.Next()).Append("\tuser").Append(rng.Next(1000)).Append("@example.com\n");
        }
        return Encoding.ASCII.GetBytes(sb.ToString())[..size];
    }
}
