using System.Globalization;
using Cairn.Operations.Configuration;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Checks;

/// <summary>Reads the <c>checks:</c> list of a database in cairn.yaml (at load); errors name the file and line.</summary>
internal static class CheckParser
{
    public static List<CheckSpec> Parse(YamlSequenceNode? node, string file, string database)
    {
        var result = new List<CheckSpec>();
        if (node is null)
        {
            return result;
        }
        foreach (var item in node.Children)
        {
            if (item is not YamlMappingNode m || m.Children.Count != 1)
            {
                throw new ConfigException($"{file}:{item.Start.Line}: databases.{database}.checks: each check is one key (tables_present, row_counts, rls_enabled, foreign_keys, audit_continuity, sql, amcheck, command, erasures_applied, restore_complete, supabase_auth, storage_objects, storage_files)");
            }
            var (k, v) = m.Children.First();
            var kind = (k as YamlScalarNode)?.Value ?? "";
            string Where(YamlNode n) => $"{file}:{n.Start.Line}: databases.{database}.checks.{kind}";
            YamlMappingNode Map() => v as YamlMappingNode ?? throw new ConfigException($"{Where(v)} must be a mapping, e.g. {{ key: value }}");
            string? Str(YamlMappingNode map, string key) => map.Children.TryGetValue(new YamlScalarNode(key), out var x) ? (x as YamlScalarNode)?.Value ?? throw new ConfigException($"{Where(x)}.{key} must be a single value") : null;
            List<string>? List(YamlMappingNode? map, string key, YamlNode? direct = null)
            {
                var n = direct ?? (map is not null && map.Children.TryGetValue(new YamlScalarNode(key), out var x) ? x : null);
                return n switch
                {
                    null => null,
                    YamlSequenceNode s => [.. s.Children.Select(c => (c as YamlScalarNode)?.Value ?? throw new ConfigException($"{Where(c)}: list items must be names"))],
                    _ => throw new ConfigException($"{Where(n)}.{key} must be a list like [public.orders, public.profiles]"),
                };
            }
            try
            {
                switch (kind)
                {
                    case "tables_present":
                        // [a, b] or { tables: [a, b], optional: true }
                        result.Add(new TablesPresentCheck((v is YamlMappingNode tm ? List(tm, "tables") : List(null, "tables", v)) ?? throw new ConfigException($"{Where(v)}: 'tables' is required, e.g. [public.orders]")));
                        break;
                    case "row_counts":
                    {
                        var map = Map();
                        var eq = Str(map, "equal_to");
                        if (eq is not null && eq != "fingerprint")
                        {
                            throw new ConfigException($"{Where(v)}.equal_to may only be 'fingerprint'");
                        }
                        double? maxChange = null;
                        if (Str(map, "max_change") is { } mc)
                        {
                            maxChange = double.Parse(mc.TrimEnd('%'), NumberStyles.Float, CultureInfo.InvariantCulture) / 100.0;
                        }
                        result.Add(new RowCountsCheck(List(map, "tables"), eq == "fingerprint", Str(map, "min") is { } mn ? long.Parse(mn, CultureInfo.InvariantCulture) : null,
                            Str(map, "max") is { } mx ? long.Parse(mx, CultureInfo.InvariantCulture) : null, maxChange));
                        break;
                    }
                    case "rls_enabled":
                    {
                        var map = Map();
                        result.Add(new RlsEnabledCheck(Str(map, "schema"), List(map, "tables")));
                        break;
                    }
                    case "foreign_keys":
                        result.Add(new ForeignKeysCheck());
                        break;
                    case "restore_complete":
                    {
                        // restore_complete: {} or { allow_skipped: [extension pg_graphql, event trigger] }
                        var allowed = v is YamlMappingNode rm ? List(rm, "allow_skipped") ?? [] : v is YamlScalarNode { Value: null or "" } ? [] : throw new ConfigException($"{Where(v)} must be a mapping, e.g. {{ allow_skipped: [extension pg_graphql] }}");
                        foreach (var a in allowed.Where(a => !RestoreCompleteCheck.IsCause(a)))
                        {
                            throw new ConfigException($"{Where(v)}.allow_skipped: '{a}' is not a cause a restore skips for; write 'extension NAME' (e.g. extension pg_graphql), 'event trigger' or 'role NAME' (e.g. role anon); a NAME may hold * wildcards (role *, extension pg_*), the kind may not");
                        }
                        result.Add(new RestoreCompleteCheck(allowed));
                        break;
                    }
                    case "supabase_auth":
                    {
                        var map = v is YamlMappingNode sm ? sm : new YamlMappingNode();
                        result.Add(new SupabaseAuthCheck(Str(map, "profiles") ?? "public.profiles", Str(map, "user_column") ?? "id"));
                        break;
                    }
                    case "storage_objects":
                        result.Add(new StorageObjectsCheck());
                        break;
                    case "storage_files":
                    {
                        // storage_files: {} (every storage.objects row) or { buckets: [avatars] } (only those buckets' rows)
                        var buckets = v is YamlMappingNode fm ? List(fm, "buckets") : v is YamlScalarNode { Value: null or "" } ? null : throw new ConfigException($"{Where(v)} must be a mapping, e.g. {{}} or {{ buckets: [avatars] }}");
                        result.Add(new StorageFilesCheck(buckets));
                        break;
                    }
                    case "erasures_applied":
                        result.Add(new ErasuresAppliedCheck());
                        break;
                    case "audit_continuity":
                    {
                        var map = Map();
                        var gap = Str(map, "max_gap") ?? "24h";
                        if (!CairnConfig.TryParseDuration(gap, out var maxGap))
                        {
                            throw new ConfigException($"{Where(v)}.max_gap must be a duration like 6h, not '{gap}'");
                        }
                        result.Add(new AuditContinuityCheck(Str(map, "table") ?? "public.audit_log", Str(map, "time_column") ?? "created_at", maxGap));
                        break;
                    }
                    case "sql":
                    {
                        var map = Map();
                        var name = Str(map, "name") ?? throw new ConfigException($"{Where(v)}: 'name' is required");
                        var query = Str(map, "query") ?? throw new ConfigException($"{Where(v)}: 'query' is required");
                        var expect = Str(map, "expect") ?? throw new ConfigException($"{Where(v)}: 'expect' is required (e.g. \">= 1\")");
                        result.Add(new SqlCheck(name, query, Expectation.Parse(expect)));
                        break;
                    }
                    case "amcheck":
                    {
                        var map = v is YamlMappingNode mm ? mm : new YamlMappingNode();
                        result.Add(new AmcheckCheck(Str(map, "heapallindexed") is "true" or "yes"));
                        break;
                    }
                    case "command":
                    {
                        var map = Map();
                        var timeout = TimeSpan.FromMinutes(5);
                        if (Str(map, "timeout") is { } t && !CairnConfig.TryParseDuration(t, out timeout))
                        {
                            throw new ConfigException($"{Where(v)}.timeout must be a duration like 5m");
                        }
                        result.Add(new CommandCheck(Str(map, "name") ?? "command", Str(map, "run") ?? throw new ConfigException($"{Where(v)}: 'run' is required"), timeout));
                        break;
                    }
                    default:
                        throw new ConfigException($"{file}:{k.Start.Line}: databases.{database}.checks: unknown check kind '{kind}' (known: tables_present, row_counts, rls_enabled, foreign_keys, audit_continuity, sql, amcheck, command, erasures_applied, restore_complete, supabase_auth, storage_objects, storage_files)");
                }
            }
            catch (FormatException e)
            {
                throw new ConfigException($"{Where(v)}: {e.Message}");
            }
            if (v is YamlMappingNode options && Str(options, "optional") is { } optional)
            {
                result[^1] = result[^1] with
                {
                    Optional = optional switch
                    {
                        "true" or "yes" => true,
                        "false" or "no" => false,
                        _ => throw new ConfigException($"{Where(v)}.optional must be true or false, not '{optional}'"),
                    },
                };
            }
        }
        return result;
    }
}
