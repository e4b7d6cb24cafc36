using System.Globalization;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Manifests;

namespace Cairn.Operations.Physical;

/// <summary>
/// What a physical backup's manifest says about it (its <c>meta</c>, format unchanged on disk), parsed once:
/// where its WAL starts and stops, its timeline, when it finished, how it was taken.
/// </summary>
public sealed record PhysicalBackupMeta(string StartLsn, string StopLsn, uint Timeline, string StartWal, DateTimeOffset StopTime, string Format)
{
    /// <summary><c>files</c> (read from the data directory) or <c>pg_basebackup-tar</c>.</summary>
    public const string FilesFormat = "files";

    public const string BaseBackupFormat = "pg_basebackup-tar";

    public DateTimeOffset? StartTime { get; init; }

    public string? StopWal { get; init; }

    public string? SystemIdentifier { get; init; }

    public string? DataDirectory { get; init; }

    public string? ServerVersion { get; init; }

    public ulong StartLsnValue => WalNames.ParseLsn(StartLsn);

    public ulong StopLsnValue => WalNames.ParseLsn(StopLsn);

    /// <summary>
    /// The start segment without its timeline (log and segment number): positions compare across timelines,
    /// since a promotion continues the numbering.
    /// </summary>
    public string StartPosition => StartWal[8..];

    /// <summary>The stop time as the manifest writes it (ISO 8601, UTC).</summary>
    public string StopTimeText => StopTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture);

    /// <summary>How a physical backup was taken, read alone (writing its files back needs nothing else from the manifest).</summary>
    public static string FormatOf(Snapshot snapshot) => snapshot.Manifest.Meta.GetValueOrDefault("format") ?? BaseBackupFormat;

    public static PhysicalBackupMeta Of(Snapshot snapshot)
    {
        var m = snapshot.Manifest.Meta;
        string Required(string key) => m.TryGetValue(key, out var v) && v.Length > 0
            ? v
            : throw new DataDamagedException($"physical backup {snapshot.ShortId} has no '{key}' in its manifest; it cannot be restored to a point in time");
        try
        {
            var startWal = Required("start_wal");
            if (!WalNames.IsSegment(startWal))
            {
                throw new DataDamagedException($"physical backup {snapshot.ShortId} names '{startWal}' as its first WAL segment, which is not a segment name");
            }
            // Positions are parsed here, once, so a forged manifest is refused by name instead of failing later in a comparison.
            _ = WalNames.ParseLsn(Required("start_lsn"));
            _ = WalNames.ParseLsn(Required("stop_lsn"));
            return new PhysicalBackupMeta(Required("start_lsn"), Required("stop_lsn"), uint.Parse(Required("timeline"), NumberStyles.None, CultureInfo.InvariantCulture), startWal,
                DateTimeOffset.Parse(Required("stop_time"), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal), FormatOf(snapshot))
            {
                StartTime = m.TryGetValue("start_time", out var st) ? DateTimeOffset.Parse(st, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal) : null,
                StopWal = m.GetValueOrDefault("stop_wal"),
                SystemIdentifier = m.GetValueOrDefault("system_identifier"),
                DataDirectory = m.GetValueOrDefault("data_directory"),
                ServerVersion = m.GetValueOrDefault("server_version"),
            };
        }
        catch (Exception e) when (e is FormatException or OverflowException or ArgumentException)
        {
            throw new DataDamagedException($"physical backup {snapshot.ShortId} has unreadable WAL positions or times in its manifest: {e.Message}", e);
        }
    }
}
