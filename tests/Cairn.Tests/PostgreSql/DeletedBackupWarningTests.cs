using System.Text.Json.Nodes;
using Cairn.Operations.Demo;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>A restore says so when the verified evidence knows newer backups than the repository still holds.</summary>
public class DeletedBackupWarningTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    [Fact]
    public async Task Restore_warns_when_the_newest_backups_manifest_was_deleted()
    {
        var db = await pg.CreateDatabaseAsync("deleted", DemoSchema.Sql(50));
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        Assert.Equal(0, (await cli.RunAsync("backup", pg.Server.Url(db))).Code);
        var (code, json, err) = await cli.RunAsync("backup", pg.Server.Url(db), "--json");
        Assert.True(code == 0, err);
        var newest = JsonNode.Parse(json)!["snapshot_id"]!.GetValue<string>();

        // All snapshots present: no warning.
        (code, var output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", pg.NewName("r"));
        Assert.True(code == 0, output + err);
        Assert.DoesNotContain("newer than any snapshot", err, StringComparison.Ordinal);

        Assert.Equal(0, (await cli.RunAsync("repo", "rm", newest)).Code);
        (code, output, err) = await cli.RunAsync("restore", pg.Server.Url(db), "--to-database", pg.NewName("r"));
        Assert.True(code == 0, output + err);
        Assert.Contains("1 successful backup(s)", err, StringComparison.Ordinal);
        Assert.Contains(newest[..8], err, StringComparison.Ordinal);
    }
}
