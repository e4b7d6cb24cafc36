using System.Text.Encodings.Web;
using System.Text.Json;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Cairn.PostgreSql.Physical;

/// <summary>One file of a backup as PostgreSQL's backup manifest lists it.</summary>
public sealed record ManifestFile(string Path, long Size, DateTimeOffset Modified, string Crc32C);

/// <summary>
/// Writes a backup manifest in PostgreSQL's own format (version 1, as pg_basebackup writes it), so that
/// pg_verifybackup can check a restored copy without Cairn: every file with its size and CRC-32C, the WAL
/// range the backup needs, and the SHA-256 of the manifest itself.
/// </summary>
public static class BackupManifest
{
    public static byte[] Build(IReadOnlyList<ManifestFile> files, uint timeline, string startLsn, string endLsn)
    {
        var sb = new StringBuilder("{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [");
        for (var i = 0; i < files.Count; i++)
        {
            var f = files[i];
            sb.Append(i == 0 ? "\n" : ",\n");
            sb.Append("{ \"Path\": ").Append(Quote(f.Path))
              .Append(CultureInfo.InvariantCulture, $", \"Size\": {f.Size}, \"Last-Modified\": \"{f.Modified.UtcDateTime:yyyy-MM-dd HH:mm:ss} GMT\", \"Checksum-Algorithm\": \"CRC32C\", \"Checksum\": \"{f.Crc32C}\" }}");
        }
        sb.Append("\n],\n\"WAL-Ranges\": [\n");
        sb.Append(CultureInfo.InvariantCulture, $"{{ \"Timeline\": {timeline}, \"Start-LSN\": \"{startLsn}\", \"End-LSN\": \"{endLsn}\" }}");
        sb.Append("\n],\n");
        var body = Encoding.UTF8.GetBytes(sb.ToString());
        var checksum = Convert.ToHexStringLower(SHA256.HashData(body));
        return [.. body, .. Encoding.UTF8.GetBytes($"\"Manifest-Checksum\": \"{checksum}\"}}\n")];
    }

    /// <summary>A JSON string: the framework's encoder, relaxed so names stay readable (pg_verifybackup decodes any valid escape).</summary>
    private static string Quote(string s) => "\"" + JsonEncodedText.Encode(s, JavaScriptEncoder.UnsafeRelaxedJsonEscaping).Value + "\"";
}
