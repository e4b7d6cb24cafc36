using System.Text;
using System.Text.Json;
using Cairn.PostgreSql.Physical;

namespace Cairn.Tests.PostgreSql;

public class BackupManifestTests
{
    [Fact]
    public void File_names_with_quotes_backslashes_and_control_characters_read_back_exactly_from_the_json()
    {
        string[] names = ["base/1/16384", "odd \"quoted\" name", "back\\slash", "tab\there\nnewline\u0001", "données/é"];
        var manifest = BackupManifest.Build([.. names.Select(n => new ManifestFile(n, 1, Support.OperationsHarness.T0, "00000000"))], 1, "0/2000028", "0/2000100");
        using var doc = JsonDocument.Parse(manifest);
        Assert.Equal(names, doc.RootElement.GetProperty("Files").EnumerateArray().Select(f => f.GetProperty("Path").GetString()));
        // The checksum covers the bytes before its own line, as pg_verifybackup recomputes it.
        var text = Encoding.UTF8.GetString(manifest);
        var body = text[..text.IndexOf("\"Manifest-Checksum\"", StringComparison.Ordinal)];
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(body))), doc.RootElement.GetProperty("Manifest-Checksum").GetString());
    }

    // RFC 3720 appendix B.4: the CRC field's bytes as sent, which is the little-endian order backup_manifest prints.
    [Theory]
    [InlineData("zeros", "aa36918a")]
    [InlineData("ones", "43aba862")]
    [InlineData("incrementing", "4e79dd46")]
    [InlineData("decrementing", "5cdb3f11")]
    [InlineData("scsi-read-pdu", "563a96d9")]
    public void Crc32C_gives_the_RFC_3720_B4_test_vectors(string vector, string expected)
    {
        var data = vector switch
        {
            "zeros" => new byte[32],
            "ones" => Enumerable.Repeat((byte)0xFF, 32).ToArray(),
            "incrementing" => Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(),
            "decrementing" => Enumerable.Range(0, 32).Select(i => (byte)(31 - i)).ToArray(),
            _ => Convert.FromHexString(
                "01c00000000000000000000000000000" +
                "14000000000004000000001400000018" +
                "28000000000000000200000000000000"),
        };
        Assert.Equal(expected, Crc32C.Of(data));
        // Fed in uneven pieces (the 8-byte and the 1-byte paths, and their seams) it gives the same.
        foreach (var split in (int[])[1, 3, 7, 8, 9, 31])
        {
            var crc = new Crc32C();
            for (var i = 0; i < data.Length; i += split)
            {
                crc.Append(data.AsSpan(i, Math.Min(split, data.Length - i)));
            }
            Assert.Equal(expected, crc.Hex);
        }
    }

    [Fact]
    public void Crc32C_folded_from_the_pieces_CRCs_equals_the_CRC_of_the_whole()
    {
        // A physical backup checksums each 256 KiB block once and folds the blocks' CRCs into the file's.
        var rng = new Random(5);
        var data = new byte[(3 * 256 * 1024) + 12345];
        rng.NextBytes(data);
        var whole = Crc32C.Of(data);
        foreach (var piece in (int[])[256 * 1024, 1, 7, 8192, 100_000])
        {
            var folded = new Crc32C();
            folded.AppendCrc(Crc32C.ValueOf([]), 0); // an empty piece changes nothing
            for (var i = 0; i < data.Length; i += piece)
            {
                var part = data.AsSpan(i, Math.Min(piece, data.Length - i));
                folded.AppendCrc(Crc32C.ValueOf(part), part.Length);
            }
            Assert.Equal(whole, folded.Hex);
        }
        // Mixed with plain appends, and on the standard check value.
        var mixed = new Crc32C();
        mixed.Append("1234"u8);
        mixed.AppendCrc(Crc32C.ValueOf("56789"u8), 5);
        Assert.Equal(0xE3069283u, mixed.Value);
    }

    [Fact]
    public void Crc32C_gives_the_standard_check_value()
    {
        var crc = new Crc32C();
        crc.Append("123456789"u8);
        Assert.Equal(0xE3069283u, crc.Value);
    }
}
