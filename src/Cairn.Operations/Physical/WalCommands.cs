using Cairn.PostgreSql.Programs;
using Cairn.Repository;

namespace Cairn.Operations.Physical;

/// <summary>
/// The shell commands PostgreSQL runs to archive and fetch WAL through Cairn: this very program, the repository,
/// and the passphrase's file (never the passphrase itself).
/// </summary>
public static class WalCommands
{
    /// <summary>restore_command for a restored copy: the server's own passphrase file (CAIRN_RESTORE_PASSPHRASE_FILE) or CAIRN_PASSPHRASE_FILE.</summary>
    public static string RestoreCommand(OperationContext context, string repository, string database)
    {
        // The server's restore_command may use its own key file (e.g. a machine key readable by postgres).
        var passFile = context.Environment("CAIRN_RESTORE_PASSPHRASE_FILE") ?? context.Environment("CAIRN_PASSPHRASE_FILE") ?? throw new RepositoryException(ErrorKind.InvalidInput,
            "restore_command needs the passphrase from a file: set CAIRN_PASSPHRASE_FILE (or CAIRN_RESTORE_PASSPHRASE_FILE) to a file the postgres user can read (a passphrase is never written into the server's configuration)");
        return $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {context.SelfCommand} --repo {Sh(repository)} wal-fetch %f %p --database {Sh(database)}";
    }

    /// <summary>archive_command pushing WAL into <paramref name="repository"/> with the passphrase read from <paramref name="passFile"/>.</summary>
    public static string ArchiveCommand(OperationContext context, string repository, string passFile, string database)
        => $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {context.SelfCommand} --repo {Sh(repository)} wal-push %p --database {Sh(database)}";

    /// <summary>Quotes one word for the shell PostgreSQL runs these commands with (see <see cref="ShellQuote"/>).</summary>
    public static string Sh(string s) => ShellQuote.ForPostgresCommand(s);
}
