using System.Security.Cryptography;
using System.Text;

namespace Cairn.Repository.Crypto;

/// <summary>Thrown when a message fails authentication: wrong key, or the bytes were changed.</summary>
public sealed class AuthenticationFailedException(string what)
    : CryptographicException($"{what} failed authentication: the data was changed or damaged, or the key is wrong")
{
    public string What { get; } = what;
}

/// <summary>
/// AES-256-GCM with a random 96-bit nonce per message, laid out as nonce ‖ ciphertext ‖ tag.
/// The associated data names the message's role so a message cannot be passed off as another.
/// </summary>
public sealed class Aead : IDisposable
{
    public const int NonceSize = 12;
    public const int TagSize = 16;
    public const int Overhead = NonceSize + TagSize;

    public static readonly byte[] BlobContext = Encoding.ASCII.GetBytes("cairn-blob");
    public static readonly byte[] PackHeaderContext = Encoding.ASCII.GetBytes("cairn-pack-header");
    public static readonly byte[] IndexContext = Encoding.ASCII.GetBytes("cairn-index");
    public static readonly byte[] SnapshotContext = Encoding.ASCII.GetBytes("cairn-snapshot");
    public static readonly byte[] SnapshotIndexContext = Encoding.ASCII.GetBytes("cairn-snapshot-index");
    public static readonly byte[] WalSummaryContext = Encoding.ASCII.GetBytes("cairn-wal-summary");
    public static readonly byte[] ConfigContext = Encoding.ASCII.GetBytes("cairn-config");

    private readonly AesGcm _gcm;

    public Aead(ReadOnlySpan<byte> key)
    {
        _gcm = new AesGcm(key, TagSize);
    }

    public void Dispose() => _gcm.Dispose();

    /// <summary>Encrypts into <paramref name="destination"/>, which must hold plaintext + <see cref="Overhead"/> bytes.</summary>
    public int Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData, Span<byte> destination)
    {
        var nonce = destination[..NonceSize];
        RandomNumberGenerator.Fill(nonce);
        var cipher = destination.Slice(NonceSize, plaintext.Length);
        var tag = destination.Slice(NonceSize + plaintext.Length, TagSize);
        _gcm.Encrypt(nonce, plaintext, cipher, tag, associatedData);
        return plaintext.Length + Overhead;
    }

    public byte[] Seal(ReadOnlySpan<byte> plaintext, ReadOnlySpan<byte> associatedData)
    {
        var output = new byte[plaintext.Length + Overhead];
        Seal(plaintext, associatedData, output);
        return output;
    }

    /// <summary>Decrypts and authenticates; throws <see cref="AuthenticationFailedException"/> naming <paramref name="what"/>.</summary>
    public int Open(ReadOnlySpan<byte> message, ReadOnlySpan<byte> associatedData, Span<byte> destination, string what)
    {
        if (message.Length < Overhead)
        {
            throw new AuthenticationFailedException(what);
        }
        var length = message.Length - Overhead;
        try
        {
            _gcm.Decrypt(message[..NonceSize], message.Slice(NonceSize, length), message[^TagSize..], destination[..length], associatedData);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new AuthenticationFailedException(what);
        }
        return length;
    }

    public byte[] Open(ReadOnlySpan<byte> message, ReadOnlySpan<byte> associatedData, string what)
    {
        if (message.Length < Overhead)
        {
            throw new AuthenticationFailedException(what);
        }
        var output = new byte[message.Length - Overhead];
        Open(message, associatedData, output, what);
        return output;
    }

    public static byte[] Concat(ReadOnlySpan<byte> a, ReadOnlySpan<byte> b)
    {
        var r = new byte[a.Length + b.Length];
        a.CopyTo(r);
        b.CopyTo(r.AsSpan(a.Length));
        return r;
    }
}
