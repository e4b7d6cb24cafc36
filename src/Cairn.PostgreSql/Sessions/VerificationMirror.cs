using Cairn.PostgreSql.Connections;
using Npgsql;

namespace Cairn.PostgreSql.Sessions;

/// <summary>
/// Writes drill and verification results into <c>backup_verification_log</c> in the monitored
/// database, so the runbook's SQL freshness queries keep working. The table is created if missing.
/// </summary>
public static class VerificationMirror
{
    public const string CreateSql = """
        CREATE TABLE IF NOT EXISTS backup_verification_log (
          id bigserial PRIMARY KEY,
          table_name text NOT NULL,
          backup_status text NOT NULL,
          last_verified timestamptz NOT NULL,
          verified_at timestamptz NOT NULL,
          created_at timestamptz NOT NULL DEFAULT now(),
          evidence_seq bigint,
          check_kind text,
          detail text
        )
        """;

    public static async Task WriteAsync(PgConnection connection, IEnumerable<(string TableName, string Status, string Kind, string? Detail)> rows, DateTimeOffset verifiedAt, DateTimeOffset lastVerified, long? evidenceSeq, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        await using (var create = new NpgsqlCommand(CreateSql, c))
        {
            await create.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        foreach (var (table, status, kind, detail) in rows)
        {
            await using var cmd = new NpgsqlCommand("INSERT INTO backup_verification_log (table_name, backup_status, last_verified, verified_at, evidence_seq, check_kind, detail) VALUES (@t, @s, @l, @v, @e, @k, @d)", c, tx);
            cmd.Parameters.AddWithValue("t", table);
            cmd.Parameters.AddWithValue("s", status);
            cmd.Parameters.AddWithValue("l", lastVerified);
            cmd.Parameters.AddWithValue("v", verifiedAt);
            cmd.Parameters.AddWithValue("e", (object?)evidenceSeq ?? DBNull.Value);
            cmd.Parameters.AddWithValue("k", kind);
            cmd.Parameters.AddWithValue("d", (object?)detail ?? DBNull.Value);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }
}
