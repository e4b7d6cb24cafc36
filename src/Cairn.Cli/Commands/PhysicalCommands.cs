using System.CommandLine;
using Cairn.Operations.Configuration;
using Cairn.Operations.Physical;
using Cairn.Repository;

namespace Cairn.Cli.Commands;

/// <summary>WAL archiving: <c>wal-push</c> for archive_command, <c>wal-fetch</c> for restore_command.</summary>
internal static class PhysicalCommands
{
    /// <summary>Exit code that makes PostgreSQL abort recovery (above 125: "shell error") instead of treating it as "no such file".</summary>
    public const int AbortRecovery = 126;

    private static readonly Option<string?> Database = new("--database", "-d") { Description = "The database (name in cairn.yaml) whose WAL this is; default: the only configured one" };

    public static Command WalPush(CliContext ctx)
    {
        var path = new Argument<string>("PATH") { Description = "The WAL file to archive (%p in archive_command)" };
        var cmd = new Command("wal-push", "Archive one WAL file (archive_command = 'cairn wal-push %p --database NAME'). Pushing identical content again succeeds; different content is refused") { path, Database };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new WalPushOperation(inv.Operations).RunAsync(new WalPushRequest(p.GetValue(path)!, p.GetValue(Database)), ct).ConfigureAwait(false);
            if (r.AlreadyArchived)
            {
                inv.Console.Error.WriteLine($"cairn: {r.Name} was already archived with the same content");
            }
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The background pusher of asynchronous archiving (wal.async); wal-push starts it, people do not.</summary>
    public static Command WalPushAhead(CliContext ctx)
    {
        var dir = new Argument<string>("WALDIR") { Description = "The server's pg_wal folder (its archive_status lists the ready segments)" };
        var skip = new Option<string?>("--skip") { Description = "A segment the starting wal-push stores itself" };
        var cmd = new Command("wal-push-ahead", "Background half of asynchronous archiving: stores ready WAL segments ahead of archive_command (started by wal-push)") { dir, Database, skip };
        cmd.Hidden = true;
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            await new WalPushAheadOperation(inv.Operations).RunAsync(new WalPushAheadRequest(p.GetValue(dir)!, p.GetValue(Database), p.GetValue(skip)), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    /// <summary>The background prefetcher of wal-fetch (wal.fetch_ahead); wal-fetch starts it, people do not.</summary>
    public static Command WalFetchAhead(CliContext ctx)
    {
        var cmd = new Command("wal-fetch-ahead", "Background half of WAL prefetch: fetches the segments after the one recovery asked for (started by wal-fetch)") { Database };
        cmd.Hidden = true;
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            await new WalFetchAheadOperation(inv.Operations).RunAsync(new WalFetchAheadRequest(p.GetValue(Database)), ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command WalFetch(CliContext ctx)
    {
        var name = new Argument<string>("NAME") { Description = "The WAL file name PostgreSQL asks for (%f)" };
        var dest = new Argument<string>("PATH") { Description = "Where to write it (%p)" };
        var cmd = new Command("wal-fetch", "Fetch one archived WAL file for recovery (restore_command = 'cairn wal-fetch %f %p --database NAME'). Exit 1 when it is not archived; 126 (PostgreSQL aborts recovery) on any other error: a wrong passphrase, damage, a repository it cannot reach or read") { name, dest, Database };
        // Not through the command runner: PostgreSQL reads this exit code, and anything but "not archived" must abort recovery.
        cmd.SetAction(async (ParseResult p, CancellationToken ct) =>
        {
            var inv = new Invocation(ctx, CommandRunner.Globals(p));
            try
            {
                var r = await new WalFetchOperation(inv.Operations).RunAsync(new WalFetchRequest(p.GetValue(name)!, p.GetValue(dest)!, p.GetValue(Database)), ct).ConfigureAwait(false);
                if (!r.Found)
                {
                    inv.Console.Error.WriteLine($"cairn wal-fetch: {r.Name} is not archived for {r.Database}");
                    return 1;
                }
                return ExitCodes.Ok;
            }
            catch (Exception e) when (e is RepositoryException or ConfigException or IOException or UnauthorizedAccessException)
            {
                inv.Console.Error.WriteLine($"cairn wal-fetch: FATAL: {e.Message}");
                return AbortRecovery;
            }
        });
        return cmd;
    }
}
