using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Programs;

namespace Cairn.PostgreSql.Physical;

public sealed record BaseBackupInfo(string StartLsn, string StopLsn, uint Timeline, string StartWal, string ServerVersion, DateTimeOffset StopTime);

/// <summary>
/// An online physical backup through the replication protocol (pg_basebackup, which uses PostgreSQL's
/// non-exclusive backup API): the data directory as one tar stream on stdout, piped straight to the
/// caller (no temp copy), including backup_label and the backup manifest pg_verifybackup reads. WAL is
/// not included: the server must archive it (archive_command = cairn wal-push), and the backup waits
/// until the segments it needs are archived.
/// </summary>
public static partial class BaseBackup
{
    public static async Task<BaseBackupInfo> RunAsync(PgConnection connection, Func<Stream, Task> consume, TimeProvider time, string? postgresBin, CancellationToken ct)
    {
        string version;
        await using (var s = await Sessions.CheckSession.OpenAsync(connection, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false))
        {
            var rows = await s.QueryAsync("SELECT current_setting('server_version_num'), current_setting('archive_mode'), current_setting('archive_command')", null, ct).ConfigureAwait(false);
            version = (string)rows[0][0]!;
            if ((string)rows[0][1]! == "off" || !((string)rows[0][2]!).Contains("wal-push", StringComparison.Ordinal))
            {
                throw new PgToolException($"{connection.Redacted} does not archive its WAL through Cairn (archive_mode = {rows[0][1]}, archive_command = '{rows[0][2]}'); set archive_mode = on and archive_command = 'cairn wal-push %p --database NAME' (see README), restart, then back up");
            }
        }
        var bin = PgBinaries.Find(int.Parse(version, CultureInfo.InvariantCulture) / 10000, postgresBin);
        using (var env = connection.ProgramEnvironment())
        {
            var psi = PgProcess.StartInfo(bin["pg_basebackup"], ["--pgdata=-", "--format=tar", "--wal-method=none", "--checkpoint=fast", "--label=cairn", "--verbose", "--no-sync"], env.Variables);
            using var p = PgProcess.Start(psi, "pg_basebackup");
            p.StandardInput.Close();
            var err = p.StandardError.ReadToEndAsync(ct);
            var sniffer = new TarSniffer(p.StandardOutput.BaseStream, new HashSet<string>(StringComparer.Ordinal) { "backup_label", "backup_manifest" });
            try
            {
                await consume(sniffer).ConfigureAwait(false);
                await p.WaitForExitAsync(ct).ConfigureAwait(false);
            }
            catch
            {
                PgProcess.Kill(p);
                throw;
            }
            var stderr = await err.ConfigureAwait(false);
            if (p.ExitCode != 0)
            {
                throw new PgToolException($"pg_basebackup of {connection.Redacted} failed (exit {p.ExitCode}): {PgProcess.Tail(stderr)}; no backup was recorded");
            }
            // backup_label names the start; the manifest's WAL-Ranges name the end (pg_basebackup -X none prints neither).
            if (!sniffer.Captured.TryGetValue("backup_label", out var label) || !sniffer.Captured.TryGetValue("backup_manifest", out var manifest))
            {
                throw new PgToolException("the base backup holds no backup_label or backup_manifest; is the server older than PostgreSQL 13?");
            }
            return Describe(label, manifest, version, time.GetUtcNow());
        }
    }

    /// <summary>
    /// Where the backup's WAL starts and ends, from its backup_label (START WAL LOCATION, START TIMELINE) and its
    /// backup_manifest (WAL-Ranges). Both come from pg_basebackup's output: anything malformed is a
    /// <see cref="PgToolException"/> naming the file, never a crash.
    /// </summary>
    public static BaseBackupInfo Describe(byte[] label, byte[] manifest, string version, DateTimeOffset stopTime)
    {
        var labelText = Encoding.UTF8.GetString(label);
        var startMatch = LabelStart().Match(labelText);
        var tliText = TarSniffer.Field(labelText, "START TIMELINE:");
        uint? labelTli = null;
        if (tliText is not null)
        {
            labelTli = uint.TryParse(tliText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var t) && t > 0
                ? t
                : throw new PgToolException($"backup_label names START TIMELINE '{WalNames.Shorten(tliText)}', which is not a timeline number; the base backup is damaged and was not recorded");
        }
        string manifestStart, endLsn;
        uint manifestTli;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(manifest);
            if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("WAL-Ranges", out var ranges) || ranges.ValueKind != System.Text.Json.JsonValueKind.Array || ranges.GetArrayLength() == 0)
            {
                throw new PgToolException("backup_manifest has no WAL-Ranges; the base backup is damaged and was not recorded");
            }
            var range = ranges[0];
            manifestStart = Text(range, "Start-LSN");
            endLsn = Text(range, "End-LSN");
            manifestTli = range.ValueKind == System.Text.Json.JsonValueKind.Object && range.TryGetProperty("Timeline", out var tl) && tl.ValueKind == System.Text.Json.JsonValueKind.Number && tl.TryGetUInt32(out var v) && v > 0
                ? v
                : throw new PgToolException("backup_manifest's WAL-Ranges has no valid Timeline; the base backup is damaged and was not recorded");
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or ArgumentException)
        {
            // Invalid UTF-8 in a string is an InvalidOperationException from GetString.
            throw new PgToolException($"backup_manifest is not readable JSON ({e.Message}); the base backup is damaged and was not recorded", e);
        }
        var startLsn = startMatch.Success ? startMatch.Groups[1].Value : manifestStart;
        foreach (var (what, lsn) in new[] { ("start", startLsn), ("end", endLsn) })
        {
            if (!WalNames.TryParseLsn(lsn, out _))
            {
                throw new PgToolException($"the base backup's {what} WAL location '{WalNames.Shorten(lsn)}' (backup_label / backup_manifest) is not an LSN; the base backup is damaged and was not recorded");
            }
        }
        var tli = labelTli ?? manifestTli;
        return new BaseBackupInfo(startLsn, endLsn, tli, startMatch.Success ? startMatch.Groups[2].Value : WalNames.SegmentOf(tli, WalNames.ParseLsn(startLsn)), version, stopTime);
    }

    private static string Text(System.Text.Json.JsonElement range, string name)
        => range.ValueKind == System.Text.Json.JsonValueKind.Object && range.TryGetProperty(name, out var p) && p.ValueKind == System.Text.Json.JsonValueKind.String
            ? p.GetString()!
            : throw new PgToolException($"backup_manifest's WAL-Ranges has no {name}; the base backup is damaged and was not recorded");

    [GeneratedRegex(@"START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)")]
    private static partial Regex LabelStart();
}
