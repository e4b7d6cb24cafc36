using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Repository;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Security;

/// <summary>
/// Downloads are written to a temporary name beside the target and renamed at the end. Cairn runs as root and
/// the target folder may be writable by others (a shared /tmp, the server's pg_wal): a link planted under the
/// temporary name must be removed, never followed, or root writes the download through it.
/// </summary>
public class PlantedLinkTests
{
    [Fact]
    public async Task Repo_get_into_a_folder_with_a_link_planted_at_its_temporary_name_leaves_the_link_target_untouched()
    {
        using var dir = new TempDir();
        var cli = await CliRunner.WithRepositoryAsync(dir);
        await File.WriteAllTextAsync(dir.File("in"), "the stored contents");
        Assert.Equal(0, (await cli.RunAsync("repo", "put", "n", dir.File("in"))).Code);
        Directory.CreateDirectory(dir.File("shared"));
        await File.WriteAllTextAsync(dir.File("canary"), "canary");
        File.CreateSymbolicLink(dir.File("shared/.out.cairn-partial"), dir.File("canary"));

        var (code, _, err) = await cli.RunAsync("repo", "get", "n", dir.File("shared/out"));

        Assert.True(code == 0, err);
        Assert.Equal("canary", await File.ReadAllTextAsync(dir.File("canary")));
        Assert.Equal("the stored contents", await File.ReadAllTextAsync(dir.File("shared/out")));
        Assert.Null(new FileInfo(dir.File("shared/out")).LinkTarget);
    }

    [Fact]
    public async Task An_archived_file_fetched_where_a_link_is_planted_at_its_temporary_name_leaves_the_link_target_untouched()
    {
        using var dir = new TempDir();
        using var repo = await Repo.InitAsync(new FileSystemStorage(dir.File("repo")), TestData.Passphrase, TestData.SmallRepo, TimeProvider.System, default);
        var segment = new byte[16 * 1024];
        Random.Shared.NextBytes(segment);
        await NamedFiles.PutAsync(repo, "app@000000010000000000000001", segment, default);
        Directory.CreateDirectory(dir.File("pg_wal"));
        await File.WriteAllTextAsync(dir.File("canary"), "canary");
        var target = dir.File("pg_wal/RECOVERYXLOG");
        File.CreateSymbolicLink(target + ".cairn-partial", dir.File("canary"));

        await NamedFiles.GetToFileAsync(repo, "app@000000010000000000000001", target, default);

        Assert.Equal("canary", await File.ReadAllTextAsync(dir.File("canary")));
        Assert.Equal(segment, await File.ReadAllBytesAsync(target));
        Assert.Null(new FileInfo(target).LinkTarget);
    }

    [Fact]
    public async Task Evidence_export_into_a_folder_with_planted_links_writes_its_files_and_leaves_the_link_targets_untouched()
    {
        using var dir = new TempDir();
        var log = new EvidenceLog(dir.File("evidence"), null, TimeProvider.System);
        log.Init("test.example/links");
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app" }, "cairn test");
        var export = dir.File("export");
        Directory.CreateDirectory(export);
        await File.WriteAllTextAsync(dir.File("canary"), "canary");
        foreach (var name in new[] { "records.jsonl", "checkpoint.txt", "checkpoint.sig", "verify.py" })
        {
            File.CreateSymbolicLink(Path.Combine(export, name), dir.File("canary"));
        }
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });

        var (code, output, err) = await cli.RunAsync("evidence", "export", "--to", export);

        Assert.True(code == 0, output + err);
        Assert.Equal("canary", await File.ReadAllTextAsync(dir.File("canary")));
        Assert.Null(new FileInfo(Path.Combine(export, "records.jsonl")).LinkTarget);
        Assert.Contains("\"kind\":\"backup\"", await File.ReadAllTextAsync(Path.Combine(export, "records.jsonl")), StringComparison.Ordinal);
    }
}
