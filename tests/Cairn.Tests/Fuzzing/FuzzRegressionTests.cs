using System.Formats.Tar;
using System.Text;
using Cairn.Evidence.Log;
using Cairn.Evidence.Notes;
using Cairn.Operations.Configuration;
using Cairn.Operations.Logical;
using Cairn.Operations.Physical;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Logical;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Cairn.Repository.Verification;
using Cairn.Tests.Support;
using YamlDotNet.RepresentationModel;

namespace Cairn.Tests.Fuzzing;

/// <summary>
/// One test per crash the fuzzers found (docs/security.md, "Fuzzing"): the input, minimised by hand from the fuzzer's
/// (or, for the YAML ones, the fuzzer's own input under tests/fuzz/regressions), and the typed error naming the object
/// that it now gets instead of an unhandled exception. The fuzz target that found each is named in its comment.
/// </summary>
public class FuzzRegressionTests
{
    private static readonly string Regressions = Path.Combine(Cairn.Fuzz.Corpus.DefaultRoot(), "..", "regressions");

    private static readonly string Hex64 = new('a', 64);

    // ---- repository objects (targets index, manifest, repo-config, config-object, key-file, fingerprint, storage-names)

    /// <summary>A repository with one small backup, and the storage under it.</summary>
    private static async Task<(Repo Repo, InMemoryStorage Storage, Snapshot Snap)> RepoAsync()
    {
        var storage = new InMemoryStorage();
        var repo = await TestData.NewRepoAsync(storage);
        var snap = await TestData.PutAsync(repo, "db", TestData.Rows(50_000, 1));
        return (repo, storage, snap);
    }

    /// <summary>Puts <paramref name="json"/> as a sealed object of <paramref name="kind"/>: what a holder of any passphrase can write.</summary>
    private static Task<string> ForgeAsync(Repo repo, ObjectKind kind, string json)
        => repo.PutObjectAsync(kind, Encoding.UTF8.GetBytes(json), default);

    private static async Task<VerificationReport> VerifyAsync(IStorage storage)
    {
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        return await new Verifier(reopened).VerifyAsync(new VerifyOptions(ReadData: true), null, default);
    }

    [Theory]
    // index: '5' is an invalid start of a property name (JsonException escaped LoadIndexAsync and verify)
    [InlineData("{\"packs\":[{5}]}", "not readable JSON")]
    // index: a pack ID that is not 64 hex digits (FormatException in AddToIndex)
    [InlineData("{\"packs\":[{\"id\":\"b500\",\"size\":1,\"blobs\":[]}]}", "not a 64-digit hex ID")]
    // index: "packs": null (NullReferenceException in AddToIndex)
    [InlineData("{\"packs\":null}", "no packs list")]
    // index: a blob ID that is not hex (FormatException in AddToIndex)
    [InlineData("{\"packs\":[{\"id\":\"AAAA\",\"size\":10,\"blobs\":[{\"id\":\"b5#\",\"offset\":0,\"length\":1,\"raw_length\":1}]}]}", "not 64 hex digits")]
    public async Task A_forged_index_is_a_verify_finding_naming_it_and_the_backup_still_restores(string json, string expected)
    {
        var (repo, storage, snap) = await RepoAsync();
        var name = await ForgeAsync(repo, ObjectKind.Index, json.Replace("AAAA", Hex64, StringComparison.Ordinal));

        var report = await VerifyAsync(storage);

        var f = Assert.Single(report.Findings, f => f.Object.Contains(name, StringComparison.Ordinal));
        Assert.Equal(FindingKind.Tampered, f.Kind);
        Assert.Contains(expected, f.Detail, StringComparison.Ordinal);
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        Assert.Equal(TestData.Rows(50_000, 1), await TestData.GetAsync(reopened, snap));
    }

    [Fact]
    public async Task A_forged_index_giving_a_blob_a_4_GB_raw_length_is_refused_before_any_allocation()
    {
        // index (mutation: a length field set to int.MaxValue): LoadBlobAsync allocated raw_length bytes before reading the blob.
        var (repo, storage, _) = await RepoAsync();
        var name = await ForgeAsync(repo, ObjectKind.Index, $"{{\"packs\":[{{\"id\":\"{Hex64}\",\"size\":100,\"blobs\":[{{\"id\":\"{Hex64}\",\"offset\":0,\"length\":50,\"raw_length\":2147483647}}]}}]}}");
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => reopened.ReadIndexAsync(name, default));

        Assert.Contains($"index {name[..8]}", e.Message, StringComparison.Ordinal);
        Assert.Contains("impossible range", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    // manifest: a chunk ID with a '#' in it (FormatException in ReadItemAsync)
    [InlineData("{\"time\":\"2025-01-01T00:00:00Z\",\"name\":\"db\",\"kind\":\"file\",\"items\":[{\"name\":\"x\",\"type\":\"stream\",\"size\":1,\"chunks\":[\"3e26#\"]}]}", "not a 64-digit hex ID")]
    // manifest: "chunks": null (NullReferenceException in ReadItemAsync)
    [InlineData("{\"time\":\"2025-01-01T00:00:00Z\",\"name\":\"db\",\"kind\":\"file\",\"items\":[{\"name\":\"x\",\"type\":\"stream\",\"size\":1,\"chunks\":null}]}", "null name, type or chunk list")]
    // manifest: "items": null (ArgumentNullException in Snapshot.Size and every reader)
    [InlineData("{\"time\":\"2025-01-01T00:00:00Z\",\"items\":null}", "null field")]
    // manifest: '0xEF' after a property name (JsonException escaped LoadSnapshotAsync in the physical restore)
    [InlineData("{\"time\":\"2025-01-01T00:00:00Z\",\"items\":[{\"meta\"\u00ef:1}]}", "not readable JSON")]
    public async Task A_forged_manifest_is_damage_naming_it_listing_skips_it_and_verify_reports_it(string json, string expected)
    {
        var (repo, storage, _) = await RepoAsync();
        var id = await ForgeAsync(repo, ObjectKind.Snapshot, json);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => repo.LoadSnapshotAsync(id, default));

        Assert.Contains($"manifest {id[..8]}", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Single(await repo.ListSnapshotsAsync(default)); // the real backup is still listed
        Assert.Contains((await VerifyAsync(storage)).Findings, f => f.Kind == FindingKind.Tampered && f.Object == $"snapshots/{id}");
    }

    [Fact]
    public async Task Object_names_shorter_than_eight_characters_in_a_listing_do_not_break_verify_or_prune()
    {
        // storage-names: "snapshots/abc" made verify and prune take name[..8], "data/z" StorageKey.Path take name[..2]
        // (ArgumentOutOfRangeException).
        var (_, storage, _) = await RepoAsync();
        await storage.PutAsync(new StorageKey(ObjectKind.Snapshot, "abc"), "x"u8.ToArray(), default);
        await storage.PutAsync(new StorageKey(ObjectKind.Index, "ab"), "x"u8.ToArray(), default);
        await storage.PutAsync(new StorageKey(ObjectKind.Data, "z"), "x"u8.ToArray(), default);

        var report = await VerifyAsync(storage);
        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var prune = await Assert.ThrowsAsync<DataDamagedException>(() => new Cairn.Repository.Pruning.Pruner(reopened).PruneAsync(dryRun: true, default));

        Assert.Contains(report.Findings, f => f.Object == "snapshots/abc" && f.Kind == FindingKind.Tampered);
        Assert.Contains(report.Findings, f => f.Object == "index/ab" && f.Kind == FindingKind.Tampered);
        Assert.Contains(report.Findings, f => f.Object == "data/z/z" && f.Kind == FindingKind.Orphaned);
        Assert.Contains("refuses to run", prune.Message, StringComparison.Ordinal);
    }

    [Theory]
    // repo-config: '0x16' inside a JSON string (JsonException escaped OpenAsync)
    [InlineData("{\"version\":1,\"cipher\":\"\u0016\"}", "not readable JSON")]
    // repo-config: "chunker": null (NullReferenceException in FastCdcChunker)
    [InlineData("{\"version\":1,\"chunker\":null}", "no chunker parameters")]
    // repo-config: average below min (InvalidDataException from ChunkerParameters.Validate)
    [InlineData("{\"version\":1,\"chunker\":{\"min\":1024,\"average\":1,\"max\":16384}}", "chunker parameters")]
    // repo-config: "pack_size": 1073741824 (the next backup allocated a 1 GiB pack buffer per worker: past the allocation cap)
    [InlineData("{\"version\":1,\"chunker\":{\"min\":1024,\"average\":4096,\"max\":16384},\"pack_size\":1073741824}", "pack size of 1073741824 bytes")]
    public async Task A_forged_repository_config_is_damage_naming_the_config_object(string json, string expected)
    {
        var (repo, storage, _) = await RepoAsync();
        var stored = await storage.GetAllAsync(StorageKey.Config, default);
        var idHex = Encoding.ASCII.GetString(stored, 7, 32);
        var forged = repo.Aead.Seal(Encoding.UTF8.GetBytes(json), Aead.Concat(Aead.ConfigContext, Convert.FromHexString(idHex)));
        await storage.PutAsync(StorageKey.Config, stored[..40].Concat(forged).ToArray(), default);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));

        Assert.Contains("the config object of", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_config_object_whose_repository_id_is_not_hex_is_damage_not_a_format_exception()
    {
        // config-object: Convert.FromHexString threw FormatException out of OpenAsync.
        var (_, storage, _) = await RepoAsync();
        var stored = await storage.GetAllAsync(StorageKey.Config, default);
        stored[7 + 5] = (byte)'z';
        await storage.PutAsync(StorageKey.Config, stored, default);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default));

        Assert.Contains("repository ID is not 32 hex digits", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_key_file_with_a_null_salt_is_skipped_as_damaged_and_listed_as_unreadable()
    {
        // key-file: "salt": null reached Convert.FromBase64String (ArgumentNullException out of OpenAsync).
        var (repo, storage, _) = await RepoAsync();
        await storage.PutAsync(new StorageKey(ObjectKind.Key, Hex64), "{\"version\":1,\"kdf\":\"argon2id\",\"memory_kib\":8,\"iterations\":1,\"parallelism\":1,\"salt\":null,\"wrapped\":null}"u8.ToArray(), default);

        using var reopened = await Repo.OpenAsync(storage, TestData.Passphrase, TimeProvider.System, default);
        var keys = await reopened.ListKeysAsync(default);

        Assert.Contains(keys, k => k.Id == Hex64 && k.Data.Label!.Contains("unreadable", StringComparison.Ordinal));
        Assert.Equal(repo.KeyId, reopened.KeyId);
    }

    [Theory]
    // fingerprint: '0xFF' as a value (JsonException escaped ReadFingerprintAsync)
    [InlineData("{\"server_version_num\":\u00ff}", "not readable JSON")]
    // fingerprint: "tables": null (ArgumentNullException in TotalRows)
    [InlineData("{\"tables\":null}", "no tables list")]
    // fingerprint: a null table entry (NullReferenceException in the drill's comparison)
    [InlineData("{\"tables\":[null]}", "a table entry is null")]
    // fingerprint: row counts that add past long.MaxValue (OverflowException in TotalRows)
    [InlineData("{\"tables\":[{\"schema\":\"s\",\"name\":\"a\",\"rows\":9223372036854775807},{\"schema\":\"s\",\"name\":\"b\",\"rows\":-9223372036854775808}]}", "negative row count")]
    public async Task A_forged_fingerprint_is_damage_naming_the_snapshot(string json, string expected)
    {
        var (repo, _, _) = await RepoAsync();
        await using var w = repo.BeginWrite();
        await w.AddStreamAsync(LogicalBackupOperation.FingerprintItem, new MemoryStream(Encoding.UTF8.GetBytes(json)), null, default);
        var snap = await w.CommitAsync("app", "logical", null, default);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => LogicalSnapshots.ReadFingerprintAsync(repo, snap, default));

        Assert.Contains($"the fingerprint of snapshot {snap.ShortId}", e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Total_rows_saturates_instead_of_overflowing()
    {
        var fp = new Fingerprint { Tables = [new TableFingerprint { Rows = long.MaxValue }, new TableFingerprint { Rows = 5 }] };

        Assert.Equal(long.MaxValue, fp.TotalRows);
    }

    [Fact]
    public void A_zstd_frame_claiming_2_GB_is_not_allocated_before_its_content_is_seen()
    {
        // Found by review while fuzzing (the targets compress their input, so no mutation reached it): metadata and
        // named files allocated the frame header's content size, up to 2 GB, before decompressing.
        var frame = Zstd.Compress(new byte[100], 1);
        var claim = ForgeContentSize(frame, int.MaxValue);
        var before = GC.GetAllocatedBytesForCurrentThread();

        Assert.Equal(int.MaxValue, Zstd.FrameContentSize(claim)); // the forgery is read as a 2 GB claim

        Assert.Throws<InvalidDataException>(() => Zstd.Decompress(claim));
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 64L * 1024 * 1024, "the claim was allocated");
    }

    /// <summary>Rewrites a single-segment frame's content size (the 4-byte form) to <paramref name="size"/>.</summary>
    private static byte[] ForgeContentSize(byte[] frame, int size)
    {
        // Frame header: magic (4), descriptor (1); single segment with FCS field size 4 when the descriptor says so.
        var descriptor = frame[4];
        var fcsFlag = descriptor >> 6;
        var singleSegment = (descriptor & 0x20) != 0;
        var fcsOffset = 5 + (singleSegment ? 0 : 1) + ((descriptor & 3) switch { 0 => 0, 1 => 1, 2 => 2, _ => 4 });
        var fcsSize = fcsFlag switch { 0 => singleSegment ? 1 : 0, 1 => 2, 2 => 4, _ => 8 };
        var forged = new List<byte>(frame[..4]) { (byte)((descriptor & 0x3F) | (2 << 6)) };
        forged.AddRange(frame[5..fcsOffset]);
        forged.AddRange(BitConverter.GetBytes(size));
        forged.AddRange(frame[(fcsOffset + fcsSize)..]);
        return [.. forged];
    }

    // ---- PostgreSQL's files (targets basebackup-tar, tar-sniffer, backup-label, backup-manifest, wal-names, wal-history, roles-json)

    private static readonly byte[] Manifest = BackupManifest.Build([new ManifestFile("PG_VERSION", 3, DateTimeOffset.UnixEpoch, "aabbccdd")], 1, "0/2000028", "0/2000100");

    [Theory]
    // backup-label: "START TIMELINE: 1J" / "$1" / "" / 99999999999 (FormatException, OverflowException from uint.Parse)
    [InlineData("START TIMELINE: 1J\n")]
    [InlineData("START TIMELINE: \n")]
    [InlineData("START TIMELINE: 99999999999\n")]
    public void A_backup_label_with_an_unreadable_timeline_is_refused_naming_backup_label(string label)
    {
        var e = Assert.Throws<PgToolException>(() => BaseBackup.Describe(Encoding.UTF8.GetBytes(label), Manifest, "150000", DateTimeOffset.UnixEpoch));

        Assert.Contains("backup_label", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    // backup-manifest: a JSON syntax error (JsonReaderException)
    [InlineData("{\"WAL-Ranges\": [ W ]}", "not readable JSON")]
    // backup-manifest: no WAL-Ranges (KeyNotFoundException)
    [InlineData("{}", "no WAL-Ranges")]
    // backup-manifest: an empty WAL-Ranges (IndexOutOfRangeException)
    [InlineData("{\"WAL-Ranges\": []}", "no WAL-Ranges")]
    // backup-manifest: Start-LSN "-1/0" (ArgumentException: minus sign with base 16)
    [InlineData("{\"WAL-Ranges\": [{\"Timeline\": 1, \"Start-LSN\": \"-1/0\", \"End-LSN\": \"0/2000100\"}]}", "is not an LSN")]
    // backup-manifest: Start-LSN without a slash (ArgumentOutOfRangeException on parts[1])
    [InlineData("{\"WAL-Ranges\": [{\"Timeline\": 1, \"Start-LSN\": \"2000028\", \"End-LSN\": \"0/2000100\"}]}", "is not an LSN")]
    // backup-manifest: Start-LSN "0/1FFFFFFFFFFFFFFFF" (OverflowException)
    [InlineData("{\"WAL-Ranges\": [{\"Timeline\": 1, \"Start-LSN\": \"0/1FFFFFFFFFFFFFFFF\", \"End-LSN\": \"0/2000100\"}]}", "is not an LSN")]
    // backup-manifest: Timeline a string (InvalidOperationException from GetInt32)
    [InlineData("{\"WAL-Ranges\": [{\"Timeline\": \"1\", \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\"}]}", "no valid Timeline")]
    public void A_damaged_backup_manifest_is_refused_naming_backup_manifest(string manifest, string expected)
    {
        var e = Assert.Throws<PgToolException>(() => BaseBackup.Describe("LABEL: cairn\n"u8.ToArray(), Encoding.UTF8.GetBytes(manifest), "150000", DateTimeOffset.UnixEpoch));

        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_backup_manifest_with_invalid_utf8_in_a_string_is_refused()
    {
        // backup-manifest: "Cannot transcode invalid UTF-8 JSON text" (InvalidOperationException from GetString)
        byte[] manifest = [.. "{\"WAL-Ranges\": [{\"Timeline\": 1, \"Start-LSN\": \"0/2"u8.ToArray(), 0xFF, .. "\", \"End-LSN\": \"0/3\"}]}"u8.ToArray()];

        var e = Assert.Throws<PgToolException>(() => BaseBackup.Describe("LABEL: cairn\n"u8.ToArray(), manifest, "150000", DateTimeOffset.UnixEpoch));

        Assert.Contains("backup_manifest", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-1/0")]
    [InlineData("0")]
    [InlineData("0/")]
    [InlineData("1FFFFFFFF/0")]
    [InlineData("0x1/0")]
    [InlineData(" 1/0")]
    public void ParseLsn_refuses_what_is_not_an_lsn_with_a_format_exception_quoting_it(string text)
    {
        // wal-names: Convert.ToUInt64(_, 16) threw ArgumentException, OverflowException and ArgumentOutOfRangeException.
        var e = Assert.Throws<FormatException>(() => WalNames.ParseLsn(text));

        Assert.Contains($"'{text}' is not a WAL location", e.Message, StringComparison.Ordinal);
        Assert.False(WalNames.TryParseLsn(text, out _));
    }

    [Fact]
    public void ParseLsn_still_reads_what_PostgreSQL_prints()
    {
        Assert.Equal((0x16UL << 32) | 0xB374D848, WalNames.ParseLsn("16/B374D848"));
        Assert.Equal(ulong.MaxValue, WalNames.ParseLsn("FFFFFFFF/FFFFFFFF"));
        Assert.Equal(0x3000000UL, WalNames.ParseLsn("0/3000000"));
    }

    [Fact]
    public void A_history_line_whose_switch_point_is_not_an_lsn_is_not_an_entry()
    {
        // wal-history: "1\t-1/3000000" reached ParseLsn (ArgumentException out of RecoveryWindow and WalArchive).
        var entries = WalContinuity.ParseHistory("1\t-1/3000000\tforged\n2\t0/5000000\tbefore\n3\t0/\n");

        Assert.Equal(new List<(uint, ulong)> { (2u, 0x5000000UL) }, entries);
    }

    [Fact]
    public void A_tar_header_size_that_is_not_octal_is_refused_naming_the_entry()
    {
        // tar-sniffer: "-1" and "12x" in the size field (ArgumentException, FormatException from Convert.ToInt64(_, 8)).
        var tar = Tar(("backup_label", "x"u8.ToArray()));
        Encoding.ASCII.GetBytes("-0000000001\0").CopyTo(tar, 124);
        var sniffer = new TarSniffer(new MemoryStream(tar), new HashSet<string> { "backup_label" });

        var e = Assert.Throws<PgToolException>(() => sniffer.CopyTo(Stream.Null));

        Assert.Contains("'backup_label'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tar_header_size_in_base_256_is_read()
    {
        // PostgreSQL writes sizes of 8 GiB and more in base-256 (GNU); the octal-only parser threw on them.
        Span<byte> field = stackalloc byte[12];
        field[0] = 0x80;
        field[11] = 0x02;
        field[10] = 0x01;

        Assert.Equal(0x0102, TarSniffer.SizeOf(field, "base/1/1"));
    }

    [Fact]
    public async Task A_truncated_pg_basebackup_tar_is_refused_naming_the_last_entry_and_writes_nothing_outside()
    {
        // basebackup-tar: EndOfStreamException and InvalidDataException ("Unable to parse number") escaped ExtractAsync.
        using var dir = new TempDir();
        var tar = Tar(("PG_VERSION", "15\n"u8.ToArray()), ("base/1/1259", new byte[5000]));
        var truncated = tar[..(512 + 512 + 512 + 1000)];
        var damaged = (byte[])tar.Clone();
        Encoding.ASCII.GetBytes("zz").CopyTo(damaged, 1024 + 124);

        var e1 = await Assert.ThrowsAsync<PgToolException>(() => BaseBackupTar.ExtractAsync(new MemoryStream(truncated), dir.File("t1"), force: false, default));
        var e2 = await Assert.ThrowsAsync<PgToolException>(() => BaseBackupTar.ExtractAsync(new MemoryStream(damaged), dir.File("t2"), force: false, default));

        Assert.Contains("base/1/1259", e1.Message, StringComparison.Ordinal);
        Assert.Contains("after entry 'PG_VERSION'", e2.Message, StringComparison.Ordinal);
        Assert.All(Directory.EnumerateFileSystemEntries(dir.Path), p => Assert.Contains(Path.GetFileName(p), new[] { "t1", "t2" }));
    }

    private static byte[] Tar(params (string Name, byte[] Content)[] files)
    {
        var ms = new MemoryStream();
        using (var w = new TarWriter(ms, TarEntryFormat.Ustar, leaveOpen: true))
        {
            foreach (var (name, content) in files)
            {
                w.WriteEntry(new UstarTarEntry(TarEntryType.RegularFile, name) { Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite, DataStream = new MemoryStream(content) });
            }
        }
        return ms.ToArray();
    }

    [Theory]
    // roles-json: a null role, name, membership or setting (NullReferenceException in the restore's statements)
    [InlineData("{\"version\":1,\"roles\":[null]}")]
    [InlineData("{\"version\":1,\"roles\":[{\"name\":null}]}")]
    [InlineData("{\"version\":1,\"roles\":[{\"name\":\"a\",\"member_of\":[{\"role\":null}]}]}")]
    [InlineData("{\"version\":1,\"roles\":[{\"name\":\"a\",\"settings\":null}]}")]
    [InlineData("{\"version\":1,\"roles\":null}")]
    public void Roles_json_with_a_null_where_a_name_belongs_is_refused_naming_roles_json(string json)
    {
        var e = Assert.Throws<PgToolException>(() => RoleSet.FromJson(Encoding.UTF8.GetBytes(json)));

        Assert.Contains("roles.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Physical_backup_meta_with_an_lsn_that_is_not_one_is_damage_naming_the_backup()
    {
        // physical-restore / wal-history: a forged stop_lsn reached ParseLsn later, inside RecoveryWindow's MinBy.
        var snap = new Snapshot(Hex64, new Manifest
        {
            Kind = "physical",
            Name = "app",
            Meta = new() { ["start_wal"] = "000000010000000000000002", ["start_lsn"] = "0/2000028", ["stop_lsn"] = "-5/0", ["timeline"] = "1", ["stop_time"] = "2025-01-01T00:00:00Z" },
        });

        var e = Assert.Throws<DataDamagedException>(() => PhysicalBackupMeta.Of(snap));

        Assert.Contains($"physical backup {Hex64[..8]}", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("pg_basebackup-tar")]
    [InlineData("no-such-format")]
    public async Task A_physical_manifest_without_its_tar_item_is_damage_naming_the_backup(string format)
    {
        // physical-restore: a manifest whose format is not "files" and holds no base.tar item (Single threw InvalidOperationException).
        using var dir = new TempDir();
        var repo = await TestData.NewRepoAsync();
        await using var w = repo.BeginWrite();
        await w.AddStreamAsync("PG_VERSION", new MemoryStream("15\n"u8.ToArray()), null, default);
        var snap = await w.CommitAsync("app", Cairn.Operations.Snapshots.BackupKinds.Physical, new() { ["format"] = format }, default);

        var e = await Assert.ThrowsAsync<DataDamagedException>(() => PhysicalBackups.RestoreAsync(repo, snap, dir.File("target"), new FileRestoreOptions(Force: false, Delta: false, Jobs: 1), null, default));

        Assert.Contains($"physical backup {snap.ShortId}", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File("target")) && Directory.EnumerateFileSystemEntries(dir.File("target")).Any());
    }

    // ---- evidence log (targets evidence-segment, evidence-leaves, note-key)

    [Theory]
    // evidence-segment: JsonCanonicalizer hit "An item with the same key has already been added. Key: kind".
    [InlineData("{\"kind\":\"backup\",\"kind\":\"drill\",\"seq\":0}")]
    // evidence-segment: a number that overflows to infinity (InvalidDataException "NaN and infinity are not JSON").
    [InlineData("{\"kind\":\"backup\",\"seq\":0,\"size\":1e400}")]
    public void A_record_line_the_canonicaliser_cannot_write_is_a_problem_not_a_crash(string line)
    {
        using var dir = new TempDir();
        var log = new EvidenceLog(dir.File("ev"), dir.File("ev.key"), TimeProvider.System);
        log.Init("cairn.evidence/test");
        Directory.CreateDirectory(log.LogFolder);
        File.WriteAllText(Path.Combine(log.LogFolder, "0000000000.jsonl"), line + "\n");

        var entries = log.ReadEntries(out var problems);

        Assert.Single(entries);
        Assert.Contains(problems, p => p.StartsWith("0000000000.jsonl line 1: not a valid record", StringComparison.Ordinal));
    }

    [Fact]
    public void A_leaf_hash_line_of_the_wrong_length_is_a_problem_and_the_root_still_computes()
    {
        // evidence-leaves: a 2-byte "hash" reached MerkleTree.NodeHash ("Destination is too short").
        using var dir = new TempDir();
        var log = new EvidenceLog(dir.File("ev"), dir.File("ev.key"), TimeProvider.System);
        log.Init("cairn.evidence/test");
        Directory.CreateDirectory(log.LogFolder);
        File.WriteAllText(Path.Combine(log.LogFolder, "0000000000.leaves"), "abcd\n" + new string('0', 64) + "\n");

        var entries = log.ReadEntries(out var problems);

        Assert.Equal(2, entries.Count);
        Assert.All(entries, e => Assert.Equal(32, e.LeafHash.Length));
        Assert.Contains(problems, p => p.Contains("line 1: not a leaf hash", StringComparison.Ordinal));
        _ = Cairn.Evidence.Merkle.MerkleTree.Root([.. entries.Select(e => e.LeafHash)]);
    }

    [Fact]
    public void A_verifier_key_that_is_not_a_curve_point_is_a_format_exception()
    {
        // note-key: BouncyCastle's ArgumentException("invalid public key") escaped ParseVerifier.
        const string text = "cairn.evidence-fuzz+4c31bf62+AanLmqHs828RIsRJhWAaOLj43KRsSCGNmBInSi6jkm3L";

        var e = Assert.Throws<FormatException>(() => NoteKey.ParseVerifier(text));

        Assert.Contains("not a valid Ed25519 public key", e.Message, StringComparison.Ordinal);
    }

    // ---- cairn.yaml (targets config, checks, cron) and the repository location (repo-location)

    [Theory]
    [InlineData("config-yaml-scanner-invalid-operation.yaml", typeof(InvalidOperationException))]
    [InlineData("checks-yaml-scanner-invalid-operation.yaml", typeof(InvalidOperationException))]
    [InlineData("checks-yaml-unsupported-event.yaml", typeof(ArgumentException))]
    public void Yaml_that_YamlDotNet_fails_on_with_a_non_yaml_exception_is_a_config_error(string file, Type yamlDotNetThrows)
    {
        var text = File.ReadAllText(Path.Combine(Regressions, file));
        // The input still reaches YamlDotNet's bug (so this test keeps testing the wrapping, not a fixed library) …
        Assert.Throws(yamlDotNetThrows, () => new YamlStream().Load(new StringReader(text)));

        // … and Cairn turns it into a ConfigException naming the file.
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse(text, "cairn.yaml"));
        Assert.StartsWith("cairn.yaml", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    // config / checks: "max_gap: 99999999999999999999y" (OverflowException from TimeSpan.FromDays)
    [InlineData("databases:\n  app:\n    connection: postgresql:///app\n    retention: { keep_within: 99999999999999999999d }\n")]
    [InlineData("databases:\n  app:\n    connection: postgresql:///app\n    checks:\n      - audit_continuity: { table: public.a, time_column: t, max_gap: 99999999999999999999y }\n")]
    // cron: "H2;0" (Cronos.MissingSeedException, not a CronFormatException)
    [InlineData("databases:\n  app:\n    connection: postgresql:///app\n    schedule:\n      backup: \"H 2 * * *\"\n")]
    // a mapping used as a schedule's job name (InvalidCastException to YamlScalarNode; found by review beside the fuzzer's)
    [InlineData("databases:\n  app:\n    connection: postgresql:///app\n    schedule:\n      ? [backup]\n      : \"0 0 * * *\"\n")]
    public void Config_values_that_crashed_the_parser_are_config_errors_naming_the_file(string yaml)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse(yaml, "cairn.yaml"));

        Assert.StartsWith("cairn.yaml", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/srv/re\0po")]
    [InlineData("file:///srv/re%00po")]
    public void A_repository_location_with_a_nul_is_refused_as_invalid_input(string text)
    {
        // repo-location: Path.GetFullPath threw ArgumentException("Null character in path").
        var e = Assert.Throws<RepositoryException>(() => RepositoryLocation.Parse(text, "/var/lib/cairn"));

        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains("NUL", e.Message, StringComparison.Ordinal);
    }
}
