using Cairn.Repository.Crypto;
using Org.BouncyCastle.Crypto.Generators;
using Argon2Parameters = Org.BouncyCastle.Crypto.Parameters.Argon2Parameters;

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
    public void Argon2id_as_configured_gives_the_RFC_9106_section_5_3_test_vector()
    {
        // RFC 9106 §5.3 uses a secret and associated data, which Cairn's passphrase KDF never sets, so the vector checks
        // the primitive with Cairn's settings (Argon2id, version 0x13); the next test checks the wrapper itself.
        var p = new Argon2Parameters.Builder(Argon2Parameters.Argon2id)
            .WithVersion(Argon2Parameters.Version13)
            .WithMemoryAsKB(32)
            .WithIterations(3)
            .WithParallelism(4)
            .WithSalt(Enumerable.Repeat((byte)0x02, 16).ToArray())
            .WithSecret(Enumerable.Repeat((byte)0x03, 8).ToArray())
            .WithAdditional(Enumerable.Repeat((byte)0x04, 12).ToArray())
            .Build();
        var gen = new Argon2BytesGenerator();
        gen.Init(p);
        var tag = new byte[32];
        gen.GenerateBytes(Enumerable.Repeat((byte)0x01, 32).ToArray(), tag);
        Assert.Equal("0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659", Convert.ToHexStringLower(tag));
    }

    // Expected values from the reference implementation (libargon2 20171227, argon2_ctx with Argon2_id, version 0x13,
    // a 32-byte tag), computed independently of BouncyCastle.
    [Theory]
    [InlineData(1024, 1, 1, "pw", "00000000000000000000000000000000", "cbc34dd08f282c0f50d3733767e57700c5bed7ba601724231bbb81a881f52b01")]
    [InlineData(4096, 2, 2, "correct horse battery staple", "000102030405060708090a0b0c0d0e0f", "acad5eacd68e47665f0fde0c224f0118402ba4ba2c01769230903ce7293e452b")]
    [InlineData(1024, 1, 1, "caf\u00e9", "00000000000000000000000000000000", "e77e8bade7d6a14235132471386be1328360a49cc3f832d2c8e742f485bda532")]
    public void Passphrase_KDF_gives_the_reference_implementations_key(int memoryKib, int iterations, int parallelism, string passphrase, string saltHex, string expected)
    {
        // The passphrase is hashed as its UTF-8 bytes (the third row: a non-ASCII é, composed).
        var key = new KdfParameters(memoryKib, iterations, parallelism).Derive(passphrase, Convert.FromHexString(saltHex));
        Assert.Equal(expected, Convert.ToHexStringLower(key));
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
