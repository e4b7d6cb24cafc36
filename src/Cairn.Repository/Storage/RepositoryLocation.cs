using System.Text.RegularExpressions;

namespace Cairn.Repository.Storage;

/// <summary>
/// Where a repository lives, parsed once from what the user wrote (--repo, CAIRN_REPOSITORY or
/// <c>repository:</c> in cairn.yaml): a local folder, or <c>s3://bucket/prefix</c>. Anything else with a
/// scheme is refused here, so a URL never silently becomes a folder named after it.
/// </summary>
public abstract partial record RepositoryLocation
{
    /// <summary>The location as the user should see it in messages (a full path, or the URL without credentials).</summary>
    public abstract string Display { get; }

    public override string ToString() => Display;

    /// <summary>Parses a location. Relative paths are resolved against <paramref name="baseDirectory"/> (default: the current folder).</summary>
    public static RepositoryLocation Parse(string text, string? baseDirectory = null)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "the repository location is empty: pass --repo PATH, set CAIRN_REPOSITORY, or set repository: in cairn.yaml");
        }
        if (text.Contains('\0', StringComparison.Ordinal) || Uri.UnescapeDataString(text).Contains('\0', StringComparison.Ordinal))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "the repository location contains a NUL character; give a folder or s3://BUCKET/PREFIX");
        }
        var scheme = Scheme().Match(text);
        if (!scheme.Success)
        {
            return new LocalLocation(baseDirectory is null ? Path.GetFullPath(text) : Path.GetFullPath(text, baseDirectory));
        }
        var rest = text[scheme.Length..];
        switch (scheme.Groups[1].Value.ToLowerInvariant())
        {
            case "file":
                if (!rest.StartsWith('/'))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"repository location {text}: a file URL needs an absolute path (file:///srv/cairn/repo); or give the folder itself");
                }
                return new LocalLocation(Path.GetFullPath(Uri.UnescapeDataString(rest)));
            case "s3":
                return S3Location.TryParse(text, out var s3, out var error) ? s3 : throw new RepositoryException(ErrorKind.InvalidInput, $"repository location {text}: {error}");
            default:
                throw new RepositoryException(ErrorKind.InvalidInput, $"repository location {text}: the scheme '{scheme.Groups[1].Value}://' is not supported; use a local folder or s3://BUCKET/PREFIX");
        }
    }

    [GeneratedRegex("^([A-Za-z][A-Za-z0-9+.-]*)://")]
    private static partial Regex Scheme();
}

/// <summary>A repository in a local folder (always a full path).</summary>
public sealed record LocalLocation(string Path) : RepositoryLocation
{
    public override string Display => Path;
}

/// <summary>
/// A repository in an S3-compatible bucket: <c>s3://BUCKET/PREFIX</c>. The prefix has no leading or trailing slash;
/// object keys are <c>PREFIX/</c> + the folder backend's relative path (see <see cref="StorageKey.Path"/>).
/// </summary>
public sealed record S3Location(string Bucket, string Prefix) : RepositoryLocation
{
    public const string Scheme = "s3://";

    public override string Display => Prefix.Length == 0 ? Scheme + Bucket : Scheme + Bucket + "/" + Prefix;

    public override string ToString() => Display;

    /// <summary>The object key of a repository-relative path.</summary>
    public string KeyOf(string relativePath) => Prefix.Length == 0 ? relativePath : Prefix + "/" + relativePath;

    /// <summary>Parses <c>s3://bucket</c> or <c>s3://bucket/some/prefix</c>; the error message names the fix.</summary>
    public static bool TryParse(string text, out S3Location location, out string error)
    {
        location = new S3Location("", "");
        error = "";
        if (!text.StartsWith(Scheme, StringComparison.Ordinal))
        {
            error = $"'{text}' is not an S3 location; write it as s3://BUCKET/PREFIX";
            return false;
        }
        var rest = text[Scheme.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var bucket = slash < 0 ? rest : rest[..slash];
        var prefix = slash < 0 ? "" : rest[(slash + 1)..].Trim('/');
        // Bucket naming rules of AWS (3-63 lower-case letters, digits, dots, hyphens); other servers accept a subset.
        // A bucket with user:secret@ in front is refused here too: credentials never go into a location.
        if (bucket.Length is < 3 or > 63 || !bucket.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '-')
            || !char.IsAsciiLetterOrDigit(bucket[0]) || !char.IsAsciiLetterOrDigit(bucket[^1]))
        {
            error = $"'{bucket}' in {text} is not a valid bucket name (3-63 characters: lower-case letters, digits, '.', '-')";
            return false;
        }
        foreach (var part in prefix.Split('/', StringSplitOptions.None))
        {
            if (prefix.Length > 0 && (part.Length == 0 || part is "." or ".." || part.Any(char.IsControl)))
            {
                error = $"the prefix '{prefix}' in {text} has an empty, '.' or '..' part or a control character";
                return false;
            }
        }
        location = new S3Location(bucket, prefix);
        return true;
    }

    public static S3Location Parse(string text)
        => TryParse(text, out var l, out var e) ? l : throw new ArgumentException(e, nameof(text));
}

/// <summary>
/// Builds the storage for a location. The composition root (the CLI) supplies the implementation, so the
/// engine does not depend on every backend's SDK; a location whose backend is not built in is a clear error.
/// </summary>
public interface IStorageFactory
{
    IStorage Create(RepositoryLocation location);
}
