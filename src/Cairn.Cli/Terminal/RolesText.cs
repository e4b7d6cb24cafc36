using Cairn.Operations.Logical;
using Cairn.PostgreSql.Logical;

namespace Cairn.Cli.Terminal;

/// <summary>How restores and drills show the roles they created: lines, and rows for --json.</summary>
internal static class RolesText
{
    public static IEnumerable<string> Lines(IReadOnlyList<CreatedRole> roles) => roles.Select(r => "created role " + RoleSummary.Describe(r));

    public static List<RoleRow> Rows(IReadOnlyList<CreatedRole> roles) => [.. roles.Select(r => new RoleRow(r.Name, r.Attributes, r.MemberOf, r.Withheld))];
}
