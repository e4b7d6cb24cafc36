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

    /// <summary>Largest Argon2id memory a key file may ask for: 4 GiB (in KiB).</summary>
    public const int MaxMemoryKib = 4 * 1024 * 1024;

    /// <summary>Most Argon2id passes a key file may ask for.</summary>
    public const int MaxIterations = 100;

    /// <summary>Most Argon2id lanes a key file may ask for.</summary>
    public const int MaxParallelism = 64;

    /// <summary>
    /// Why these parameters are out of bounds, or null when they are usable. The bounds keep a key file
    /// someone planted in <c>keys/</c> from stalling every open (wal-push runs once per WAL segment) or
    /// allocating without limit: Argon2 needs at least 8 KiB per lane, so lanes raise memory too.
    /// </summary>
    public string? Problem() =>
        MemoryKib < 8 || MemoryKib > MaxMemoryKib ? $"memory {MemoryKib} KiB is outside 8 KiB to {MaxMemoryKib / 1024 / 1024} GiB"
        : Iterations < 1 || Iterations > MaxIterations ? $"iterations {Iterations} is outside 1 to {MaxIterations}"
        : Parallelism < 1 || Parallelism > MaxParallelism ? $"parallelism {Parallelism} is outside 1 to {MaxParallelism}"
        : MemoryKib < 8L * Parallelism ? $"memory {MemoryKib} KiB is less than 8 KiB per lane for parallelism {Parallelism}"
        : null;

    /// <summary>The key of a passphrase in its canonical form (NFC: <see cref="Nfc"/>), the form every new key file is wrapped with.</summary>
    public byte[] Derive(string passphrase, ReadOnlySpan<byte> salt) => DeriveExact(Nfc.Compose(passphrase), salt);

    /// <summary>
    /// The forms of a passphrase a key file may have been wrapped with, to try in this order: NFC (what Cairn writes), the
    /// text as typed, and NFD. Until Cairn normalised by itself, its NFC was a no-op in the published binary
    /// (InvariantGlobalization), so a key file written then holds the form its author typed: on a machine that types the
    /// other form, NFD or NFC of what is typed is that form. ASCII text has one form.
    /// </summary>
    public static IReadOnlyList<string> PassphraseForms(string passphrase)
    {
        var forms = new List<string>(3) { Nfc.Compose(passphrase) };
        foreach (var form in new[] { passphrase, Nfc.Decompose(passphrase) })
        {
            if (!forms.Contains(form, StringComparer.Ordinal))
            {
                forms.Add(form);
            }
        }
        return forms;
    }

    /// <summary>The key of exactly these characters' UTF-8 bytes.</summary>
    internal byte[] DeriveExact(string passphrase, ReadOnlySpan<byte> salt)
    {
        if (Problem() is { } problem)
        {
            throw new InvalidDataException($"unusable KDF parameters: {problem}");
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
        var pw = Encoding.UTF8.GetBytes(passphrase);
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
    /// <summary>Largest key file Cairn reads; a real one is about 300 bytes.</summary>
    public const int MaxFileSize = 64 * 1024;

    public static KeyFileData Wrap(string id, ReadOnlySpan<byte> master, string passphrase, KdfParameters kdf, DateTimeOffset now, string? label)
    {
        if (kdf.Problem() is { } problem)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"refusing to write a key file every later open would skip: {problem}");
        }
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
        byte[] salt;
        byte[] wrapped;
        try
        {
            salt = Convert.FromBase64String(data.Salt);
            wrapped = Convert.FromBase64String(data.Wrapped);
        }
        catch (FormatException)
        {
            throw new InvalidDataException($"key file {id}: salt or wrapped key is not base64");
        }
        if (salt.Length is < 16 or > 64 || wrapped.Length != 12 + KeyMaterial.MasterSize + 16)
        {
            throw new InvalidDataException($"key file {id}: salt of {salt.Length} bytes or wrapped key of {wrapped.Length} bytes is malformed");
        }
        foreach (var form in KdfParameters.PassphraseForms(passphrase))
        {
            var kek = kdf.DeriveExact(form, salt);
            try
            {
                using var aead = new Aead(kek);
                return aead.Open(wrapped, Context(id), $"key {id}");
            }
            catch (AuthenticationFailedException)
            {
                // the next form, if any
            }
            finally
            {
                CryptographicOperations.ZeroMemory(kek);
            }
        }
        return null;
    }

    private static byte[] Context(string id) => Encoding.ASCII.GetBytes("cairn-key" + id);
}
