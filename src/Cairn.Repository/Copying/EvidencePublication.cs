using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Cairn.Repository.Storage;

namespace Cairn.Repository.Copying;

/// <summary>One piece of a published evidence file: <see cref="Length"/> bytes stored as the sealed object <c>evidence/<see cref="Name"/></c>.</summary>
public sealed record EvidencePiece(long Length, string Name);

/// <summary>
/// One publication of the evidence log (docs/repository-format.md, "The evidence log in the repository"): each file of the
/// log's folder as the pieces that make it up, in order, and the signed checkpoint the log had then (clear text, so
/// <c>check</c> compares it with the local log without the passphrase).
/// </summary>
public sealed record EvidencePublicationManifest(long Size, IReadOnlyDictionary<string, IReadOnlyList<EvidencePiece>> Files, string Checkpoint);

/// <summary>A publication's object (<c>evidence/publication~&lt;origin ID&gt;~&lt;size&gt;.&lt;sha256&gt;</c>) as listed.</summary>
public sealed record EvidencePublicationInfo(string Name, string OriginId, long Size, DateTimeOffset LastModified);

/// <param name="Name">The publication's object name.</param>
/// <param name="PiecesWritten">Pieces stored by this call (the others were in an earlier publication).</param>
/// <param name="New">False when the same publication was there already (nothing new since).</param>
public sealed record EvidencePublishReport(string Name, long Size, int PiecesWritten, long BytesWritten, bool New);

/// <summary>
/// The evidence log published into a repository (or a copy): the files of the log's folder as create-only sealed pieces
/// (<see cref="EvidenceCopies"/>: a file that grew since the last publication gets one new piece holding what was
/// appended), and a clear-text manifest per publication naming the pieces of every file and the checkpoint. Objects are
/// never replaced or deleted, so under S3 Object Lock every publication stays as it was written. The engine knows nothing
/// of what the files mean: it checks names, lengths and SHA-256s.
/// </summary>
public static partial class EvidencePublication
{
    public const string Prefix = "publication~";
    private const string Header = "cairn-evidence-publication 1";

    /// <summary>A file made of more pieces than this is published whole again (a reader fetches at most this many per file).</summary>
    public const int MaxPieces = 16;

    public static bool IsPublicationName(string name) => PublicationName().IsMatch(name);

    /// <summary>
    /// The 16 hex digits that tell the logs apart: SHA-256 of the log's origin line. Several hosts may publish their own logs
    /// into one repository; each log's publications are named by its origin's ID.
    /// </summary>
    public static string OriginId(string origin) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(origin)))[..16];

    private static long SizeOf(string name) => long.Parse(name.AsSpan(Prefix.Length + 17, 12), NumberStyles.None, CultureInfo.InvariantCulture);

    /// <summary>Every publication in <paramref name="storage"/> (of the log <paramref name="originId"/>, or of every log), oldest first (by tree size, then time, then name).</summary>
    public static async Task<List<EvidencePublicationInfo>> ListAsync(IStorage storage, string? originId, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(storage);
        var found = new List<EvidencePublicationInfo>();
        await foreach (var o in storage.ListAsync(ObjectKind.Evidence, Prefix, ct).ConfigureAwait(false))
        {
            if (!o.Key.Name.StartsWith(Prefix, StringComparison.Ordinal))
            {
                break; // listed in name order from the prefix on: the first name past it ends the publications
            }
            var id = o.Key.Name.Length > Prefix.Length + 16 ? o.Key.Name.Substring(Prefix.Length, 16) : "";
            if (IsPublicationName(o.Key.Name) && (originId is null || id == originId))
            {
                found.Add(new EvidencePublicationInfo(o.Key.Name, id, SizeOf(o.Key.Name), o.LastModified));
            }
        }
        return [.. found.OrderBy(p => p.Size).ThenBy(p => p.LastModified).ThenBy(p => p.Name, StringComparer.Ordinal)];
    }

    /// <summary>A publication's manifest, checked against the SHA-256 and the size in its name.</summary>
    public static async Task<EvidencePublicationManifest> ReadAsync(IStorage storage, string name, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(storage);
        if (!IsPublicationName(name))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not the name of an evidence publication");
        }
        var bytes = await storage.GetAllAsync(new StorageKey(ObjectKind.Evidence, name), ct).ConfigureAwait(false);
        if (Convert.ToHexStringLower(SHA256.HashData(bytes)) != name[^64..])
        {
            throw new DataDamagedException($"evidence/{name} in {storage.Location} does not hold the publication its name's SHA-256 names");
        }
        var manifest = Parse(bytes, $"evidence/{name}");
        return manifest.Size == SizeOf(name)
            ? manifest
            : throw new DataDamagedException($"evidence/{name} in {storage.Location} states a tree size of {manifest.Size}, not the one in its name");
    }

    public static byte[] Format(EvidencePublicationManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var sb = new StringBuilder();
        sb.Append(Header).Append('\n');
        sb.Append(CultureInfo.InvariantCulture, $"size {manifest.Size}\n");
        foreach (var (path, pieces) in manifest.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            sb.Append("file ").Append(path);
            foreach (var p in pieces)
            {
                sb.Append(CultureInfo.InvariantCulture, $" {p.Length}:{p.Name}");
            }
            sb.Append('\n');
        }
        sb.Append('\n').Append(manifest.Checkpoint);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>Parses a manifest; every name, path and length is checked before anything uses it (the bucket is written by others).</summary>
    public static EvidencePublicationManifest Parse(byte[] bytes, string where)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var text = Encoding.UTF8.GetString(bytes);
        var end = text.IndexOf("\n\n", StringComparison.Ordinal);
        if (end < 0)
        {
            throw new DataDamagedException($"{where} is not an evidence publication (no blank line before the checkpoint)");
        }
        var lines = text[..end].Split('\n');
        if (lines.Length < 2 || lines[0] != Header || !lines[1].StartsWith("size ", StringComparison.Ordinal)
            || !long.TryParse(lines[1].AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out var size))
        {
            throw new DataDamagedException($"{where} is not an evidence publication (expected '{Header}' and a size line)");
        }
        var files = new Dictionary<string, IReadOnlyList<EvidencePiece>>(StringComparer.Ordinal);
        foreach (var line in lines.Skip(2))
        {
            var parts = line.Split(' ');
            if (parts.Length < 2 || parts[0] != "file" || !IsValidPath(parts[1]) || files.ContainsKey(parts[1]))
            {
                throw new DataDamagedException($"{where}: '{line}' is not a file line of an evidence publication (or names a path twice)");
            }
            var flat = parts[1].Replace('/', '~');
            var pieces = new List<EvidencePiece>();
            foreach (var p in parts.Skip(2))
            {
                var colon = p.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0 || !long.TryParse(p.AsSpan(0, colon), NumberStyles.None, CultureInfo.InvariantCulture, out var length) || length <= 0)
                {
                    throw new DataDamagedException($"{where}: '{p}' is not a piece (LENGTH:NAME)");
                }
                var name = p[(colon + 1)..];
                if (!RepositoryCopier.IsValidName(ObjectKind.Evidence, name) || IsPublicationName(name) || name[..^65] != flat)
                {
                    throw new DataDamagedException($"{where}: '{name}' is not a piece of {parts[1]}");
                }
                pieces.Add(new EvidencePiece(length, name));
            }
            files[parts[1]] = pieces;
        }
        return new EvidencePublicationManifest(size, files, text[(end + 2)..]);
    }

    /// <summary>
    /// Publishes the log's files (<paramref name="files"/>: path inside the folder → bytes, read while the log was consistent)
    /// with its signed <paramref name="checkpoint"/> of <paramref name="size"/> records, as a publication of the log <paramref name="origin"/>. A file whose bytes still begin with
    /// the pieces of the newest publication gets only what was appended since as a new piece.
    /// </summary>
    public static async Task<EvidencePublishReport> PublishAsync(Repository repo, IStorage target, IReadOnlyDictionary<string, byte[]> files, string origin, string checkpoint, long size, CancellationToken ct)
    {
        var originId = OriginId(origin);
        ArgumentNullException.ThrowIfNull(repo);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(files);
        var previous = (await ListAsync(target, originId, ct).ConfigureAwait(false)).LastOrDefault();
        IReadOnlyDictionary<string, IReadOnlyList<EvidencePiece>> before = new Dictionary<string, IReadOnlyList<EvidencePiece>>();
        if (previous is not null)
        {
            try
            {
                before = (await ReadAsync(target, previous.Name, ct).ConfigureAwait(false)).Files;
            }
            catch (DataDamagedException)
            {
                // A damaged newest publication lends no pieces: every file is published whole.
            }
        }
        var written = 0;
        long bytesWritten = 0;
        var result = new Dictionary<string, IReadOnlyList<EvidencePiece>>(StringComparer.Ordinal);
        foreach (var (path, bytes) in files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            if (!IsValidPath(path))
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"the evidence file '{path}' cannot be published: only letters, digits, '.', '_', '-' in its path");
            }
            var pieces = before.TryGetValue(path, out var old) && StillPrefix(old, bytes) ? [.. old] : new List<EvidencePiece>();
            var covered = pieces.Sum(p => p.Length);
            if (covered == bytes.Length)
            {
                result[path] = pieces;
                continue;
            }
            if (pieces.Count >= MaxPieces)
            {
                pieces.Clear();
                covered = 0;
            }
            var tail = bytes[(int)covered..];
            if (await EvidenceCopies.PutAsync(repo, target, path, tail, ct).ConfigureAwait(false))
            {
                written++;
                bytesWritten += tail.Length;
            }
            pieces.Add(new EvidencePiece(tail.Length, EvidenceCopies.NameOf(path, tail)));
            result[path] = pieces;
        }
        var manifest = Format(new EvidencePublicationManifest(size, result, checkpoint));
        var name = $"{Prefix}{originId}~{size:D12}.{Convert.ToHexStringLower(SHA256.HashData(manifest))}";
        var key = new StorageKey(ObjectKind.Evidence, name);
        if (await target.StatAsync(key, ct).ConfigureAwait(false) is not null)
        {
            return new EvidencePublishReport(name, size, written, bytesWritten, New: false);
        }
        await RepositoryCopier.CreateAsync(target, key, manifest, ct).ConfigureAwait(false);
        var back = await target.GetAllAsync(key, ct).ConfigureAwait(false);
        return back.AsSpan().SequenceEqual(manifest)
            ? new EvidencePublishReport(name, size, written + 1, bytesWritten + manifest.Length, New: true)
            : throw new DataDamagedException($"evidence/{name} read back from {target.Location} does not hold the publication written");
    }

    /// <summary>
    /// The files of a publication, each rebuilt from its pieces (opened under their names, SHA-256 and length checked).
    /// A file whose piece is missing or damaged is left out and named in <paramref name="problems"/>.
    /// </summary>
    public static async Task<Dictionary<string, byte[]>> ReadFilesAsync(Repository repo, IStorage storage, EvidencePublicationManifest manifest, List<string> problems, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(repo);
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(problems);
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var (path, pieces) in manifest.Files)
        {
            var data = new MemoryStream();
            string? problem = null;
            foreach (var p in pieces)
            {
                try
                {
                    var bytes = await EvidenceCopies.GetAsync(repo, storage, p.Name, ct).ConfigureAwait(false);
                    if (bytes.Length != p.Length)
                    {
                        problem = $"the published piece evidence/{p.Name} of {path} holds {bytes.Length} bytes, the publication says {p.Length}";
                        break;
                    }
                    data.Write(bytes);
                }
                catch (ObjectNotFoundException)
                {
                    problem = $"the published piece evidence/{p.Name} of {path} is missing from {storage.Location} (deleted?)";
                    break;
                }
                catch (DataDamagedException e)
                {
                    problem = e.Message;
                    break;
                }
            }
            if (problem is not null)
            {
                problems.Add(problem);
                continue;
            }
            files[path] = data.ToArray();
        }
        return files;
    }

    /// <summary>A path inside the log's folder that may be published: '/'-separated parts of letters, digits, '.', '_', '-' (not '.' or '..').</summary>
    public static bool IsValidPath(string path)
        => path.Length is > 0 and <= 150 && PathChars().IsMatch(path) && !path.Split('/').Any(p => p is "" or "." or "..") && !path.StartsWith("publication", StringComparison.Ordinal);

    private static bool StillPrefix(IReadOnlyList<EvidencePiece> pieces, byte[] bytes)
    {
        long offset = 0;
        foreach (var p in pieces)
        {
            if (offset + p.Length > bytes.Length
                || Convert.ToHexStringLower(SHA256.HashData(bytes.AsSpan((int)offset, (int)p.Length))) != p.Name[^64..])
            {
                return false;
            }
            offset += p.Length;
        }
        return true;
    }

    [GeneratedRegex(@"^publication~[0-9a-f]{16}~\d{12}\.[0-9a-f]{64}\z")]
    private static partial Regex PublicationName();

    [GeneratedRegex(@"^[A-Za-z0-9_./-]+\z")]
    private static partial Regex PathChars();
}
