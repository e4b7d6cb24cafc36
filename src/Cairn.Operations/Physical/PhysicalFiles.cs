namespace Cairn.Operations.Physical;

/// <summary>
/// Physical backups that read a local data directory directly, between pg_backup_start and pg_backup_stop:
/// files are read in parallel; a file whose size and modification time are those of the previous backup
/// (same system, timeline and data directory) and that was last modified well before that backup started is
/// not read at all, its chunks are carried over; everything else is chunked and deduplicated. Each file is one
/// manifest item, so a restore writes files in parallel and <c>--delta</c> keeps files that already match.
/// A PostgreSQL-format backup_manifest (CRC-32C per file) is stored too, so pg_verifybackup can check a
/// restored copy independently of Cairn.
/// The backup half is in PhysicalFiles.Backup.cs, the restore half in PhysicalFiles.Restore.cs.
/// </summary>
public static partial class PhysicalFiles
{
    public const string Format = PhysicalBackupMeta.FilesFormat;
    public const string ManifestItemName = "backup_manifest";
    public const string TablespaceMapItem = "tablespace_map";
}
