using System.Text;
using System.Text.RegularExpressions;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// Incidents (docs/repository-format.md, "Incidents"): sealed objects under <c>incidents/</c>, written create-only and never
/// replaced, so an incident's state is a series of versions (<c>ID.state.000001</c>, <c>…000002</c>, …) whose highest is current,
/// and works on append-only storage too. The engine knows nothing of what they hold; Cairn.Operations owns the JSON.
/// </summary>
public sealed partial class Repository
{
    private static readonly byte[] IncidentContext = Encoding.ASCII.GetBytes("cairn-incident");

    /// <summary>At most this much plaintext per incident object: a forensic snapshot of a busy server stays well below it.</summary>
    public const int MaxIncidentObjectBytes = 64 << 20;

    /// <summary>Whether <paramref name="name"/> is a name the format gives an incident object.</summary>
    public static bool IsIncidentObjectName(string name) => IncidentObjectName().IsMatch(name);

    /// <summary>Whether <paramref name="id"/> is an incident ID (<c>inc-YYYYMMDD-HHMMSS-xxxxxx</c>).</summary>
    public static bool IsIncidentId(string id) => IncidentId().IsMatch(id);

    /// <summary>Stores an incident object under a new name; false when one of that name exists already (another writer was first).</summary>
    public async Task<bool> PutIncidentObjectAsync(string name, byte[] plaintext, CancellationToken cancellationToken)
    {
        CheckIncidentName(name);
        if (plaintext.Length > MaxIncidentObjectBytes)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"incident object {name} is {plaintext.Length} bytes; at most {MaxIncidentObjectBytes} are stored");
        }
        var sealedBytes = Aead.Seal(plaintext, Aead.Concat(IncidentContext, Encoding.ASCII.GetBytes(name)));
        return await Storage.PutIfAbsentAsync(new StorageKey(ObjectKind.Incident, name), sealedBytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The plaintext of an incident object; damage (it does not open under its own name) throws.</summary>
    public async Task<byte[]> GetIncidentObjectAsync(string name, CancellationToken cancellationToken)
    {
        CheckIncidentName(name);
        var stored = await Storage.GetAllAsync(new StorageKey(ObjectKind.Incident, name), cancellationToken).ConfigureAwait(false);
        if (stored.Length > MaxIncidentObjectBytes + Crypto.Aead.Overhead)
        {
            throw new DataDamagedException($"incidents/{name} is larger than any incident object Cairn writes");
        }
        try
        {
            return Aead.Open(stored, Aead.Concat(IncidentContext, Encoding.ASCII.GetBytes(name)), $"incident object {name}");
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException($"incidents/{name} does not open under its own name ({e.Message}): it was changed, moved or comes from another repository", e);
        }
    }

    /// <summary>The names under <c>incidents/</c>; a name outside the format is damage (nothing Cairn wrote).</summary>
    public async Task<List<string>> ListIncidentObjectsAsync(CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Incident, cancellationToken).ConfigureAwait(false))
        {
            if (!IsIncidentObjectName(o.Key.Name))
            {
                throw new DataDamagedException($"incidents/{o.Key.Name} is not an incident object's name; remove it by hand after checking who wrote it");
            }
            names.Add(o.Key.Name);
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }

    private static void CheckIncidentName(string name)
    {
        if (!IsIncidentObjectName(name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not an incident object's name (inc-YYYYMMDD-HHMMSS-xxxxxx.state.NNNNNN or .forensics)");
        }
    }

    [GeneratedRegex("^inc-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}\\.(state\\.[0-9]{6}|forensics)\\z")]
    private static partial Regex IncidentObjectName();

    [GeneratedRegex("^inc-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}\\z")]
    private static partial Regex IncidentId();
}
