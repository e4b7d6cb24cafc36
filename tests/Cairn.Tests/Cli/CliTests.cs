using System.CommandLine;
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

    /// <summary>Every command and subcommand of the real command tree, as the words a user types.</summary>
    private static List<(string[] Path, Command Command)> CommandTree()
    {
        var (ctx, _, _) = Context([]);
        var all = new List<(string[], Command)>();
        void Walk(string[] path, Command c)
        {
            // Hidden commands (the background halves of async WAL archiving and prefetch) are started by Cairn itself, not typed.
            foreach (var sub in c.Subcommands.Where(s => !s.Hidden))
            {
                string[] p = [.. path, sub.Name];
                all.Add((p, sub));
                Walk(p, sub);
            }
        }
        Walk([], CairnCli.Build(ctx));
        return all;
    }

    public static TheoryData<string> CommandPaths() => [.. CommandTree().Select(c => string.Join(' ', c.Path))];

    [Fact]
    public void The_command_tree_is_the_one_the_help_tests_walk()
    {
        // Guards the theory below: if the tree came back empty or flat, "every command has help" would prove nothing.
        var tree = CommandTree();
        Assert.True(tree.Count >= 30, $"only {tree.Count} commands found");
        Assert.Contains(tree, c => c.Path.Length == 2);
        Assert.Contains(tree, c => string.Join(' ', c.Path) == "evidence verify");
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public async Task Every_command_and_subcommand_has_help_that_says_what_it_does(string path)
    {
        var command = CommandTree().Single(c => string.Join(' ', c.Path) == path).Command;
        Assert.False(string.IsNullOrWhiteSpace(command.Description), $"'{path}' has no description");
        Assert.True(command.Description!.Trim().Length >= 15, $"'{path}' says too little about what it does: '{command.Description}'");
        foreach (var option in command.Options.Where(x => !x.Hidden && x.Name is not ("--help" or "-h" or "-?")))
        {
            Assert.False(string.IsNullOrWhiteSpace(option.Description), $"'{path}' option {option.Name} has no description");
        }
        foreach (var a in command.Arguments.Where(a => !a.Hidden))
        {
            Assert.False(string.IsNullOrWhiteSpace(a.Description), $"'{path}' argument {a.Name} has no description");
        }
        var (ctx, o, e) = Context([]);
        Assert.Equal(0, await CairnCli.RunAsync([.. path.Split(' '), "--help"], ctx));
        var help = o.ToString();
        Assert.Contains(command.Description.Trim().Split('\n')[0].Trim(), help, StringComparison.Ordinal);
        Assert.Contains($" {path}", help[help.IndexOf("Usage:", StringComparison.Ordinal)..], StringComparison.Ordinal);
        Assert.Empty(e.ToString());
    }

    [Fact]
    public async Task Root_help_matches_its_snapshot_and_names_every_command()
    {
        var (ctx, o, _) = Context([]);
        Assert.Equal(0, await CairnCli.RunAsync(["--help"], ctx));
        // The usage line names the program the runner hosts the CLI in (testhost); the user sees cairn.
        var help = System.Text.RegularExpressions.Regex.Replace(o.ToString().ReplaceLineEndings("\n"), "(?<=Usage:\n  )\\S+", "cairn");
        foreach (var (path, command) in CommandTree().Where(c => c.Path.Length == 1))
        {
            Assert.Contains($"  {path[0]} ", help, StringComparison.Ordinal);
        }
        foreach (var word in new[] { "CAIRN_PASSPHRASE_FILE", "docs/exit-codes.md", "130 interrupted" })
        {
            Assert.Contains(word, help, StringComparison.Ordinal);
        }
        // The root help is what a new user reads first: any change to it shows up here, on purpose. To accept a
        // change, copy the .actual file the failure names over tests/Cairn.Tests/Cli/root-help.txt.
        var snapshot = Path.Combine(AppContext.BaseDirectory, "Cli", "root-help.txt");
        var expected = (await File.ReadAllTextAsync(snapshot)).ReplaceLineEndings("\n");
        if (expected != help)
        {
            var actual = Path.Combine(Path.GetTempPath(), $"root-help-{Guid.NewGuid():N}.actual");
            await File.WriteAllTextAsync(actual, help);
            Assert.Fail($"the root help differs from its snapshot; the new text is in {actual}\n{help}");
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
