using System.Text.Json;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Verification;

/// <summary>The kinds of finding <c>verify</c> reports. Only <see cref="Orphaned"/> is not damage.</summary>
public enum FindingKind
{
    Missing,
    Truncated,
    Tampered,
    Orphaned,
}

/// <summary>One typed finding: what object, what is wrong, and which snapshots depend on it.</summary>
public sealed record Finding(FindingKind Kind, string Object, string Detail, IReadOnlyList<string> AffectedSnapshots)
{
    public bool IsDamage => Kind != FindingKind.Orphaned;
}

public sealed record VerifyOptions(bool ReadData, double ReadDataFraction = 1.0, int? Seed = null);

public sealed record VerificationReport(
    int Snapshots,
    int Indexes,
    int Packs,
    int PacksRead,
    long BytesRead,
    int Blobs,
    IReadOnlyList<Finding> Findings)
{
    public bool HasDamage => Findings.Any(f => f.IsDamage);
}

/// <summary>Verifies a repository's structure and, on request, every byte of its data (<c>cairn verify</c>).</summary>
public sealed class Verifier(Repository repo)
{
    public async Task<VerificationReport> VerifyAsync(VerifyOptions options, IProgress<(int Done, int Total)>? progress, CancellationToken cancellationToken)
    {
        var findings = new List<Finding>();
        var storage = repo.Storage;

        // Indexes: every one must authenticate.
        var packsInIndex = new Dictionary<string, IndexPack>(StringComparer.Ordinal);
        var indexCount = 0;
        await foreach (var o in storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            indexCount++;
            try
            {
                var file = await repo.ReadIndexAsync(o.Key.Name, cancellationToken).ConfigureAwait(false);
                foreach (var p in file.Packs)
                {
                    packsInIndex.TryAdd(p.Id, p);
                }
            }
            catch (Exception e) when (e is DataDamagedException or JsonException or InvalidDataException)
            {
                findings.Add(new Finding(FindingKind.Tampered, o.Key.Path, $"index does not authenticate: {e.Message}", []));
            }
        }

        // Snapshots: every one must authenticate, and every blob it names must be indexed.
        var blobUsers = new Dictionary<ContentId, List<string>>();
        // Page patches: each patch blob with the base its manifests name, so --read-data can parse it.
        var patchBases = new Dictionary<ContentId, ContentId>();
        var snapshots = new List<Snapshot>();
        var damagedSnapshots = new List<(string, Exception)>();
        snapshots.AddRange(await repo.ListSnapshotsAsync((id, e) => damagedSnapshots.Add((id, e)), cancellationToken).ConfigureAwait(false));
        foreach (var (id, e) in damagedSnapshots)
        {
            findings.Add(new Finding(FindingKind.Tampered, $"snapshots/{id}", $"manifest does not authenticate: {e.Message}", [ObjectNames.Short(id)]));
        }
        var blobsInPacks = new Dictionary<ContentId, string>();
        foreach (var p in packsInIndex.Values)
        {
            foreach (var b in p.Blobs)
            {
                blobsInPacks.TryAdd(ContentId.Parse(b.Id), p.Id);
            }
        }
        foreach (var s in snapshots)
        {
            var missing = 0;
            foreach (var item in s.Manifest.Items)
            {
                foreach (var (k, b) in item.Bases ?? [])
                {
                    var patch = ContentId.Parse(item.Chunks[int.Parse(k, System.Globalization.CultureInfo.InvariantCulture)]);
                    if (patchBases.TryGetValue(patch, out var other) && other != ContentId.Parse(b))
                    {
                        findings.Add(new Finding(FindingKind.Tampered, $"snapshots/{s.Id}", $"item {item.Name} names chunk {ObjectNames.Short(b)} as the base of page patch {patch.Short}, another manifest names {other.Short}", [s.ShortId]));
                    }
                    patchBases[patch] = ContentId.Parse(b);
                }
                foreach (var c in item.ReferencedBlobs)
                {
                    var id = ContentId.Parse(c);
                    if (!blobUsers.TryGetValue(id, out var users))
                    {
                        blobUsers[id] = users = [];
                    }
                    if (users.Count == 0 || users[^1] != s.ShortId)
                    {
                        users.Add(s.ShortId);
                    }
                    if (!blobsInPacks.ContainsKey(id))
                    {
                        missing++;
                    }
                }
            }
            if (missing > 0)
            {
                findings.Add(new Finding(FindingKind.Missing, $"snapshots/{s.Id}", $"{missing} blob(s) of snapshot {s.ShortId} ({s.Manifest.Name}) are in no index", [s.ShortId]));
            }
        }

        // Packs: every indexed pack must exist with its size; unindexed packs are garbage.
        var packsStored = new Dictionary<string, long>(StringComparer.Ordinal);
        await foreach (var o in storage.ListAsync(ObjectKind.Data, cancellationToken).ConfigureAwait(false))
        {
            packsStored[o.Key.Name] = o.Size;
        }
        List<string> AffectedBy(IndexPack p)
        {
            var set = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var b in p.Blobs)
            {
                if (blobUsers.TryGetValue(ContentId.Parse(b.Id), out var u))
                {
                    set.UnionWith(u);
                }
            }
            return [.. set];
        }
        foreach (var p in packsInIndex.Values)
        {
            if (!packsStored.TryGetValue(p.Id, out var size))
            {
                findings.Add(new Finding(FindingKind.Missing, new StorageKey(ObjectKind.Data, p.Id).Path, $"pack with {p.Blobs.Count} blob(s) is missing", AffectedBy(p)));
            }
            else if (size < p.Size)
            {
                findings.Add(new Finding(FindingKind.Truncated, new StorageKey(ObjectKind.Data, p.Id).Path, $"pack is {size} bytes, the index says {p.Size}", AffectedBy(p)));
            }
            else if (size > p.Size)
            {
                findings.Add(new Finding(FindingKind.Tampered, new StorageKey(ObjectKind.Data, p.Id).Path, $"pack is {size} bytes, the index says {p.Size}", AffectedBy(p)));
            }
        }
        foreach (var (name, _) in packsStored)
        {
            if (!packsInIndex.ContainsKey(name))
            {
                findings.Add(new Finding(FindingKind.Orphaned, new StorageKey(ObjectKind.Data, name).Path, "pack is in no index (left by an interrupted write; 'cairn prune' removes it)", []));
            }
        }

        // Data: read packs, check name, header and every blob.
        var packsRead = 0;
        long bytesRead = 0;
        if (options.ReadData)
        {
            var candidates = packsInIndex.Values.Where(p => packsStored.TryGetValue(p.Id, out var s) && s == p.Size).OrderBy(p => p.Id, StringComparer.Ordinal).ToList();
            if (options.ReadDataFraction < 1.0)
            {
                var rng = options.Seed is { } seed ? new Random(seed) : Random.Shared;
                var n = Math.Max(candidates.Count == 0 ? 0 : 1, (int)Math.Ceiling(candidates.Count * options.ReadDataFraction));
                candidates = [.. candidates.OrderBy(_ => rng.Next()).Take(n)];
            }
            var done = 0;
            var sync = new object();
            await Parallel.ForEachAsync(candidates, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Environment.ProcessorCount), CancellationToken = cancellationToken }, async (p, ct) =>
            {
                var local = await CheckPackAsync(p, AffectedBy(p), patchBases, ct).ConfigureAwait(false);
                lock (sync)
                {
                    findings.AddRange(local.Findings);
                    bytesRead += local.Bytes;
                    done++;
                    packsRead++;
                    progress?.Report((done, candidates.Count));
                }
            }).ConfigureAwait(false);
        }

        return new VerificationReport(snapshots.Count + damagedSnapshots.Count, indexCount, packsStored.Count, packsRead, bytesRead, blobsInPacks.Count,
            [.. findings.OrderBy(f => f.Kind).ThenBy(f => f.Object, StringComparer.Ordinal)]);
    }

    private async Task<(List<Finding> Findings, long Bytes)> CheckPackAsync(IndexPack p, List<string> affected, Dictionary<ContentId, ContentId> patchBases, CancellationToken cancellationToken)
    {
        var path = new StorageKey(ObjectKind.Data, p.Id).Path;
        var problems = new List<string>();
        var bytes = await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Data, p.Id), cancellationToken).ConfigureAwait(false);
        if (ContentId.Sha256(bytes).ToHex() != p.Id)
        {
            problems.Add("content does not match its name (SHA-256)");
        }
        try
        {
            var header = PackReader.ReadHeader(bytes, repo.Aead, p.Id[..8]);
            if (header.Count != p.Blobs.Count)
            {
                problems.Add($"header lists {header.Count} blobs, the index {p.Blobs.Count}");
            }
        }
        catch (Exception e) when (e is DataDamagedException or AuthenticationFailedException)
        {
            problems.Add($"header unreadable ({e.Message})");
        }
        var bad = 0;
        string? firstError = null;
        foreach (var b in p.Blobs)
        {
            if (b.Offset + b.Length > bytes.Length)
            {
                bad++;
                firstError ??= $"blob {b.Id[..8]} lies past the end of the pack";
                continue;
            }
            try
            {
                var id = ContentId.Parse(b.Id);
                var raw = repo.DecodeBlob(id, bytes.AsSpan((int)b.Offset, b.Length), b.RawLength, p.Id);
                if (patchBases.TryGetValue(id, out var baseId))
                {
                    // A page patch authenticates like any blob; its header must also name the base its manifests name,
                    // with pages in range, and rebuild a block of the base's length.
                    var patch = PagePatch.Parse(raw, $"page patch {id.Short} in pack {p.Id[..8]}");
                    if (patch.BaseId != baseId)
                    {
                        throw new DataDamagedException($"page patch {id.Short} applies to chunk {patch.BaseId.Short}, its manifests name {baseId.Short}");
                    }
                    if (repo.Index.TryGetValue(baseId, out var baseLocation) && baseLocation.RawLength != patch.RebuiltLength)
                    {
                        throw new DataDamagedException($"page patch {id.Short} rebuilds {patch.RebuiltLength} bytes, its base {baseId.Short} holds {baseLocation.RawLength}");
                    }
                }
            }
            catch (DataDamagedException e)
            {
                bad++;
                firstError ??= e.Message;
            }
        }
        if (bad > 0)
        {
            problems.Add($"{bad} of {p.Blobs.Count} blob(s) fail authentication ({firstError})");
        }
        var result = new List<Finding>();
        if (problems.Count > 0)
        {
            result.Add(new Finding(FindingKind.Tampered, path, "pack " + string.Join("; ", problems), affected));
        }
        return (result, bytes.Length);
    }
}
