using Cairn.Operations.Configuration;
using Cairn.PostgreSql.Logical;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Lifecycle;

/// <summary>A table named in cairn.yaml, split into schema and name (a bare name means public).</summary>
public sealed record TableName(string Schema, string Name)
{
    public static TableName Parse(string text)
    {
        var (schema, name) = Catalog.ParseQualified(text);
        return new TableName(schema, name);
    }

    public override string ToString() => $"{Catalog.Display(Schema)}.{Catalog.Display(Name)}";
}

/// <summary>
/// One <c>cleanup:</c> rule: rows of <see cref="Table"/> whose <see cref="TimeColumn"/> is older than <see cref="OlderThan"/>
/// (and that match <see cref="Where"/>, user SQL run only inside the rule's DELETE). <see cref="Number"/> counts from 1.
/// </summary>
public sealed record CleanupRule(int Number, TableName Table, string TimeColumn, TimeSpan OlderThan, string? Where, bool Cascade, int BatchSize, CleanupTimeouts Timeouts);

/// <summary>
/// The <c>lock_timeout</c> and <c>statement_timeout</c> a cleanup rule's batches run under, and the cairn.yaml key each came
/// from (the rule's own, the database's <c>cleanup_timeouts:</c>, or the default), so an error can name the key to change.
/// </summary>
public sealed record CleanupTimeouts(TimeSpan Lock, TimeSpan Statement, string LockKey, string StatementKey)
{
    public static readonly TimeSpan DefaultLock = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan DefaultStatement = TimeSpan.FromMinutes(5);

    public static CleanupTimeouts Default(string db) => new(DefaultLock, DefaultStatement, $"databases.{db}.cleanup_timeouts.lock_timeout", $"databases.{db}.cleanup_timeouts.statement_timeout");
}

/// <summary>Who a data subject is: the row of <see cref="Table"/> whose <see cref="Key"/> is the identifier.</summary>
public sealed record ErasureSubject(TableName Table, string Key);

/// <summary>A reference to the subject that is not a foreign key: rows whose <see cref="Column"/> holds the identifier are deleted.</summary>
public sealed record ErasureDelete(TableName Table, string Column);

/// <summary>Rows whose <see cref="MatchColumn"/> holds the identifier keep existing with columns set and JSON keys removed.</summary>
public sealed record ErasureAnonymize(TableName Table, string MatchColumn, IReadOnlyDictionary<string, string> Set, IReadOnlyDictionary<string, IReadOnlyList<string>> RemoveJsonKeys);

/// <summary>The <c>erasure:</c> section: the subject, named references, or the application's own function.</summary>
public sealed record ErasureConfig(ErasureSubject Subject, IReadOnlyList<ErasureDelete> Delete, IReadOnlyList<ErasureAnonymize> Anonymize, TableName? Function);

/// <summary>The <c>audit:</c> section: where the audit trail is and what its rows mean. The images are SQL expressions (trusted config).</summary>
public sealed record AuditConfig(TableName Table, string TimeColumn, string EntityColumn, string IdColumn, string EventColumn, string OldImage, string? NewImage);

/// <summary>Reads the lifecycle sections of one database at config load; errors name the file, line and key.</summary>
internal static class LifecycleConfigParser
{
    private static readonly HashSet<string> RuleKeys = ["table", "time_column", "older_than", "where", "cascade", "batch_size", "lock_timeout", "statement_timeout"];
    private static readonly HashSet<string> TimeoutKeys = ["lock_timeout", "statement_timeout"];
    private static readonly HashSet<string> ErasureKeys = ["subject", "delete", "anonymize", "function"];
    private static readonly HashSet<string> SubjectKeys = ["table", "key"];
    private static readonly HashSet<string> DeleteKeys = ["table", "column"];
    private static readonly HashSet<string> AnonymizeKeys = ["table", "match_column", "set", "remove_json_keys"];
    private static readonly HashSet<string> AuditKeys = ["table", "time_column", "entity_column", "id_column", "event_column", "old_image", "new_image"];

    public static IReadOnlyList<CleanupRule> Cleanup(YamlNode? node, YamlNode? timeoutsNode, string file, string db, CairnConfig.Ctx ctx)
    {
        var defaults = CleanupTimeouts.Default(db);
        if (timeoutsNode is not null)
        {
            var tk = $"databases.{db}.cleanup_timeouts";
            var tm = ctx.Mapping(timeoutsNode, tk);
            ctx.CheckKeys(tm, TimeoutKeys, tk + ".");
            defaults = Timeouts(ctx, tm, tk, file, defaults);
        }
        if (node is null)
        {
            return [];
        }
        var list = node as YamlSequenceNode ?? throw new ConfigException($"{file}:{node.Start.Line}: databases.{db}.cleanup must be a list of rules, e.g. - {{ table: public.audit_log, time_column: created_at, older_than: 1y }}");
        var rules = new List<CleanupRule>();
        foreach (var item in list.Children)
        {
            var key = $"databases.{db}.cleanup[{rules.Count + 1}]";
            var m = ctx.Mapping(item, key);
            ctx.CheckKeys(m, RuleKeys, key + ".");
            var table = Required(ctx, m, "table", key, file);
            var time = Required(ctx, m, "time_column", key, file);
            var older = ctx.Get(m, "older_than") is { } o ? ctx.Duration(o, key + ".older_than") : throw new ConfigException($"{file}:{m.Start.Line}: {key}: 'older_than' is required (e.g. 30d, 1y)");
            if (older <= TimeSpan.Zero)
            {
                throw new ConfigException($"{file}:{m.Start.Line}: {key}.older_than must be more than zero");
            }
            var where = ctx.OptString(m, "where", key);
            if (where is not null && where.Contains('\0', StringComparison.Ordinal))
            {
                throw new ConfigException($"{file}:{m.Start.Line}: {key}.where holds a NUL character");
            }
            var batch = ctx.OptInt(m, "batch_size", key) ?? 10_000;
            if (batch < 1)
            {
                throw new ConfigException($"{file}:{m.Start.Line}: {key}.batch_size must be at least 1");
            }
            rules.Add(new CleanupRule(rules.Count + 1, TableName.Parse(table), time, older, string.IsNullOrWhiteSpace(where) ? null : where, ctx.OptBool(m, "cascade", key) ?? false, batch,
                Timeouts(ctx, m, key, file, defaults)));
        }
        return rules;
    }

    public static ErasureConfig? Erasure(YamlNode? node, string file, string db, CairnConfig.Ctx ctx)
    {
        if (node is null)
        {
            return null;
        }
        var key = $"databases.{db}.erasure";
        var m = ctx.Mapping(node, key);
        ctx.CheckKeys(m, ErasureKeys, key + ".");
        var sn = ctx.Get(m, "subject") ?? throw new ConfigException($"{file}:{m.Start.Line}: {key}: 'subject' is required, e.g. subject: {{ table: public.profiles, key: id }}");
        var sm = ctx.Mapping(sn, key + ".subject");
        ctx.CheckKeys(sm, SubjectKeys, key + ".subject.");
        var subject = new ErasureSubject(TableName.Parse(Required(ctx, sm, "table", key + ".subject", file)), Required(ctx, sm, "key", key + ".subject", file));
        var deletes = new List<ErasureDelete>();
        foreach (var d in Seq(ctx.Get(m, "delete"), key + ".delete", file))
        {
            var dm = ctx.Mapping(d, key + ".delete[]");
            ctx.CheckKeys(dm, DeleteKeys, key + ".delete[].");
            deletes.Add(new ErasureDelete(TableName.Parse(Required(ctx, dm, "table", key + ".delete[]", file)), Required(ctx, dm, "column", key + ".delete[]", file)));
        }
        var anonymize = new List<ErasureAnonymize>();
        foreach (var a in Seq(ctx.Get(m, "anonymize"), key + ".anonymize", file))
        {
            var k = key + ".anonymize[]";
            var am = ctx.Mapping(a, k);
            ctx.CheckKeys(am, AnonymizeKeys, k + ".");
            var set = new Dictionary<string, string>(StringComparer.Ordinal);
            if (ctx.Get(am, "set") is { } setNode)
            {
                foreach (var (ck, cv) in ctx.Mapping(setNode, k + ".set").Children)
                {
                    set[ctx.Scalar(ck, k + ".set")] = ctx.Scalar(cv, k + ".set");
                }
            }
            var remove = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
            if (ctx.Get(am, "remove_json_keys") is { } rn)
            {
                foreach (var (ck, cv) in ctx.Mapping(rn, k + ".remove_json_keys").Children)
                {
                    remove[ctx.Scalar(ck, k + ".remove_json_keys")] = [.. Seq(cv, k + ".remove_json_keys", file).Select(x => ctx.Scalar(x, k + ".remove_json_keys"))];
                }
            }
            if (set.Count == 0 && remove.Count == 0)
            {
                throw new ConfigException($"{file}:{am.Start.Line}: {k}: give 'set' and/or 'remove_json_keys' (what anonymising means for this table)");
            }
            anonymize.Add(new ErasureAnonymize(TableName.Parse(Required(ctx, am, "table", k, file)), Required(ctx, am, "match_column", k, file), set, remove));
        }
        var function = ctx.OptString(m, "function", key) is { } f ? TableName.Parse(f) : null;
        if (function is not null && (deletes.Count > 0 || anonymize.Count > 0))
        {
            throw new ConfigException($"{file}:{m.Start.Line}: {key}: 'function' replaces 'delete' and 'anonymize' (the application's function erases everything); give one or the other");
        }
        return new ErasureConfig(subject, deletes, anonymize, function);
    }

    public static AuditConfig? Audit(YamlNode? node, string file, string db, CairnConfig.Ctx ctx)
    {
        if (node is null)
        {
            return null;
        }
        var key = $"databases.{db}.audit";
        var m = ctx.Mapping(node, key);
        ctx.CheckKeys(m, AuditKeys, key + ".");
        return new AuditConfig(TableName.Parse(Required(ctx, m, "table", key, file)), Required(ctx, m, "time_column", key, file), Required(ctx, m, "entity_column", key, file),
            Required(ctx, m, "id_column", key, file), Required(ctx, m, "event_column", key, file), Required(ctx, m, "old_image", key, file), ctx.OptString(m, "new_image", key));
    }

    /// <summary>The timeouts <paramref name="m"/> sets (each remembers its key), else those of <paramref name="inherited"/>.</summary>
    private static CleanupTimeouts Timeouts(CairnConfig.Ctx ctx, YamlMappingNode m, string key, string file, CleanupTimeouts inherited)
    {
        TimeSpan? Read(string name)
        {
            if (ctx.Get(m, name) is not { } n)
            {
                return null;
            }
            var text = ctx.Scalar(n, $"{key}.{name}");
            // PostgreSQL takes milliseconds; 0 would mean "no timeout", which a batch on a live table must never run without.
            var parsed = text.EndsWith("ms", StringComparison.Ordinal) && int.TryParse(text[..^2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms)
                ? TimeSpan.FromMilliseconds(ms)
                : CairnConfig.TryParseDuration(text, out var d) ? d : (TimeSpan?)null;
            if (parsed is not { } v || v < TimeSpan.FromMilliseconds(1) || v > TimeSpan.FromDays(1))
            {
                throw new ConfigException($"{file}:{n.Start.Line}: {key}.{name} must be a duration from 1ms to 1d, like 500ms, 5s or 10m, not '{text}'");
            }
            return v;
        }
        var lockTimeout = Read("lock_timeout");
        var statementTimeout = Read("statement_timeout");
        return new CleanupTimeouts(lockTimeout ?? inherited.Lock, statementTimeout ?? inherited.Statement,
            lockTimeout is null ? inherited.LockKey : $"{key}.lock_timeout", statementTimeout is null ? inherited.StatementKey : $"{key}.statement_timeout");
    }

    private static IEnumerable<YamlNode> Seq(YamlNode? node, string key, string file) => node switch
    {
        null => [],
        YamlSequenceNode s => s.Children,
        _ => throw new ConfigException($"{file}:{node.Start.Line}: '{key}' must be a list"),
    };

    private static string Required(CairnConfig.Ctx ctx, YamlMappingNode m, string name, string key, string file)
        => ctx.OptString(m, name, key) is { Length: > 0 } v ? v : throw new ConfigException($"{file}:{m.Start.Line}: {key}: '{name}' is required");
}
