using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Copying;

/// <summary>What <see cref="RepositoryCopier"/> found wrong with one object of the copy (or of the primary); never silently skipped.</summary>
public sealed record CopyFinding(string Object, string Detail);

/// <summary>
/// The figures of one copy run: objects copied (each read back and compared), objects already there (compared by size,
/// and by SHA-256 with read-data), and the findings. <see cref="Initialised"/>: the copy's <c>config</c> was written now.
/// </summary>
public sealed record CopyReport(bool Initialised, long ObjectsCopied, long BytesCopied, long ObjectsPresent, long ObjectsHashed, long BytesHashed,
    IReadOnlyDictionary<ObjectKind, int> CopiedByKind, IReadOnlyList<CopyFinding> Findings);

/// <summary>
/// Copies a repository's objects to a second storage, byte for byte: the copy is the same repository (same ID, same
/// keys), so nothing is re-encrypted and a content-addressed object keeps its name (docs/repository-format.md, "Copies").
/// </summary>
/// <remarks>
/// Rules: only objects missing in the copy are written, with the create-only put (a copy never replaces or deletes an
/// object, so it works on an append-only or Object Lock bucket); a pin, which the primary may replace, is the one kind
/// rewritten when it differs. Kinds go in the order a writer uses (keys, config, packs, indexes, WAL, ledger, evidence,
/// pins, snapshots), so a snapshot is visible in the copy only once everything it needs is there: a copy killed at any moment
/// is a smaller copy, and the next run goes on from what is there. Every object written is read back and compared with
/// the primary's bytes; a content-addressed object of the primary whose bytes do not match its name is not copied
/// (damage is not spread). Locks are never copied. Knows nothing of keys: the caller verifies the copy with the key.
/// </remarks>
public static partial class RepositoryCopier
{
    /// <summary>The order objects are copied in: what a snapshot needs before the snapshot.</summary>
    public static readonly ObjectKind[] Order = [ObjectKind.Key, ObjectKind.Config, ObjectKind.Data, ObjectKind.Index, ObjectKind.Named, ObjectKind.Ledger, ObjectKind.Evidence, ObjectKind.Pin, ObjectKind.Incident, ObjectKind.Snapshot];

    /// <summary>Copies the objects of <paramref name="kinds"/> (in that order; <see cref="Order"/> is all of them) that the copy lacks.</summary>
    public static async Task<CopyReport> CopyAsync(IStorage source, IStorage target, bool readData, int parallelism, IReadOnlyList<ObjectKind> kinds, IProgress<(ObjectKind Kind, long Done, long Total)>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(kinds);
        var findings = new ConcurrentQueue<CopyFinding>();
        var sourceConfig = await source.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
        var initialised = false;
        if (await target.StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false) is not null)
        {
            var targetConfig = await target.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
            if (!targetConfig.AsSpan().SequenceEqual(sourceConfig))
            {
                var id = IdOf(targetConfig);
                if (id is not null && id == IdOf(sourceConfig))
                {
                    // The same repository with another config: the copy was upgraded ('cairn repo upgrade') and the primary
                    // was not (a copy made before the primary's upgrade took the primary's config first: CarryUpgradeToAsync).
                    throw new RepositoryException(ErrorKind.InvalidInput, $"{target.Location} is a copy of this repository with a newer or different config (it was upgraded with 'cairn repo upgrade' and this primary was not); upgrade the primary the same way, or copy to an empty location; nothing was copied");
                }
                throw new RepositoryException(ErrorKind.InvalidInput, $"{target.Location} holds another repository{(id is null ? "" : $" (id {id}, this one is {IdOf(sourceConfig)})")}; a copy is the same repository (same id and keys): give an empty location or an earlier copy of this one");
            }
        }
        else
        {
            // No config: an empty location, or a copy killed before its config was written (keys and nothing else).
            foreach (var kind in (ObjectKind[])[ObjectKind.Index, ObjectKind.Snapshot])
            {
                await foreach (var o in target.ListAsync(kind, cancellationToken).ConfigureAwait(false))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"{target.Location} holds {o.Key.Path} but no repository config; it is not a copy of this repository, so nothing is written there: give an empty location");
                }
            }
            initialised = true;
        }

        long copied = 0, bytesCopied = 0, present = 0, hashed = 0, bytesHashed = 0;
        var byKind = new ConcurrentDictionary<ObjectKind, int>();
        foreach (var kind in kinds)
        {
            if (kind == ObjectKind.Config)
            {
                if (initialised)
                {
                    // After the keys: a location with a config and no key would be a repository nobody can open.
                    await PutCheckedAsync(target, StorageKey.Config, sourceConfig, replace: false, findings, cancellationToken).ConfigureAwait(false);
                    copied++;
                    bytesCopied += sourceConfig.Length;
                    byKind[kind] = 1;
                }
                else if (kinds.Contains(ObjectKind.Config))
                {
                    present++;
                }
                continue;
            }
            var sourceObjects = await ListAsync(source, kind, findings, "the primary", cancellationToken).ConfigureAwait(false);
            var targetObjects = await ListAsync(target, kind, findings, "the copy", cancellationToken).ConfigureAwait(false);
            long done = 0;
            var total = sourceObjects.Count;
            progress?.Report((kind, 0, total));
            await Parallel.ForEachAsync(sourceObjects.Values.OrderBy(o => o.Key.Name, StringComparer.Ordinal), new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, parallelism), CancellationToken = cancellationToken }, async (o, ct) =>
            {
                var key = o.Key;
                if (!targetObjects.TryGetValue(key.Name, out var there))
                {
                    var bytes = await source.GetAllAsync(key, ct).ConfigureAwait(false);
                    if (bytes.Length != o.Size || (IsContentAddressed(kind) && Sha256(bytes) != key.Name))
                    {
                        findings.Enqueue(new CopyFinding(key.Path, $"damaged in the primary ({bytes.Length} bytes, SHA-256 {Sha256(bytes)[..16]}…): not copied; run 'cairn verify --read-data' on the primary"));
                        return;
                    }
                    if (await PutCheckedAsync(target, key, bytes, replace: false, findings, ct).ConfigureAwait(false))
                    {
                        Interlocked.Increment(ref copied);
                        Interlocked.Add(ref bytesCopied, bytes.Length);
                        byKind.AddOrUpdate(kind, 1, (_, n) => n + 1);
                    }
                }
                else
                {
                    Interlocked.Increment(ref present);
                    var differs = there.Size != o.Size;
                    if (!differs && (readData || kind == ObjectKind.Pin))
                    {
                        var theirs = await target.GetAllAsync(key, ct).ConfigureAwait(false);
                        Interlocked.Increment(ref hashed);
                        Interlocked.Add(ref bytesHashed, theirs.Length);
                        var expected = IsContentAddressed(kind) ? key.Name : Sha256(await source.GetAllAsync(key, ct).ConfigureAwait(false));
                        differs = Sha256(theirs) != expected;
                    }
                    if (differs && kind == ObjectKind.Pin)
                    {
                        // The primary replaced the pin (a new reason or until): the copy follows.
                        var bytes = await source.GetAllAsync(key, ct).ConfigureAwait(false);
                        if (await PutCheckedAsync(target, key, bytes, replace: true, findings, ct).ConfigureAwait(false))
                        {
                            Interlocked.Increment(ref copied);
                            Interlocked.Add(ref bytesCopied, bytes.Length);
                            byKind.AddOrUpdate(kind, 1, (_, n) => n + 1);
                        }
                    }
                    else if (differs)
                    {
                        findings.Enqueue(new CopyFinding(key.Path, there.Size != o.Size
                            ? $"differs from the primary in the copy ({there.Size} bytes, the primary's {o.Size}): the copy's object was changed or cut; delete it in the copy and run copy again"
                            : "differs from the primary in the copy (same size, other bytes): the copy's object was changed; delete it in the copy and run copy again"));
                    }
                }
                progress?.Report((kind, Interlocked.Increment(ref done), total));
            }).ConfigureAwait(false);
        }
        return new CopyReport(initialised && kinds.Contains(ObjectKind.Config), copied, bytesCopied, present, hashed, bytesHashed, new Dictionary<ObjectKind, int>(byKind), [.. findings]);
    }

    /// <summary>Objects whose name is the SHA-256 of their stored bytes.</summary>
    public static bool IsContentAddressed(ObjectKind kind) => kind is ObjectKind.Data or ObjectKind.Index or ObjectKind.Snapshot;

    private static async Task<bool> PutCheckedAsync(IStorage target, StorageKey key, byte[] bytes, bool replace, ConcurrentQueue<CopyFinding> findings, CancellationToken ct)
    {
        var created = true;
        if (replace)
        {
            await target.PutAsync(key, bytes, ct).ConfigureAwait(false);
        }
        else
        {
            created = await CreateAsync(target, key, bytes, ct).ConfigureAwait(false);
        }
        var back = await target.GetAllAsync(key, ct).ConfigureAwait(false);
        if (!back.AsSpan().SequenceEqual(bytes))
        {
            findings.Enqueue(new CopyFinding(key.Path, $"read back from the copy, it differs from what was written ({back.Length} bytes, {bytes.Length} written)"));
            return false;
        }
        return created;
    }

    /// <summary>
    /// Create-only: another copy running at the same time may have created it; then its bytes are compared by the read-back.
    /// On a server that ignores conditional writes (s3rver, older MinIO and Ceph) a plain put: the listing found no object,
    /// and whatever a racing writer put under the name holds the same bytes (the primary's), which the read-back checks.
    /// </summary>
    internal static async Task<bool> CreateAsync(IStorage target, StorageKey key, byte[] bytes, CancellationToken ct)
    {
        try
        {
            return await target.PutIfAbsentAsync(key, bytes, ct).ConfigureAwait(false);
        }
        catch (NotSupportedException)
        {
            await target.PutAsync(key, bytes, ct).ConfigureAwait(false);
            return true;
        }
    }

    private static async Task<Dictionary<string, ObjectInfo>> ListAsync(IStorage storage, ObjectKind kind, ConcurrentQueue<CopyFinding> findings, string where, CancellationToken ct)
    {
        var result = new Dictionary<string, ObjectInfo>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(kind, ct).ConfigureAwait(false))
        {
            // Names come from storage others can write: only names a writer of this format makes are touched.
            if (!IsValidName(kind, o.Key.Name))
            {
                findings.Enqueue(new CopyFinding(o.Key.Path, $"not an object name of the repository format in {where}; left alone"));
                continue;
            }
            result[o.Key.Name] = o;
        }
        return result;
    }

    /// <summary>Whether <paramref name="name"/> is a name the repository format gives an object of <paramref name="kind"/>.</summary>
    public static bool IsValidName(ObjectKind kind, string name) => kind switch
    {
        ObjectKind.Data or ObjectKind.Index or ObjectKind.Snapshot or ObjectKind.Pin => Hex64().IsMatch(name),
        ObjectKind.Key => KeyName().IsMatch(name),
        ObjectKind.Named => NamedName().IsMatch(name),
        ObjectKind.Ledger => LedgerName().IsMatch(name),
        ObjectKind.Evidence => EvidenceName().IsMatch(name),
        ObjectKind.Incident => Repository.IsIncidentObjectName(name),
        _ => false,
    };

    private static string Sha256(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes));

    /// <summary>The clear-text repository ID at the start of a config (<c>CAIRN1\n&lt;32 hex&gt;\n</c>), or null.</summary>
    private static string? IdOf(byte[] config)
    {
        var head = System.Text.Encoding.ASCII.GetString(config, 0, Math.Min(config.Length, 40));
        var m = ConfigHead().Match(head);
        return m.Success ? m.Groups[1].Value : null;
    }

    [GeneratedRegex("^[0-9a-f]{64}\\z")]
    private static partial Regex Hex64();

    [GeneratedRegex("^[0-9a-f]{32}\\z")]
    private static partial Regex KeyName();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]{1,64}@[0-9A-Za-z.]{1,64}\z")]
    private static partial Regex NamedName();

    [GeneratedRegex(@"^[A-Za-z0-9_.-]+\.\d{8}T\d{9}Z\.[0-9a-f]{16}\z")]
    private static partial Regex LedgerName();

    [GeneratedRegex(@"^[A-Za-z0-9_.~-]{1,160}\.[0-9a-f]{64}\z")]
    private static partial Regex EvidenceName();

    [GeneratedRegex("^CAIRN1\n([0-9a-f]{32})\n")]
    private static partial Regex ConfigHead();
}
