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

    public long TotalRows => Tables.Sum(t => t.Rows);
}
