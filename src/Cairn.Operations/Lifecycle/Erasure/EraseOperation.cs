using System.Diagnostics;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Connections;
using Cairn.PostgreSql.Lifecycle;
using Cairn.Repository;
using Npgsql;

namespace Cairn.Operations.Lifecycle.Erasure;

public sealed record EraseRequest(DatabaseTarget Database, string Subject, bool DryRun = false, string? Reference = null);

/// <param name="SubjectHash">The keyed hash the evidence records (null on a dry run, which opens no repository).</param>
/// <param name="LedgerEntry">The ledger object the erasure is on record in (null on a dry run).</param>
public sealed record EraseResult(string Database, bool DryRun, bool SubjectFound, IReadOnlyList<ErasureStep> Steps, string? SubjectHash, string? LedgerEntry, long? EvidenceSeq, TimeSpan Duration);

/// <summary>
/// <c>cairn erase DATABASE SUBJECT</c>: erases a data subject in one transaction (every row that references it through
/// foreign keys, the named references, the subject), puts the identifier, sealed, into the repository's erasure ledger
/// before the transaction commits (no repository, no erasure), and records a receipt with a keyed hash of the subject.
/// A dry run does all of it inside a transaction that is rolled back.
/// </summary>
public sealed class EraseOperation(OperationContext context)
{
    public static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(10);

    public async Task<EraseResult> RunAsync(EraseRequest request, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var config = db.Config?.Erasure ?? throw new RepositoryException(ErrorKind.InvalidInput,
            $"no erasure section for {db.Name}: add erasure: {{ subject: {{ table: public.profiles, key: id }} }} under databases.{db.Name} in cairn.yaml");
        if (string.IsNullOrWhiteSpace(request.Subject) || request.Subject.Contains('\0', StringComparison.Ordinal))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "the subject's identifier is empty or holds a NUL character");
        }
        var spec = ErasureLedgerEntries.SpecOf(config);
        var sw = Stopwatch.StartNew();
        // The erasure must be on record before it happens: without the repository (or with a wrong passphrase) nothing runs.
        using var repo = request.DryRun ? null : await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        await using var repoLock = repo is null ? null : await repo.LockAsync(exclusive: false, $"erase {db.Name}", cancellationToken).ConfigureAwait(false);
        await using var c = await db.Connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        ErasureOutcome outcome;
        try
        {
            await PostgreSql.Logical.Catalog.ExecuteOneAsync(c, $"SET LOCAL lock_timeout = {(long)LockTimeout.TotalMilliseconds}", tx, cancellationToken).ConfigureAwait(false);
            outcome = await ErasureSql.ApplyAsync(c, tx, spec, request.Subject, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            // MessageText only: PostgreSQL's detail line can quote the key, and this message may reach the evidence log.
            throw new PgToolException($"the erasure was rolled back, nothing changed: {e.MessageText} ({e.SqlState}{(e.TableName is { } t ? $", table {t}" : "")})");
        }
        if (request.DryRun)
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            return new EraseResult(db.Name, true, outcome.SubjectFound, outcome.Steps, null, null, null, sw.Elapsed);
        }
        var hash = ErasureLedger.SubjectHash(repo!, db.Name, $"{spec.SubjectSchema}.{spec.SubjectTable}", request.Subject);
        string entryName;
        try
        {
            entryName = await ErasureLedgerEntries.AppendAsync(repo!, new ErasureEntry(ErasureLedgerEntries.Version, db.Name, request.Subject, context.Time.GetUtcNow(), request.Reference, hash, spec),
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            throw;
        }
        await tx.CommitAsync(CancellationToken.None).ConfigureAwait(false);
        var seq = context.Evidence.Record(new ErasureEvent(hash, request.Reference, spec.FunctionName is null ? "plan" : "function", entryName, outcome.SubjectFound, outcome.Steps)
        {
            Repository = repo!.Storage.Location,
            Database = db.Name,
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
        });
        return new EraseResult(db.Name, false, outcome.SubjectFound, outcome.Steps, hash, entryName, seq, sw.Elapsed);
    }
}

/// <summary>What re-applying the ledger did to one database.</summary>
/// <param name="Entries">Erasures in the ledger for the database.</param>
/// <param name="Reapplied">Erasures that changed rows (their subject's data was back).</param>
/// <param name="DeletedByTable">Rows deleted per table ("schema.table" as displayed), so checks against a fingerprint can expect them gone.</param>
public sealed record ReplayResult(int Entries, int Reapplied, long Rows, IReadOnlyDictionary<string, long>? DeletedByTable = null, IReadOnlyList<ErasureEntry>? Ledger = null);

/// <summary>
/// Re-applies the erasure ledger of a database to a copy of it (a restore, a drill, a merge): every entry, oldest first,
/// in one transaction, as it was erased. Restores call it before they report success.
/// </summary>
public static class ErasureReplay
{
    public static async Task<ReplayResult> ApplyAsync(Repository.Repository repo, string database, PgConnection target, CancellationToken ct)
    {
        var entries = await ErasureLedgerEntries.ReadAsync(repo, database, ct).ConfigureAwait(false);
        if (entries.Count == 0)
        {
            return new ReplayResult(0, 0, 0, null, entries);
        }
        await using var c = await target.OpenAsync(ct).ConfigureAwait(false);
        await using var tx = await c.BeginTransactionAsync(ct).ConfigureAwait(false);
        var result = await ApplyAsync(c, tx, entries, ct).ConfigureAwait(false);
        await tx.CommitAsync(ct).ConfigureAwait(false);
        return result with { Ledger = entries };
    }

    /// <summary>The fingerprint a check should compare the erased copy with: each table's rows minus those the replay deleted.</summary>
    public static PostgreSql.Logical.Fingerprint AdjustFingerprint(PostgreSql.Logical.Fingerprint fp, ReplayResult replay)
        => replay.DeletedByTable is not { Count: > 0 } deleted ? fp : fp with
        {
            Tables = [.. fp.Tables.Select(t => deleted.TryGetValue($"{PostgreSql.Logical.Catalog.Display(t.Schema)}.{PostgreSql.Logical.Catalog.Display(t.Name)}", out var n) ? t with { Rows = t.Rows - n } : t)],
        };

    /// <summary>Applies <paramref name="entries"/> inside the caller's transaction (a merge commits them with its rows).</summary>
    public static async Task<ReplayResult> ApplyAsync(NpgsqlConnection c, NpgsqlTransaction tx, IReadOnlyList<ErasureEntry> entries, CancellationToken ct)
    {
        var reapplied = 0;
        long rows = 0;
        var deleted = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var e in entries)
        {
            ErasureOutcome o;
            try
            {
                o = await ErasureSql.ApplyAsync(c, tx, e.Spec, e.Subject, ct).ConfigureAwait(false);
            }
            catch (PostgresException ex)
            {
                throw new PgToolException($"re-applying the erasure of {e.SubjectHash[..12]}… (ledger, {e.Time:yyyy-MM-dd}) failed, so the copy is not reported restored: {ex.MessageText} ({ex.SqlState}); run 'cairn erase DATABASE --replay' once it is fixed");
            }
            foreach (var step in o.Steps.Where(x => x.Action.StartsWith("delete", StringComparison.Ordinal)))
            {
                deleted[step.Table] = deleted.GetValueOrDefault(step.Table) + step.Rows;
            }
            if (o.Rows > 0)
            {
                reapplied++;
                rows += o.Rows;
            }
        }
        return new ReplayResult(entries.Count, reapplied, rows, deleted, entries);
    }
}

/// <param name="Target">The database to apply the ledger to (a restored copy); default: the configured database.</param>
public sealed record EraseReplayRequest(DatabaseTarget Database, PgConnection? Target = null);

public sealed record EraseReplayResult(string Database, string Target, ReplayResult Replay);

/// <summary>
/// <c>cairn erase DATABASE --replay [--to URL]</c>: applies the erasure ledger to a database, e.g. a physical restore
/// started by hand (the note the restore wrote says so). Recorded as <c>erasure-replay</c>.
/// </summary>
public sealed class EraseReplayOperation(OperationContext context)
{
    public async Task<EraseReplayResult> RunAsync(EraseReplayRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var target = request.Target ?? request.Database.Connection;
        var sw = Stopwatch.StartNew();
        var replay = await ErasureReplay.ApplyAsync(repo, request.Database.Name, target, cancellationToken).ConfigureAwait(false);
        context.Evidence.Record(new ErasureReplayEvent(target.Redacted, replay.Entries, replay.Reapplied, replay.Rows)
        {
            Repository = repo.Storage.Location,
            Database = request.Database.Name,
            DurationMs = (long)sw.Elapsed.TotalMilliseconds,
        });
        return new EraseReplayResult(request.Database.Name, target.Redacted, replay);
    }
}

/// <summary>
/// <c>cairn erase DATABASE --receipt SEQ</c>: the erasure's evidence record with its inclusion proof and the log's signed
/// checkpoint (Ed25519, the evidence log's own key): what a data-protection officer files, verifiable without Cairn.
/// </summary>
public sealed class ErasureReceiptOperation(OperationContext context)
{
    public EvidenceShowResult Run(long seq)
    {
        var r = new EvidenceShowOperation(context).Run(new EvidenceShowRequest(seq));
        if (r.Entry.Record?["kind"]?.GetValue<string>() != "erasure")
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"evidence record {seq} is not an erasure (find them with 'cairn evidence list --kind erasure')");
        }
        return r;
    }
}
