using System.Security.Cryptography;

namespace Cairn.Evidence.Merkle;

/// <summary>
/// The Merkle tree of RFC 6962 / RFC 9162 §2.1: leaf hash SHA-256(0x00 ‖ entry), node hash
/// SHA-256(0x01 ‖ left ‖ right), split at the largest power of two smaller than the size.
/// Inclusion and consistency proofs, and their verification, follow RFC 9162 §2.1.3 and §2.1.4.
/// </summary>
public static class MerkleTree
{
    public const int HashSize = 32;

    public static byte[] LeafHash(ReadOnlySpan<byte> entry)
    {
        var buf = new byte[entry.Length + 1];
        buf[0] = 0x00;
        entry.CopyTo(buf.AsSpan(1));
        return SHA256.HashData(buf);
    }

    public static byte[] NodeHash(ReadOnlySpan<byte> left, ReadOnlySpan<byte> right)
    {
        Span<byte> buf = stackalloc byte[1 + (2 * HashSize)];
        buf[0] = 0x01;
        left.CopyTo(buf[1..]);
        right.CopyTo(buf[(1 + HashSize)..]);
        return SHA256.HashData(buf);
    }

    public static byte[] EmptyRoot() => SHA256.HashData(ReadOnlySpan<byte>.Empty);

    /// <summary>MTH(D[0:n]) over leaf hashes.</summary>
    public static byte[] Root(IReadOnlyList<byte[]> leaves) => leaves.Count == 0 ? EmptyRoot() : Hash(leaves, 0, leaves.Count);

    /// <summary>
    /// MTH of the first n leaves for each n of <paramref name="sizes"/> (each at most the leaf count), in one pass: a stack of
    /// perfect subtrees (the tree's "peaks") folded from the right gives RFC 6962's split at the largest power of two.
    /// </summary>
    public static Dictionary<long, byte[]> PrefixRoots(IReadOnlyList<byte[]> leaves, IEnumerable<long> sizes)
    {
        ArgumentNullException.ThrowIfNull(leaves);
        var wanted = new HashSet<long>(sizes);
        var result = new Dictionary<long, byte[]>();
        if (wanted.Contains(0))
        {
            result[0] = EmptyRoot();
        }
        var peaks = new List<(byte[] Hash, long Count)>();
        for (var i = 0; i < leaves.Count; i++)
        {
            var h = leaves[i];
            long count = 1;
            while (peaks.Count > 0 && peaks[^1].Count == count)
            {
                h = NodeHash(peaks[^1].Hash, h);
                count *= 2;
                peaks.RemoveAt(peaks.Count - 1);
            }
            peaks.Add((h, count));
            if (wanted.Contains(i + 1))
            {
                var root = peaks[^1].Hash;
                for (var j = peaks.Count - 2; j >= 0; j--)
                {
                    root = NodeHash(peaks[j].Hash, root);
                }
                result[i + 1] = root;
            }
        }
        return result;
    }

    /// <summary>MTH over leaves[start..end).</summary>
    public static byte[] Hash(IReadOnlyList<byte[]> leaves, int start, int end)
    {
        var n = end - start;
        if (n == 1)
        {
            return leaves[start];
        }
        var k = SplitPoint(n);
        return NodeHash(Hash(leaves, start, start + k), Hash(leaves, start + k, end));
    }

    /// <summary>The audit path for leaf <paramref name="index"/> in the tree of the first <paramref name="size"/> leaves.</summary>
    public static List<byte[]> InclusionProof(IReadOnlyList<byte[]> leaves, int index, int size)
    {
        if (index < 0 || index >= size || size > leaves.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(index));
        }
        var proof = new List<byte[]>();
        Path(leaves, index, 0, size, proof);
        return proof;
    }

    private static void Path(IReadOnlyList<byte[]> leaves, int m, int start, int end, List<byte[]> proof)
    {
        var n = end - start;
        if (n == 1)
        {
            return;
        }
        var k = SplitPoint(n);
        if (m < k)
        {
            Path(leaves, m, start, start + k, proof);
            proof.Add(Hash(leaves, start + k, end));
        }
        else
        {
            Path(leaves, m - k, start + k, end, proof);
            proof.Add(Hash(leaves, start, start + k));
        }
    }

    /// <summary>The consistency proof between the tree of the first <paramref name="oldSize"/> leaves and of <paramref name="newSize"/>.</summary>
    public static List<byte[]> ConsistencyProof(IReadOnlyList<byte[]> leaves, int oldSize, int newSize)
    {
        if (oldSize < 1 || oldSize > newSize || newSize > leaves.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(oldSize));
        }
        var proof = new List<byte[]>();
        SubProof(leaves, oldSize, 0, newSize, true, proof);
        return proof;
    }

    private static void SubProof(IReadOnlyList<byte[]> leaves, int m, int start, int end, bool complete, List<byte[]> proof)
    {
        var n = end - start;
        if (m == n)
        {
            if (!complete)
            {
                proof.Add(Hash(leaves, start, end));
            }
            return;
        }
        var k = SplitPoint(n);
        if (m <= k)
        {
            SubProof(leaves, m, start, start + k, complete, proof);
            proof.Add(Hash(leaves, start + k, end));
        }
        else
        {
            SubProof(leaves, m - k, start + k, end, false, proof);
            proof.Add(Hash(leaves, start, start + k));
        }
    }

    /// <summary>RFC 9162 §2.1.3.2: checks that <paramref name="leafHash"/> is leaf <paramref name="index"/> of a tree of <paramref name="size"/> with <paramref name="root"/>.</summary>
    public static bool VerifyInclusion(ReadOnlySpan<byte> leafHash, long index, long size, IReadOnlyList<byte[]> proof, ReadOnlySpan<byte> root)
    {
        if (index >= size || index < 0)
        {
            return false;
        }
        var fn = index;
        var sn = size - 1;
        var r = leafHash.ToArray();
        foreach (var p in proof)
        {
            if (sn == 0)
            {
                return false;
            }
            if ((fn & 1) == 1 || fn == sn)
            {
                r = NodeHash(p, r);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                r = NodeHash(r, p);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r.AsSpan().SequenceEqual(root);
    }

    /// <summary>RFC 9162 §2.1.4.2: checks that the tree (<paramref name="newSize"/>, <paramref name="newRoot"/>) extends (<paramref name="oldSize"/>, <paramref name="oldRoot"/>).</summary>
    public static bool VerifyConsistency(long oldSize, long newSize, ReadOnlySpan<byte> oldRoot, ReadOnlySpan<byte> newRoot, IReadOnlyList<byte[]> proof)
    {
        if (oldSize < 1 || oldSize > newSize)
        {
            return false;
        }
        if (oldSize == newSize)
        {
            return proof.Count == 0 && oldRoot.SequenceEqual(newRoot);
        }
        if (proof.Count == 0)
        {
            return false;
        }
        var path = proof.ToList();
        if (IsPow2(oldSize))
        {
            path.Insert(0, oldRoot.ToArray());
        }
        if (path.Count == 0)
        {
            return false;
        }
        var fn = oldSize - 1;
        var sn = newSize - 1;
        while ((fn & 1) == 1)
        {
            fn >>= 1;
            sn >>= 1;
        }
        var fr = path[0];
        var sr = path[0];
        foreach (var c in path.Skip(1))
        {
            if (sn == 0)
            {
                return false;
            }
            if ((fn & 1) == 1 || fn == sn)
            {
                fr = NodeHash(c, fr);
                sr = NodeHash(c, sr);
                if ((fn & 1) == 0)
                {
                    while ((fn & 1) == 0 && fn != 0)
                    {
                        fn >>= 1;
                        sn >>= 1;
                    }
                }
            }
            else
            {
                sr = NodeHash(sr, c);
            }
            fn >>= 1;
            sn >>= 1;
        }
        return fr.AsSpan().SequenceEqual(oldRoot) && sr.AsSpan().SequenceEqual(newRoot) && sn == 0;
    }

    private static bool IsPow2(long n) => n > 0 && (n & (n - 1)) == 0;

    /// <summary>The largest power of two smaller than <paramref name="n"/> (n &gt; 1).</summary>
    private static int SplitPoint(int n)
    {
        var k = 1;
        while (k << 1 < n)
        {
            k <<= 1;
        }
        return k;
    }
}
