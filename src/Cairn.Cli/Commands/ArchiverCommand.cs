using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
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
        allow.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            var r = await ArchiverAccess.AllowAsync(repo, p.GetValue(group)!, p.GetValue(key), ct).ConfigureAwait(false);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "key-change", "pass", new()
            {
                ["action"] = "archiver-allow",
                ["key"] = r.KeyId[..8],
                ["group"] = r.Group,
                ["gid"] = r.Gid.ToString(CultureInfo.InvariantCulture),
            }, ct).ConfigureAwait(false);
            if (p.GetValue(CommandRunner.Json))
            {
                ctx.Console.Out.WriteLine(new JsonObject
                {
                    ["message_type"] = "summary",
                    ["repository"] = r.Repository,
                    ["group"] = r.Group,
                    ["gid"] = r.Gid,
                    ["key"] = r.KeyId,
                    ["wal_objects"] = r.WalObjects,
                    ["tightened"] = r.Tightened,
                }.ToJsonString());
                return ExitCodes.Ok;
            }
            ctx.Console.Out.WriteLine($"group {r.Group} may now push and fetch WAL in {r.Repository} with key {r.KeyId[..8]}{(r.KeyLabel is { Length: > 0 } l ? $" ({l})" : "")}; it cannot read snapshots, the index, packs or other key files");
            if (r.Tightened > 0)
            {
                ctx.Console.Out.WriteLine($"{r.Tightened} folders and files made private (0700/0600)");
            }
            if (r.OnlyKey)
            {
                ctx.Console.Error.WriteLine($"cairn: hint: {r.KeyId[..8]} is the repository's only key; give the archiver a key of its own (CAIRN_NEW_PASSPHRASE_FILE=F cairn key add --label archiver), then run this with that passphrase");
            }
            ctx.Console.Out.WriteLine($"the archiver's passphrase file must be readable by {r.Group} too (e.g. chgrp {r.Group} FILE; chmod 640 FILE), and each folder above it enterable");
            return ExitCodes.Ok;
        }, "key-change");
        return new Command("archiver", "Access for the WAL archiver (the server's user)") { allow };
    }
}
