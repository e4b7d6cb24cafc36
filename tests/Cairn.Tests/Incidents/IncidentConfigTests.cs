using Cairn.Operations;
using Cairn.Operations.Configuration;
using Cairn.Operations.Incidents;
using Cairn.PostgreSql.Connections;

namespace Cairn.Tests.Incidents;

/// <summary>databases.X.incident: refused when it could not be undone or names no step; configured steps land where they say.</summary>
public class IncidentConfigTests
{
    private static CairnConfig Parse(string incident) => CairnConfig.Parse($"databases:\n  app:\n    connection: \"postgresql://u@h/app\"\n    incident:\n{incident}", "cairn.yaml");

    [Theory]
    [InlineData("      maintenance: hook\n      hook: \"stop-postgrest\"\n", "lift_hook")]
    [InlineData("      maintenance: revoke_connect\n", "revoke_connect: [anon, authenticated]")]
    [InlineData("      maintenance: pause\n", "connection_limit, revoke_connect or hook")]
    [InlineData("      hooks: [{ name: page, after: nowhere, run: \"true\" }]\n", "after: 'nowhere' names no step")]
    [InlineData("      manual: [{ name: assess, after: isolate, text: \"x\" }]\n", "not a built-in step's name")]
    [InlineData("      maintenace: connection_limit\n", "unknown key 'databases.app.incident.maintenace'")]
    public void A_section_that_could_not_be_run_or_undone_is_refused_with_the_fix(string incident, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => Parse(incident));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("cairn.yaml:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Configured_steps_go_after_the_step_they_name_in_the_order_written_and_only_into_runbooks_that_have_it()
    {
        var c = Parse("      revoke_connect: [anon]\n      hooks:\n        - { name: pause-api, after: isolate, run: \"true\" }\n        - { name: page, after: isolate, run: \"true\" }\n      manual: [{ name: legal, after: harden, text: \"call legal\" }]\n");
        var db = new DatabaseTarget("app", PgConnection.Parse("postgresql://u@h/app"), c.Databases["app"]);
        Assert.Equal(MaintenanceMode.RevokeConnect, c.Databases["app"].Incident.Maintenance);

        var breach = IncidentRunbooks.Plan(IncidentType.Breach, db, executeSwap: false).Select(s => s.Name).ToList();
        var corruption = IncidentRunbooks.Plan(IncidentType.Corruption, db, executeSwap: false).Select(s => s.Name).ToList();

        Assert.Equal(["isolate", "pause-api", "page", "preserve", "forensics", "assess", "communicate", "notify", "recover", "verify", "swap", "harden", "legal", "resume"], breach);
        Assert.Equal(["assess", "preserve", "recover", "verify", "swap", "resume"], corruption);
    }
}
