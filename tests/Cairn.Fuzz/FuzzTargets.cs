using Cairn.Fuzz.Targets;

namespace Cairn.Fuzz;

/// <summary>Every fuzz target, by name.</summary>
public static class FuzzTargets
{
    public static IReadOnlyList<FuzzTarget> All { get; } =
    [
        .. RepositoryTargets.All(),
        .. PostgreSqlTargets.All(),
        .. EvidenceTargets.All(),
        .. OperationsTargets.All(),
    ];

    public static FuzzTarget Get(string name)
        => All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"no fuzz target '{name}'; 'list' shows them: {string.Join(", ", All.Select(t => t.Name))}");
}
