using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// The erasure ledger (<c>ledger/</c>, docs/repository-format.md): one sealed object per erasure, written with a
/// create-only put and never replaced, pruned or deleted by Cairn, so every restore can re-apply every erasure. The
/// repository engine knows nothing of what an entry means: it stores and returns sealed bytes under validated names.
/// </summary>
public static partial class ErasureLedger
{
    private static readonly byte[] Context = Encoding.ASCII.GetBytes("cairn-ledger");

    /// <summary>Appends one entry for <paramref name="database"/>; returns its object name. Refuses rather than replaces.</summary>
    public static async Task<string> AppendAsync(Repository repo, string database, ReadOnlyMemory<byte> entry, CancellationToken ct)
    {
        if (!DatabaseName().IsMatch(database))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{database}' cannot name a ledger entry (letters, digits, '_', '.', '-')");
        }
        var name = $"{database}.{repo.Time.GetUtcNow().UtcDateTime:yyyyMMdd'T'HHmmssfff'Z'}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}";
        var sealedBytes = repo.Aead.Seal(entry.Span, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)));
        if (!await repo.Storage.PutIfAbsentAsync(new StorageKey(ObjectKind.Ledger, name), sealedBytes, ct).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.AlreadyExists, $"ledger entry {name} already exists; refusing to replace it");
        }
        return name;
    }

    /// <summary>
    /// Stores an entry under the name it has in another repository (a re-encrypting copy): sealed under this repository's
    /// key, create-only. Returns the bytes stored (0 when the name was there already).
    /// </summary>
    internal static async Task<long> PutEntryAsync(Repository repo, string name, byte[] entry, CancellationToken ct)
    {
        var m = EntryName().Match(name);
        if (!m.Success)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"'{name}' is not a ledger entry's name");
        }
        var sealedBytes = repo.Aead.Seal(entry, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)));
        return await Copying.RepositoryCopier.CreateAsync(repo.Storage, new StorageKey(ObjectKind.Ledger, name), sealedBytes, ct).ConfigureAwait(false) ? sealedBytes.Length : 0;
    }

    /// <summary>The databases that have entries in the ledger (a name outside the format is damage, as in <see cref="ReadAsync"/>).</summary>
    public static async Task<List<string>> DatabasesAsync(Repository repo, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(repo);
        var names = new SortedSet<string>(StringComparer.Ordinal);
        await foreach (var o in repo.Storage.ListAsync(ObjectKind.Ledger, ct).ConfigureAwait(false))
        {
            var m = EntryName().Match(o.Key.Name);
            if (!m.Success)
            {
                throw new DataDamagedException($"ledger/{o.Key.Name} is not a ledger entry's name; the erasure ledger must hold only Cairn's entries (docs/repository-format.md)");
            }
            names.Add(m.Groups[1].Value);
        }
        return [.. names];
    }

    /// <summary>Every entry of <paramref name="database"/>, oldest first. A damaged or foreign object is an error, never skipped.</summary>
    public static async Task<List<(string Name, byte[] Entry)>> ReadAsync(Repository repo, string database, CancellationToken ct)
    {
        var names = new List<string>();
        await foreach (var o in repo.Storage.ListAsync(ObjectKind.Ledger, ct).ConfigureAwait(false))
        {
            var m = EntryName().Match(o.Key.Name);
            if (!m.Success)
            {
                throw new DataDamagedException($"ledger/{o.Key.Name} is not a ledger entry's name; the erasure ledger must hold only Cairn's entries (docs/repository-format.md)");
            }
            if (m.Groups[1].Value == database)
            {
                names.Add(o.Key.Name);
            }
        }
        var result = new List<(string, byte[])>();
        foreach (var name in names.Order(StringComparer.Ordinal))
        {
            var stored = await repo.Storage.GetAllAsync(new StorageKey(ObjectKind.Ledger, name), ct).ConfigureAwait(false);
            try
            {
                result.Add((name, repo.Aead.Open(stored, Aead.Concat(Context, Encoding.UTF8.GetBytes(name)), $"ledger entry {name}")));
            }
            catch (AuthenticationFailedException e)
            {
                throw new DataDamagedException($"ledger entry {name} does not authenticate: {e.Message}", e);
            }
        }
        return result;
    }

    /// <summary>
    /// A keyed hash of a data subject (HMAC-SHA256 under the repository's erasure key, its own HKDF purpose): the evidence
    /// log records this, never the identifier; the same subject always gives the same hash in one repository, and
    /// nothing without the repository key can test a guess.
    /// </summary>
    public static string SubjectHash(Repository repo, string database, string table, string identifier)
        => Convert.ToHexStringLower(HMACSHA256.HashData(repo.Keys.ErasureKey, Encoding.UTF8.GetBytes($"{database}\0{table}\0{identifier}")));

    [GeneratedRegex(@"^[A-Za-z0-9_.-]+\z")]
    private static partial Regex DatabaseName();

    [GeneratedRegex(@"^([A-Za-z0-9_.-]+)\.\d{8}T\d{9}Z\.[0-9a-f]{16}\z")]
    private static partial Regex EntryName();
}
