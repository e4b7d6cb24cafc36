namespace Cairn.PostgreSql.Programs;

/// <summary>Quoting for command lines that a POSIX shell runs (archive_command, restore_command).</summary>
public static class ShellQuote
{
    /// <summary>
    /// One shell word that stands for exactly <paramref name="s"/>: single quotes, inside which a POSIX shell expands
    /// nothing (no $, `, \ or "), with each ' written as '\'' (close, an escaped quote, reopen).
    /// </summary>
    public static string Quote(string s)
    {
        if (s.Contains('\0', StringComparison.Ordinal))
        {
            throw new ArgumentException("a shell word cannot hold a NUL character", nameof(s));
        }
        return "'" + s.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
    }

    /// <summary>
    /// A shell word for archive_command / restore_command: PostgreSQL first replaces %p, %f, %r and %% in the whole
    /// command, so a literal % is written %% (a path holding "%f" would otherwise become a WAL file name).
    /// </summary>
    public static string ForPostgresCommand(string s) => Quote(s).Replace("%", "%%", StringComparison.Ordinal);
}
