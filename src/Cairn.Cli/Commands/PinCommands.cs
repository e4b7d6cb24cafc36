using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Operations.Pins;
using Cairn.Repository;

namespace Cairn.Cli.Commands;

/// <summary>pin / unpin: legal and forensic holds on snapshots.</summary>
internal static class PinCommands
{
    public static Command Pin(CliContext ctx)
    {
        var snapshot = new Argument<string>("SNAPSHOT") { Description = "Snapshot ID (a unique prefix is enough)" };
        var reason = new Option<string>("--reason") { Description = "Why it must be kept (recorded in the repository and the evidence log)", Required = true };
        var until = new Option<string?>("--until") { Description = "Hold until this date (UTC, e.g. 2027-06-30); default: until 'cairn unpin'" };
        var cmd = new Command("pin", "Hold a snapshot: prune never forgets it (nor the WAL from it onwards), whatever the retention says") { snapshot, reason, until };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var untilText = p.GetValue(until);
            var r = await new PinOperation(inv.Operations).PinAsync(new PinRequest(p.GetValue(snapshot)!, p.GetValue(reason)!, untilText is null ? null : PinOperation.ParseUntil(untilText)), ct).ConfigureAwait(false);
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PinOutput("summary", "pin", Row(r.Pin, inv.Operations.Time.GetUtcNow()), r.EvidenceSeq, r.LockedUntil is { } l ? Iso(l) : null), CliJson.Default.PinOutput));
            }
            else
            {
                inv.Console.Out.WriteLine($"{(r.Replaced ? "re-pinned" : "pinned")} {r.Snapshot.ShortId} ({r.Snapshot.Manifest.Kind} backup of {r.Snapshot.Manifest.Name} at {Terminal.Format.Time(r.Snapshot.Manifest.Time)}){(r.Pin.Until is { } u ? $" until {Terminal.Format.Time(u)}" : " until unpinned")}: {r.Pin.Reason} (evidence {r.EvidenceSeq})");
                if (r.LockedUntil is { } locked)
                {
                    inv.Console.Out.WriteLine($"S3 Object Lock: its {r.LockedObjects} object(s) are retained until at least {Terminal.Format.Time(locked)} ({r.LocksExtended} extended, the rest were locked longer already){(r.Pin.Until is null ? "; a pin without --until keeps prune away for ever, but the lock only for the configured period: pin again to extend it" : "")}");
                }
            }
            return ExitCodes.Ok;
        }, "pin");
        return cmd;
    }

    public static Command Unpin(CliContext ctx)
    {
        var snapshot = new Argument<string>("SNAPSHOT") { Description = "Snapshot ID (a unique prefix is enough)" };
        var reason = new Option<string>("--reason") { Description = "Why the hold is lifted (recorded in the evidence log)", Required = true };
        var cmd = new Command("unpin", "Lift a hold: retention applies to the snapshot again") { snapshot, reason };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new PinOperation(inv.Operations).UnpinAsync(new UnpinRequest(p.GetValue(snapshot)!, p.GetValue(reason)!), ct).ConfigureAwait(false);
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PinOutput("summary", "unpin", Row(r.Removed, inv.Operations.Time.GetUtcNow()), r.EvidenceSeq), CliJson.Default.PinOutput));
            }
            else
            {
                inv.Console.Out.WriteLine($"unpinned {r.Snapshot.ShortId} (was held: {r.Removed.Reason}); retention applies to it again (evidence {r.EvidenceSeq}){(r.LocksKept ? "; S3 Object Lock dates are left as they are (never shortened): prune removes its objects only after they expire" : "")}");
            }
            return ExitCodes.Ok;
        }, "pin");
        return cmd;
    }

    public static PinRow Row(Pin pin, DateTimeOffset now) => new(pin.Snapshot, pin.Reason, Iso(pin.Created), pin.Host, pin.Until is { } u ? Iso(u) : null, pin.Incident, pin.HoldsAt(now));

    private static string Iso(DateTimeOffset t) => t.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture);
}
