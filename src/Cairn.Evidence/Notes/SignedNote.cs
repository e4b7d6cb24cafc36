using System.Security.Cryptography;
using System.Text;
using Org.BouncyCastle.Crypto.Parameters;
using Org.BouncyCastle.Crypto.Signers;

namespace Cairn.Evidence.Notes;

/// <summary>
/// An Ed25519 key for C2SP signed notes (https://c2sp.org/signed-note). The key hash is the first
/// four bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key); the verifier key is
/// <c>name+hex(key hash)+base64(0x01 ‖ public key)</c>.
/// </summary>
public sealed class NoteKey
{
    public const byte Ed25519Algorithm = 0x01;

    private readonly Ed25519PrivateKeyParameters? _private;

    private NoteKey(string name, Ed25519PublicKeyParameters publicKey, Ed25519PrivateKeyParameters? privateKey)
    {
        ValidateName(name);
        Name = name;
        PublicKey = publicKey.GetEncoded();
        _private = privateKey;
        KeyHash = ComputeKeyHash(name, PublicKey);
    }

    public string Name { get; }

    public byte[] PublicKey { get; }

    /// <summary>The 4-byte key ID.</summary>
    public byte[] KeyHash { get; }

    public bool CanSign => _private is not null;

    public static NoteKey Generate(string name)
    {
        var seed = RandomNumberGenerator.GetBytes(32);
        var priv = new Ed25519PrivateKeyParameters(seed);
        return new NoteKey(name, priv.GeneratePublicKey(), priv);
    }

    /// <summary>Parses the signer key file: <c>PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)</c>, as Go's note package writes it.</summary>
    public static NoteKey ParseSigner(string text)
    {
        var parts = text.Trim().Split('+', 5);
        if (parts.Length != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY")
        {
            throw new FormatException("not a signed-note signer key (expected PRIVATE+KEY+name+hash+key)");
        }
        var raw = Convert.FromBase64String(parts[4]);
        if (raw.Length != 33 || raw[0] != Ed25519Algorithm)
        {
            throw new FormatException("the signer key is not an Ed25519 key");
        }
        var priv = new Ed25519PrivateKeyParameters(raw, 1);
        var key = new NoteKey(parts[2], priv.GeneratePublicKey(), priv);
        if (Convert.ToHexStringLower(key.KeyHash) != parts[3].ToLowerInvariant())
        {
            throw new FormatException("the signer key's hash does not match its key");
        }
        return key;
    }

    /// <summary>Parses a verifier key: <c>name+hash+base64(0x01 ‖ public key)</c>.</summary>
    public static NoteKey ParseVerifier(string text)
    {
        var parts = text.Trim().Split('+', 3);
        if (parts.Length != 3)
        {
            throw new FormatException("not a signed-note verifier key (expected name+hash+key)");
        }
        var raw = Convert.FromBase64String(parts[2]);
        if (raw.Length != 33 || raw[0] != Ed25519Algorithm)
        {
            throw new FormatException("the verifier key is not an Ed25519 key");
        }
        NoteKey key;
        try
        {
            key = new NoteKey(parts[0], new Ed25519PublicKeyParameters(raw, 1), null);
        }
        catch (ArgumentException e)
        {
            // BouncyCastle refuses a point that is not on the curve.
            throw new FormatException($"the verifier key is not a valid Ed25519 public key ({e.Message})", e);
        }
        if (Convert.ToHexStringLower(key.KeyHash) != parts[1].ToLowerInvariant())
        {
            throw new FormatException("the verifier key's hash does not match its key");
        }
        return key;
    }

    public string VerifierKey => $"{Name}+{Convert.ToHexStringLower(KeyHash)}+{Convert.ToBase64String([Ed25519Algorithm, .. PublicKey])}";

    public string SignerKey
    {
        get
        {
            if (_private is null)
            {
                throw new InvalidOperationException("this key can only verify");
            }
            return $"PRIVATE+KEY+{Name}+{Convert.ToHexStringLower(KeyHash)}+{Convert.ToBase64String([Ed25519Algorithm, .. _private.GetEncoded()])}";
        }
    }

    public byte[] Sign(byte[] message)
    {
        if (_private is null)
        {
            throw new InvalidOperationException("this key can only verify");
        }
        var signer = new Ed25519Signer();
        signer.Init(true, _private);
        signer.BlockUpdate(message, 0, message.Length);
        return signer.GenerateSignature();
    }

    public bool Verify(byte[] message, byte[] signature)
    {
        var verifier = new Ed25519Signer();
        verifier.Init(false, new Ed25519PublicKeyParameters(PublicKey, 0));
        verifier.BlockUpdate(message, 0, message.Length);
        return verifier.VerifySignature(signature);
    }

    public static byte[] ComputeKeyHash(string name, byte[] publicKey)
    {
        var input = new List<byte>(Encoding.UTF8.GetBytes(name)) { (byte)'\n', Ed25519Algorithm };
        input.AddRange(publicKey);
        return SHA256.HashData(input.ToArray())[..4];
    }

    private static void ValidateName(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Any(c => char.IsWhiteSpace(c) || c == '+' || char.IsControl(c)))
        {
            throw new FormatException($"key name '{name}' is invalid: it must be non-empty with no spaces or '+'");
        }
    }
}

/// <summary>A C2SP signed note: text ending in a newline, a blank line, then "— name base64(hash ‖ sig)" lines.</summary>
public static class SignedNote
{
    private const string Dash = "\u2014 ";

    /// <summary>Signs <paramref name="text"/> with every key, one signature line each in the order given (a co-signed note, as witnesses and key hand-overs make them).</summary>
    public static string Sign(string text, params NoteKey[] keys)
    {
        if (!text.EndsWith('\n') || text.Contains("\n\n", StringComparison.Ordinal))
        {
            throw new ArgumentException("note text must end with a newline and contain no blank line", nameof(text));
        }
        if (keys.Length == 0)
        {
            throw new ArgumentException("a note needs at least one signature", nameof(keys));
        }
        var note = new StringBuilder(text).Append('\n');
        foreach (var key in keys)
        {
            var sig = key.Sign(Encoding.UTF8.GetBytes(text));
            note.Append(Dash).Append(key.Name).Append(' ').Append(Convert.ToBase64String([.. key.KeyHash, .. sig])).Append('\n');
        }
        return note.ToString();
    }

    /// <summary>Whether <paramref name="note"/> carries a valid signature by <paramref name="key"/> (a malformed note carries none).</summary>
    public static bool SignedBy(string note, NoteKey key)
    {
        try
        {
            Open(note, key);
            return true;
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    /// <summary>The raw 64-byte Ed25519 signature by <paramref name="key"/> in <paramref name="note"/> (for openssl), or null.</summary>
    public static byte[]? SignatureBy(string note, NoteKey key)
    {
        var split = note.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0)
        {
            return null;
        }
        foreach (var line in note[(split + 2)..].Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.LastIndexOf(' ');
            if (!line.StartsWith(Dash, StringComparison.Ordinal) || space < Dash.Length || line[Dash.Length..space] != key.Name)
            {
                continue;
            }
            try
            {
                var blob = Convert.FromBase64String(line[(space + 1)..]);
                if (blob.Length == 68 && blob.AsSpan(0, 4).SequenceEqual(key.KeyHash))
                {
                    return blob[4..];
                }
            }
            catch (FormatException)
            {
            }
        }
        return null;
    }

    /// <summary>Splits a note and checks it carries a valid signature by <paramref name="key"/>. Returns the text.</summary>
    public static string Open(string note, NoteKey key)
    {
        var split = note.LastIndexOf("\n\n", StringComparison.Ordinal);
        if (split < 0)
        {
            throw new InvalidDataException("malformed signed note: no blank line before the signatures");
        }
        var text = note[..(split + 1)];
        var sigLines = note[(split + 2)..].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        foreach (var line in sigLines)
        {
            if (!line.StartsWith(Dash, StringComparison.Ordinal))
            {
                throw new InvalidDataException("malformed signed note: a signature line does not start with an em dash");
            }
            var rest = line[Dash.Length..];
            var space = rest.LastIndexOf(' ');
            if (space < 0)
            {
                continue;
            }
            var name = rest[..space];
            byte[] blob;
            try
            {
                blob = Convert.FromBase64String(rest[(space + 1)..]);
            }
            catch (FormatException)
            {
                throw new InvalidDataException("malformed signed note: signature is not base64");
            }
            if (name != key.Name || blob.Length != 4 + 64 || !blob.AsSpan(0, 4).SequenceEqual(key.KeyHash))
            {
                continue;
            }
            if (key.Verify(Encoding.UTF8.GetBytes(text), blob[4..]))
            {
                return text;
            }
            throw new InvalidDataException($"the signature by {key.Name} does not verify: the note was changed or signed by another key");
        }
        throw new InvalidDataException($"the note carries no signature by {key.Name}+{Convert.ToHexStringLower(key.KeyHash)}");
    }
}

/// <summary>The C2SP tlog-checkpoint body: origin, tree size, base64 root hash (https://c2sp.org/tlog-checkpoint).</summary>
public sealed record Checkpoint(string Origin, long Size, byte[] Root)
{
    public string Body => $"{Origin}\n{Size}\n{Convert.ToBase64String(Root)}\n";

    public static Checkpoint Parse(string text)
    {
        var lines = text.Split('\n');
        if (lines.Length < 4 || !long.TryParse(lines[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var size))
        {
            throw new InvalidDataException("malformed checkpoint: expected origin, tree size and root hash lines");
        }
        byte[] root;
        try
        {
            root = Convert.FromBase64String(lines[2]);
        }
        catch (FormatException)
        {
            throw new InvalidDataException("malformed checkpoint: the root hash is not base64");
        }
        if (root.Length != 32)
        {
            throw new InvalidDataException("malformed checkpoint: the root hash is not 32 bytes");
        }
        return new Checkpoint(lines[0], size, root);
    }
}
