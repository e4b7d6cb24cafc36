using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// A hold on one snapshot (docs/repository-format.md, "Pins"): while it stands, prune never forgets the snapshot.
/// <see cref="Until"/> null means until unpinned; <see cref="Incident"/> names the incident that took it, if any.
/// </summary>
public sealed record Pin(int Version, string Snapshot, string Reason, DateTimeOffset Created, string Host, DateTimeOffset? Until = null, string? Incident = null)
{
    /// <summary>Whether the hold still stands at <paramref name="now"/>.</summary>
    public bool HoldsAt(DateTimeOffset now) => Until is not { } u || u > now;
}

/// <summary>Pins: sealed objects under <c>pins/</c>, one per snapshot, written under a shared lock so prune (exclusive) sees all or none.</summary>
public sealed partial class Repository
{
    private static readonly byte[] PinContext = Encoding.ASCII.GetBytes("cairn-pin");

    public const int MaxPinReasonLength = 1000;

    /// <summary>Stores (or replaces) the pin of <see cref="Pin.Snapshot"/>.</summary>
    public async Task PutPinAsync(Pin pin, CancellationToken cancellationToken)
    {
        CheckPinName(pin.Snapshot);
        if (pin.Reason.Length is 0 or > MaxPinReasonLength)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"a pin needs a reason of 1 to {MaxPinReasonLength} characters (--reason \"…\")");
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(pin, RepositoryJson.Default.Pin);
        var sealedBytes = Aead.Seal(json, Aead.Concat(PinContext, Encoding.ASCII.GetBytes(pin.Snapshot)));
        await Storage.PutAsync(new StorageKey(ObjectKind.Pin, pin.Snapshot), sealedBytes, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Removes the pin of a snapshot; false when it had none.</summary>
    public async Task<bool> DeletePinAsync(string snapshotId, CancellationToken cancellationToken)
    {
        CheckPinName(snapshotId);
        var key = new StorageKey(ObjectKind.Pin, snapshotId);
        if (await Storage.StatAsync(key, cancellationToken).ConfigureAwait(false) is null)
        {
            return false;
        }
        await Storage.DeleteAsync(key, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Every pin, by snapshot ID. A pin object that does not open (tampered, moved to another name, or from another
    /// repository) is damage: it throws, because silently dropping a hold would let prune delete what it protects.
    /// </summary>
    public async Task<Dictionary<string, Pin>> ListPinsAsync(CancellationToken cancellationToken)
    {
        var pins = new Dictionary<string, Pin>(StringComparer.Ordinal);
        await foreach (var o in Storage.ListAsync(ObjectKind.Pin, cancellationToken).ConfigureAwait(false))
        {
            var name = o.Key.Name;
            if (!PinName().IsMatch(name))
            {
                throw new DataDamagedException($"pins/{name} is not named by a snapshot ID; remove it by hand after checking who wrote it");
            }
            var stored = await Storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false);
            Pin? pin;
            try
            {
                var json = Aead.Open(stored, Aead.Concat(PinContext, Encoding.ASCII.GetBytes(name)), $"pin {name[..8]}");
                pin = JsonSerializer.Deserialize(json, RepositoryJson.Default.Pin);
            }
            catch (Exception e) when (e is AuthenticationFailedException or JsonException)
            {
                throw new DataDamagedException($"pin {name[..8]} is damaged ({e.Message}); prune refuses until it is fixed: re-pin the snapshot with 'cairn pin' or remove pins/{name}", e);
            }
            if (pin is null || pin.Snapshot != name || pin.Version != 1)
            {
                throw new DataDamagedException($"pin {name[..8]} does not name its own snapshot or has an unknown version; re-pin it with 'cairn pin'");
            }
            pins[name] = pin;
        }
        return pins;
    }

    private static void CheckPinName(string snapshotId)
    {
        if (!PinName().IsMatch(snapshotId))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{snapshotId}' is not a full snapshot ID (64 hex digits)");
        }
    }

    [GeneratedRegex("^[0-9a-f]{64}\\z")]
    private static partial Regex PinName();
}
