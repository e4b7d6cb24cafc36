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
}
