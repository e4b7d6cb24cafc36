using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Cairn.Cli;
using Cairn.Operations.Demo;
using Cairn.Operations.Logical;
using Cairn.PostgreSql.Logical;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>Claims users rely on, each tested through the real CLI and real components.</summary>
public class ClaimTests(PostgresFixture pg) : IClassFixture<PostgresFixture>
{
    private async Task<(CliRunner Cli, TempDir Dir, string Db)> DatabaseAsync(string sql)
    {
        var db = await pg.CreateDatabaseAsync("claim", sql);
        var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), $"databases:\n  app:\n    connection: \"{pg.Server.Url(db)}\"\n");
        cli.Env["CAIRN_CONFIG"] = dir.File("cairn.yaml");
        return (cli, dir, db);
    }

    /// <summary>roles.json as plain text: System.Text.Json escapes '+' (\u002B), which would hide a hash from a substring search.</summary>
    private static async Task<string> RolesTextAsync(TempDir dir)
        => JsonNode.Parse(await ReadItemAsync(dir, LogicalBackupOperation.RolesItem))!.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });

    private static async Task<byte[]> ReadItemAsync(TempDir dir, string item)
    {
        using var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default);
        var snap = (await repo.ListSnapshotsAsync(default)).Last();
        var ms = new MemoryStream();
        await repo.ReadItemAsync(snap.Manifest.Items.Single(i => i.Name == item), ms, null, default);
        return ms.ToArray();
    }

    [Fact]
    public async Task Restore_exits_11_through_the_cli_when_the_restored_rows_differ_from_the_fingerprint()
    {
        var (cli, dir, _) = await DatabaseAsync(DemoSchema.Sql(30));
        using var _d = dir;
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        // The seam: a new snapshot of the same dump whose fingerprint says public.orders had one row more than the
        // dump holds (what a dump that lost a row, or a fingerprint taken outside pg_dump's snapshot, would look like).
        using (var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            var snap = (await repo.ListSnapshotsAsync(default)).Last();
            var fp = await LogicalSnapshots.ReadFingerprintAsync(repo, snap, default);
            var tampered = fp with { Tables = [.. fp.Tables.Select(t => t.Schema == "public" && t.Name == "orders" ? t with { Rows = t.Rows + 1 } : t)] };
            await using var w = repo.BeginWrite();
            foreach (var item in snap.Manifest.Items.Where(i => i.Name != LogicalBackupOperation.FingerprintItem))
            {
                w.AddExistingItem(item);
            }
            await w.AddStreamAsync(LogicalBackupOperation.FingerprintItem, new MemoryStream(JsonSerializer.SerializeToUtf8Bytes(tampered, FingerprintJson.Default.Fingerprint)), null, "file", null, default);
            await w.CommitAsync(snap.Manifest.Name, snap.Manifest.Kind, snap.Manifest.Meta, default);
        }
        (code, var output, err) = await cli.RunAsync("restore", "app", "--to-database", pg.NewName("mismatch"));
        Assert.True(code == ExitCodes.RestoreCheckFailed, $"exit {code}: {output} {err}");
        Assert.Contains("public.orders", output + err, StringComparison.Ordinal);
        var (_, list, _) = await cli.RunAsync("evidence", "list", "--kind", "restore", "--json");
        Assert.Equal("fail", JsonNode.Parse(list)!.AsArray()[^1]!["result"]!.GetValue<string>());
    }

    [Fact]
    public async Task Role_password_hashes_are_stored_only_with_with_role_passwords()
    {
        var role = pg.NewName("pw_owner");
        var (cli, dir, db) = await DatabaseAsync($"CREATE ROLE {role} LOGIN PASSWORD 'correct horse battery'; CREATE TABLE t (id int); ALTER TABLE t OWNER TO {role}; INSERT INTO t VALUES (1)");
        using var _d = dir;
        var (code, _, err) = await cli.RunAsync("backup", "app");
        Assert.True(code == 0, err);
        var roles = await RolesTextAsync(dir);
        Assert.Contains(role, roles, StringComparison.Ordinal);
        Assert.DoesNotContain("SCRAM-SHA-256$", roles, StringComparison.Ordinal);
        Assert.DoesNotContain("correct horse", roles, StringComparison.Ordinal);
        var hash = await pg.Server.ScalarAsync<string>($"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'");
        Assert.DoesNotContain(hash, roles, StringComparison.Ordinal);

        // The control: with the flag the hash is there, so the search above can find one.
        (code, _, err) = await cli.RunAsync("backup", "app", "--with-role-passwords");
        Assert.True(code == 0, err);
        Assert.Contains(hash, await RolesTextAsync(dir), StringComparison.Ordinal);
        _ = db;
    }

    [Fact]
    public async Task The_fingerprint_is_taken_in_pg_dumps_snapshot_while_rows_keep_arriving()
    {
        var (cli, dir, db) = await DatabaseAsync("CREATE TABLE t (id bigserial PRIMARY KEY, pad text); INSERT INTO t (pad) SELECT repeat('x', 200) FROM generate_series(1, 20000)");
        using var _d = dir;
        using var stop = new CancellationTokenSource();
        var inserted = 0;
        var inserter = Task.Run(async () =>
        {
            await using var c = new Npgsql.NpgsqlConnection(Cairn.PostgreSql.Connections.PgConnection.Parse(pg.Server.Url(db)).NpgsqlConnectionString());
            await c.OpenAsync();
            while (!stop.IsCancellationRequested)
            {
                await using var cmd = new Npgsql.NpgsqlCommand("INSERT INTO t (pad) VALUES ('during the backup')", c);
                await cmd.ExecuteNonQueryAsync();
                Interlocked.Increment(ref inserted);
            }
        });
        while (Volatile.Read(ref inserted) < 50)
        {
            await Task.Delay(10);
        }
        var before = Volatile.Read(ref inserted);
        var (code, json, err) = await cli.RunAsync("backup", "app", "--json");
        var during = Volatile.Read(ref inserted) - before;
        await stop.CancelAsync();
        await inserter;
        Assert.True(code == 0, err);
        Assert.True(during >= 20, $"only {during} rows were inserted while the backup ran: the test proves nothing");

        var fp = JsonSerializer.Deserialize(await ReadItemAsync(dir, LogicalBackupOperation.FingerprintItem), FingerprintJson.Default.Fingerprint)!;
        var fpRows = fp.Tables.Single(t => t.Name == "t").Rows;
        var live = await pg.Server.ScalarAsync<long>("SELECT count(*) FROM t", db);
        Assert.True(fpRows < live, $"fingerprint {fpRows}, live {live}");
        Assert.True(fpRows > 20050 - 1, $"fingerprint {fpRows}");

        // What the dump holds, counted independently on a restored copy, is exactly the fingerprint.
        var copy = pg.NewName("snapcopy");
        (code, _, err) = await cli.RunAsync("restore", "app", "--to-database", copy);
        Assert.True(code == 0, err);
        Assert.Equal(fpRows, await pg.Server.ScalarAsync<long>("SELECT count(*) FROM t", copy));
        Assert.Equal(await pg.Server.ScalarAsync<long>("SELECT max(id) FROM t", copy), fpRows);
        _ = json;
    }

    /// <summary>Names, sizes, mtimes and modes of everything under a folder.</summary>
    private static List<string> Tree(string root) => [.. Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
        .Order(StringComparer.Ordinal)
        .Select(p => new FileInfo(p) is var f && f.Attributes.HasFlag(FileAttributes.Directory)
            ? $"{Path.GetRelativePath(root, p)}/ {File.GetUnixFileMode(p)} {Directory.GetLastWriteTimeUtc(p):O}"
            : $"{Path.GetRelativePath(root, p)} {f.Length} {File.GetUnixFileMode(p)} {f.LastWriteTimeUtc:O}")];

    [Fact]
    public async Task Prune_dry_run_writes_nothing_to_the_repository()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllBytesAsync(dir.File("a"), TestData.Rows(300_000, 1));
        await File.WriteAllBytesAsync(dir.File("b"), TestData.Rows(300_000, 2));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "a", dir.File("a"))).Code);
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "b", dir.File("b"))).Code);
        string first;
        using (var repo = await Repo.OpenAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TimeProvider.System, default))
        {
            first = (await repo.ListSnapshotsAsync(default)).Single(x => x.Manifest.Name == "a").Id;
        }
        Assert.Equal(0, (await cli.RunAsync("repo", "rm", first)).Code);
        var before = Tree(dir.File("repo"));
        await Task.Delay(20); // a write after this point would show in an mtime
        var (code, json, err) = await cli.RunAsync("prune", "--dry-run", "--json");
        Assert.True(code == 0, err);
        // Only the lock it took and removed shows, as the locks folder's own mtime; everything else, locks/ included, is as it was.
        static List<string> WithoutLocksMtime(List<string> tree) => [.. tree.Select(l => l.StartsWith("locks/ ", StringComparison.Ordinal) ? "locks/" : l)];
        Assert.Equal(WithoutLocksMtime(before), WithoutLocksMtime(Tree(dir.File("repo"))));
        // The control: the real prune has something to delete, and the comparison sees it.
        (code, _, err) = await cli.RunAsync("prune");
        Assert.True(code == 0, err);
        Assert.NotEqual(WithoutLocksMtime(before), WithoutLocksMtime(Tree(dir.File("repo"))));
        _ = json;
    }

    private static async Task<(int Code, string Output)> ShAsync(string folder, string command)
    {
        var psi = new ProcessStartInfo("/bin/sh", ["-c", command]) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await o + await e);
    }

    [Fact]
    public async Task An_auditor_checks_an_export_with_only_the_steps_verifying_md_gives_and_a_tampered_export_fails_them()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllBytesAsync(dir.File("a"), TestData.Rows(10_000, 1));
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "a", dir.File("a"))).Code);
        Assert.Equal(0, (await cli.RunAsync("verify")).Code);
        var export = dir.File("export");
        var (code, _, err) = await cli.RunAsync("evidence", "export", "--to", export);
        Assert.True(code == 0, err);

        // Exactly the commands of VERIFYING.md's sh blocks, one by one, with /bin/sh, openssl and python3: no Cairn.
        var guide = await File.ReadAllTextAsync(Path.Combine(export, "VERIFYING.md"));
        var commands = Regex.Matches(guide, "```sh\n(.*?)```", RegexOptions.Singleline).SelectMany(m => m.Groups[1].Value.Split('\n'))
            .Select(l => l.Split("  #")[0].Trim()).Where(l => l.Length > 0).ToList();
        // The guide's last line checks a compliance report against the export; this export has no report (ReportTests runs it).
        Assert.Equal(3, commands.Count);
        Assert.StartsWith("python3 verify.py report-", commands[2], StringComparison.Ordinal);
        Assert.StartsWith("openssl pkeyutl -verify", commands[0], StringComparison.Ordinal);
        Assert.Equal("python3 verify.py", commands[1]);
        var (c1, o1) = await ShAsync(export, commands[0]);
        Assert.True(c1 == 0, o1);
        Assert.Contains("Signature Verified Successfully", o1, StringComparison.Ordinal);
        var (c2, o2) = await ShAsync(export, commands[1]);
        Assert.True(c2 == 0, o2);
        var records = File.ReadAllLines(Path.Combine(export, "records.jsonl"));
        Assert.Equal(records.Length, Regex.Matches(o2, "^OK", RegexOptions.Multiline).Count(m => !o2[m.Index..].StartsWith("OK  pruning", StringComparison.Ordinal)));
        // The by-hand line: the first record's leaf hash, as proofs.json gives it.
        var byHand = Regex.Match(guide, "One record by hand: `([^`]+)`").Groups[1].Value;
        var (c3, o3) = await ShAsync(export, byHand);
        Assert.True(c3 == 0, o3);
        var proofs = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(export, "proofs.json")))!;
        Assert.Contains(proofs["proofs"]!.AsArray()[0]!["leaf_hash"]!.GetValue<string>(), o3, StringComparison.Ordinal);

        // A record changed after export: verify.py fails. A changed checkpoint body: openssl fails.
        records[0] = records[0].Replace("\"pass\"", "\"fail\"", StringComparison.Ordinal);
        await File.WriteAllLinesAsync(Path.Combine(export, "records.jsonl"), records);
        (c2, o2) = await ShAsync(export, commands[1]);
        Assert.True(c2 != 0, o2);
        var body = Path.Combine(export, "checkpoint-body.txt");
        var text = await File.ReadAllTextAsync(body);
        var lines = text.Split('\n');
        lines[1] = (long.Parse(lines[1], System.Globalization.CultureInfo.InvariantCulture) + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        await File.WriteAllTextAsync(body, string.Join('\n', lines));
        (c1, o1) = await ShAsync(export, commands[0]);
        Assert.True(c1 != 0, o1);

        // The log itself, tampered: evidence verify exits 5.
        var log = Directory.EnumerateFiles(dir.File("repo-evidence"), "*.jsonl", SearchOption.AllDirectories).First();
        var logText = await File.ReadAllTextAsync(log);
        await File.WriteAllTextAsync(log, logText.Replace("\"result\":\"pass\"", "\"result\":\"fail\"", StringComparison.Ordinal));
        (code, var output, err) = await cli.RunAsync("evidence", "verify");
        Assert.True(code == ExitCodes.Damaged, $"exit {code}: {output} {err}");
    }

    [Fact]
    public async Task A_missing_evidence_signing_key_exits_9_and_appends_nothing()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllBytesAsync(dir.File("a"), TestData.Rows(10_000, 1));
        File.Move(dir.File("repo-evidence.key"), dir.File("moved.key"));
        var logBefore = Directory.EnumerateFiles(dir.File("repo-evidence"), "*.jsonl", SearchOption.AllDirectories).Select(File.ReadAllText).ToList();
        var (code, output, err) = await cli.RunAsync("repo", "put", "a", dir.File("a"));
        Assert.True(code == ExitCodes.Evidence, $"exit {code}: {output} {err}");
        Assert.Equal(logBefore, Directory.EnumerateFiles(dir.File("repo-evidence"), "*.jsonl", SearchOption.AllDirectories).Select(File.ReadAllText).ToList());
    }
}
