using System.CommandLine;
using System.Text.Json;
using Cairn.Operations.Physical;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn archiver allow</c>: give the server's user (archive_command, restore_command) the WAL area and nothing else.</summary>
internal static class ArchiverCommand
{
    public static Command Build(CliContext ctx)
    {
        var group = new Option<string>("--group", "-g") { Description = "The group of the server's user (archive_command and restore_command run as it)", DefaultValueFactory = _ => "postgres" };
        var key = new Option<string?>("--key") { Description = "The key file (ID or prefix) the archiver opens the repository with; default: the key of the passphrase given to this command" };
        var allow = new Command("allow", "Let GROUP push and fetch WAL (wal/ 3770, config and the archiver's key file 0640, the repository folder 0710); everything else stays 0700/0600") { group, key };
        allow.SetAction(ctx, (inv, p, ct) => AllowAsync(inv, new ArchiverAllowRequest(p.GetValue(group)!, p.GetValue(key)), ct), "key-change");
        return new Command("archiver", "Access for the WAL archiver (the server's user)") { allow };
    }

    public static async Task<int> AllowAsync(Invocation inv, ArchiverAllowRequest request, CancellationToken ct)
    {
        var r = await new ArchiverAllowOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new ArchiverOutput("summary", r.Repository, r.Group, r.Gid, r.KeyId, r.WalObjects, r.Tightened), CliJson.Default.ArchiverOutput));
            return ExitCodes.Ok;
        }
        inv.Console.Out.WriteLine($"group {r.Group} may now push and fetch WAL in {r.Repository} with key {r.KeyId[..8]}{(r.KeyLabel is { Length: > 0 } l ? $" ({l})" : "")}; it cannot read snapshots, the index, packs or other key files");
        if (r.Tightened > 0)
        {
            inv.Console.Out.WriteLine($"{r.Tightened} folders and files made private (0700/0600)");
        }
        if (r.OnlyKey)
        {
            inv.Console.Error.WriteLine($"cairn: hint: {r.KeyId[..8]} is the repository's only key; give the archiver a key of its own (CAIRN_NEW_PASSPHRASE_FILE=F cairn key add --label archiver), then run this with that passphrase");
        }
        inv.Console.Out.WriteLine($"the archiver's passphrase file must be readable by {r.Group} too (e.g. chgrp {r.Group} FILE; chmod 640 FILE), and each folder above it enterable");
        return ExitCodes.Ok;
    }
}
