using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>
/// Page patches at the repository level (docs/repository-format.md, "Page patches"): the patch codec, the writer's
/// choice (patch or whole, only with the page-patches feature), the reader's rebuild, the format version and features.
/// </summary>
public class PagePatchFormatTests
{
    private const int Page = 8192;
    private const int Block = 8 * Page;

    [Fact]
    public void A_patch_rebuilds_its_block_and_the_parser_refuses_what_a_writer_never_writes()
    {
        var baseBlock = TestData.Random(Block, 1);
        var block = (byte[])baseBlock.Clone();
        block[2 * Page + 10] ^= 0x5A;
        block[6 * Page] ^= 0x01;
        var baseId = ContentId.Sha256(baseBlock);
        var rebuiltId = ContentId.Sha256(block);
        var patch = PagePatch.Build(baseBlock, block, Page, baseId, rebuiltId)!;
        Assert.Equal(PagePatch.HeaderSize + (2 * 2) + (2 * Page), patch.Length);
        Assert.Null(PagePatch.Build(baseBlock, baseBlock, Page, baseId, baseId));

        var parsed = PagePatch.Parse(patch, "test");
        Assert.Equal(new ushort[] { 2, 6 }, parsed.Pages);
        Assert.Equal(baseId, parsed.BaseId);
        Assert.Equal(rebuiltId, parsed.RebuiltId);
        var rebuilt = new byte[Block];
        parsed.Apply(baseBlock, rebuilt);
        Assert.Equal(block, rebuilt);

        Assert.Throws<DataDamagedException>(() => PagePatch.Parse(patch, "test", expectedPageSize: 4096));
        Assert.Throws<DataDamagedException>(() => parsed.Apply(baseBlock.AsSpan(0, Block - Page), new byte[Block]));
        byte[] Forged(Action<byte[]> change)
        {
            var f = (byte[])patch.Clone();
            change(f);
            return f;
        }
        var refused = new (string Why, byte[] Bytes)[]
        {
            ("magic", Forged(f => f[0] = (byte)'X')),
            ("trailing byte", [.. patch, 0]),
            ("short", patch[..^1]),
            ("pages out of order", Forged(f => { f[PagePatch.HeaderSize] = 6; f[PagePatch.HeaderSize + 2] = 2; })),
            ("page past the block", Forged(f => f[PagePatch.HeaderSize + 2] = 8)),
            ("page size not a power of two", Forged(f => f[72] = 1)),
            ("length not whole pages", Forged(f => f[68] = 1)),
            ("no pages", Forged(f => f[76] = 0)),
        };
        foreach (var (why, bytes) in refused)
        {
            var e = Record.Exception(() => PagePatch.Parse(bytes, "test"));
            Assert.True(e is DataDamagedException, $"{why}: {e?.GetType().Name ?? "accepted"}");
        }
    }

    [Fact]
    public async Task Writer_patches_changed_pages_only_with_the_feature_and_the_reader_rebuilds_them()
    {
        using var dir = new TempDir();
        var storage = new FileSystemStorage(dir.Path);
        using var repo = await Cairn.Repository.Repository.InitAsync(storage, TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        // Rows compress like table pages; four blocks of eight pages.
        var v1 = TestData.Rows(4 * Block, 7);
        var first = await StoreAsync(repo, v1, (_, _) => BlockChoice.Whole);

        // Block 1: one page changed; block 2: every page changed (a patch is not worth it); blocks 0 and 3 unchanged.
        var v2 = (byte[])v1.Clone();
        v2[Block + (3 * Page) + 100] ^= 0x20;
        TestData.Rows(Block, 99).CopyTo(v2, 2 * Block);
        BlockChoice OnPrevious(int i, ReadOnlySpan<byte> _) => new(null, null, first.Item.Chunks[i], Page);

        // Without the feature nothing is patched: the manifest stays version 1, readable by every Cairn. (Block 1 differs
        // from v2's in one more page, so v2's block 1 is not already stored whole when the patch is tried below.)
        var other = (byte[])v2.Clone();
        other[Block + (4 * Page)] ^= 0x01;
        var plain = await StoreAsync(repo, other, OnPrevious);
        Assert.Null(plain.Item.Bases);
        Assert.Equal(1, plain.Snapshot.Manifest.Version);

        Assert.True(await repo.UpgradeAsync(RepositoryConfig.PagePatches, default));
        Assert.False(await repo.UpgradeAsync(RepositoryConfig.PagePatches, default));
        var patched = await StoreAsync(repo, v2, OnPrevious);
        Assert.Equal(2, patched.Snapshot.Manifest.Version);
        Assert.Equal(new Dictionary<string, string> { ["1"] = first.Item.Chunks[1] }, patched.Item.Bases);
        Assert.Equal(first.Item.Chunks[0], patched.Item.Chunks[0]);
        Assert.Equal(plain.Item.Chunks[2], patched.Item.Chunks[2]); // stored whole
        Assert.NotEqual(plain.Item.Chunks[1], patched.Item.Chunks[1]);
        Assert.Equal(1, patched.Stats.PatchedBlocks);
        Assert.Equal(new[] { first.Item.Chunks[1] }, patched.Item.ReferencedBlobs.Except(patched.Item.Chunks));

        // Depth one: the next version patches on the same base, never on the patch.
        var v3 = (byte[])v2.Clone();
        v3[Block + (5 * Page) + 7] ^= 0x01;
        var again = await StoreAsync(repo, v3, (i, _) => new(null, null, patched.Item.BaseOf(i) ?? patched.Item.Chunks[i], Page));
        Assert.Equal(first.Item.Chunks[1], again.Item.BaseOf(1));

        // The reader rebuilds (the repository reopened, from storage alone), and --delta's block match sees it as equal.
        using var reopened = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        Assert.True(reopened.Config.Has(RepositoryConfig.PagePatches));
        Assert.Equal(2, reopened.Config.Version);
        var loaded = await reopened.LoadSnapshotAsync(again.Snapshot.Id, default);
        var item = loaded.Manifest.Items.Single();
        var checkedBlocks = new List<int>();
        using var output = new MemoryStream();
        await reopened.ReadItemAsync(item, output, null, (_, i, b) => checkedBlocks.Add(i), default);
        Assert.Equal(v3, output.ToArray());
        Assert.Equal(new[] { 1 }, checkedBlocks);
        Assert.True(await reopened.BlocksMatchAsync(item, new MemoryStream(v3), Block, default));
        Assert.False(await reopened.BlocksMatchAsync(item, new MemoryStream(v2), Block, default));
        var small = new List<byte[]>();
        await reopened.ReadItemsAsync([item], async (_, fill, c) =>
        {
            using var ms = new MemoryStream();
            await fill(ms, c);
            small.Add(ms.ToArray());
        }, 2, null, default);
        Assert.Equal(v3, small.Single());

        // A check of the layer above refuses a rebuilt block before any byte of it is written.
        using var refused = new MemoryStream();
        await Assert.ThrowsAsync<DataDamagedException>(() => reopened.ReadItemAsync(item, refused, null, (_, _, _) => throw new DataDamagedException("crc"), default));
        Assert.Equal(Block, refused.Length); // block 0 only: block 1 (the patch) was refused
    }

    [Fact]
    public async Task A_config_or_manifest_newer_than_this_Cairn_is_refused_with_the_fix()
    {
        using var dir = new TempDir();
        var storage = new FileSystemStorage(dir.Path);
        using (var repo = await Cairn.Repository.Repository.InitAsync(storage, TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default))
        {
            await repo.UpgradeAsync(RepositoryConfig.PagePatches, default);
            await Assert.ThrowsAsync<RepositoryException>(() => repo.UpgradeAsync("time-travel", default));
        }
        using (var repo = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default))
        {
            Assert.Equal(new[] { RepositoryConfig.PagePatches }, repo.Config.Features);
        }

        // The check a reader makes on open: a version it does not know, or a feature it does not know, refuses the
        // repository. A Cairn from before page patches has the first check with "!= 1" (src/Cairn.Repository/Repository.cs
        // at 495f868: "repository format version 2 is newer than this Cairn understands; upgrade Cairn").
        using var opened = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        async Task<string> OpenFailsAsync(RepositoryConfig config)
        {
            using (var aead = new Aead(opened.Keys.EncryptionKey))
            {
                await storage.PutAsync(StorageKey.Config, Cairn.Repository.Repository.EncodeConfig(config with { Id = opened.Config.Id, Chunker = opened.Config.Chunker, PackSize = opened.Config.PackSize }, aead, Convert.FromHexString(opened.Config.Id)), default);
            }
            var e = await Assert.ThrowsAsync<RepositoryException>(() => Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));
            return e.Message;
        }
        Assert.Contains("format version 3 is newer than this Cairn understands; upgrade Cairn", await OpenFailsAsync(new RepositoryConfig { Version = 3, Features = [RepositoryConfig.PagePatches] }), StringComparison.Ordinal);
        Assert.Contains("format feature 'page-patches-v9', which this Cairn does not understand; upgrade Cairn", await OpenFailsAsync(new RepositoryConfig { Version = 2, Features = [RepositoryConfig.PagePatches, "page-patches-v9"] }), StringComparison.Ordinal);

        // Manifests: a version this Cairn does not know is refused; bases in a version-1 manifest are damage.
        var item = new ManifestItem { Name = "f", Type = "file", Size = 1, Chunks = [new string('a', 64)], Bases = new() { ["0"] = new string('b', 64) } };
        var e3 = Assert.Throws<RepositoryException>(() => StoredJson.Checked(new Manifest { Version = 3, Items = [item] }, "manifest x"));
        Assert.Contains("upgrade Cairn", e3.Message, StringComparison.Ordinal);
        Assert.Throws<DataDamagedException>(() => StoredJson.Checked(new Manifest { Version = 1, Items = [item] }, "manifest x"));
        StoredJson.Checked(new Manifest { Version = 2, Items = [item] }, "manifest x");
        Assert.Throws<DataDamagedException>(() => StoredJson.Checked(new Manifest { Version = 2, Items = [item with { Bases = new() { ["1"] = new string('b', 64) } }] }, "manifest x"));
        Assert.Throws<DataDamagedException>(() => StoredJson.Checked(new Manifest { Version = 2, Items = [item with { Bases = new() { ["0"] = new string('a', 64) } }] }, "manifest x"));
    }

    [Fact]
    public async Task A_copy_made_before_the_primary_was_upgraded_takes_its_config_and_a_copy_ahead_of_it_is_refused()
    {
        using var dir = new TempDir();
        var primaryStorage = new FileSystemStorage(dir.File("primary"));
        var copyStorage = new FileSystemStorage(dir.File("copy"));
        using var primary = await Cairn.Repository.Repository.InitAsync(primaryStorage, TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        await Cairn.Repository.Copying.RepositoryCopier.CopyAsync(primaryStorage, copyStorage, false, 2, Cairn.Repository.Copying.RepositoryCopier.Order, null, default);
        Assert.False(await primary.CarryUpgradeToAsync(copyStorage, default)); // the same config: nothing to do

        // A copy upgraded on its own, ahead of its primary: left alone, and the copier refuses it.
        using (var copy = await Cairn.Repository.Repository.OpenAsync(copyStorage, TestData.Passphrase, TimeProvider.System, default))
        {
            await copy.UpgradeAsync(RepositoryConfig.PagePatches, default);
        }
        Assert.False(await primary.CarryUpgradeToAsync(copyStorage, default));
        var refused = await Assert.ThrowsAsync<RepositoryException>(() => Cairn.Repository.Copying.RepositoryCopier.CopyAsync(primaryStorage, copyStorage, false, 2, Cairn.Repository.Copying.RepositoryCopier.Order, null, default));
        Assert.Contains("upgrade the primary the same way", refused.Message, StringComparison.Ordinal);

        // The primary upgraded too (its config's bytes differ: another nonce): the copy takes the primary's config.
        await primary.UpgradeAsync(RepositoryConfig.PagePatches, default);
        Assert.True(await primary.CarryUpgradeToAsync(copyStorage, default));
        Assert.Equal(await primaryStorage.GetAllAsync(StorageKey.Config, default), await copyStorage.GetAllAsync(StorageKey.Config, default));
        await Cairn.Repository.Copying.RepositoryCopier.CopyAsync(primaryStorage, copyStorage, false, 2, Cairn.Repository.Copying.RepositoryCopier.Order, null, default);
        using var reopened = await Cairn.Repository.Repository.OpenAsync(copyStorage, TestData.Passphrase, TimeProvider.System, default);
        Assert.True(reopened.Config.Has(RepositoryConfig.PagePatches));
    }

    [Fact]
    public async Task A_base_that_authenticates_but_holds_other_bytes_is_refused_by_the_rebuilt_blocks_keyed_hash_before_it_is_written()
    {
        // A reader does not compute the keyed hash of a blob it uses only as a page patch's base (the AEAD tag, bound to
        // the base's ID, is still checked): the block rebuilt on it is checked against the patch's rebuilt ID instead. A
        // base sealed with the repository's key under its own ID but holding other bytes (a writer's bug, or someone
        // with the key) must still never reach the output.
        using var dir = new TempDir();
        var storage = new FileSystemStorage(dir.Path);
        using var repo = await Cairn.Repository.Repository.InitAsync(storage, TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        await repo.UpgradeAsync(RepositoryConfig.PagePatches, default);
        var v1 = TestData.Rows(2 * Block, 11);
        var first = await StoreAsync(repo, v1, (_, _) => BlockChoice.Whole);
        var v2 = (byte[])v1.Clone();
        v2[Block + (2 * Page) + 50] ^= 0x20;
        var patched = await StoreAsync(repo, v2, (i, _) => new(null, null, first.Item.Chunks[i], Page));
        var baseId = ContentId.Parse(Assert.Single(patched.Item.Bases!).Value);

        // The base forged: one byte of page 0 (a page the patch does not touch) changed, compressed to the stored length
        // (tried at a few levels and places), sealed under the base's ID with the repository's key, spliced into its pack.
        var location = repo.Index[baseId];
        var original = await repo.LoadBlobAsync(baseId, default);
        byte[]? sealedForged = null;
        var buffer = new byte[Cairn.Repository.Compression.Zstd.CompressBound(original.Length)];
        for (var at = 100; sealedForged is null && at < 100 + 400; at++)
        {
            for (var level = 1; sealedForged is null && level <= 6; level++)
            {
                var forged = (byte[])original.Clone();
                forged[at] ^= 0x01;
                var n = Cairn.Repository.Compression.Zstd.Compress(forged, buffer, level);
                if (n + Aead.Overhead == location.Length)
                {
                    var aad = new byte[Aead.BlobContext.Length + ContentId.Size];
                    Aead.BlobContext.CopyTo(aad, 0);
                    baseId.WriteTo(aad.AsSpan(Aead.BlobContext.Length));
                    sealedForged = new byte[location.Length];
                    Assert.Equal(location.Length, repo.Aead.Seal(buffer.AsSpan(0, n), aad, sealedForged));
                }
            }
        }
        Assert.NotNull(sealedForged);
        var packFile = Directory.EnumerateFiles(dir.Path, location.Pack.ToHex(), SearchOption.AllDirectories).Single();
        var pack = await File.ReadAllBytesAsync(packFile);
        sealedForged.CopyTo(pack, location.Offset);
        await File.WriteAllBytesAsync(packFile, pack);

        using var reopened = await Cairn.Repository.Repository.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var item = (await reopened.LoadSnapshotAsync(patched.Snapshot.Id, default)).Manifest.Items.Single();
        using var output = new MemoryStream();
        var e = await Assert.ThrowsAsync<DataDamagedException>(() => reopened.ReadItemAsync(item, output, null, null, default));
        Assert.Contains("does not rebuild the block the backup read", e.Message, StringComparison.Ordinal);
        Assert.Equal(Block, output.Length); // block 0 (whole, unchanged) only: the rebuilt block 1 was refused
        await Assert.ThrowsAsync<DataDamagedException>(() => reopened.ReadItemsAsync([item], (_, fill, c) => fill(Stream.Null, c), 2, null, default));

        // Where the base is also a block the read writes as it is (here: the first version's block 1), its keyed hash is checked.
        var whole = (await reopened.LoadSnapshotAsync(first.Snapshot.Id, default)).Manifest.Items.Single();
        e = await Assert.ThrowsAsync<DataDamagedException>(() => reopened.ReadItemsAsync([whole, item], (_, fill, c) => fill(Stream.Null, c), 2, null, default));
        Assert.Contains("does not match its ID", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_base_that_does_not_read_back_leaves_its_block_whole_and_the_rest_of_its_batch_patched()
    {
        // The writer reads the bases of a batch of changed blocks together; one damaged base (its tag fails) must not
        // cost the others their patches nor fail the backup: that block alone is stored whole.
        using var dir = new TempDir();
        var storage = new FileSystemStorage(dir.Path);
        using var repo = await Cairn.Repository.Repository.InitAsync(storage, TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        await repo.UpgradeAsync(RepositoryConfig.PagePatches, default);
        var v1 = TestData.Rows(4 * Block, 21);
        var first = await StoreAsync(repo, v1, (_, _) => BlockChoice.Whole);
        Assert.Equal(4, first.Item.Chunks.Distinct().Count());
        var damaged = repo.Index[ContentId.Parse(first.Item.Chunks[2])];
        var packFile = Directory.EnumerateFiles(dir.Path, damaged.Pack.ToHex(), SearchOption.AllDirectories).Single();
        var pack = await File.ReadAllBytesAsync(packFile);
        pack[damaged.Offset + 20] ^= 0x01;
        await File.WriteAllBytesAsync(packFile, pack);

        var v2 = (byte[])v1.Clone();
        for (var i = 0; i < 4; i++)
        {
            v2[(i * Block) + (3 * Page) + 100] ^= 0x20;
        }
        var patched = await StoreAsync(repo, v2, (i, _) => new(null, null, first.Item.Chunks[i], Page));
        Assert.Equal(new[] { "0", "1", "3" }, patched.Item.Bases!.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(3, patched.Stats.PatchedBlocks);
        using var output = new MemoryStream();
        await repo.ReadItemAsync(patched.Item, output, null, null, default);
        Assert.Equal(v2, output.ToArray());
    }

    private static async Task<(ManifestItem Item, Snapshot Snapshot, WriteStats Stats)> StoreAsync(Cairn.Repository.Repository repo, byte[] content, Func<int, ReadOnlySpan<byte>, BlockChoice> choose)
    {
        await using var writer = repo.BeginWrite(new RepositoryOptions { Workers = 2 });
        var item = await writer.AddBlocksAsync("relation", new MemoryStream(content), Block, choose, null, "file", null, default);
        var snap = await writer.CommitAsync("t", "file", null, default);
        return (item, snap, writer.Stats);
    }
}
