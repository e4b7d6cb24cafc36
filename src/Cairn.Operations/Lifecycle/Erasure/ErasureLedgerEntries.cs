using System.Text.Json;
using System.Text.Json.Serialization;
using Cairn.PostgreSql.Lifecycle;
using Cairn.Repository;

namespace Cairn.Operations.Lifecycle.Erasure;

/// <summary>
/// One erasure as the ledger keeps it (docs/repository-format.md, "The erasure ledger"): the identifier (sealed in the
/// repository, never in the evidence log), when, the reference, and how it was erased, so a replay does the same
/// even after cairn.yaml changed.
/// </summary>
public sealed record ErasureEntry(int Version, string Database, string Subject, DateTimeOffset Time, string? Reference, string SubjectHash, ErasureSpec Spec);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ErasureEntry))]
internal sealed partial class ErasureJson : JsonSerializerContext;

/// <summary>The ledger's entries of one database: appended by erase, read by every restore.</summary>
public static class ErasureLedgerEntries
{
    public const int Version = 1;

    public static async Task<string> AppendAsync(Repository.Repository repo, ErasureEntry entry, CancellationToken ct)
        => await ErasureLedger.AppendAsync(repo, entry.Database, JsonSerializer.SerializeToUtf8Bytes(entry, ErasureJson.Default.ErasureEntry), ct).ConfigureAwait(false);

    /// <summary>Every entry of <paramref name="database"/>, oldest first; an entry that does not parse or names another database is damage.</summary>
    public static async Task<List<ErasureEntry>> ReadAsync(Repository.Repository repo, string database, CancellationToken ct)
    {
        var result = new List<ErasureEntry>();
        foreach (var (name, bytes) in await ErasureLedger.ReadAsync(repo, database, ct).ConfigureAwait(false))
        {
            ErasureEntry? e;
            try
            {
                e = JsonSerializer.Deserialize(bytes, ErasureJson.Default.ErasureEntry);
            }
            catch (JsonException ex)
            {
                throw new DataDamagedException($"ledger entry {name} is not an erasure entry: {ex.Message}", ex);
            }
            if (e is null || e.Database != database || e.Version != Version || e.Spec is null || string.IsNullOrEmpty(e.Subject))
            {
                throw new DataDamagedException($"ledger entry {name} is not a version {Version} erasure entry of {database}");
            }
            result.Add(e);
        }
        return result;
    }

    /// <summary>The spec an erasure of <paramref name="config"/> runs.</summary>
    public static ErasureSpec SpecOf(ErasureConfig config) => new(config.Subject.Table.Schema, config.Subject.Table.Name, config.Subject.Key,
        [.. config.Delete.Select(d => new NamedDelete(d.Table.Schema, d.Table.Name, d.Column))],
        [.. config.Anonymize.Select(a => new NamedAnonymize(a.Table.Schema, a.Table.Name, a.MatchColumn, a.Set, a.RemoveJsonKeys))],
        config.Function?.Schema, config.Function?.Name);
}
