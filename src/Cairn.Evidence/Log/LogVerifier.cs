using System.Globalization;
using System.Text.Json;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;

namespace Cairn.Evidence.Log;

/// <summary>What <c>evidence verify</c> found. <see cref="Ok"/> only when there are no problems.</summary>
/// <param name="Keys">The signing keys in the order they signed (<c>name+hash</c>); one unless the key was rotated.</param>
/// <param name="Handovers">The seqs of the hand-over records (<c>evidence-key-rotation</c>) found.</param>
/// <param name="TrustFrom">The hand-over that introduced the key verified with (0: the log's first key). Records before it are
/// vouched for by that key's co-signature of the hand-over checkpoint, not by the verifier's own anchor.</param>
public sealed record VerifyResult(long Records, long Pruned, string RootBase64, long CheckpointSize, IReadOnlyList<string> Problems, bool AgainstChecked, long PrunedBelow = 0)
{
    public bool Ok => Problems.Count == 0;

    public IReadOnlyList<string> Keys { get; init; } = [];

    public IReadOnlyList<long> Handovers { get; init; } = [];

    public long TrustFrom { get; init; }

    /// <summary>What was found about the log published in the repository (checked against it, not checked and why); null: not looked at.</summary>
    public string? Published { get; init; }
}

/// <summary>
/// The records a reader may act on: those a checkpoint signed by the log's key covers, whose bodies
/// hash to its root. <see cref="Problems"/> says why anything else was left out (empty when the whole
/// log verifies). Records after the newest checkpoint are never included: every append signs before it
/// releases the lock, so such a record was forged or left by a crash between writing and signing.
/// </summary>
public sealed record VerifiedRecords(IReadOnlyList<LogEntry> Entries, IReadOnlyList<string> Problems, long TotalRecords)
{
    public static readonly VerifiedRecords Empty = new([], [], 0);

    public bool Ok => Problems.Count == 0;

    /// <summary>The signing keys followed from the trusted one: opens any checkpoint of the log with the key valid at its size.</summary>
    public KeyChain? Chain { get; init; }
}

/// <summary>
/// Recomputes the tree from the records and checks it against the signed checkpoint, that every
/// leaf-hash-only record lies below a signed <c>evidence-prune</c> statement, and optionally that the
/// log still extends an earlier checkpoint (no rollback, no rewrite). Needs only the log folder and the
/// public key; no repository, no passphrase.
/// </summary>
public static class LogVerifier
{
    /// <summary>Most problems of one kind listed one by one; the rest are counted.</summary>
    private const int ListedHidden = 20;

    public static VerifyResult Verify(EvidenceLog log, NoteKey publicKey, string? againstCheckpoint)
        => log.ReadConsistent(() => Analyse(log, publicKey, againstCheckpoint)).Result;

    /// <summary>Only the records covered by a checkpoint that verifies with <paramref name="publicKey"/>, and the problems found.</summary>
    public static VerifiedRecords ReadVerified(EvidenceLog log, NoteKey publicKey)
    {
        var a = log.ReadConsistent(() => Analyse(log, publicKey, null));
        return new VerifiedRecords(a.Trusted, a.Result.Problems, a.Result.Records) { Chain = a.Chain };
    }

    /// <summary>
    /// Whether the log extends each of the <paramref name="earlier"/> checkpoints (a label for messages, the signed note): each
    /// must open with the key the log's chain gives its size, name this log's origin, cover no more records than the log holds,
    /// and carry the root of the log's first records. The problems found (none: the log extends every one). What
    /// <c>evidence verify --from-repo</c> checks between publications, and <c>check</c> between the local log and the published one.
    /// </summary>
    public static List<string> CheckExtends(EvidenceLog log, NoteKey publicKey, IReadOnlyList<(string Label, string Note)> earlier)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(earlier);
        return log.ReadConsistent(() =>
        {
            var entries = log.ReadEntries(out _);
            var leaves = entries.Select(e => e.LeafHash).ToList();
            var chain = KeyChain.Build(log, entries, leaves, publicKey);
            var origin = log.Exists ? log.Origin : null;
            var problems = new List<string>();
            var opened = new List<(string Label, Checkpoint Checkpoint)>();
            foreach (var (label, note) in earlier)
            {
                try
                {
                    var cp = chain.OpenAnySize(note);
                    if (cp.Origin != origin)
                    {
                        problems.Add($"{label} is of the log '{cp.Origin}', not of this log ('{origin ?? "no origin file"}')");
                    }
                    else if (cp.Size > leaves.Count)
                    {
                        problems.Add($"{label} covers {cp.Size} records, but the log holds {leaves.Count}: records were removed (the log was rolled back or truncated) after it was signed");
                    }
                    else
                    {
                        opened.Add((label, cp));
                    }
                }
                catch (InvalidDataException e)
                {
                    problems.Add($"{label} does not verify with the log's keys: {e.Message}");
                }
            }
            var roots = MerkleTree.PrefixRoots(leaves, opened.Select(o => o.Checkpoint.Size));
            foreach (var (label, cp) in opened.Where(o => !roots[o.Checkpoint.Size].AsSpan().SequenceEqual(o.Checkpoint.Root)))
            {
                problems.Add($"{label}: the log's first {cp.Size} records no longer hash to its root: the log was rewritten after it was signed");
            }
            return problems;
        });
    }

    private sealed record Analysis(VerifyResult Result, List<LogEntry> Trusted, KeyChain Chain);

    private static Analysis Analyse(EvidenceLog log, NoteKey publicKey, string? againstCheckpoint)
    {
        var entries = log.ReadEntries(out var problems);
        var leaves = entries.Select(e => e.LeafHash).ToList();
        var root = MerkleTree.Root(leaves);
        long cpSize = -1;
        long trusted = 0;
        var newestVerifies = false;
        // The signing keys from the one trusted: each hand-over co-signed by the key it retires and the key it brings in.
        var chain = KeyChain.Build(log, entries, leaves, publicKey);
        problems.AddRange(chain.Problems);
        if (!File.Exists(log.CheckpointPath))
        {
            problems.Add("the checkpoint file is missing");
        }
        else
        {
            var note = EvidenceLog.ReadCheckpointFile(log.CheckpointPath);
            try
            {
                var claimed = Checkpoint.Parse(KeyChain.Body(note));
                var key = chain.KeyFor(claimed.Size) ?? chain.Current;
                if (!SignedNote.SignedBy(note, key) && chain.RetiredSigner(note, claimed.Size) is { } retired)
                {
                    throw new InvalidDataException($"the checkpoint of {claimed.Size} records is signed by key {KeyChain.Id(retired.Key)}, which was retired at record {retired.Handover.Seq} (handed over to {KeyChain.Id(retired.Handover.New)}): after a hand-over only the new key signs, so whoever still holds the retired key signed this one");
                }
                var cp = Checkpoint.Parse(SignedNote.Open(note, key));
                cpSize = cp.Size;
                if (cp.Origin != log.Origin)
                {
                    problems.Add($"the checkpoint's origin '{cp.Origin}' is not this log's '{log.Origin}'");
                }
                else if (cp.Size > leaves.Count)
                {
                    problems.Add($"the checkpoint covers {cp.Size} records but the log holds {leaves.Count} (records were removed after signing)");
                }
                else if (!PrefixRoot(leaves, cp.Size, root).AsSpan().SequenceEqual(cp.Root))
                {
                    problems.Add("the records do not hash to the signed root: a record was edited, removed, inserted or reordered");
                }
                else
                {
                    trusted = cp.Size;
                    newestVerifies = true;
                }
                if (cp.Size < leaves.Count)
                {
                    problems.Add($"{Records(cp.Size, leaves.Count - 1)} not covered by the signed checkpoint of {cp.Size} (appended without the signing key, or a crash between writing and signing; the next append sets them aside)");
                }
            }
            catch (InvalidDataException e)
            {
                problems.Add($"checkpoint: {e.Message}");
            }
        }
        if (!newestVerifies)
        {
            // The daily copies may still vouch for an older prefix: a reader can act on those records.
            trusted = OlderVerifiedPrefix(log, chain, leaves);
        }

        // Leaf-hash-only records are accepted only below a signed statement that says they were pruned.
        var prunedBelow = entries.Take((int)trusted).Select(e => PrunedBelow(e)).DefaultIfEmpty(0).Max();
        var hidden = entries.Where(e => e.Pruned && e.Seq >= prunedBelow).ToList();
        foreach (var e in hidden.Take(ListedHidden))
        {
            problems.Add($"record {e.Seq} ({e.Segment}) is only a leaf hash: its body was removed, but no signed evidence-prune record covers it (signed prunes cover records below {prunedBelow}); a record was hidden");
        }
        if (hidden.Count > ListedHidden)
        {
            problems.Add($"{hidden.Count - ListedHidden} more record(s) up to {hidden[^1].Seq} are leaf hashes that no signed prune covers");
        }

        var against = false;
        if (againstCheckpoint is not null)
        {
            against = true;
            try
            {
                var old = chain.OpenAnySize(EvidenceLog.ReadCheckpointFile(againstCheckpoint));
                if (old.Size > leaves.Count)
                {
                    problems.Add($"the log was rolled back: the earlier checkpoint covers {old.Size} records, the log now holds {leaves.Count}");
                }
                else if (old.Size > 0)
                {
                    var proof = MerkleTree.ConsistencyProof(leaves, (int)old.Size, leaves.Count);
                    if (!MerkleTree.VerifyConsistency(old.Size, leaves.Count, old.Root, root, proof))
                    {
                        problems.Add($"the log was rewritten: its first {old.Size} records no longer match the earlier checkpoint");
                    }
                }
            }
            catch (InvalidDataException e)
            {
                problems.Add($"earlier checkpoint {againstCheckpoint}: {e.Message}");
            }
        }
        var result = new VerifyResult(leaves.Count, entries.Count(e => e.Pruned), Convert.ToBase64String(root), cpSize, problems, against, prunedBelow)
        {
            Keys = chain.KeyIds,
            Handovers = [.. chain.Handovers.Select(h => h.Seq)],
            TrustFrom = chain.TrustFrom,
        };
        return new Analysis(result, [.. entries.Take((int)trusted).Where(e => !e.Pruned)], chain);
    }

    /// <summary>The <c>pruned_below</c> a signed <c>evidence-prune</c> record states (0 for any other record). A statement never covers itself.</summary>
    private static long PrunedBelow(LogEntry e)
    {
        if (e.Kind != "evidence-prune" || e.Record?["details"]?["pruned_below"] is not { } n || n.GetValueKind() != JsonValueKind.Number)
        {
            return 0;
        }
        return n.AsValue().TryGetValue<long>(out var below) && below >= 0 && below <= e.Seq ? below : 0;
    }

    private static long OlderVerifiedPrefix(EvidenceLog log, KeyChain chain, List<byte[]> leaves)
    {
        var files = new[] { Path.Combine(log.Folder, "checkpoints"), log.HandoverFolder }.Where(Directory.Exists).SelectMany(f => Directory.EnumerateFiles(f, "*.txt"));
        var sizes = new List<Checkpoint>();
        foreach (var file in files)
        {
            try
            {
                var note = EvidenceLog.ReadCheckpointFile(file);
                var key = chain.KeyFor(Checkpoint.Parse(KeyChain.Body(note)).Size);
                if (key is null)
                {
                    continue;
                }
                var cp = Checkpoint.Parse(SignedNote.Open(note, key));
                if (cp.Origin == log.Origin && cp.Size <= leaves.Count)
                {
                    sizes.Add(cp);
                }
            }
            catch (Exception e) when (e is InvalidDataException or EvidenceException)
            {
                // A damaged or foreign copy vouches for nothing.
            }
        }
        foreach (var cp in sizes.OrderByDescending(c => c.Size))
        {
            if (MerkleTree.Root([.. leaves.Take((int)cp.Size)]).AsSpan().SequenceEqual(cp.Root))
            {
                return cp.Size;
            }
        }
        return 0;
    }

    private static byte[] PrefixRoot(List<byte[]> leaves, long size, byte[] fullRoot)
        => size == leaves.Count ? fullRoot : MerkleTree.Root([.. leaves.Take((int)size)]);

    private static string Records(long first, long last)
        => first == last ? $"record {first} is" : string.Create(CultureInfo.InvariantCulture, $"records {first} to {last} are");
}
