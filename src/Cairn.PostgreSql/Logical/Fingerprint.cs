using System.Text.Json.Serialization;

namespace Cairn.PostgreSql.Logical;

/// <summary>One table's facts at backup time, taken in the same snapshot pg_dump saw.</summary>
public sealed record TableFingerprint
{
    public string Schema { get; init; } = "";
    public string Name { get; init; } = "";
    public string Kind { get; init; } = "table";
    public long Rows { get; init; }

    /// <summary>Order-independent content hash (sum of 64-bit prefixes of md5(row::text), as decimal), when asked for.</summary>
    public string? ContentHash { get; init; }

    [JsonIgnore]
    public string QualifiedName => $"{Schema}.{Name}";
}

/// <summary>The fingerprint of a logical backup: what a restore is checked against.</summary>
public sealed record Fingerprint
{
    public int Version { get; init; } = 1;
    public string Database { get; init; } = "";
    public DateTimeOffset BackupTime { get; init; }
    public int ServerVersionNum { get; init; }
    public string ServerVersion { get; init; } = "";
    public string Snapshot { get; init; } = "";
    public string Mode { get; init; } = "rows";
    public string Encoding { get; init; } = "UTF8";
    public string? Owner { get; init; }
    public List<TableFingerprint> Tables { get; init; } = [];
    public List<string> Extensions { get; init; } = [];

    /// <summary>Foreign keys (schema.table.constraint) at backup time, so a restored copy can be checked for all of them.</summary>
    public List<string> ForeignKeys { get; init; } = [];

    /// <summary>Values of the configured SQL checks that expect "= fingerprint", evaluated in the backup's snapshot.</summary>
    public Dictionary<string, string>? CheckValues { get; init; }

    /// <summary>Saturates instead of overflowing: a stored fingerprint is input, and its counts are checked non-negative (<see cref="Problem"/>).</summary>
    public long TotalRows => Tables.Aggregate(0L, (sum, t) => t.Rows > long.MaxValue - sum ? long.MaxValue : sum + Math.Max(0, t.Rows));

    /// <summary>
    /// The stored form made whole: a field an older Cairn did not write (foreign_keys, extensions) is read as empty,
    /// since the JSON source generator leaves an absent init-only property null.
    /// </summary>
    public Fingerprint Normalised() => this with
    {
        Database = Database ?? "",
        ServerVersion = ServerVersion ?? "",
        Snapshot = Snapshot ?? "",
        Mode = Mode ?? "rows",
        Encoding = Encoding ?? "UTF8",
        Extensions = Extensions ?? [],
        ForeignKeys = ForeignKeys ?? [],
    };

    /// <summary>What makes a stored fingerprint unusable (no tables list, a null or unnamed entry, a negative count), or null when it is whole.</summary>
    public string? Problem()
    {
        if (Tables is null)
        {
            return "it has no tables list";
        }
        if (Tables.Any(t => t is null || t.Schema is null || t.Name is null || t.Rows < 0))
        {
            return "a table entry is null, unnamed or has a negative row count";
        }
        if ((Extensions?.Any(e => e is null) ?? false) || (ForeignKeys?.Any(k => k is null) ?? false) || (CheckValues is not null && CheckValues.Values.Any(v => v is null)))
        {
            return "an extension, foreign key or check value is null";
        }
        return null;
    }
}
