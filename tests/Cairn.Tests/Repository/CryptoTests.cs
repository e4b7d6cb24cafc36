using Cairn.Repository.Crypto;

namespace Cairn.Tests.Repository;

public class CryptoTests
{
    [Fact]
    public void Aead_round_trips_and_detects_any_flipped_byte()
    {
        using var aead = new Aead(new byte[32]);
        var msg = aead.Seal("hello world"u8, "ctx"u8);
        Assert.Equal("hello world"u8.ToArray(), aead.Open(msg, "ctx"u8, "test"));
        for (var i = 0; i < msg.Length; i++)
        {
            var bad = (byte[])msg.Clone();
            bad[i] ^= 0x01;
            Assert.Throws<AuthenticationFailedException>(() => aead.Open(bad, "ctx"u8, "test"));
        }
    }

    [Fact]
    public void Aead_refuses_a_message_under_another_context()
    {
        using var aead = new Aead(new byte[32]);
        var msg = aead.Seal("data"u8, Aead.IndexContext);
        Assert.Throws<AuthenticationFailedException>(() => aead.Open(msg, Aead.SnapshotContext, "test"));
    }

    [Fact]
    public void Key_file_opens_with_its_passphrase_only()
    {
        var master = new byte[32];
        master[0] = 42;
        var data = KeyFile.Wrap("abc", master, "right", KdfParameters.Fast, DateTimeOffset.UnixEpoch, null);
        Assert.Equal(master, KeyFile.TryUnwrap("abc", data, "right"));
        Assert.Null(KeyFile.TryUnwrap("abc", data, "wrong"));
        Assert.Null(KeyFile.TryUnwrap("other-id", data, "right"));
    }

    [Fact]
    public void Argon2id_matches_the_RFC_9106_shape_and_is_deterministic()
    {
        var salt = new byte[16];
        var a = KdfParameters.Fast.Derive("pw", salt);
        var b = KdfParameters.Fast.Derive("pw", salt);
        var c = new KdfParameters(2048, 1, 1).Derive("pw", salt);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
        Assert.Equal(32, a.Length);
    }

    [Fact]
    public void Chunk_ids_are_keyed()
    {
        var k1 = KeyMaterial.Derive(new byte[32], new byte[16]);
        var m2 = new byte[32];
        m2[31] = 1;
        var k2 = KeyMaterial.Derive(m2, new byte[16]);
        Assert.Equal(k1.ChunkId("x"u8), k1.ChunkId("x"u8));
        Assert.NotEqual(k1.ChunkId("x"u8), k2.ChunkId("x"u8));
        Assert.NotEqual(ContentId.Sha256("x"u8), k1.ChunkId("x"u8));
    }

    [Fact]
    public void Content_ids_round_trip_through_hex()
    {
        var id = ContentId.Sha256("abc"u8);
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", id.ToHex());
        Assert.Equal(id, ContentId.Parse(id.ToHex()));
        Assert.False(ContentId.TryParse("zz", out _));
        Assert.False(ContentId.TryParse(new string('g', 64), out _));
    }
}
