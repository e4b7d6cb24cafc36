using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Logical;
using Npgsql;

namespace Cairn.PostgreSql.Sessions;

/// <summary>
/// One row of the runbook's table. <see cref="CreatedAt"/> is the time of the backup the row is about (a backup's own
/// time, the drilled or restored backup's time; none for a check of the live database), so the runbook's freshness
/// query, <c>MAX(created_at)</c>, is the newest backup and nothing else. <see cref="VerifiedAt"/> is when a check ran
/// (none for a backup row), so "verified in the last 24 hours" counts verifications only.
/// </summary>
/// <param name="Kind">backup, restore, drill, drill_physical or verify_live.</param>
/// <param name="TableName">The check's name (a check about one table names it), or null for a backup or restore row.</param>
public sealed record MirrorRow(string Kind, string Database, string? TableName, string Status, DateTimeOffset? CreatedAt, DateTimeOffset? VerifiedAt,
    DateTimeOffset? StartedAt, DateTimeOffset? FinishedAt, long? EvidenceSeq, string? CheckKind, string? Detail);

/// <summary>
/// Writes backups, restores, drills and live verifications into <c>SCHEMA.backup_verification_log</c> in the monitored
/// database, so the runbook's SQL keeps working with the schema name in front. The schema and table are created if
/// missing, with row-level security enabled and no privileges for PUBLIC or the application roles <c>anon</c> and
/// <c>authenticated</c> (on Supabase the Data API cannot read it). One statement per command; the schema name is quoted.
/// </summary>
public static class VerificationMirror
{
    public const string DefaultSchema = "cairn";

    private static readonly string[] ApplicationRoles = ["anon", "authenticated"];

    /// <summary>The statements that create and lock down the table, in order.</summary>
    public static IReadOnlyList<string> SetupStatements(string schema, IEnumerable<string> existingApplicationRoles)
    {
        var s = Catalog.Quote(schema);
        var table = $"{s}.backup_verification_log";
        List<string> statements =
        [
            $"CREATE SCHEMA IF NOT EXISTS {s}",
            $"""
            CREATE TABLE IF NOT EXISTS {table} (
              id bigserial PRIMARY KEY,
              kind text NOT NULL,
              database_name text NOT NULL,
              table_name text,
              backup_status text NOT NULL,
              last_verified timestamptz,
              verified_at timestamptz,
              created_at timestamptz,
              started_at timestamptz,
              finished_at timestamptz,
              evidence_seq bigint,
              check_kind text,
              detail text
            )
            """,
            $"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            $"REVOKE ALL ON SCHEMA {s} FROM PUBLIC",
            $"REVOKE ALL ON TABLE {table} FROM PUBLIC",
            $"REVOKE ALL ON SEQUENCE {s}.backup_verification_log_id_seq FROM PUBLIC",
        ];
        foreach (var role in existingApplicationRoles)
        {
            var r = Catalog.Quote(role);
            statements.Add($"REVOKE ALL ON SCHEMA {s} FROM {r}");
            statements.Add($"REVOKE ALL ON TABLE {table} FROM {r}");
            statements.Add($"REVOKE ALL ON SEQUENCE {s}.backup_verification_log_id_seq FROM {r}");
        }
        return statements;
    }

    public static async Task WriteAsync(PgConnection connection, string schema, IReadOnlyList<MirrorRow> rows, CancellationToken ct)
    {
        await using var c = await connection.OpenAsync(ct).ConfigureAwait(false);
        var roles = new List<string>();
        await using (var q = new NpgsqlCommand("SELECT rolname FROM pg_roles WHERE rolname = ANY(@r) ORDER BY rolname", c))
        {
            q.Parameters.AddWithValue("r", ApplicationRoles);
            await using var reader = await q.ExecuteReaderAsync(ct).ConfigureAwait(false);
            while (await reader.ReadAsync(ct).ConfigureAwait(false))
            {
                roles.Add(reader.GetString(0));
            }
        }
        foreach (var statement in SetupStatements(schema, roles))
        {
            await using var cmd = new NpgsqlCommand(statement, c);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        foreach (var row in rows)
        {
            await using var cmd = new NpgsqlCommand($"INSERT INTO {Catalog.Quote(schema)}.backup_verification_log (kind, database_name, table_name, backup_status, last_verified, verified_at, created_at, started_at, finished_at, evidence_seq, check_kind, detail) VALUES (@kind, @db, @t, @s, @v, @v, @c, @start, @end, @e, @k, @d)", c, tx);
            cmd.Parameters.AddWithValue("kind", row.Kind);
            cmd.Parameters.AddWithValue("db", row.Database);
            cmd.Parameters.AddWithValue("t", (object?)row.TableName ?? DBNull.Value);
            cmd.Parameters.AddWithValue("s", row.Status);
            cmd.Parameters.AddWithValue("v", (object?)row.VerifiedAt ?? DBNull.Value);
            cmd.Parameters.AddWithValue("c", (object?)row.CreatedAt ?? DBNull.Value);
            cmd.Parameters.AddWithValue("start", (object?)row.StartedAt ?? DBNull.Value);
            cmd.Parameters.AddWithValue("end", (object?)row.FinishedAt ?? DBNull.Value);
            cmd.Parameters.AddWithValue("e", (object?)row.EvidenceSeq ?? DBNull.Value);
            cmd.Parameters.AddWithValue("k", (object?)row.CheckKind ?? DBNull.Value);
            cmd.Parameters.AddWithValue("d", (object?)row.Detail ?? DBNull.Value);
            await cmd.ExecuteNonQueryAsync(ct).ConfigureAwait(false);
        }
        await tx.CommitAsync(ct).ConfigureAwait(false);
    }
}
