namespace Cairn.Repository;

/// <summary>What went wrong, in categories the CLI maps to documented exit codes.</summary>
public enum ErrorKind
{
    General,
    NotFound,
    WrongPassphrase,
    Locked,
    Damaged,
    AlreadyExists,
    NoSpace,
    InvalidInput,
}

/// <summary>An error the user can act on: the message says what is wrong and what to do.</summary>
public class RepositoryException(ErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public ErrorKind Kind { get; } = kind;
}

public sealed class WrongPassphraseException(string location, string detail = "")
    : RepositoryException(ErrorKind.WrongPassphrase, $"wrong passphrase: no key of the repository at {location} opens with it; check CAIRN_PASSPHRASE_FILE / CAIRN_PASSPHRASE (nothing was changed){detail}");

public sealed class RepositoryLockedException(string message) : RepositoryException(ErrorKind.Locked, message);

/// <summary>Data could not be read back intact. Names the object so the user can judge the damage.</summary>
public sealed class DataDamagedException(string message, Exception? inner = null) : RepositoryException(ErrorKind.Damaged, message, inner);

public static class ErrorClassifier
{
    private const int ENOSPC = 28;
    private const int EDQUOT = 122;

    /// <summary>True when an I/O error means the disk or quota is full.</summary>
    public static bool IsNoSpace(Exception e)
    {
        for (var x = e; x is not null; x = x.InnerException)
        {
            if (x is IOException io && ((io.HResult & 0xFFFF) == ENOSPC || (io.HResult & 0xFFFF) == EDQUOT || io.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase) || io.Message.Contains("disk was full", StringComparison.OrdinalIgnoreCase) || io.Message.Contains("Disk quota", StringComparison.OrdinalIgnoreCase)))
            {
                return true;
            }
        }
        return false;
    }
}
