using System.Buffers.Binary;
using System.Text;
using Cairn.Repository;
using Cairn.Repository.Verification;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Packs;
using Cairn.Repository.Pruning;
using Cairn.Repository.Storage;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// Repository objects: what a holder of a passphrase (every archiving host) or a damaged disk can put in
/// front of verify, restore and prune. The typed errors are the ones the CLI maps to exit codes
/// (<see cref="RepositoryException"/>: damaged, not found, …; an authentication failure is damage).
/// </summary>
internal static class RepositoryTargets
{
    public static readonly Type[] Errors = [typeof(RepositoryException), typeof(AuthenticationFailedException)];

    private static readonly string[] JsonTokens =
    [
        "\"packs\"", "\"blobs\"", "\"offset\"", "\"length\"", "\"raw_length\"", "\"size\"", "\"id\"", "\"supersedes\"", "\"version\"",
        "\"items\"", "\"chunks\"", "\"name\"", "\"type\"", "\"meta\"", "\"time\"", "\"kind\"", "\"mode\"", "\"target\"", "\"format\"",
        "\"files\"", "\"link\"", "\"dir\"", "\"file\"", "\"stream\"", "\"meta\"", "\"pg_tblspc/1\"", "\"../x\"", "\"/etc/passwd\"", "null",
        "\"0000000000000000000000000000000000000000000000000000000000000000\"", "04755", "\"07777\"", "[]", "{}",
    ];

    public static IEnumerable<FuzzTarget> All()
    {
        yield return new FuzzTarget("index", "index JSON (sealed with the key) -> Repository.OpenAsync (index load), restore reads, Verifier (verify --read-data), Pruner", Index, Errors) { Dictionary = JsonTokens };
        yield return new FuzzTarget("manifest", "manifest JSON (sealed) -> ListSnapshots, FindSnapshot, ReadItem of every item, Verifier, Pruner", Manifest, Errors) { Dictionary = JsonTokens };
        yield return new FuzzTarget("pack", "a stored pack's bytes -> restore reads (range reads), Verifier --read-data (name, header, blobs)", Pack, Errors);
        yield return new FuzzTarget("pack-header", "a pack header's plaintext (sealed) -> Verifier --read-data", PackHeader, Errors);
        yield return new FuzzTarget("named-file", "an archived WAL object's plaintext (hash + zstd, sealed) -> NamedFiles.GetAsync and GetToFileAsync", NamedFile, Errors);
        yield return new FuzzTarget("repo-config", "the config object's plaintext JSON (sealed) -> Repository.OpenAsync, a small backup and its restore", RepoConfig, Errors) { Dictionary = ["\"chunker\"", "\"min\"", "\"average\"", "\"max\"", "\"pack_size\"", "\"version\"", "\"cipher\"", "\"id\""] };
        yield return new FuzzTarget("config-object", "the stored config object (magic, id, sealed JSON) -> Repository.OpenAsync", ConfigObject, Errors);
        yield return new FuzzTarget("key-file", "a key file (keys/<id>) -> Repository.OpenAsync, key list", KeyFileTarget, Errors) { Dictionary = ["\"memory_kib\"", "\"iterations\"", "\"parallelism\"", "\"salt\"", "\"wrapped\"", "\"kdf\"", "\"version\"", "\"argon2id\""] };
        yield return new FuzzTarget("fingerprint", "a logical backup's fingerprint.json (stored as its item) -> LogicalSnapshots.ReadFingerprintAsync and the fields drills compare", FingerprintTarget, Errors) { Dictionary = ["\"tables\"", "\"rows\"", "\"schema\"", "\"name\"", "\"check_values\"", "\"foreign_keys\"", "\"extensions\"", "\"backup_time\"", "null"] };
        yield return new FuzzTarget("storage-names", "object names a storage lists (one per line, as 'folder/name') -> open, list, verify, prune, WAL listing", StorageNames, Errors) { Dictionary = ["snapshots/", "index/", "data/", "keys/", "wal/", "locks/", "app@", ".tmp"] };
    }

    private static readonly CancellationToken None = CancellationToken.None;

    /// <summary>Runs <paramref name="action"/>; a typed error ends only this step, so later steps still see the input.</summary>
    internal static void Step(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is RepositoryException or AuthenticationFailedException)
        {
        }
        catch (AggregateException e) when (e.InnerExceptions.All(x => x is RepositoryException or AuthenticationFailedException))
        {
        }
    }

    /// <summary>What reads a repository: every item restored (into a sink), verify with all data, prune.</summary>
    internal static void ReadEverything(Repository.Repository repo, bool prune = true)
    {
        Step(() =>
        {
            foreach (var s in repo.ListSnapshotsAsync(None).GetAwaiter().GetResult())
            {
                foreach (var item in s.Manifest.Items.Take(64))
                {
                    Step(() => repo.ReadItemAsync(item, new Sink(64L * 1024 * 1024), null, None).GetAwaiter().GetResult());
                }
                Step(() => repo.FindSnapshotAsync(s.Id[..Math.Min(s.Id.Length, 12)], None).GetAwaiter().GetResult());
            }
        });
        Step(() => new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, None).GetAwaiter().GetResult());
        Step(() => NamedFiles.ListAsync(repo, "app@", None).GetAwaiter().GetResult());
        Step(() => PhysicalReaders(repo));
        if (prune)
        {
            Step(() => new Pruner(repo).PruneAsync(dryRun: false, None).GetAwaiter().GetResult());
        }
    }

    /// <summary>What restores and monitoring do with physical backups' manifests: recovery window, PITR selection, fingerprints.</summary>
    internal static void PhysicalReaders(Repository.Repository repo)
    {
        var snapshots = repo.ListSnapshotsAsync(None).GetAwaiter().GetResult();
        Step(() => Cairn.Operations.Physical.RecoveryWindow.ComputeAsync(repo, snapshots, None).GetAwaiter().GetResult());
        var physical = snapshots.Where(s => s.Manifest.Kind == "physical" && s.Manifest.Name == "app").ToList();
        foreach (var target in new[] { new Cairn.PostgreSql.Physical.RecoveryTarget(Lsn: "0/3000000"), new Cairn.PostgreSql.Physical.RecoveryTarget(Time: "2030-01-01 00:00:00+00"), new Cairn.PostgreSql.Physical.RecoveryTarget(Immediate: "immediate") })
        {
            Step(() => Cairn.Operations.Snapshots.SnapshotSelector.NewestBefore(physical, target, "app"));
        }
        foreach (var s in snapshots.Where(s => s.Manifest.Kind == "logical"))
        {
            Step(() => Cairn.Operations.Logical.LogicalSnapshots.ReadFingerprintAsync(repo, s, None).GetAwaiter().GetResult());
        }
    }

    private static void FingerprintTarget(byte[] input)
    {
        var storage = RepositoryFixture.Shared.Copy(k => k.Kind != ObjectKind.Snapshot);
        using var repo = RepositoryFixture.Open(storage);
        var w = repo.BeginWrite(RepositoryFixture.Options);
        Cairn.Repository.Manifests.Snapshot snap;
        try
        {
            w.AddStreamAsync("fingerprint.json", new MemoryStream(input), null, None).GetAwaiter().GetResult();
            snap = w.CommitAsync("app", "logical", null, None).GetAwaiter().GetResult();
        }
        finally
        {
            w.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        var fp = Cairn.Operations.Logical.LogicalSnapshots.ReadFingerprintAsync(repo, snap, None).GetAwaiter().GetResult();
        // What a drill compares: every table's name and rows, the extensions, foreign keys and check values.
        _ = fp.TotalRows + fp.Tables.Sum(t => t.QualifiedName.Length) + fp.Extensions.Sum(e => e.Length) + fp.ForeignKeys.Sum(k => k.Length) + (fp.CheckValues?.Sum(c => c.Key.Length + c.Value.Length) ?? 0) + fp.Database.Length;
    }

    private static void Index(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy(k => k.Kind != ObjectKind.Index);
        var (name, bytes) = f.SealObject(ObjectKind.Index, input);
        storage.PutAsync(new StorageKey(ObjectKind.Index, name), bytes, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        ReadEverything(repo);
    }

    private static void Manifest(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy(k => k.Kind != ObjectKind.Snapshot);
        var (name, bytes) = f.SealObject(ObjectKind.Snapshot, input);
        storage.PutAsync(new StorageKey(ObjectKind.Snapshot, name), bytes, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        ReadEverything(repo);
    }

    /// <summary>The largest pack of the fixture: the one the mutations replace.</summary>
    internal static StorageKey VictimPack => RepositoryFixture.Shared.Objects.Where(o => o.Key.Kind == ObjectKind.Data).MaxBy(o => o.Value.Length).Key;

    private static void Pack(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        storage.PutAsync(VictimPack, input, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        ReadEverything(repo, prune: false);
    }

    /// <summary>The victim pack's blob area (everything before its sealed header).</summary>
    internal static byte[] BlobArea(byte[] pack)
    {
        var headerLength = BinaryPrimitives.ReadInt32LittleEndian(pack.AsSpan(pack.Length - 4));
        return pack[..(pack.Length - 4 - headerLength)];
    }

    private static void PackHeader(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        var blobs = BlobArea(f.Objects[VictimPack]);
        var header = f.Sealer.Aead.Seal(input, Aead.PackHeaderContext);
        var pack = new byte[blobs.Length + header.Length + 4];
        blobs.CopyTo(pack, 0);
        header.CopyTo(pack, blobs.Length);
        BinaryPrimitives.WriteInt32LittleEndian(pack.AsSpan(pack.Length - 4), header.Length);
        storage.PutAsync(VictimPack, pack, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        Step(() => new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, None).GetAwaiter().GetResult());
    }

    internal const string WalName = "app@000000010000000000000002";

    internal static byte[] SealNamed(string name, byte[] plain)
        => RepositoryFixture.Shared.Sealer.Aead.Seal(plain, Aead.Concat(Encoding.ASCII.GetBytes("cairn-named"), Encoding.UTF8.GetBytes(name)));

    private static void NamedFile(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        storage.PutAsync(new StorageKey(ObjectKind.Named, WalName), SealNamed(WalName, input), None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Repo(storage);
        Step(() => NamedFiles.GetAsync(repo, WalName, None).GetAwaiter().GetResult());
        using var scratch = new Scratch("named");
        Directory.CreateDirectory(scratch.Target);
        Step(() => NamedFiles.GetToFileAsync(repo, WalName, Path.Combine(scratch.Target, "000000010000000000000002"), None).GetAwaiter().GetResult());
        scratch.AssertNothingOutside();
    }

    private static readonly byte[] Magic = "CAIRN1\n"u8.ToArray();

    /// <summary>The repository id the fixture's config carries (hex, 32 digits).</summary>
    internal static string RepoIdHex => Encoding.ASCII.GetString(RepositoryFixture.Shared.Objects[StorageKey.Config], Magic.Length, 32);

    private static void RepoConfig(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        var id = Convert.FromHexString(RepoIdHex);
        var sealedConfig = f.Sealer.Aead.Seal(input, Aead.Concat(Aead.ConfigContext, id));
        byte[] stored = [.. Magic, .. Encoding.ASCII.GetBytes(RepoIdHex + "\n"), .. sealedConfig];
        storage.PutAsync(StorageKey.Config, stored, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
        Step(() =>
        {
            var w = repo.BeginWrite(new RepositoryOptions { Workers = 1, Kdf = RepositoryFixture.CheapKdf });
            try
            {
                w.AddStreamAsync("x", new MemoryStream(RepositoryFixture.Rows(30_000, 9)), null, None).GetAwaiter().GetResult();
                w.CommitAsync("x", "file", null, None).GetAwaiter().GetResult();
            }
            finally
            {
                w.DisposeAsync().AsTask().GetAwaiter().GetResult();
            }
        });
        ReadEverything(repo, prune: false);
    }

    private static void ConfigObject(byte[] input)
    {
        var storage = RepositoryFixture.Shared.Copy();
        storage.PutAsync(StorageKey.Config, input, None).GetAwaiter().GetResult();
        using var repo = RepositoryFixture.Open(storage);
    }

    /// <summary>Argon2 work the harness lets one key file ask for (memory KiB × passes); beyond it the open is not run.</summary>
    private const long KdfBudget = 64 * 1024;

    private static void KeyFileTarget(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var key = f.Objects.Keys.First(k => k.Kind == ObjectKind.Key);
        var storage = f.Copy(k => k.Kind != ObjectKind.Key);
        storage.PutAsync(key, input, None).GetAwaiter().GetResult();
        // The bounds allow up to 4 GiB x 100 passes on purpose (a strong passphrase KDF); the harness does not spend that.
        if (CostOf(input) <= KdfBudget)
        {
            using var r = RepositoryFixture.Open(storage);
            r.ListKeysAsync(None).GetAwaiter().GetResult();
        }
    }

    private static long CostOf(byte[] input)
    {
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(input);
            long Get(string n) => doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && doc.RootElement.TryGetProperty(n, out var v) && v.ValueKind == System.Text.Json.JsonValueKind.Number && v.TryGetInt64(out var x) ? x : 0;
            return Math.Max(1, Get("memory_kib")) * Math.Max(1, Get("iterations")) * Math.Max(1, Get("parallelism") > 8 ? Get("parallelism") : 1);
        }
        catch (System.Text.Json.JsonException)
        {
            return 0;
        }
    }

    private static void StorageNames(byte[] input)
    {
        var f = RepositoryFixture.Shared;
        var storage = f.Copy();
        var text = Encoding.UTF8.GetString(input);
        foreach (var line in text.Split('\n').Take(64))
        {
            var slash = line.IndexOf('/', StringComparison.Ordinal);
            if (slash < 0)
            {
                continue;
            }
            var kind = line[..slash] switch
            {
                "snapshots" => ObjectKind.Snapshot,
                "index" => ObjectKind.Index,
                "data" => ObjectKind.Data,
                "keys" => ObjectKind.Key,
                "wal" => ObjectKind.Named,
                "locks" => ObjectKind.Lock,
                _ => (ObjectKind?)null,
            };
            if (kind is { } k)
            {
                var name = line[(slash + 1)..];
                // Content copied from an object of that kind, so names are what differs.
                var content = f.Objects.FirstOrDefault(o => o.Key.Kind == k).Value ?? "{}"u8.ToArray();
                storage.PutAsync(new StorageKey(k, name), content, None).GetAwaiter().GetResult();
            }
        }
        using var repo = RepositoryFixture.Open(storage);
        ReadEverything(repo);
    }

    /// <summary>Discards what a restore writes, refusing more than a cap (a manifest must not make a restore write without end).</summary>
    internal sealed class Sink(long cap) : Stream
    {
        private long _written;

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _written += buffer.Length;
            if (_written > cap)
            {
                throw new FuzzCrashException($"a restore wrote more than {cap} bytes for one item");
            }
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _written;

        public override long Position { get => _written; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
