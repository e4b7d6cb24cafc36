using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;

namespace Cairn.Evidence.Log;

/// <summary>What <c>evidence verify</c> found. <see cref="Ok"/> only when there are no problems.</summary>
public sealed record VerifyResult(long Records, long Pruned, string RootBase64, long CheckpointSize, IReadOnlyList<string> Problems, bool AgainstChecked)
{
    public bool Ok => Problems.Count == 0;
}

/// <summary>
/// Recomputes the tree from the records and checks it against the signed checkpoint, and optionally
/// that the log still extends an earlier checkpoint (no rollback, no rewrite). Needs only the log
/// folder and the public key; no repository, no passphrase.
/// </summary>
public static class LogVerifier
{
    public static VerifyResult Verify(EvidenceLog log, NoteKey publicKey, string? againstCheckpoint)
    {
        var entries = log.ReadEntries(out var problems);
        var leaves = entries.Select(e => e.LeafHash).ToList();
        var root = MerkleTree.Root(leaves);
        long cpSize = -1;
        if (!File.Exists(log.CheckpointPath))
        {
            problems.Add("the checkpoint file is missing");
        }
        else
        {
            try
            {
                var text = SignedNote.Open(EvidenceLog.ReadCheckpointFile(log.CheckpointPath), publicKey);
                var cp = Checkpoint.Parse(text);
                cpSize = cp.Size;
                if (cp.Origin != log.Origin)
                {
                    problems.Add($"the checkpoint's origin '{cp.Origin}' is not this log's '{log.Origin}'");
                }
                if (cp.Size != leaves.Count)
                {
                    problems.Add($"the checkpoint covers {cp.Size} records but the log holds {leaves.Count} (records were removed or added after signing)");
                }
                else if (!cp.Root.AsSpan().SequenceEqual(root))
                {
                    problems.Add("the records do not hash to the signed root: a record was edited, removed, inserted or reordered");
                }
            }
            catch (InvalidDataException e)
            {
                problems.Add($"checkpoint: {e.Message}");
            }
        }
        var against = false;
        if (againstCheckpoint is not null)
        {
            against = true;
            try
            {
                var old = Checkpoint.Parse(SignedNote.Open(EvidenceLog.ReadCheckpointFile(againstCheckpoint), publicKey));
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
        return new VerifyResult(leaves.Count, entries.Count(e => e.Pruned), Convert.ToBase64String(root), cpSize, problems, against);
    }
}
