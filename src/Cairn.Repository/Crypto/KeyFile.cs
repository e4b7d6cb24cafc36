using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Serialization;
using Org.BouncyCastle.Crypto.Generators;
using Org.BouncyCastle.Crypto.Parameters;

namespace Cairn.Repository.Crypto;

/// <summary>Argon2id cost parameters, stored in every key file so they can be raised later.</summary>
public sealed record KdfParameters(int MemoryKib, int Iterations, int Parallelism)
{
    public static readonly KdfParameters Default = new(64 * 1024, 3, 2);

    /// <summary>Cheap parameters for tests only; never the default.</summary>
    public static readonly KdfParameters Fast = new(1024, 1, 1);

    public byte[] Derive(string passphrase, ReadOnlySpan<byte> salt)
    {
        if (MemoryKib < 8 || Iterations < 1 || Parallelism < 1 || MemoryKib > 4 * 1024 * 1024)
        {
            throw new InvalidDataException($"key file has unusable KDF parameters (memory {MemoryKib} KiB, {Iterations} passes, parallelism {Parallelism})");
        }
        var p = new Argon2Parameters.Builder(Argon2Parameters.Argon2id)
            .WithVersion(Argon2Parameters.Version13)
            .WithMemoryAsKB(MemoryKib)
            .WithIterations(Iterations)
            .WithParallelism(Parallelism)
            .WithSalt(salt.ToArray())
            .Build();
        var gen = new Argon2BytesGenerator();
        gen.Init(p);
        var output = new byte[32];
        var pw = Encoding.UTF8.GetBytes(passphrase.Normalize(NormalizationForm.FormC));
        try
        {
            gen.GenerateBytes(pw, output);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(pw);
        }
        return output;
    }
}

/// <summary>The JSON form of <c>keys/&lt;id&gt;</c>.</summary>
public sealed record KeyFileData
{
    [JsonPropertyName("version")] public int Version { get; init; } = 1;
    [JsonPropertyName("kdf")] public string Kdf { get; init; } = "argon2id";
    [JsonPropertyName("memory_kib")] public int MemoryKib { get; init; }
    [JsonPropertyName("iterations")] public int Iterations { get; init; }
    [JsonPropertyName("parallelism")] public int Parallelism { get; init; }
    [JsonPropertyName("salt")] public string Salt { get; init; } = "";
    [JsonPropertyName("created")] public DateTimeOffset Created { get; init; }
    [JsonPropertyName("host")] public string Host { get; init; } = "";
    [JsonPropertyName("label")] public string? Label { get; init; }
    [JsonPropertyName("wrapped")] public string Wrapped { get; init; } = "";
}

/// <summary>Wraps and unwraps the master secret with a passphrase.</summary>
public static class KeyFile
{
    public static KeyFileData Wrap(string id, ReadOnlySpan<byte> master, string passphrase, KdfParameters kdf, DateTimeOffset now, string? label)
    {
        var salt = RandomNumberGenerator.GetBytes(16);
        var kek = kdf.Derive(passphrase, salt);
        try
        {
            using var aead = new Aead(kek);
            var wrapped = aead.Seal(master, Context(id));
            return new KeyFileData
            {
                MemoryKib = kdf.MemoryKib,
                Iterations = kdf.Iterations,
                Parallelism = kdf.Parallelism,
                Salt = Convert.ToBase64String(salt),
                Created = now,
                Host = Environment.MachineName,
                Label = label,
                Wrapped = Convert.ToBase64String(wrapped),
            };
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    /// <summary>Returns the master secret, or null when the passphrase does not open this key.</summary>
    public static byte[]? TryUnwrap(string id, KeyFileData data, string passphrase)
    {
        if (data.Version != 1 || data.Kdf != "argon2id")
        {
            throw new InvalidDataException($"key file {id} uses an unknown format (version {data.Version}, kdf {data.Kdf})");
        }
        var kdf = new KdfParameters(data.MemoryKib, data.Iterations, data.Parallelism);
        var kek = kdf.Derive(passphrase, Convert.FromBase64String(data.Salt));
        try
        {
            using var aead = new Aead(kek);
            return aead.Open(Convert.FromBase64String(data.Wrapped), Context(id), $"key {id}");
        }
        catch (AuthenticationFailedException)
        {
            return null;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(kek);
        }
    }

    private static byte[] Context(string id) => Encoding.ASCII.GetBytes("cairn-key" + id);
}
