using System.Text.Json.Serialization;

namespace Cairn.Cli;

public sealed record ErrorOutput(string MessageType, int Code, string Kind, string Message);

public sealed record PutOutput(string MessageType, string SnapshotId, string Name, long Size, long AddedBytes, long ChunksTotal, long ChunksNew, double Seconds, double MegabytesPerSecond);

public sealed record SnapshotRow(string Id, string ShortId, DateTimeOffset Time, string Kind, string Name, string Host, long Size, long StoredBytes, long AddedBytes, long DurationMs, int Items, Dictionary<string, string> Meta);

public sealed record KeyRow(string Id, bool Current, DateTimeOffset Created, string Host, string? Label, int KdfMemoryKib, int KdfIterations);

public sealed record FindingRow(string Kind, string Object, string Detail, IReadOnlyList<string> AffectedSnapshots, bool Damage);

public sealed record VerifyOutput(string MessageType, bool Ok, int Snapshots, int Indexes, int Packs, int PacksRead, long BytesRead, int Blobs, IReadOnlyList<FindingRow> Findings);

public sealed record PruneOutput(string MessageType, bool DryRun, int PacksTotal, int PacksDeleted, int PacksRepacked, int PacksWritten, long BytesDeleted, long BytesKept, int IndexesReplaced, int OrphanPacks, int TempFilesRemoved, IReadOnlyList<string> DeletedObjects);

public sealed record LockRow(string Id, string Host, int Pid, bool Exclusive, string Operation, DateTimeOffset Created, DateTimeOffset Refreshed, bool Stale, string? StaleReason);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ErrorOutput))]
[JsonSerializable(typeof(PutOutput))]
[JsonSerializable(typeof(List<SnapshotRow>))]
[JsonSerializable(typeof(List<KeyRow>))]
[JsonSerializable(typeof(VerifyOutput))]
[JsonSerializable(typeof(PruneOutput))]
[JsonSerializable(typeof(List<LockRow>))]
internal sealed partial class CliJson : JsonSerializerContext;
