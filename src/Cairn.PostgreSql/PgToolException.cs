namespace Cairn.PostgreSql;

/// <summary>A PostgreSQL-side problem the user can act on; the message names the fix. Never contains a password.</summary>
public sealed class PgToolException(string message, Exception? inner = null) : Exception(message, inner);
