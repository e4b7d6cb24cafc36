using System.Text.Json.Serialization;
using Cairn.PostgreSql.Logical;

namespace Cairn.Operations.Logical;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Fingerprint))]
internal sealed partial class FingerprintJson : JsonSerializerContext;
