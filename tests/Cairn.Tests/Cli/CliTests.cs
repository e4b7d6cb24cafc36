using System.Diagnostics;
using System.Text.Json;
using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.Tests.Support;

namespace Cairn.Tests.Cli;

public class CliTests
{
    private static (CliContext Ctx, StringWriter Out, StringWriter Err) Context(Dictionary<string, string> env)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var ctx = new CliContext(new CliConsole(o, e, false, false), TimeProvider.System, k => env.GetValueOrDefault(k));
        return (ctx, o, e);
    }

    [Fact]
    public async Task Help_lists_every_command_and_the_passphrase_sources()
    {
        var (ctx, o, _) = Context([]);
        Assert.Equal(0, await CairnCli.RunAsync(["--help"], ctx));
        var help = o.ToString();
        foreach (var word in new[] { "init", "key", "repo", "verify", "prune", "unlock", "CAIRN_PASSPHRASE_FILE", "exit-codes" })
        {
            Assert.Contains(word, help, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Missing_repository_option_names_the_fix()
    {
        var (ctx, _, e) = Context([]);
        Assert.Equal(ExitCodes.Usage, await CairnCli.RunAsync(["repo", "ls"], ctx));
        Assert.Contains("--repo", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_passphrase_without_a_terminal_is_a_clear_error()
    {
        using var dir = new TempDir();
        var (ctx, _, e) = Context(new() { ["CAIRN_REPOSITORY"] = dir.File("r") });
        Assert.Equal(ExitCodes.Usage, await CairnCli.RunAsync(["init"], ctx));
        Assert.Contains("CAIRN_PASSPHRASE_FILE", e.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(dir.File("r")) && Directory.EnumerateFileSystemEntries(dir.File("r")).Any());
    }

    [Fact]
    public async Task Full_cycle_through_the_cli_with_json_and_exit_codes()
    {
        using var dir = new TempDir();
        var passFile = dir.File("pass");
        await File.WriteAllTextAsync(passFile, "pw-from-file\n");
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE_FILE"] = passFile };
        async Task<(int, string, string)> Run(params string[] a)
        {
            var (ctx, o, e) = Context(env);
            var code = await CairnCli.RunAsync(a, ctx);
            return (code, o.ToString(), e.ToString());
        }
        Assert.Equal(0, (await Run("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Item1);
        Assert.Equal(ExitCodes.AlreadyExists, (await Run("init")).Item1);
        var input = dir.File("in.bin");
        await File.WriteAllBytesAsync(input, TestData.Rows(3_000_000, 1));
        var (code, json, _) = await Run("repo", "put", "data.bin", input, "--json");
        Assert.Equal(0, code);
        using (var doc = JsonDocument.Parse(json))
        {
            Assert.Equal(3_000_000, doc.RootElement.GetProperty("size").GetInt64());
            Assert.True(doc.RootElement.GetProperty("added_bytes").GetInt64() > 0);
        }
        var (_, lsJson, _) = await Run("repo", "ls", "--json");
        using (var doc = JsonDocument.Parse(lsJson))
        {
            Assert.Equal("data.bin", doc.RootElement[0].GetProperty("name").GetString());
        }
        Assert.Equal(0, (await Run("repo", "get", "data.bin", dir.File("out.bin"))).Item1);
        Assert.Equal(await File.ReadAllBytesAsync(input), await File.ReadAllBytesAsync(dir.File("out.bin")));
        Assert.Equal(0, (await Run("verify", "--read-data-subset", "50%")).Item1);
        Assert.Equal(ExitCodes.NotFound, (await Run("repo", "get", "nope", dir.File("x"))).Item1);
        Assert.False(File.Exists(dir.File("x")));

        env["CAIRN_PASSPHRASE_FILE"] = dir.File("missing");
        Assert.Equal(ExitCodes.Usage, (await Run("repo", "ls")).Item1);
        env.Remove("CAIRN_PASSPHRASE_FILE");
        env["CAIRN_PASSPHRASE"] = "wrong";
        var (wcode, _, werr) = await Run("repo", "ls", "--json");
        Assert.Equal(ExitCodes.WrongPassphrase, wcode);
        using (var doc = JsonDocument.Parse(werr))
        {
            Assert.Equal("error", doc.RootElement.GetProperty("message_type").GetString());
        }
        env["CAIRN_PASSPHRASE"] = "pw-from-file";

        // Damage a pack: verify names it and exits 5; get refuses to write wrong bytes.
        var pack = Directory.EnumerateFiles(Path.Combine(dir.File("repo"), "data"), "*", SearchOption.AllDirectories).First();
        var bytes = await File.ReadAllBytesAsync(pack);
        bytes[100] ^= 0xFF;
        await File.WriteAllBytesAsync(pack, bytes);
        var (vcode, vout, _) = await Run("verify", "--read-data", "--json");
        Assert.Equal(ExitCodes.Damaged, vcode);
        Assert.Contains(Path.GetFileName(pack), vout, StringComparison.Ordinal);
        File.Delete(dir.File("out.bin"));
        Assert.Equal(ExitCodes.Damaged, (await Run("repo", "get", "data.bin", dir.File("out.bin"))).Item1);
        Assert.False(File.Exists(dir.File("out.bin")));
    }

    [Fact]
    public async Task Key_add_and_remove_through_the_cli()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo"), ["CAIRN_PASSPHRASE"] = "one" };
        async Task<(int, string, string)> Run(params string[] a)
        {
            var (ctx, o, e) = Context(env);
            var code = await CairnCli.RunAsync(a, ctx);
            return (code, o.ToString(), e.ToString());
        }
        Assert.Equal(0, (await Run("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Item1);
        env["CAIRN_NEW_PASSPHRASE"] = "two";
        Assert.Equal(0, (await Run("key", "add", "--label", "ops", "--kdf-memory-mib", "8", "--kdf-iterations", "1")).Item1);
        var (_, list, _) = await Run("key", "list", "--json");
        using var doc = JsonDocument.Parse(list);
        Assert.Equal(2, doc.RootElement.GetArrayLength());
        var current = doc.RootElement.EnumerateArray().First(k => k.GetProperty("current").GetBoolean()).GetProperty("id").GetString()!;
        Assert.Equal(ExitCodes.Usage, (await Run("key", "remove", current[..8])).Item1);
        env["CAIRN_PASSPHRASE"] = "two";
        Assert.Equal(0, (await Run("key", "remove", current[..8])).Item1);
        env["CAIRN_PASSPHRASE"] = "one";
        Assert.Equal(ExitCodes.WrongPassphrase, (await Run("repo", "ls")).Item1);
    }
}
