using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Cairn.Operations.Physical;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;

namespace Cairn.Tests.Security;

/// <summary>
/// A repository written by someone hostile — any archiving host holds a key that seals valid objects — or damaged
/// underneath: huge sizes and duplicate names in a manifest, a manifest naming a chunk no index holds, an index cut
/// short, an index entry pointing a blob into another pack's range, a blob listed twice, a pack cut short. A physical
/// restore of each writes nothing beside its target (a canary folder next to it stays byte-identical), fails with a
/// typed error naming the object, and verify reports a typed finding. Links, traversal and special modes in forged
/// manifests and tars are in PostgreSql/HostileRestoreTests.cs (secfs); this file does not repeat them.
/// </summary>
public class HostileRepositoryTests
{
    private static readonly byte[] Relation = TestData.Random(700_000, 3); // incompressible: several packs of 256 KiB

    private sealed class Scene : IDisposable
    {
        private readonly TempDir _dir = new();
        private readonly string _canaryBefore;

        public Scene()
        {
            Directory.CreateDirectory(Canary);
            File.WriteAllText(Path.Combine(Canary, "secret"), "canary\n");
            Directory.CreateDirectory(Path.Combine(Canary, "inner"));
            File.WriteAllBytes(Path.Combine(Canary, "inner", "1259"), [1, 2, 3]);
            _canaryBefore = Fingerprint(Canary);
        }

        public InMemoryStorage Storage { get; } = new();

        public string Target => _dir.File("target");

        public string Canary => _dir.File("canary");

        public void AssertCanaryUntouched() => Assert.Equal(_canaryBefore, Fingerprint(Canary));

        /// <summary>Nothing but the target and the canary beside it.</summary>
        public void AssertNothingElseBeside() => Assert.All(Directory.EnumerateFileSystemEntries(_dir.Path), p => Assert.Contains(Path.GetFileName(p), new[] { "target", "canary" }));

        public void Dispose() => _dir.Dispose();
    }

    private static string Fingerprint(string folder)
    {
        var sb = new StringBuilder();
        foreach (var p in Directory.EnumerateFileSystemEntries(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            sb.Append(Path.GetRelativePath(folder, p)).Append(' ').Append(File.GetUnixFileMode(p));
            if (File.Exists(p))
            {
                sb.Append(' ').Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p))));
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    private static Dictionary<string, string> Mode(string octal) => new() { ["mode"] = octal };

    /// <summary>A file-level physical backup: PG_VERSION, a folder and a 700 kB relation (several packs with the small test repository).</summary>
    private static async Task<(Repo Repo, Snapshot Snap)> BackupAsync(IStorage storage)
    {
        var repo = await TestData.NewRepoAsync(storage);
        await using var w = repo.BeginWrite(new RepositoryOptions { Workers = 1 });
        await w.AddStreamAsync("PG_VERSION", new MemoryStream("15\n"u8.ToArray()), null, "file", Mode("600"), default);
        w.AddExistingItem(new ManifestItem { Name = "base", Type = "dir", Meta = Mode("700") });
        await w.AddStreamAsync("base/1259", new MemoryStream(Relation), null, "file", Mode("600"), default);
        var snap = await w.CommitAsync("app", Cairn.Operations.Snapshots.BackupKinds.Physical, new() { ["format"] = PhysicalFiles.Format }, default);
        return (repo, snap);
    }

    /// <summary>Replaces the backup's manifest by a changed copy sealed with the key (a forger's; ItemWriter would refuse it), returns its ID.</summary>
    private static async Task<string> ForgeManifestAsync(Repo repo, IStorage storage, Snapshot snap, Func<Manifest, Manifest> change)
    {
        var id = await repo.PutObjectAsync(ObjectKind.Snapshot, JsonSerializer.SerializeToUtf8Bytes(change(snap.Manifest), RepositoryJson.Default.Manifest), default);
        await storage.DeleteAsync(new StorageKey(ObjectKind.Snapshot, snap.Id), default);
        return id;
    }

    /// <summary>What 'cairn restore --physical ID' does: load the manifest by ID, restore; it must fail with a typed error.</summary>
    private static async Task<Exception> RestoreFailsAsync(Scene scene, string id)
    {
        using var repo = await Repo.OpenAsync(scene.Storage, TestData.Passphrase, TimeProvider.System, default);
        var e = await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            var snap = await repo.FindSnapshotAsync(id, default);
            await PhysicalBackups.RestoreAsync(repo, snap, scene.Target, new FileRestoreOptions(Force: false, Delta: false, Jobs: 2), null, default);
        });
        Assert.IsAssignableFrom<RepositoryException>(e);
        scene.AssertCanaryUntouched();
        scene.AssertNothingElseBeside();
        return e;
    }

    private static async Task<VerificationReport> VerifyAsync(IStorage storage)
    {
        using var repo = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        return await new Verifier(repo).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
    }

    private static async Task<(string Name, IndexFile File)> OnlyIndexAsync(Repo repo, IStorage storage)
    {
        var names = new List<string>();
        await foreach (var o in storage.ListAsync(ObjectKind.Index, default))
        {
            names.Add(o.Key.Name);
        }
        var name = Assert.Single(names);
        return (name, await repo.ReadIndexAsync(name, default));
    }

    /// <summary>Replaces the repository's index by <paramref name="file"/>, sealed with the key: a forgery, not damage.</summary>
    private static async Task ReplaceIndexAsync(Repo repo, IStorage storage, string old, IndexFile file)
    {
        await repo.PutObjectAsync(ObjectKind.Index, JsonSerializer.SerializeToUtf8Bytes(file, RepositoryJson.Default.IndexFile), default);
        await storage.DeleteAsync(new StorageKey(ObjectKind.Index, old), default);
    }

    [Fact]
    public async Task A_manifest_item_claiming_a_terabyte_is_refused_before_any_space_is_reserved()
    {
        // The restore reserves each file's size with posix_fallocate before reading it: a forged size could fill the disk.
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var id = await ForgeManifestAsync(repo, scene.Storage, snap, m => m with
        {
            Items = [.. m.Items, m.Items.Single(i => i.Name == "base/1259") with { Name = "base/huge", Size = 1L << 40 }],
        });

        var e = await RestoreFailsAsync(scene, id);

        Assert.IsType<DataDamagedException>(e);
        Assert.Contains($"manifest {id[..8]}", e.Message, StringComparison.Ordinal);
        Assert.Contains("'base/huge' holds 1099511627776 bytes", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(scene.Target));
    }

    [Fact]
    public async Task A_manifest_item_claiming_more_than_its_chunks_hold_leaves_no_file_behind()
    {
        // Within the bound (a chunk holds at most 64 MiB) the claim is only found false by reading: the file is refused whole.
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var id = await ForgeManifestAsync(repo, scene.Storage, snap, m => m with
        {
            Items = [.. m.Items, m.Items.Single(i => i.Name == "PG_VERSION") with { Name = "base/liar", Size = 3_000_000 }],
        });

        var e = await RestoreFailsAsync(scene, id);

        Assert.Contains("item base/liar read back 3 bytes, the manifest says 3000000", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(scene.Target, "base", "liar")));
    }

    [Fact]
    public async Task A_manifest_naming_a_file_twice_is_refused_before_anything_is_written()
    {
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var id = await ForgeManifestAsync(repo, scene.Storage, snap, m => m with
        {
            Items = [.. m.Items, m.Items.Single(i => i.Name == "PG_VERSION") with { Meta = Mode("644") }],
        });

        var e = await RestoreFailsAsync(scene, id);

        Assert.Contains("'PG_VERSION' appears twice", e.Message, StringComparison.Ordinal);
        Assert.False(Path.Exists(scene.Target));
    }

    [Fact]
    public async Task A_manifest_referencing_a_chunk_no_index_holds_fails_naming_the_blob_and_verify_reports_it_missing()
    {
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var id = await ForgeManifestAsync(repo, scene.Storage, snap, m => m with
        {
            Items = [.. m.Items, new ManifestItem { Name = "base/ghost", Type = "file", Size = 10, Chunks = [new string('e', 64)], Meta = Mode("600") }],
        });

        var e = await RestoreFailsAsync(scene, id);
        var report = await VerifyAsync(scene.Storage);

        Assert.Contains("blob eeeeeeee is not in any index", e.Message, StringComparison.Ordinal);
        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Missing && f.AffectedSnapshots.Contains(id[..8]));
    }

    [Fact]
    public async Task A_truncated_index_is_a_tampered_finding_and_the_restore_names_the_missing_blob()
    {
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var (name, _) = await OnlyIndexAsync(repo, scene.Storage);
        var key = new StorageKey(ObjectKind.Index, name);
        var stored = await scene.Storage.GetAllAsync(key, default);
        await scene.Storage.PutAsync(key, stored[..(stored.Length / 2)], default);

        var report = await VerifyAsync(scene.Storage);
        var e = await RestoreFailsAsync(scene, snap.Id);

        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Tampered && f.Object == key.Path);
        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Missing);
        Assert.Contains("is not in any index", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_index_pointing_a_blob_into_another_packs_range_fails_authentication_and_verify_names_the_pack()
    {
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var (name, index) = await OnlyIndexAsync(repo, scene.Storage);
        Assert.True(index.Packs.Count >= 2, "the relation should span several packs");
        var (a, b) = (index.Packs[0], index.Packs[1]);
        // The first blob of pack A is said to live where the first blob of pack B is.
        var moved = a.Blobs[0] with { Offset = b.Blobs[0].Offset, Length = b.Blobs[0].Length };
        var forged = index with
        {
            Packs = [a with { Blobs = [.. a.Blobs.Skip(1)] }, b with { Blobs = [.. b.Blobs, moved] }, .. index.Packs.Skip(2)],
        };
        await ReplaceIndexAsync(repo, scene.Storage, name, forged);

        var e = await RestoreFailsAsync(scene, snap.Id);
        var report = await VerifyAsync(scene.Storage);

        Assert.IsType<DataDamagedException>(e);
        Assert.Contains(moved.Id[..8], e.Message, StringComparison.Ordinal);
        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Tampered && f.Object == new StorageKey(ObjectKind.Data, b.Id).Path);
    }

    [Fact]
    public async Task A_blob_listed_twice_with_one_false_range_never_restores_other_bytes()
    {
        // Two index entries for one blob (two indexes, as a forger or a crashed prune could leave): whichever the
        // index keeps, the blob is authenticated against its ID, so the restore is either exact or refused.
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var (_, index) = await OnlyIndexAsync(repo, scene.Storage);
        var (a, b) = (index.Packs[0], index.Packs[1]);
        var lie = new IndexFile { Packs = [b with { Blobs = [a.Blobs[0] with { Offset = b.Blobs[0].Offset, Length = b.Blobs[0].Length }] }] };
        await repo.PutObjectAsync(ObjectKind.Index, JsonSerializer.SerializeToUtf8Bytes(lie, RepositoryJson.Default.IndexFile), default);

        using var reopened = await Repo.OpenAsync(scene.Storage, TestData.Passphrase, TimeProvider.System, default);
        Exception? error = null;
        try
        {
            await PhysicalBackups.RestoreAsync(reopened, snap, scene.Target, new FileRestoreOptions(Force: false, Delta: false, Jobs: 2), null, default);
        }
        catch (DataDamagedException e)
        {
            error = e;
        }

        scene.AssertCanaryUntouched();
        if (error is not null)
        {
            Assert.Contains(a.Blobs[0].Id[..8], error.Message, StringComparison.Ordinal);
        }
        // Whatever was written under a name holds exactly that file's bytes; the failed one is not there at all.
        var expected = new Dictionary<string, byte[]> { ["PG_VERSION"] = "15\n"u8.ToArray(), ["base/1259"] = Relation };
        foreach (var (name, bytes) in expected)
        {
            var path = Path.Combine(scene.Target, name);
            Assert.True(error is not null || File.Exists(path), $"{name} was not restored although the restore succeeded");
            if (File.Exists(path))
            {
                Assert.Equal(bytes, File.ReadAllBytes(path));
            }
        }
    }

    [Fact]
    public async Task A_pack_cut_short_fails_the_restore_naming_the_pack_and_is_a_truncated_finding()
    {
        using var scene = new Scene();
        var (repo, snap) = await BackupAsync(scene.Storage);
        var (_, index) = await OnlyIndexAsync(repo, scene.Storage);
        var victim = index.Packs.MaxBy(p => p.Blobs.Count)!;
        var key = new StorageKey(ObjectKind.Data, victim.Id);
        var stored = await scene.Storage.GetAllAsync(key, default);
        await scene.Storage.PutAsync(key, stored[..(stored.Length / 3)], default);

        var e = await RestoreFailsAsync(scene, snap.Id);
        var report = await VerifyAsync(scene.Storage);

        Assert.Contains($"pack {victim.Id[..8]}", e.Message, StringComparison.Ordinal);
        Assert.Contains(report.Findings, f => f.Kind == FindingKind.Truncated && f.Object == key.Path);
    }
}
