namespace Cairn.PostgreSql;

/// <summary>A PostgreSQL-side problem the user can act on; the message names the fix. Never contains a password.</summary>
public sealed class PgToolException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The program was killed because it did not finish in its time (not: it failed or could not start).</summary>
    public bool TimedOut { get; init; }
}
