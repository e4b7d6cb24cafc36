using System.Text.Json.Nodes;
using Cairn.PostgreSql.Programs;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>cairn.yaml's <c>compression: zstd:N</c> on a real server: the level changes what a physical backup stores, and the backup restores and verifies.</summary>
public class PhysicalCompressionTests
{
    [Fact]
    public async Task A_physical_backup_at_zstd_19_stores_fewer_bytes_than_at_zstd_1_and_restores_passing_pg_verifybackup()
    {
        await using var c = await ArchivingCluster.StartAsync(extraYaml: "    compression: zstd:19\n");
        // The catalogs go into the repository first, so each later backup adds (almost) only the notes table.
        var (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--json");
        Assert.True(code == 0, err);

        // ~13 MB of rows of 8 fields, each one of 4 words: stronger zstd levels find longer matches in earlier rows.
        async Task FillAsync(double seed) => await c.Server.ExecuteAsync($"""
            SELECT setseed({seed.ToString(System.Globalization.CultureInfo.InvariantCulture)});
            DROP TABLE IF EXISTS notes;
            CREATE TABLE notes (id int, body text);
            INSERT INTO notes SELECT g, (SELECT string_agg(substr(md5((k * 4 + floor(random() * 4))::text), 1, 5 + k % 5), ',') FROM generate_series(0, 7) k WHERE g > 0) FROM generate_series(1, 150000) g;
            CHECKPOINT;
            """);
        await FillAsync(0.25);
        (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--full", "--json");
        Assert.True(code == 0, err);
        var strong = JsonNode.Parse(json)!;

        // The same kind of rows, other content (so nothing deduplicates), at zstd:1.
        await FillAsync(0.75);
        await c.WriteConfigAsync(withDataDirectory: true, "    compression: zstd:1\n");
        (code, json, err) = await c.Cli.RunAsync("backup", "app", "--physical", "--full", "--json");
        Assert.True(code == 0, err);
        var weak = JsonNode.Parse(json)!;
        var strongBytes = strong["added_bytes"]!.GetValue<long>();
        var weakBytes = weak["added_bytes"]!.GetValue<long>();
        Assert.True(strongBytes > 1_000_000, strong.ToJsonString());
        Assert.True(weakBytes > strongBytes * 1.15, $"zstd:1 must store clearly more than zstd:19: {weakBytes} vs {strongBytes} bytes added");

        // The zstd:19 backup reads back bit for bit: PostgreSQL's pg_verifybackup checks every file against the manifest.
        await c.ArchiveAllAsync();
        var target = c.Dir.File("restored");
        (code, json, err) = await c.Cli.RunAsync("restore", "app", "--physical", "--snapshot", strong["snapshot_id"]!.GetValue<string>()[..8], "--target", "immediate", "--to", target, "--json");
        Assert.True(code == 0, json + err);
        var verify = await PgProcess.RunAsServerUserAsync(c.Server.Binaries["pg_verifybackup"], ["--no-parse-wal", target], null, default);
        Assert.True(verify.ExitCode == 0, verify.StandardOutput + verify.StandardError);
        (code, json, err) = await c.Cli.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, json + err);
    }
}
