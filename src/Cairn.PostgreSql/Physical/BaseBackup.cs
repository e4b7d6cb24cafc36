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
        using var doc = System.Text.Json.JsonDocument.Parse(manifest);
        var range = doc.RootElement.GetProperty("WAL-Ranges")[0];
        var startLsn = startMatch.Success ? startMatch.Groups[1].Value : range.GetProperty("Start-LSN").GetString()!;
        var tli = tliText is not null ? TarSniffer.ParseUInt(tliText) : (uint)range.GetProperty("Timeline").GetInt32();
        return new BaseBackupInfo(startLsn, range.GetProperty("End-LSN").GetString()!, tli, startMatch.Success ? startMatch.Groups[2].Value : WalNames.SegmentOf(tli, WalNames.ParseLsn(startLsn)), version, stopTime);
    }

    [GeneratedRegex(@"START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+) \(file ([0-9A-F]{24})\)")]
    private static partial Regex LabelStart();
}
