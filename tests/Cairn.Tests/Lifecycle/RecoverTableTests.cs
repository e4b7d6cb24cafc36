using System.Globalization;
using System.Text.Json.Nodes;
using Cairn.Tests.Support;

namespace Cairn.Tests.Lifecycle;

/// <summary><c>recover --table T --at TIME</c> against a real point-in-time restore of archived WAL.</summary>
public class RecoverTableTests
{
    // orders references its profile by a plain column (no foreign key), so only the ledger keeps an erased subject's orders out.
    private const string Yaml = """
            erasure:
              subject: { table: public.profiles, key: id }
              delete: [ { table: public.orders, column: profile_id } ]

        """;

    [Fact]
    public async Task Recover_at_a_time_brings_back_rows_deleted_since_leaves_later_rows_alone_and_never_an_erased_subject()
    {
        await using var cluster = await ArchivingCluster.StartAsync(extraYaml: Yaml);
        var cli = cluster.Cli;
        await cluster.Server.ExecuteAsync("""
            CREATE TABLE profiles (id int PRIMARY KEY, email text NOT NULL);
            CREATE TABLE orders (id int PRIMARY KEY, profile_id int NOT NULL, amount int NOT NULL);
            INSERT INTO profiles SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 5) g;
            INSERT INTO orders SELECT g, 1 + g % 5, g FROM generate_series(1, 20) g;
            """);
        var (code, _, err) = await cli.RunAsync("backup", "app", "--physical");
        Assert.True(code == 0, err);
        // After the backup, before TIME: only the WAL holds these (order 101 is deleted later and must come back from it).
        await cluster.Server.ExecuteAsync("INSERT INTO orders VALUES (100, 3, 100), (101, 2, 101)");
        var at = (await cluster.Server.ScalarAsync<DateTime>("SELECT clock_timestamp()")).ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", CultureInfo.InvariantCulture) + "+00";
        await Task.Delay(1200);
        // After TIME: the accident (orders 1, 4, 101 of subjects 2 and 5), a new order, a changed amount, and subject 3 erased.
        await cluster.Server.ExecuteAsync("DELETE FROM orders WHERE id IN (1, 4, 101); INSERT INTO orders VALUES (200, 1, 200); UPDATE orders SET amount = -5 WHERE id = 5");
        (code, _, err) = await cli.RunAsync("erase", "app", "3", "--reference", "DSR-9");
        Assert.True(code == 0, err);
        Assert.Equal(0L, await cluster.Server.ScalarAsync<long>("SELECT count(*) FROM orders WHERE profile_id = 3"));
        await cluster.ArchiveAllAsync();
        var before = await cluster.Server.ScalarAsync<string>("SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders");

        // The dry run: the copy as of TIME compared with the live table, then dropped; nothing changes, nothing is recorded.
        (code, var json, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--dry-run", "--json");
        Assert.True(code == 0, json + err);
        var dry = JsonNode.Parse(json)!;
        Assert.Equal(3, dry["only_then"]!.GetValue<long>());
        Assert.Equal(1, dry["only_now"]!.GetValue<long>());
        Assert.Equal(1, dry["differ"]!.GetValue<long>());
        Assert.Equal(0, dry["merged"]!.GetValue<long>());
        Assert.True(dry["erased_rows"]!.GetValue<long>() >= 6, json);
        Assert.Equal(before, await cluster.Server.ScalarAsync<string>("SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders"));
        Assert.Equal(0L, await cluster.Server.ScalarAsync<long>("SELECT count(*) FROM pg_tables WHERE schemaname = 'cairn_recover'"));

        (code, json, err) = await cli.RunAsync("recover", "app", "--table", "public.orders", "--at", at, "--merge", "--json");
        Assert.True(code == 0, json + err);
        var run = JsonNode.Parse(json)!;
        Assert.Equal(3, run["merged"]!.GetValue<long>());
        Assert.Equal("\"cairn_recover\".\"public.orders\"", run["staging_table"]!.GetValue<string>());
        // Deleted since TIME: back, with their values as of TIME (101 existed only in the WAL).
        Assert.Equal("1:1,4:4,101:101", await cluster.Server.ScalarAsync<string>("SELECT string_agg(id || ':' || amount, ',' ORDER BY id) FROM orders WHERE id IN (1, 4, 101)"));
        // Written since TIME: untouched.
        Assert.Equal(200L, await cluster.Server.ScalarAsync<long>("SELECT amount::bigint FROM orders WHERE id = 200"));
        Assert.Equal(-5L, await cluster.Server.ScalarAsync<long>("SELECT amount::bigint FROM orders WHERE id = 5"));
        // The erased subject's orders existed at TIME and stay erased.
        Assert.Equal(0L, await cluster.Server.ScalarAsync<long>("SELECT count(*) FROM orders WHERE profile_id = 3"));
        Assert.Equal(0L, await cluster.Server.ScalarAsync<long>("SELECT count(*) FROM cairn_recover.\"public.orders\" WHERE profile_id = 3"));
        Assert.Equal(20L - 4 + 1 + 1, await cluster.Server.ScalarAsync<long>("SELECT count(*) FROM orders"));

        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "recover", "--json");
        var record = JsonNode.Parse(list)!.AsArray().Single()!;
        Assert.Equal("pitr", record["details"]!["source"]!.GetValue<string>());
        Assert.Equal(3, record["details"]!["inserted"]!.GetValue<long>());
        Assert.False(string.IsNullOrEmpty(record["details"]!["at"]?.GetValue<string>()), list);
    }

    [Fact]
    public async Task Recover_help_teaches_the_at_variant_with_an_example_and_its_sources()
    {
        using var dir = new TempDir();
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_EVIDENCE"] = dir.File("evidence") });
        var (code, help, err) = await cli.RunAsync("recover", "--help");
        Assert.True(code == 0, err);
        Assert.Contains("cairn recover app --table public.orders --at '2026-12-01 14:30:00+00' --dry-run", help, StringComparison.Ordinal);
        Assert.Contains("--from", help, StringComparison.Ordinal);
        Assert.Contains("logical (the newest logical backup before TIME plus the audit trail", help, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recover_at_refuses_bad_combinations_and_times_with_the_fix()
    {
        using var dir = new TempDir();
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_EVIDENCE"] = dir.File("evidence") });
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), "databases:\n  app:\n    connection: \"postgresql://postgres@/postgres?host=/nonexistent\"\n");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        var (code, _, err) = await cli.RunAsync("recover", "app", "--at", "2026-01-01 00:00:00+00");
        Assert.Equal(2, code);
        Assert.Contains("--at needs --table", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", "yesterday-ish");
        Assert.Equal(2, code);
        Assert.Contains("is not a time", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", "2026-01-01 00:00:00+00", "--from-audit", "--since", "1h");
        Assert.Equal(2, code);
        Assert.Contains("give one or the other", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", "2999-01-01 00:00:00+00");
        Assert.Equal(2, code);
        Assert.Contains("is not in the past", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("recover", "app", "--from-audit", "--since", "1h", "--from", "logical");
        Assert.Equal(2, code);
        Assert.Contains("--from belongs to --table T --at TIME", err, StringComparison.Ordinal);
        (code, _, err) = await cli.RunAsync("recover", "app", "--table", "orders", "--at", "2026-01-01 00:00:00+00", "--from", "wal");
        Assert.NotEqual(0, code);
        Assert.Contains("wal", err, StringComparison.Ordinal);
    }
}
