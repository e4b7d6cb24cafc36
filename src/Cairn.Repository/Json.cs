using System.Text.Json.Serialization;
using Cairn.Repository.Crypto;
using Cairn.Repository.Locks;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;

namespace Cairn.Repository;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(KeyFileData))]
[JsonSerializable(typeof(RepositoryConfig))]
[JsonSerializable(typeof(IndexFile))]
[JsonSerializable(typeof(Manifest))]
[JsonSerializable(typeof(SnapshotIndexFile))]
[JsonSerializable(typeof(WalSummaryFile))]
[JsonSerializable(typeof(LockData))]
[JsonSerializable(typeof(Pin))]
internal sealed partial class RepositoryJson : JsonSerializerContext;
