using System.Security.Cryptography;
using System.Text;
using Cairn.Repository;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>
/// The two formats of named files (WAL objects): written now, a field <c>cairn-named-v2</c> and a zstd frame that records
/// its content checksum; written before, the file's SHA-256 and a frame without one. Both are read and checked, a
/// re-push compares the files byte for byte, and no object is ever read unchecked.
/// </summary>
public sealed class NamedFilesFormatTests
{
    private const string Name = "app@000000010000000000000007";

    /// <summary>A WAL-like file: mostly compressible rows, a random stretch.</summary>
    private static byte[] Segment(int seed)
    {
        var data = TestData.Rows(2 * 1024 * 1024, seed);
        TestData.Random(64 * 1024, seed).CopyTo(data, 100_000);
        return data;
    }

    private static byte[] Open(Repo repo, byte[] stored) => repo.Aead.Open(stored, Aead.Concat("cairn-named"u8, Encoding.UTF8.GetBytes(Name)), "test");

    private static byte[] Seal(Repo repo, byte[] plain) => repo.Aead.Seal(plain, Aead.Concat("cairn-named"u8, Encoding.UTF8.GetBytes(Name)));

    private static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) => Aead.Concat(a, b);

    /// <summary>The field of objects written now: "cairn-named-v2" and zeros.</summary>
    private static byte[] V2Field => [.. "cairn-named-v2"u8, .. new byte[18]];

    private static async Task<byte[]> ReadBothWaysAsync(Repo repo, TempDir dir, string file)
    {
        var data = await NamedFiles.GetAsync(repo, Name, default);
        await NamedFiles.GetToFileAsync(repo, Name, dir.File(file), default);
        Assert.Equal(data, await File.ReadAllBytesAsync(dir.File(file)));
        return data;
    }

    [Theory]
    [InlineData(-5)]
    [InlineData(-1)]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(19)]
    public async Task An_object_written_now_records_the_checksum_in_its_frame_and_no_hash(int level)
    {
        using var dir = new TempDir();
        using var repo = await TestData.NewRepoAsync(new FileSystemStorage(dir.File("repo")));
        var data = Segment(level + 10);
        var path = dir.File("seg");
        await File.WriteAllBytesAsync(path, data);
        Assert.Equal(NamedPutResult.Stored, await NamedFiles.PutFileAsync(repo, Name, path, level, default));

        var plain = Open(repo, await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Named, Name), default));
        Assert.Equal(V2Field, plain[..32]);
        Assert.True(Zstd.HasContentChecksum(plain.AsSpan(32)), "the frame does not record its content checksum");
        Assert.Equal(data, await ReadBothWaysAsync(repo, dir, "out"));
        // The same file again is success; the object is not rewritten.
        var before = await File.ReadAllBytesAsync(dir.File("repo/wal/" + Name));
        Assert.Equal(NamedPutResult.AlreadyStoredIdentical, await NamedFiles.PutFileAsync(repo, Name, path, level, default));
        Assert.Equal(before, await File.ReadAllBytesAsync(dir.File("repo/wal/" + Name)));
    }

    [Fact]
    public async Task The_level_changes_the_bytes_stored_not_what_is_read()
    {
        using var repo = await TestData.NewRepoAsync();
        var data = Segment(3);
        var sizes = new List<long>();
        foreach (var level in new[] { -7, 1, 19 })
        {
            var name = $"app@00000001000000000000001{level + 7:X1}";
            await NamedFiles.PutAsync(repo, name, data, level, default);
            sizes.Add((await repo.Storage.StatAsync(new StorageKey(ObjectKind.Named, name), default))!.Value.Size);
            Assert.Equal(data, await NamedFiles.GetAsync(repo, name, default));
        }
        Assert.True(sizes[0] > sizes[1] && sizes[1] > sizes[2], $"sizes at levels -7, 1, 19: {string.Join(", ", sizes)}");
    }

    [Fact]
    public void Both_zstd_implementations_write_and_check_the_content_checksum()
    {
        var data = Segment(5);
        var implementations = Zstd.NativeAvailable ? new[] { true, false } : [false];
        foreach (var native in implementations)
        {
            var buffer = new byte[Zstd.CompressBound(data.Length)];
            var frame = buffer[..Zstd.CompressChecksummed(data, buffer, 1, native)];
            Assert.True(Zstd.HasContentChecksum(frame), $"native={native}: no checksum flag");
            Assert.False(Zstd.HasContentChecksum(Zstd.CompressWith(native, data, 1)), "the plain frames record no checksum (the flag test can fail)");
            foreach (var reader in implementations)
            {
                Assert.Equal(data, Zstd.DecompressWith(reader, frame, data.Length));
                var damaged = (byte[])frame.Clone();
                damaged[^1] ^= 0x01; // the checksum's last byte
                Assert.Throws<InvalidDataException>(() => Zstd.DecompressWith(reader, damaged, data.Length));
            }
        }
    }

    [Fact]
    public async Task An_object_of_the_first_format_is_read_checked_and_compared_on_re_push()
    {
        using var dir = new TempDir();
        using var repo = await TestData.NewRepoAsync(new FileSystemStorage(dir.File("repo")));
        var data = Segment(1);
        // As every Cairn before the checksum in the frame wrote it: SHA-256(file) ‖ zstd(file), no checksum.
        var key = new StorageKey(ObjectKind.Named, Name);
        await repo.Storage.PutAsync(key, Seal(repo, Concat(SHA256.HashData(data), Zstd.Compress(data, 1))), default);

        Assert.Equal(data, await ReadBothWaysAsync(repo, dir, "out"));
        Assert.Equal(NamedPutResult.AlreadyStoredIdentical, await NamedFiles.PutAsync(repo, Name, data, default));
        var other = (byte[])data.Clone();
        other[1_000_000] ^= 0x20;
        var refused = await Assert.ThrowsAsync<RepositoryException>(() => NamedFiles.PutAsync(repo, Name, other, default));
        Assert.Equal(ErrorKind.AlreadyExists, refused.Kind);

        // Its hash still protects it: a frame of other content under the recorded hash is damaged, on both read paths.
        await repo.Storage.PutAsync(key, Seal(repo, Concat(SHA256.HashData(data), Zstd.Compress(other, 1))), default);
        await Assert.ThrowsAsync<DataDamagedException>(() => NamedFiles.GetAsync(repo, Name, default));
        await Assert.ThrowsAsync<DataDamagedException>(() => NamedFiles.GetToFileAsync(repo, Name, dir.File("out2"), default));
        Assert.False(File.Exists(dir.File("out2")));
    }

    [Fact]
    public async Task A_different_file_under_a_stored_name_is_refused_even_when_it_differs_in_one_byte()
    {
        using var repo = await TestData.NewRepoAsync();
        var data = Segment(2);
        Assert.Equal(NamedPutResult.Stored, await NamedFiles.PutAsync(repo, Name, data, default));
        foreach (var at in new[] { 0, data.Length / 2, data.Length - 1 })
        {
            var other = (byte[])data.Clone();
            other[at] ^= 0x01;
            var e = await Assert.ThrowsAsync<RepositoryException>(() => NamedFiles.PutAsync(repo, Name, other, default));
            Assert.Equal(ErrorKind.AlreadyExists, e.Kind);
        }
        // Shorter and longer files too.
        await Assert.ThrowsAsync<RepositoryException>(() => NamedFiles.PutAsync(repo, Name, data[..^1], default));
        await Assert.ThrowsAsync<RepositoryException>(() => NamedFiles.PutAsync(repo, Name, Concat(data, [0]), default));
        Assert.Equal(data, await NamedFiles.GetAsync(repo, Name, default));
    }

    [Fact]
    public async Task An_object_of_the_new_format_without_a_checksum_or_with_a_wrong_one_is_damaged()
    {
        using var dir = new TempDir();
        using var repo = await TestData.NewRepoAsync(new FileSystemStorage(dir.File("repo")));
        var data = Segment(4);
        var key = new StorageKey(ObjectKind.Named, Name);
        var buffer = new byte[Zstd.CompressBound(data.Length)];
        var frame = buffer[..Zstd.CompressChecksummed(data, buffer, 1)];
        var wrong = (byte[])frame.Clone();
        wrong[^2] ^= 0x40;
        var cases = new (string What, byte[] Plain, string Message)[]
        {
            ("no checksum in the frame", Concat(V2Field, Zstd.Compress(data, 1)), "records a checksum"),
            ("a wrong checksum", Concat(V2Field, wrong), "checksum"),
            ("a newer format", Concat([.. "cairn-named-v3"u8, .. new byte[18]], frame), "newer Cairn"),
        };
        foreach (var (what, plain, message) in cases)
        {
            await repo.Storage.PutAsync(key, Seal(repo, plain), default);
            var e = await Assert.ThrowsAsync<DataDamagedException>(() => NamedFiles.GetAsync(repo, Name, default));
            Assert.True(e.Message.Contains(message, StringComparison.Ordinal), $"{what}: {e.Message}");
            await Assert.ThrowsAsync<DataDamagedException>(() => NamedFiles.GetToFileAsync(repo, Name, dir.File("out"), default));
            Assert.False(File.Exists(dir.File("out")), $"{what}: a file was left");
            Assert.DoesNotContain(Directory.EnumerateFiles(dir.Path), f => f.Contains("partial", StringComparison.Ordinal));
        }
        // The control: the same frame with its own checksum reads.
        await repo.Storage.PutAsync(key, Seal(repo, Concat(V2Field, frame)), default);
        Assert.Equal(data, await ReadBothWaysAsync(repo, dir, "out"));
    }
}
