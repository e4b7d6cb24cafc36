using System.CommandLine;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Copying;

namespace Cairn.Cli.Commands;

/// <summary><c>cairn copy</c>: the repository copied to a second one (3-2-1), incrementally, and the copy verified.</summary>
internal static class CopyCommands
{
    public static Command Build(CliContext ctx)
    {
        var to = new Option<string?>("--to") { Description = "The second repository: a folder or s3://BUCKET/PREFIX (default: every entry of copies: in cairn.yaml, each with its own s3: settings)" };
        var readData = new Option<bool>("--read-data") { Description = "Also read back every object already in the copy and every pack through the key (else sizes, and the structure through the key)" };
        var database = new Option<string[]>("--database") { Description = "Copy only this database's snapshots (logical and physical), the WAL they need and its erasure ledger; repeat for more (default: the copies: entry's databases, else all)", AllowMultipleArgumentsPerToken = false };
        var since = new Option<string?>("--since") { Description = "Copy only snapshots taken at or after this UTC date/time (2026-11-01) or this long ago (7d, 12h)" };
        var toPassphraseFile = new Option<string?>("--to-passphrase-file") { Description = "A file holding the passphrase of the copy, when the copy is a repository of its own ('cairn init' with another passphrase): what is copied is re-encrypted under its keys" };
        var cmd = new Command("copy", "Copy snapshots, WAL, pins, the erasure ledger and the evidence log to a second repository (only what it lacks; re-encrypted when it has keys of its own), then verify the copy; exit 5 when the copy (or the primary) is damaged") { to, readData, database, since, toPassphraseFile };
        cmd.SetAction(ctx, (inv, p, ct) => CopyAsync(inv, new CopyRequest(p.GetValue(to), p.GetValue(readData) ? true : null, p.GetValue(database) ?? [], p.GetValue(since), p.GetValue(toPassphraseFile)), ct), "copy");
        return cmd;
    }

    public static async Task<int> CopyAsync(Invocation inv, CopyRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync("copy", null, sink =>
            new CopyOperation(inv.Operations).RunAsync(request, new Progress<string>(sink.Describe), ct)).ConfigureAwait(false);
        if (inv.Json)
        {
            var rows = r.Targets.Select(t => new CopyTargetRow(t.Target, t.Ok, t.Copy?.Initialised ?? false, t.Copy?.ObjectsCopied ?? 0, t.Copy?.BytesCopied ?? 0, t.Copy?.ObjectsPresent ?? 0,
                t.EvidenceFilesCopied, t.Verification?.Snapshots ?? 0, t.ReadData ? "read-data" : "structure", t.Damage, t.Error)
            {
                Filter = t.Scope.Length > 0 ? t.Scope : null,
                Reencrypted = t.Blobs?.Reencrypted ?? false,
                SnapshotsCopied = t.Blobs?.SnapshotsCopied,
                SnapshotsPresent = t.Blobs?.SnapshotsPresent,
                BlobsCopied = t.Blobs?.BlobsCopied,
                BlobsPresent = t.Blobs?.BlobsPresent,
                BytesRead = t.Blobs?.BytesRead,
                WalCopied = t.Blobs?.WalCopied,
                WholePackBytes = t.Blobs?.WholePackBytes,
            }).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new CopyOutput("summary", !r.HasDamage && !r.HasErrors, rows), CliJson.Default.CopyOutput));
        }
        else
        {
            foreach (var t in r.Targets)
            {
                foreach (var d in t.Damage)
                {
                    inv.Console.Out.WriteLine($"DAMAGE  {t.Target}: {d}");
                }
                if (t.Error is not null)
                {
                    inv.Console.Out.WriteLine($"FAILED  {t.Target}: {t.Error}");
                    continue;
                }
                var c = t.Copy!;
                var v = t.Verification!;
                if (t.Blobs is { } b)
                {
                    inv.Console.Out.WriteLine($"{t.Target}: {(t.Scope.Length > 0 ? t.Scope : "everything")}{(b.Reencrypted ? ", re-encrypted under the copy's keys" : "")}: {b.SnapshotsCopied} snapshot(s) copied, {b.SnapshotsPresent} already there; "
                        + $"{b.BlobsCopied} blob(s) written in {b.PacksWritten} pack(s), {b.BlobsPresent} already there ({Format.Bytes(b.BytesRead)} read from the primary); {b.WalCopied} WAL file(s) copied, {b.WalPresent} already there");
                }
                inv.Console.Out.WriteLine($"{(t.Ok ? "OK" : "DAMAGED")}: {t.Target}{(c.Initialised ? " (new copy)" : "")}: copied {c.ObjectsCopied} object(s) ({Format.Bytes(c.BytesCopied)}), {c.ObjectsPresent} already there, {t.EvidenceFilesCopied} evidence file(s); "
                    + $"the copy holds {v.Snapshots} snapshot(s), {v.Packs} pack(s), verified ({(t.ReadData ? $"read-data: {v.PacksRead} pack(s) read" : "structure")}) in {Format.Duration(TimeSpan.FromMilliseconds(t.ElapsedMs))}");
            }
        }
        return r.HasErrors ? ExitCodes.Failure : r.HasDamage ? ExitCodes.Damaged : ExitCodes.Ok;
    }
}
