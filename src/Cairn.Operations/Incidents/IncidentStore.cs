using System.Text.Json;
using Cairn.Repository;

namespace Cairn.Operations.Incidents;

/// <summary>
/// Reads and writes incidents in the repository (docs/repository-format.md, "Incidents"): each save is a new sealed object
/// <c>ID.state.NNNNNN</c> written create-only, so a crash never leaves half a state and two runs of one incident cannot both
/// save the same revision (the second is refused).
/// </summary>
public static class IncidentStore
{
    public static async Task<IncidentState> SaveAsync(Repository.Repository repo, IncidentState state, CancellationToken ct)
    {
        var next = state with { Revision = state.Revision + 1 };
        var bytes = JsonSerializer.SerializeToUtf8Bytes(next, IncidentJson.Default.IncidentState);
        if (!await repo.PutIncidentObjectAsync(StateName(next.Id, next.Revision), bytes, ct).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.Locked, $"incident {state.Id} was saved by another run meanwhile (revision {next.Revision} exists); only one 'cairn incident resume {state.Id}' may run at a time");
        }
        return next;
    }

    public static async Task<IncidentState> LoadAsync(Repository.Repository repo, string id, CancellationToken ct)
    {
        if (!Repository.Repository.IsIncidentId(id))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{id}' is not an incident ID (inc-YYYYMMDD-HHMMSS-xxxxxx); 'cairn incident list' shows them");
        }
        var names = await repo.ListIncidentObjectsAsync(ct).ConfigureAwait(false);
        var newest = names.Where(n => n.StartsWith(id + ".state.", StringComparison.Ordinal)).Order(StringComparer.Ordinal).LastOrDefault()
            ?? throw new RepositoryException(ErrorKind.NotFound, $"no incident {id} in this repository; 'cairn incident list' shows them");
        return await ReadAsync(repo, newest, ct).ConfigureAwait(false);
    }

    /// <summary>The current state of every incident, newest first.</summary>
    public static async Task<IReadOnlyList<IncidentState>> ListAsync(Repository.Repository repo, CancellationToken ct)
    {
        var names = await repo.ListIncidentObjectsAsync(ct).ConfigureAwait(false);
        var newest = names.Where(n => n.Contains(".state.", StringComparison.Ordinal)).GroupBy(n => n[..n.IndexOf('.', StringComparison.Ordinal)], StringComparer.Ordinal)
            .Select(g => g.Max(StringComparer.Ordinal)!);
        var list = new List<IncidentState>();
        foreach (var n in newest)
        {
            list.Add(await ReadAsync(repo, n, ct).ConfigureAwait(false));
        }
        return [.. list.OrderByDescending(s => s.Created)];
    }

    public static string StateName(string id, int revision) => $"{id}.state.{revision:D6}";

    public static string ForensicsName(string id) => id + ".forensics";

    private static async Task<IncidentState> ReadAsync(Repository.Repository repo, string name, CancellationToken ct)
    {
        var bytes = await repo.GetIncidentObjectAsync(name, ct).ConfigureAwait(false);
        IncidentState? state;
        try
        {
            state = JsonSerializer.Deserialize(bytes, IncidentJson.Default.IncidentState);
        }
        catch (JsonException e)
        {
            throw new DataDamagedException($"incidents/{name} does not parse as an incident state ({e.Message})", e);
        }
        // The name is authenticated (it is the sealed object's associated data); the content must agree with it.
        if (state is null || state.Version != 1 || StateName(state.Id, state.Revision) != name)
        {
            throw new DataDamagedException($"incidents/{name} does not hold the state its name says (version 1, same ID and revision)");
        }
        return state;
    }
}
