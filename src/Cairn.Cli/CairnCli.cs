using System.CommandLine;
using Cairn.Cli.Commands;

namespace Cairn.Cli;

/// <summary>The composition root: builds the command tree. Parsing is separate from running.</summary>
public static class CairnCli
{
    public static RootCommand Build(CliContext ctx)
    {
        var root = new RootCommand(
            """
            Cairn: PostgreSQL backups you can prove.
            Encrypted, deduplicated repository; every operation recorded as evidence.

            Repository: --repo PATH or CAIRN_REPOSITORY. Passphrase: CAIRN_PASSPHRASE_FILE,
            CAIRN_PASSPHRASE, or a prompt on a terminal (never an argument).
            Exit codes: docs/exit-codes.md (0 ok, 1 failure, 2 usage, 3 wrong passphrase,
            4 locked, 5 damaged, 6 not found, 7 disk full, 8 already exists, 9 evidence,
            10 database error, 11 restored data differs from the fingerprint, 12 checks failed,
            13 incident paused for a human, 14 incident step failed, 130 interrupted).
            """);
        root.Options.Add(CommandRunner.Repo);
        root.Options.Add(CommandRunner.Json);
        root.Options.Add(CommandRunner.EvidenceDir);
        root.Options.Add(CommandRunner.Config);
        root.Subcommands.Add(RepositoryCommands.Init(ctx));
        root.Subcommands.Add(DatabaseCommands.Backup(ctx));
        root.Subcommands.Add(DatabaseCommands.Snapshots(ctx));
        root.Subcommands.Add(DatabaseCommands.Restore(ctx));
        root.Subcommands.Add(DrillCommands.Drill(ctx));
        root.Subcommands.Add(PhysicalCommands.WalPush(ctx));
        root.Subcommands.Add(PhysicalCommands.WalFetch(ctx));
        root.Subcommands.Add(PhysicalCommands.WalPushAhead(ctx));
        root.Subcommands.Add(PhysicalCommands.WalFetchAhead(ctx));
        root.Subcommands.Add(ArchiverCommand.Build(ctx));
        root.Subcommands.Add(MonitoringCommands.Check(ctx));
        root.Subcommands.Add(MonitoringCommands.Alert(ctx));
        root.Subcommands.Add(MonitoringCommands.Schedule(ctx));
        root.Subcommands.Add(DaemonCommand.Build(ctx));
        root.Subcommands.Add(RepositoryCommands.Key(ctx));
        root.Subcommands.Add(RepositoryCommands.Repo(ctx));
        root.Subcommands.Add(RepositoryCommands.Verify(ctx));
        root.Subcommands.Add(RepositoryCommands.Prune(ctx));
        root.Subcommands.Add(AssessCommand.Build(ctx));
        root.Subcommands.Add(IncidentCommands.Build(ctx));
        root.Subcommands.Add(CopyCommands.Build(ctx));
        root.Subcommands.Add(PinCommands.Pin(ctx));
        root.Subcommands.Add(PinCommands.Unpin(ctx));
        root.Subcommands.Add(RepositoryCommands.Unlock(ctx));
        root.Subcommands.Add(RepositoryCommands.Doctor(ctx));
        root.Subcommands.Add(EvidenceCommands.Build(ctx));
        root.Subcommands.Add(LifecycleCommands.Cleanup(ctx));
        root.Subcommands.Add(LifecycleCommands.Erase(ctx));
        root.Subcommands.Add(LifecycleCommands.Recover(ctx));
        root.Subcommands.Add(ReportCommands.Build(ctx));
        root.Subcommands.Add(DemoCommand.Build(ctx));
        return root;
    }

    public static async Task<int> RunAsync(string[] args, CliContext ctx)
    {
        var root = Build(ctx);
        var parse = root.Parse(args);
        // On SIGINT/SIGTERM the command's token is cancelled and it gets this long to clean up (remove its lock and temp
        // files, end a running job) and return its own exit code; System.CommandLine's default of 2 s cut cleanup short on a
        // busy machine and returned 143 from an idle daemon.
        var config = new InvocationConfiguration { Output = ctx.Console.Out, Error = ctx.Console.Error, ProcessTerminationTimeout = TimeSpan.FromSeconds(30) };
        return await parse.InvokeAsync(config).ConfigureAwait(false);
    }
}
