using System.Text.Json;
using System.Text.Json.Serialization;

namespace Cairn.Operations.Reports;

/// <summary>The control mapping file (controls.json): rows of framework, control, title, report section and what it shows.</summary>
public sealed record ControlFile(IReadOnlyList<ControlRow> Controls);

/// <summary>The report's JSON form (snake_case), source-generated so the NativeAOT binary needs no reflection.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
[JsonSerializable(typeof(ComplianceReport))]
[JsonSerializable(typeof(ControlFile))]
internal sealed partial class ReportJson : JsonSerializerContext;

/// <summary>The control mapping, read from the embedded controls.json (data, not code: add a row there).</summary>
public static class ControlMapping
{
    public static IReadOnlyList<ControlRow> Load()
    {
        using var stream = typeof(ControlMapping).Assembly.GetManifestResourceStream("Cairn.Operations.Reports.controls.json")
            ?? throw new InvalidOperationException("the control mapping (controls.json) is missing from the build");
        return JsonSerializer.Deserialize(stream, ReportJson.Default.ControlFile)?.Controls ?? [];
    }
}

/// <summary>The report as JSON, and back.</summary>
public static class ReportSerializer
{
    public static string ToJson(ComplianceReport report) => JsonSerializer.Serialize(report, ReportJson.Default.ComplianceReport);

    public static ComplianceReport FromJson(string json) => JsonSerializer.Deserialize(json, ReportJson.Default.ComplianceReport)
        ?? throw new FormatException("the report's data is empty");
}
