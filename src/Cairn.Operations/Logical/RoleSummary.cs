using Cairn.PostgreSql.Logical;

namespace Cairn.Operations.Logical;

/// <summary>How a restore's created roles read: one line each, and one string for the evidence record.</summary>
public static class RoleSummary
{
    /// <summary>The record's <c>roles_created</c>: "none", or each role described, separated by " | ".</summary>
    public static string Of(IReadOnlyList<CreatedRole> roles) => roles.Count == 0 ? "none" : string.Join(" | ", roles.Select(Describe));

    /// <summary>A role, its attributes, its memberships and what was withheld (and how to grant it).</summary>
    public static string Describe(CreatedRole r)
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
