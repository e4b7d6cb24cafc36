using Cairn.Evidence.Merkle;

namespace Cairn.Tests.Evidence;

/// <summary>RFC 6962 test vectors, as in Certificate Transparency's reference implementations.</summary>
public class MerkleTreeTests
{
    private static readonly byte[][] Entries =
    [
        [],
        [0x00],
        [0x10],
        [0x20, 0x21],
        [0x30, 0x31],
        [0x40, 0x41, 0x42, 0x43],
        [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f],
    ];

    private static readonly string[] Roots =
    [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    private static List<byte[]> Leaves => [.. Entries.Select(e => MerkleTree.LeafHash(e))];

    private static byte[] H(string hex) => Convert.FromHexString(hex);

    [Fact]
    public void Prefix_roots_of_one_pass_equal_the_root_of_each_prefix()
    {
        // The peaks folded from the right must be RFC 6962's split at the largest power of two, for every size.
        var leaves = Enumerable.Range(0, 70).Select(i => MerkleTree.LeafHash([(byte)i, (byte)(i * 7)])).ToList();
        var roots = MerkleTree.PrefixRoots(leaves, Enumerable.Range(0, 71).Select(n => (long)n));
        Assert.Equal(71, roots.Count);
        for (var n = 0; n <= 70; n++)
        {
            Assert.Equal(Convert.ToHexStringLower(MerkleTree.Root(leaves.Take(n).ToList())), Convert.ToHexStringLower(roots[n]));
        }
        Assert.Equal(Roots[^1], Convert.ToHexStringLower(MerkleTree.PrefixRoots(Leaves, [Entries.Length])[Entries.Length]));
    }

    [Fact]
    public void Empty_tree_root_is_the_hash_of_nothing()
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", Convert.ToHexStringLower(MerkleTree.Root([])));
    }

    [Fact]
    public void Roots_match_the_RFC_6962_vectors()
    {
        for (var n = 1; n <= 8; n++)
        {
            Assert.Equal(Roots[n - 1], Convert.ToHexStringLower(MerkleTree.Root(Leaves.Take(n).ToList())));
        }
    }

    public static TheoryData<int, int, string[]> InclusionVectors => new()
    {
        { 0, 1, [] },
        { 0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"] },
        { 5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"] },
        { 2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"] },
        { 1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"] },
    };

    [Theory]
    [MemberData(nameof(InclusionVectors))]
    public void Inclusion_proofs_match_the_vectors_and_verify(int index, int size, string[] expected)
    {
        var proof = MerkleTree.InclusionProof(Leaves, index, size);
        Assert.Equal(expected, proof.Select(Convert.ToHexStringLower));
        Assert.True(MerkleTree.VerifyInclusion(Leaves[index], index, size, proof, H(Roots[size - 1])));
        Assert.False(MerkleTree.VerifyInclusion(Leaves[(index + 1) % 8], index, size, proof, H(Roots[size - 1])));
        Assert.False(MerkleTree.VerifyInclusion(Leaves[index], index, size, proof, H(Roots[size % 8])));
        for (var i = 0; i < proof.Count; i++)
        {
            var tampered = proof.Select(p => (byte[])p.Clone()).ToList();
            tampered[i][0] ^= 1;
            Assert.False(MerkleTree.VerifyInclusion(Leaves[index], index, size, tampered, H(Roots[size - 1])), $"proof element {i} flipped");
        }
    }

    public static TheoryData<int, int, string[]> ConsistencyVectors => new()
    {
        { 1, 1, [] },
        { 1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"] },
        { 6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"] },
        { 2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"] },
    };

    [Theory]
    [MemberData(nameof(ConsistencyVectors))]
    public void Consistency_proofs_match_the_vectors_and_verify(int oldSize, int newSize, string[] expected)
    {
        var proof = MerkleTree.ConsistencyProof(Leaves, oldSize, newSize);
        Assert.Equal(expected, proof.Select(Convert.ToHexStringLower));
        Assert.True(MerkleTree.VerifyConsistency(oldSize, newSize, H(Roots[oldSize - 1]), H(Roots[newSize - 1]), proof));
        if (oldSize != newSize)
        {
            Assert.False(MerkleTree.VerifyConsistency(oldSize, newSize, H(Roots[newSize - 1]), H(Roots[newSize - 1]), proof));
        }
    }

    [Fact]
    public void Property_every_inclusion_and_consistency_proof_verifies_and_tampering_fails()
    {
        var rng = new Random(1234);
        for (var trial = 0; trial < 60; trial++)
        {
            var n = rng.Next(1, 70);
            var leaves = Enumerable.Range(0, n).Select(i => MerkleTree.LeafHash(BitConverter.GetBytes(rng.Next()))).ToList();
            var root = MerkleTree.Root(leaves);
            var i = rng.Next(n);
            var proof = MerkleTree.InclusionProof(leaves, i, n);
            Assert.True(MerkleTree.VerifyInclusion(leaves[i], i, n, proof, root));
            Assert.True(proof.Count <= Math.Ceiling(Math.Log2(Math.Max(n, 1))) + 0.0001);
            if (n > 1)
            {
                Assert.False(MerkleTree.VerifyInclusion(leaves[i], (i + 1) % n, n, proof, root));
                var bad = proof.Select(p => (byte[])p.Clone()).ToList();
                bad[rng.Next(bad.Count)][0] ^= 1;
                Assert.False(MerkleTree.VerifyInclusion(leaves[i], i, n, bad, root));
            }
            var m = rng.Next(1, n + 1);
            var oldRoot = MerkleTree.Root(leaves.Take(m).ToList());
            var cproof = MerkleTree.ConsistencyProof(leaves, m, n);
            Assert.True(MerkleTree.VerifyConsistency(m, n, oldRoot, root, cproof));
            if (m < n)
            {
                var forked = leaves.ToList();
                forked[rng.Next(m)] = MerkleTree.LeafHash([9, 9, 9]);
                Assert.False(MerkleTree.VerifyConsistency(m, n, oldRoot, MerkleTree.Root(forked), MerkleTree.ConsistencyProof(forked, m, n)));
            }
        }
    }
}
