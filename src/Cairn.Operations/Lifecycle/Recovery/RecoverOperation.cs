using System.Diagnostics;
using System.Text.Json;
using Cairn.Operations.Lifecycle.Erasure;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.PostgreSql.Lifecycle;
using Cairn.PostgreSql.Logical;
using Cairn.Repository;
using Npgsql;

namespace Cairn.Operations.Lifecycle.Recovery;

/// <param name="Since">How far back the audit trail is read (from the server's clock).</param>
/// <param name="Table">Only events about this table.</param>
/// <param name="EventPattern">A SQL LIKE pattern for the delete events (default <c>%_deleted</c>).</param>
/// <param name="UndoUpdates">Also put updated rows back to their old images (<c>%_updated</c> events).</param>
public sealed record RecoverRequest(DatabaseTarget Database, TimeSpan Since, string? Table = null, string? EventPattern = null, bool DryRun = false, bool UndoUpdates = false);

/// <param name="UnknownColumns">Per table, keys of the images that are no longer columns (they were left out).</param>
public sealed record RecoverResult(string Database, bool DryRun, DateTimeOffset Since, IReadOnlyList<RowRecovery> Rows, IReadOnlyDictionary<string, IReadOnlyList<string>> UnknownColumns, TimeSpan Duration)
{
    public int Count(string outcome) => Rows.Count(r => r.Outcome == outcome);
}

/// <summary>
/// <c>cairn recover DATABASE --from-audit --since 1h</c>: rows deleted in the window come back from the audit trail's old
/// images, in foreign-key order, in one transaction; rows that exist again are skipped and counted; subjects in the
/// erasure ledger are never brought back (their events are skipped, and the ledger is applied again before the commit).
/// </summary>
public sealed class RecoverOperation(OperationContext context)
{
    public const string Inserted = "inserted";
    public const string Exists = "skipped: exists again";
    public const string Erased = "skipped: erased subject";
    public const string NotApplied = "not applied";
    public const string Updated = "updated back";
    public const string Unchanged = "unchanged";

    public async Task<RecoverResult> RunAsync(RecoverRequest request, CancellationToken cancellationToken)
    {
        var db = request.Database;
        var audit = db.Config?.Audit ?? throw new RepositoryException(ErrorKind.InvalidInput,
            $"no audit section for {db.Name}: describe the audit trail under databases.{db.Name}.audit in cairn.yaml (table, time_column, entity_column, id_column, event_column, old_image)");
        var sw = Stopwatch.StartNew();
        // The ledger is checked: without the repository nothing is recovered (an erased subject must never come back).
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var ledger = await ErasureLedgerEntries.ReadAsync(repo, db.Name, cancellationToken).ConfigureAwait(false);
        var spec = new AuditSpec(audit.Table.Schema, audit.Table.Name, audit.TimeColumn, audit.EntityColumn, audit.IdColumn, audit.EventColumn, audit.OldImage, audit.NewImage);
        await using var c = await db.Connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        var auditTable = await RecoverSql.ValidateAsync(c, spec, cancellationToken).ConfigureAwait(false);
        var since = await LiveTables.ServerNowAsync(c, cancellationToken).ConfigureAwait(false) - request.Since;
        LiveTable? only = request.Table is { } tn ? await FindAsync(c, tn, cancellationToken).ConfigureAwait(false) : null;
        await using var tx = await c.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var rows = new List<RowRecovery>();
        var unknown = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        try
        {
            var deletes = await RecoverSql.EventsAsync(c, tx, spec, auditTable, since, null, request.EventPattern ?? "%_deleted", null, false, cancellationToken).ConfigureAwait(false);
            var byTable = await ResolveAsync(c, deletes, only, rows, cancellationToken).ConfigureAwait(false);
            var erasedKeys = await ErasedKeysAsync(c, ledger, cancellationToken).ConfigureAwait(false);
            foreach (var table in await RecoverSql.ParentsFirstAsync(c, [.. byTable.Keys], cancellationToken).ConfigureAwait(false))
            {
                var missing = new SortedSet<string>(StringComparer.Ordinal);
                foreach (var e in byTable[table])
                {
                    if (IsErased(table, e.Image!, erasedKeys))
                    {
                        rows.Add(new RowRecovery(table.Display, e.EntityId, e.Event, e.Time, Erased));
                        continue;
                    }
                    missing.UnionWith(await RecoverSql.UnknownKeysAsync(c, tx, table, e.Image!, cancellationToken).ConfigureAwait(false));
                    var inserted = await RecoverSql.InsertIfMissingAsync(c, tx, table, e.Image!, cancellationToken).ConfigureAwait(false);
                    rows.Add(new RowRecovery(table.Display, e.EntityId, e.Event, e.Time, inserted ? Inserted : Exists));
                }
                if (missing.Count > 0)
                {
                    unknown[table.Display] = [.. missing];
                }
            }
            if (request.UndoUpdates)
            {
                var updates = await RecoverSql.EventsAsync(c, tx, spec, auditTable, since, null, "%_updated", null, false, cancellationToken).ConfigureAwait(false);
                // Newest first: the oldest image in the window is what the row goes back to.
                var updByTable = await ResolveAsync(c, [.. updates.AsEnumerable().Reverse()], only, rows, cancellationToken).ConfigureAwait(false);
                foreach (var (table, events) in updByTable)
                {
                    foreach (var e in events)
                    {
                        if (IsErased(table, e.Image!, erasedKeys))
                        {
                            rows.Add(new RowRecovery(table.Display, e.EntityId, e.Event, e.Time, Erased));
                            continue;
                        }
                        var (updated, changed) = await RecoverSql.UndoUpdateAsync(c, tx, table, e.Image!, apply: true, cancellationToken).ConfigureAwait(false);
                        rows.Add(new RowRecovery(table.Display, e.EntityId, e.Event, e.Time, updated ? Updated : Unchanged, changed.Count == 0 ? null : "differed: " + string.Join(", ", changed)));
                    }
                }
            }
            // Belt and braces: whatever came back, the ledger is applied again in the same transaction.
            await ErasureReplay.ApplyAsync(c, tx, ledger, cancellationToken).ConfigureAwait(false);
        }
        catch (PostgresException e)
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
            throw new PgToolException($"the recovery was rolled back, nothing changed: {e.MessageText} ({e.SqlState}{(e.TableName is { } t ? $", table {t}" : "")})");
        }
        if (request.DryRun)
        {
            await tx.RollbackAsync(CancellationToken.None).ConfigureAwait(false);
        }
        else
        {
            await tx.CommitAsync(cancellationToken).ConfigureAwait(false);
        }
        var result = new RecoverResult(db.Name, request.DryRun, since, rows, unknown, sw.Elapsed);
        if (!request.DryRun)
        {
            context.Evidence.Record(new RecoverEvent("audit", since, null, result.Count(Inserted), result.Count(Exists), result.Count(Erased), result.Count(NotApplied), result.Count(Updated),
                [.. rows.Select(r => r.Table).Distinct()])
            {
                Repository = repo.Storage.Location,
                Database = db.Name,
                DurationMs = (long)sw.Elapsed.TotalMilliseconds,
            });
        }
        return result;
    }

    private static async Task<LiveTable> FindAsync(NpgsqlConnection c, string name, CancellationToken ct)
    {
        var (schema, table) = Catalog.ParseQualified(name);
        return await LiveTables.FindAsync(c, schema, table, ct).ConfigureAwait(false);
    }

    /// <summary>Groups events by their live table; events that cannot be applied (no image, no such table) are listed with why.</summary>
    private static async Task<Dictionary<LiveTable, List<AuditEvent>>> ResolveAsync(NpgsqlConnection c, List<AuditEvent> events, LiveTable? only, List<RowRecovery> rows, CancellationToken ct)
    {
        var tables = new Dictionary<string, LiveTable?>(StringComparer.Ordinal);
        var result = new Dictionary<LiveTable, List<AuditEvent>>();
        foreach (var e in events)
        {
            if (!tables.TryGetValue(e.Entity, out var t))
            {
                try
                {
                    t = await FindAsync(c, e.Entity, ct).ConfigureAwait(false);
                }
                catch (PgToolException)
                {
                    t = null;
                }
                tables[e.Entity] = t;
            }
            if (only is not null && t?.Oid != only.Oid)
            {
                continue;
            }
            if (t is null || e.Image is null or "null")
            {
                rows.Add(new RowRecovery(e.Entity, e.EntityId, e.Event, e.Time, NotApplied, t is null ? $"no table {Catalog.Display(e.Entity)}" : "the event has no row image"));
                continue;
            }
            if (!result.TryGetValue(t, out var list))
            {
                result[t] = list = [];
            }
            list.Add(e);
        }
        return result;
    }

    /// <summary>Per table oid: columns whose value identifies an erased subject (the subject's key, named deletes, direct foreign keys), with the identifiers.</summary>
    private static async Task<Dictionary<uint, List<(string Column, string Subject)>>> ErasedKeysAsync(NpgsqlConnection c, List<ErasureEntry> ledger, CancellationToken ct)
    {
        var result = new Dictionary<uint, List<(string, string)>>();
        void Add(uint oid, string column, string subject)
        {
            if (!result.TryGetValue(oid, out var l))
            {
                result[oid] = l = [];
            }
            l.Add((column, subject));
        }
        foreach (var e in ledger)
        {
            LiveTable subject;
            try
            {
                subject = await LiveTables.FindAsync(c, e.Spec.SubjectSchema, e.Spec.SubjectTable, ct).ConfigureAwait(false);
            }
            catch (PgToolException)
            {
                continue;
            }
            Add(subject.Oid, e.Spec.KeyColumn, e.Subject);
            foreach (var fk in await LiveTables.ReferencingAsync(c, subject, ct).ConfigureAwait(false))
            {
                if (fk.ChildColumns.Count == 1)
                {
                    Add(fk.Child.Oid, fk.ChildColumns[0], e.Subject);
                }
            }
            foreach (var d in e.Spec.Delete)
            {
                try
                {
                    Add((await LiveTables.FindAsync(c, d.Schema, d.Table, ct).ConfigureAwait(false)).Oid, d.Column, e.Subject);
                }
                catch (PgToolException)
                {
                }
            }
        }
        return result;
    }

    private static bool IsErased(LiveTable table, string image, Dictionary<uint, List<(string Column, string Subject)>> erased)
    {
        if (!erased.TryGetValue(table.Oid, out var keys))
        {
            return false;
        }
        using var doc = JsonDocument.Parse(image);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            return false;
        }
        foreach (var (column, subject) in keys)
        {
            if (doc.RootElement.TryGetProperty(column, out var v) && (v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()) == subject)
            {
                return true;
            }
        }
        return false;
    }
}
