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
        return $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {ObjectStoreSettings(context, repository, database)}{context.SelfCommand} --repo {Sh(repository)} wal-fetch %f %p --database {Sh(database)}";
    }

    /// <summary>archive_command pushing WAL into <paramref name="repository"/> with the passphrase read from <paramref name="passFile"/>.</summary>
    public static string ArchiveCommand(OperationContext context, string repository, string passFile, string database)
        => $"CAIRN_PASSPHRASE_FILE={Sh(Path.GetFullPath(passFile))} {ObjectStoreSettings(context, repository, database)}{context.SelfCommand} --repo {Sh(repository)} wal-push %p --database {Sh(database)}";

    /// <summary>The AWS variables that name where and how to reach S3 (never a key or a secret).</summary>
    public static readonly IReadOnlyList<string> NonSecretS3Variables = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"];

    /// <summary>
    /// For a repository in S3, what the server's process needs to reach it, as file names and non-secret settings: the
    /// config file (its <c>s3:</c> block, whose credentials are a file) and the AWS variables that are no secret. A
    /// server keeps its environment for life and its superusers can read it, so a key never goes there: credentials
    /// that exist only in Cairn's environment are refused with the fix.
    /// </summary>
    private static string ObjectStoreSettings(OperationContext context, string repository, string database)
    {
        if (!repository.StartsWith(Repository.Storage.S3Location.Scheme, StringComparison.Ordinal))
        {
            // Asynchronous archiving and prefetch are configured in cairn.yaml: the server's call must find it.
            return WalBackground.SettingsOf(context, database) is { Async: false, Prefetch: false } || context.Config.File is not { } config
                ? "" : $"CAIRN_CONFIG={Sh(Path.GetFullPath(config))} ";
        }
        var words = new List<string>();
        if (context.Config.File is { } file)
        {
            words.Add($"CAIRN_CONFIG={Sh(Path.GetFullPath(file))}");
        }
        if (context.Config.AppendOnly || context.Environment("CAIRN_APPEND_ONLY") is "1" or "true" or "yes")
        {
            words.Add("CAIRN_APPEND_ONLY=1");
        }
        foreach (var name in NonSecretS3Variables)
        {
            if (context.Environment(name) is { Length: > 0 } value)
            {
                words.Add($"{name}={Sh(value)}");
            }
        }
        if (context.Config.S3?.CredentialsFile is null && context.Environment("AWS_ACCESS_KEY_ID") is { Length: > 0 } && context.Environment("AWS_SHARED_CREDENTIALS_FILE") is null)
        {
            throw new RepositoryException(ErrorKind.InvalidInput,
                "the server's archive_command/restore_command cannot use S3 credentials that are only in Cairn's environment (AWS_ACCESS_KEY_ID): a key is never written into the server's configuration. Put them in a credentials file the postgres user can read (s3.credentials_file in cairn.yaml, AWS format, mode 0600 or 0640), or use instance credentials");
        }
        return words.Count == 0 ? "" : string.Join(' ', words) + " ";
    }

    /// <summary>Quotes one word for the shell PostgreSQL runs these commands with (see <see cref="ShellQuote"/>).</summary>
    public static string Sh(string s) => ShellQuote.ForPostgresCommand(s);
}
