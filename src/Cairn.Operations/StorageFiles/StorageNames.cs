using System.Text;
using System.Text.RegularExpressions;

namespace Cairn.Operations.StorageFiles;

/// <summary>
/// The rules for names that come from someone else's bucket (and back from a repository): checked before a key is
/// read, stored, written to a bucket or, some day, to a disk. docs/repository-format.md ("Storage files") is the contract.
/// </summary>
public static partial class StorageNames
{
    /// <summary>S3's own limit on a key's length, in UTF-8 bytes.</summary>
    public const int MaxKeyBytes = 1024;

    /// <summary>
    /// Why <paramref name="key"/> is refused, or null when it is a relative path Cairn accepts: not empty, at most 1,024 UTF-8
    /// bytes, no NUL or other control character, no backslash, not absolute, and no empty, <c>.</c> or <c>..</c> segment.
    /// </summary>
    public static string? KeyProblem(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (key.Length == 0)
        {
            return "the key is empty";
        }
        if (key.Contains('\0', StringComparison.Ordinal))
        {
            return "the key holds a NUL byte";
        }
        if (key.Any(c => char.IsControl(c)))
        {
            return "the key holds a control character";
        }
        if (key.Contains('\\', StringComparison.Ordinal))
        {
            return "the key holds a backslash";
        }
        if (!IsWellFormedUtf16(key))
        {
            return "the key is not valid Unicode";
        }
        if (Encoding.UTF8.GetByteCount(key) > MaxKeyBytes)
        {
            return $"the key is longer than {MaxKeyBytes} bytes";
        }
        if (key.StartsWith('/'))
        {
            return "the key is an absolute path (starts with /)";
        }
        foreach (var part in key.Split('/'))
        {
            if (part.Length == 0)
            {
                return "the key has an empty path segment (// or a trailing /)";
            }
            if (part is "." or "..")
            {
                return $"the key has a '{part}' path segment";
            }
        }
        return null;
    }

    /// <summary>Why <paramref name="bucket"/> is refused as a bucket name, or null (letters, digits, '.', '_', '-'; 1 to 63 characters, starting with a letter or digit).</summary>
    public static string? BucketProblem(string bucket)
        => bucket is not null && BucketRegex().IsMatch(bucket) && !bucket.Contains("..", StringComparison.Ordinal) ? null : "a bucket name holds 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit";

    /// <summary>A key shown in a message: control characters escaped, so a hostile key cannot rewrite the terminal.</summary>
    public static string Display(string key)
    {
        var sb = new StringBuilder(key.Length + 2);
        foreach (var c in key.Length > 200 ? key[..200] + "…" : key)
        {
            sb.Append(char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString());
        }
        return sb.ToString();
    }

    private static bool IsWellFormedUtf16(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]))
            {
                if (i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1]))
                {
                    return false;
                }
                i++;
            }
            else if (char.IsLowSurrogate(s[i]))
            {
                return false;
            }
        }
        return true;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,62}\\z")]
    private static partial Regex BucketRegex();
}
