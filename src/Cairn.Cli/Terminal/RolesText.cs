using System.Text.Json.Nodes;
using Cairn.PostgreSql.Logical;

namespace Cairn.Cli.Terminal;

/// <summary>How restores and drills show the roles they created: lines, JSON, and one string for the evidence record.</summary>
internal static class RolesText
{
    public static IEnumerable<string> Lines(IReadOnlyList<CreatedRole> roles) => roles.Select(r => "created role " + Describe(r));

    public static string Summary(IReadOnlyList<CreatedRole> roles) => roles.Count == 0 ? "none" : string.Join(" | ", roles.Select(Describe));

    public static JsonArray Json(IReadOnlyList<CreatedRole> roles) => new([.. roles.Select(r => (JsonNode)new JsonObject
    {
        ["name"] = r.Name,
        ["attributes"] = new JsonArray([.. r.Attributes.Select(a => (JsonNode?)JsonValue.Create(a))]),
        ["member_of"] = new JsonArray([.. r.MemberOf.Select(a => (JsonNode?)JsonValue.Create(a))]),
        ["withheld"] = new JsonArray([.. r.Withheld.Select(a => (JsonNode?)JsonValue.Create(a))]),
    })]);

    private static string Describe(CreatedRole r)
    {
        var text = $"{Catalog.Display(r.Name)}: {string.Join(", ", r.Attributes)}";
        if (r.MemberOf.Count > 0)
        {
            text += $"; member of {string.Join(", ", r.MemberOf.Select(Catalog.Display))}";
        }
        if (r.Withheld.Count > 0)
        {
            text += $"; withheld: {string.Join(", ", r.Withheld)} (pass --with-role-attributes to grant them)";
        }
        return text;
    }
}
