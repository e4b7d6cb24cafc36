using System.Globalization;
using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Logical;

/// <summary>
/// An object of the backup that pg_restore was told not to restore, and why. <see cref="Cause"/> is what
/// <c>restore_complete: { allow_skipped: [...] }</c> names: <c>extension NAME</c> or <c>event trigger</c>.
/// </summary>
/// <param name="Entry">The table-of-contents entry as pg_restore lists it: type, schema, name, owner (e.g. <c>TABLE public scores app</c>).</param>
public sealed record SkippedObject(string Entry, string Cause, string Detail)
{
    /// <summary>Whether this entry is the table <paramref name="schema"/>.<paramref name="name"/> (its data and definition).</summary>
    public bool IsTable(string schema, string name) => Entry.StartsWith($"TABLE {schema} {name} ", StringComparison.Ordinal) || Entry == $"TABLE {schema} {name}";
}

/// <summary>
/// What a restore leaves out, decided before pg_restore runs: the entries of <c>pg_restore -l -v</c> (each with the
/// entries it depends on) minus the extensions the target server cannot create, every entry that depends on them,
/// directly or through others, and event triggers when the restoring role is not a superuser. The remaining list is
/// what <c>pg_restore -L</c> restores; the rest is reported, never silently lost.
/// </summary>
public static partial class RestorePlan
{
    /// <summary>One entry of the table of contents: its dump ID, its text after the catalog OIDs, the IDs it depends on.</summary>
    public sealed record TocEntry(int Id, string Description, IReadOnlyList<int> DependsOn);

    /// <summary>The pg_restore list to run (skipped entries commented out) and what was skipped.</summary>
    public sealed record Plan(string List, IReadOnlyList<SkippedObject> Skipped)
    {
        /// <summary>The plan with the entries <paramref name="ids"/> commented out too, and <paramref name="skipped"/> added to the report.</summary>
        public Plan Without(IReadOnlySet<int> ids, IReadOnlyList<SkippedObject> skipped) => new(
            string.Join('\n', List.Split('\n').Select(l => EntryLine().Match(l) is { Success: true } m && ids.Contains(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)) ? ";" + l : l)),
            [.. Skipped, .. skipped]);
    }

    /// <summary>The entries a list will restore (not commented out), each with its line.</summary>
    public static IEnumerable<(TocEntry Entry, string Line)> ActiveLines(string list)
    {
        foreach (var raw in list.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (EntryLine().Match(line) is { Success: true } e)
            {
                yield return (new TocEntry(int.Parse(e.Groups[1].Value, CultureInfo.InvariantCulture), e.Groups[2].Value.TrimEnd(), []), line);
            }
        }
    }

    [GeneratedRegex(@"^(\d+); \d+ \d+ (.*)\z")]
    private static partial Regex EntryLine();

    [GeneratedRegex(@"^;\s*depends on:((?: \d+)+)\s*\z")]
    private static partial Regex DependsLine();

    [GeneratedRegex(@"^EXTENSION - (\S+)\s*\z")]
    private static partial Regex ExtensionEntry();

    /// <summary>Parses <c>pg_restore -l -v</c> output; lines that are neither entries nor their dependencies are ignored.</summary>
    public static List<TocEntry> Parse(string listing)
    {
        var entries = new List<TocEntry>();
        foreach (var raw in listing.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (EntryLine().Match(line) is { Success: true } e)
            {
                entries.Add(new TocEntry(int.Parse(e.Groups[1].Value, CultureInfo.InvariantCulture), e.Groups[2].Value.TrimEnd(), []));
            }
            else if (DependsLine().Match(line) is { Success: true } d && entries.Count > 0)
            {
                var ids = d.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(x => int.Parse(x, CultureInfo.InvariantCulture));
                entries[^1] = entries[^1] with { DependsOn = [.. entries[^1].DependsOn, .. ids] };
            }
        }
        return entries;
    }

    /// <summary>
    /// Decides what to leave out. <paramref name="availableExtensions"/> are the extensions the target can create
    /// (pg_available_extensions); <paramref name="superuser"/> whether the restoring role may create event triggers.
    /// </summary>
    public static Plan Decide(string listing, IReadOnlySet<string> availableExtensions, bool superuser) => Decide(listing, availableExtensions, superuser, null);

    /// <summary>
    /// Like <see cref="Decide(string, IReadOnlySet{string}, bool)"/>; with <paramref name="superusers"/> (the target's
    /// superuser roles, when owners are restored) an event trigger whose owner is not one of them is left out too:
    /// PostgreSQL refuses to give an event trigger to a role that is not a superuser.
    /// </summary>
    public static Plan Decide(string listing, IReadOnlySet<string> availableExtensions, bool superuser, IReadOnlySet<string>? superusers)
    {
        var entries = Parse(listing);
        // Why each skipped entry is skipped: the root cause it inherits from the entry it depends on.
        var cause = new Dictionary<int, (string Cause, string Detail)>();
        foreach (var e in entries)
        {
            if (ExtensionEntry().Match(e.Description) is { Success: true } x && !availableExtensions.Contains(x.Groups[1].Value))
            {
                cause[e.Id] = ($"extension {x.Groups[1].Value}", $"the target server does not have extension {x.Groups[1].Value}");
            }
            else if (!superuser && e.Description.StartsWith("EVENT TRIGGER ", StringComparison.Ordinal))
            {
                cause[e.Id] = ("event trigger", "creating an event trigger needs a superuser, and the restoring role is not one");
            }
            else if (superusers is not null && e.Description.StartsWith("EVENT TRIGGER ", StringComparison.Ordinal)
                && e.Description.Split(' ')[^1] is { Length: > 0 } owner && !superusers.Contains(owner))
            {
                cause[e.Id] = ("event trigger", $"its owner {owner} is not a superuser on the target (the restore withholds SUPERUSER unless --with-role-attributes)");
            }
        }
        // Dependencies point back to earlier entries mostly, but not always (pg_dump sorts by type too): repeat until nothing changes.
        for (var changed = cause.Count > 0; changed;)
        {
            changed = false;
            foreach (var e in entries.Where(e => !cause.ContainsKey(e.Id)))
            {
                // Dump IDs start at 1, so 0 is "none of its dependencies is skipped".
                var d = e.DependsOn.FirstOrDefault(cause.ContainsKey);
                if (d != 0)
                {
                    cause[e.Id] = (cause[d].Cause, $"depends on {entries.First(p => p.Id == d).Description}, which is skipped");
                    changed = true;
                }
            }
        }
        var skippedIds = cause.Keys.ToHashSet();
        var lines = listing.Split('\n').Select(raw =>
        {
            var line = raw.TrimEnd('\r');
            return EntryLine().Match(line) is { Success: true } m && skippedIds.Contains(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)) ? ";" + line : line;
        });
        var skipped = entries.Where(e => cause.ContainsKey(e.Id)).Select(e => new SkippedObject(e.Description, cause[e.Id].Cause, cause[e.Id].Detail)).ToList();
        return new Plan(string.Join('\n', lines) + "\n", skipped);
    }
}
