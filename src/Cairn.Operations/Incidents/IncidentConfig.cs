using Cairn.Operations.Configuration;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Incidents;

/// <summary>How maintenance mode isolates a database.</summary>
public enum MaintenanceMode
{
    /// <summary>ALTER DATABASE … CONNECTION LIMIT 0 and the application's sessions terminated (superusers are not bound: PostgreSQL's rule).</summary>
    ConnectionLimit,
    /// <summary>CONNECT revoked from the listed roles (and from PUBLIC when PUBLIC holds it, or the roles would still connect through it).</summary>
    RevokeConnect,
    /// <summary>A command (pause PostgREST, flip a load balancer); lifted by <see cref="IncidentConfig.LiftHook"/>.</summary>
    Hook,
}

/// <summary>A configured command run as its own step after the step named <see cref="After"/>.</summary>
public sealed record IncidentHook(string Name, string After, string Run);

/// <summary>A configured human step after the step named <see cref="After"/>: <see cref="Text"/> is printed and the run waits.</summary>
public sealed record IncidentManualStep(string Name, string After, string Text);

/// <summary>
/// <c>databases.X.incident</c>: how maintenance isolates the database, which roles keep their sessions, command hooks and
/// human steps added to the runbooks, and how many audit rows a breach's forensics keep.
/// </summary>
public sealed record IncidentConfig(MaintenanceMode Maintenance, IReadOnlyList<string> KeepRoles, IReadOnlyList<string> RevokeConnect, string? Hook, string? LiftHook,
    IReadOnlyList<IncidentHook> Hooks, IReadOnlyList<IncidentManualStep> Manual, int AuditRows)
{
    public static readonly IncidentConfig Default = new(MaintenanceMode.ConnectionLimit, [], [], null, null, [], [], 1000);

    private static readonly HashSet<string> Keys = ["maintenance", "keep_roles", "revoke_connect", "hook", "lift_hook", "hooks", "manual", "audit_rows"];
    private static readonly HashSet<string> HookKeys = ["name", "after", "run"];
    private static readonly HashSet<string> ManualKeys = ["name", "after", "text"];

    /// <summary>Reads the section at config load; errors name the file, line and key.</summary>
    internal static IncidentConfig Parse(YamlNode? node, string file, string db, CairnConfig.Ctx ctx)
    {
        if (node is null)
        {
            return Default;
        }
        var key = $"databases.{db}.incident";
        var m = ctx.Mapping(node, key);
        ctx.CheckKeys(m, Keys, key + ".");
        var revoke = Names(ctx, m, "revoke_connect", key, file);
        var keep = Names(ctx, m, "keep_roles", key, file);
        var hook = ctx.OptString(m, "hook", key);
        var lift = ctx.OptString(m, "lift_hook", key);
        var modeText = ctx.OptString(m, "maintenance", key) ?? (hook is not null ? "hook" : revoke.Count > 0 ? "revoke_connect" : "connection_limit");
        var mode = modeText switch
        {
            "connection_limit" => MaintenanceMode.ConnectionLimit,
            "revoke_connect" => MaintenanceMode.RevokeConnect,
            "hook" => MaintenanceMode.Hook,
            _ => throw new ConfigException($"{file}:{m.Start.Line}: {key}.maintenance must be connection_limit, revoke_connect or hook, not '{modeText}'"),
        };
        if (mode == MaintenanceMode.RevokeConnect && revoke.Count == 0)
        {
            throw new ConfigException($"{file}:{m.Start.Line}: {key}: maintenance: revoke_connect needs the roles, e.g. revoke_connect: [anon, authenticated]");
        }
        if (mode == MaintenanceMode.Hook && (hook is null || lift is null))
        {
            throw new ConfigException($"{file}:{m.Start.Line}: {key}: maintenance: hook needs both hook: (isolate) and lift_hook: (undo it when the incident resumes)");
        }
        var names = new HashSet<string>(StringComparer.Ordinal);
        var hooks = new List<IncidentHook>();
        foreach (var item in Seq(ctx.Get(m, "hooks"), key + ".hooks", file))
        {
            var k = $"{key}.hooks[{hooks.Count + 1}]";
            var hm = ctx.Mapping(item, k);
            ctx.CheckKeys(hm, HookKeys, k + ".");
            var h = new IncidentHook(StepName(ctx, hm, k, file, names), Required(ctx, hm, "after", k, file), Required(ctx, hm, "run", k, file));
            hooks.Add(h);
        }
        var manual = new List<IncidentManualStep>();
        foreach (var item in Seq(ctx.Get(m, "manual"), key + ".manual", file))
        {
            var k = $"{key}.manual[{manual.Count + 1}]";
            var mm = ctx.Mapping(item, k);
            ctx.CheckKeys(mm, ManualKeys, k + ".");
            manual.Add(new IncidentManualStep(StepName(ctx, mm, k, file, names), Required(ctx, mm, "after", k, file), Required(ctx, mm, "text", k, file)));
        }
        foreach (var (after, line) in hooks.Select(h => (h.After, m.Start.Line)).Concat(manual.Select(x => (x.After, m.Start.Line))))
        {
            if (!IncidentRunbooks.StepNames.Contains(after) && !names.Contains(after))
            {
                throw new ConfigException($"{file}:{line}: {key}: after: '{after}' names no step (steps: {string.Join(", ", IncidentRunbooks.StepNames)}, or a hook's or manual step's name)");
            }
        }
        var rows = ctx.OptInt(m, "audit_rows", key) ?? 1000;
        return new IncidentConfig(mode, keep, revoke, hook, lift, hooks, manual, rows);
    }

    private static string StepName(CairnConfig.Ctx ctx, YamlMappingNode m, string key, string file, HashSet<string> seen)
    {
        var name = Required(ctx, m, "name", key, file);
        if (!System.Text.RegularExpressions.Regex.IsMatch(name, "^[a-z][a-z0-9-]{0,39}$") || IncidentRunbooks.StepNames.Contains(name) || !seen.Add(name))
        {
            throw new ConfigException($"{file}:{m.Start.Line}: {key}.name '{name}' must be 1 to 40 of a-z 0-9 '-', start with a letter, and be unique and not a built-in step's name");
        }
        return name;
    }

    private static string Required(CairnConfig.Ctx ctx, YamlMappingNode m, string k, string key, string file) =>
        ctx.OptString(m, k, key) is { Length: > 0 } v ? v : throw new ConfigException($"{file}:{m.Start.Line}: {key}: '{k}' is required");

    private static IReadOnlyList<string> Names(CairnConfig.Ctx ctx, YamlMappingNode m, string k, string key, string file) => ctx.Get(m, k) switch
    {
        null => [],
        YamlSequenceNode s => [.. s.Children.Select(c => ctx.Scalar(c, $"{key}.{k}"))],
        var other => throw new ConfigException($"{file}:{other.Start.Line}: {key}.{k} must be a list of role names, e.g. {k}: [anon, authenticated]"),
    };

    private static IEnumerable<YamlNode> Seq(YamlNode? node, string key, string file) => node switch
    {
        null => [],
        YamlSequenceNode s => s.Children,
        _ => throw new ConfigException($"{file}:{node.Start.Line}: {key} must be a list"),
    };
}
