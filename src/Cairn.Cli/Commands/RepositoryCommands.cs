using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Operations.Files;
using Cairn.Operations.Keys;
using Cairn.Operations.Maintenance;
using Cairn.Operations.Retention;
using Cairn.Operations.Setup;
using Cairn.Operations.Verification;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>Commands on the repository itself: init, key, repo put/get/ls/rm, verify, prune, unlock.</summary>
internal static class RepositoryCommands
{
    /// <summary>KDF cost for new keys; lower values are for tests and small machines.</summary>
    private static KdfParameters Kdf(int? memoryMib, int? iterations)
    {
        var d = KdfParameters.Default;
        return new KdfParameters(memoryMib is { } m ? m * 1024 : d.MemoryKib, iterations ?? d.Iterations, d.Parallelism);
    }

    public static Command Init(CliContext ctx)
    {
        var mem = new Option<int?>("--kdf-memory-mib") { Description = "Argon2id memory per passphrase try, in MiB (default 64)" };
        var iter = new Option<int?>("--kdf-iterations") { Description = "Argon2id passes (default 3)" };
        var cmd = new Command("init", "Create an encrypted repository. The passphrase comes from CAIRN_PASSPHRASE_FILE, CAIRN_PASSPHRASE or a prompt.") { mem, iter };
        cmd.SetAction(ctx, (inv, p, ct) => InitAsync(inv, new InitRequest(Kdf(p.GetValue(mem), p.GetValue(iter))), ct));
        return cmd;
    }

    public static async Task<int> InitAsync(Invocation inv, InitRequest request, CancellationToken ct)
    {
        var r = await new InitOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        if (r.EvidenceLog is { } log)
        {
            inv.Console.Out.WriteLine($"created the evidence log at {log.Folder}; its signing key is {log.SigningKeyPath} (keep a copy; publish {log.PublicKeyPath})");
        }
        inv.Console.Out.WriteLine($"created repository {r.RepositoryId[..8]} at {r.Location}");
        inv.Console.Out.WriteLine("keep the passphrase safe: without it the data cannot be read back");
        return ExitCodes.Ok;
    }

    public static Command Key(CliContext ctx)
    {
        var list = new Command("list", "List the passphrases (key files) that open the repository");
        list.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new KeyListOperation(inv.Operations).RunAsync(ct).ConfigureAwait(false);
            var rows = r.Keys.Select(k => new KeyRow(k.Id, k.Current, k.Created, k.Host, k.Label, k.KdfMemoryKib, k.KdfIterations)).ToList();
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListKeyRow));
                return ExitCodes.Ok;
            }
            var t = new Table().AddColumns(" ", "ID", "Created", "Host", "Label", "KDF");
            foreach (var k in rows)
            {
                t.AddRow(k.Current ? "*" : "", k.Id[..8], Format.Time(k.Created), Markup.Escape(k.Host), Markup.Escape(k.Label ?? ""), $"argon2id {k.KdfMemoryKib / 1024} MiB x{k.KdfIterations}");
            }
            inv.Console.Ansi.Write(t);
            return ExitCodes.Ok;
        });

        var label = new Option<string?>("--label") { Description = "A note to tell keys apart (no secrets)" };
        var mem = new Option<int?>("--kdf-memory-mib") { Description = "Argon2id memory in MiB (default 64)" };
        var iter = new Option<int?>("--kdf-iterations") { Description = "Argon2id passes (default 3)" };
        var add = new Command("add", "Add a passphrase. The new one comes from CAIRN_NEW_PASSPHRASE_FILE, CAIRN_NEW_PASSPHRASE or a prompt; no data is rewritten") { label, mem, iter };
        add.SetAction(ctx, (inv, p, ct) => KeyAddAsync(inv, new KeyAddRequest(Kdf(p.GetValue(mem), p.GetValue(iter)), p.GetValue(label)), ct), "key-change");

        var idArg = new Argument<string>("ID") { Description = "Key ID or a unique prefix (see 'cairn key list')" };
        var remove = new Command("remove", "Remove a passphrase. Refuses the key in use and the last key") { idArg };
        remove.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new KeyRemoveOperation(inv.Operations).RunAsync(new KeyRemoveRequest(p.GetValue(idArg)!), ct).ConfigureAwait(false);
            inv.Console.Out.WriteLine($"removed key {r.IdOrPrefix}");
            return ExitCodes.Ok;
        }, "key-change");
        return new Command("key", "Manage the passphrases of the repository") { list, add, remove };
    }

    public static async Task<int> KeyAddAsync(Invocation inv, KeyAddRequest request, CancellationToken ct)
    {
        var r = await new KeyAddOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        inv.Console.Out.WriteLine($"added key {r.KeyId[..8]}");
        return ExitCodes.Ok;
    }

    public static Command Repo(CliContext ctx)
    {
        var name = new Argument<string>("NAME") { Description = "The item's name in the repository" };
        var file = new Argument<string?>("FILE") { Description = "File to read, or - for stdin (default: -)", Arity = ArgumentArity.ZeroOrOne };
        var put = new Command("put", "Store a file or stdin in the repository as a new snapshot of NAME") { name, file };
        put.SetAction(ctx, (inv, p, ct) => PutAsync(inv, p.GetValue(name)!, p.GetValue(file), ct), "backup");

        var getName = new Argument<string>("NAME") { Description = "The item's name" };
        var getFile = new Argument<string?>("FILE") { Description = "Where to write, or - for stdout (default: -)", Arity = ArgumentArity.ZeroOrOne };
        var snapshot = new Option<string?>("--snapshot", "-s") { Description = "Snapshot ID (default: the newest of NAME)" };
        var get = new Command("get", "Write the newest (or a given) snapshot of NAME to a file or stdout") { getName, getFile, snapshot };
        get.SetAction(ctx, (inv, p, ct) => GetAsync(inv, p.GetValue(getName)!, p.GetValue(getFile), p.GetValue(snapshot), ct), "restore");

        var ls = new Command("ls", "List the snapshots in the repository");
        ls.SetAction(ctx, (inv, p, ct) => ListAsync(inv, ct));

        var rmArg = new Argument<string>("SNAPSHOT") { Description = "Snapshot ID or unique prefix" };
        var rm = new Command("rm", "Forget a snapshot; 'cairn prune' then frees its data") { rmArg };
        rm.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new ForgetOperation(inv.Operations).RunAsync(new ForgetRequest(p.GetValue(rmArg)!), ct).ConfigureAwait(false);
            inv.Console.Out.WriteLine($"forgot snapshot {r.Snapshot.ShortId} ({r.Snapshot.Manifest.Name}); run 'cairn prune' to free its data");
            return ExitCodes.Ok;
        });
        var pagePatches = new Option<bool>("--page-patches") { Description = "Let physical incrementals store changed blocks as page patches (XOR deltas on the previous block): format version 2, which older Cairn versions refuse to open" };
        var upgrade = new Command("upgrade", "Switch a repository format feature on (explicit, recorded in the evidence log); every host that uses the repository, wal-push included, needs a Cairn that reads the new format") { pagePatches };
        upgrade.SetAction(ctx, async (inv, p, ct) =>
        {
            if (!p.GetValue(pagePatches))
            {
                inv.Console.Error.WriteLine("cairn: name the feature to switch on: --page-patches");
                return ExitCodes.Usage;
            }
            var r = await new UpgradeOperation(inv.Operations).RunAsync(new UpgradeRequest(RepositoryConfig.PagePatches), ct).ConfigureAwait(false);
            if (inv.Json)
            {
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new UpgradeOutput(r.RepositoryId, r.Version, [.. r.Features], r.Changed), CliJson.Default.UpgradeOutput));
                return ExitCodes.Ok;
            }
            inv.Console.Out.WriteLine(r.Changed
                ? $"repository {r.RepositoryId[..8]} is now format version {r.Version} ({string.Join(", ", r.Features)}); Cairn versions without page patches refuse to open it, so upgrade Cairn on every host that uses it (wal-push included)"
                : $"repository {r.RepositoryId[..8]} already has {string.Join(", ", r.Features)} (format version {r.Version}); nothing was changed");
            return ExitCodes.Ok;
        }, "repository-upgrade");
        return new Command("repo", "Store and fetch any file or stream (for support engineers and scripts)") { put, get, ls, rm, upgrade };
    }

    private static async Task<int> PutAsync(Invocation inv, string name, string? file, CancellationToken ct)
    {
        var stdin = file is null or "-";
        Stream Open()
        {
            try
            {
                return stdin ? Console.OpenStandardInput() : new FileStream(file!, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
            }
            catch (FileNotFoundException)
            {
                throw new RepositoryException(ErrorKind.NotFound, $"file {file} does not exist");
            }
        }
        long? total = stdin || !File.Exists(file) ? null : new FileInfo(file!).Length;
        var r = await inv.Console.WithProgressAsync($"put {name}", total, sink => new FilePutOperation(inv.Operations).RunAsync(new FilePutRequest(name, Open), sink, ct)).ConfigureAwait(false);
        var stats = r.Stats;
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PutOutput("summary", r.Snapshot.Id, name, stats.BytesRead, stats.BytesAdded, stats.ChunksTotal, stats.ChunksNew, r.Elapsed.TotalSeconds, r.MegabytesPerSecond), CliJson.Default.PutOutput));
        }
        else
        {
            inv.Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"snapshot {r.Snapshot.ShortId} of {name}: {Format.Bytes(stats.BytesRead)} read, {Format.Bytes(stats.BytesAdded)} added ({stats.ChunksNew} of {stats.ChunksTotal} chunks new) in {Format.Duration(r.Elapsed)} ({r.MegabytesPerSecond:0.0} MB/s)"));
        }
        return ExitCodes.Ok;
    }

    private static async Task<int> GetAsync(Invocation inv, string name, string? file, string? snapshotId, CancellationToken ct)
    {
        var operation = new FileGetOperation(inv.Operations);
        if (file is null or "-")
        {
            await operation.RunAsync(new FileGetRequest(name, snapshotId, null, Console.OpenStandardOutput), null, ct).ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        var r = await inv.Console.WithProgressAsync($"get {name}", null, sink => operation.RunAsync(new FileGetRequest(name, snapshotId, file, null), sink, ct)).ConfigureAwait(false);
        inv.Console.Error.WriteLine($"wrote {Format.Bytes(r.Item.Size)} of snapshot {r.Snapshot.ShortId} to {file}");
        return ExitCodes.Ok;
    }

    private static async Task<int> ListAsync(Invocation inv, CancellationToken ct)
    {
        var r = await new Operations.Snapshots.SnapshotListOperation(inv.Operations).RunAsync(new Operations.Snapshots.SnapshotListRequest(BackupsOnly: false), ct).ConfigureAwait(false);
        foreach (var w in r.Unreadable)
        {
            inv.Console.Error.WriteLine($"warning: {w}");
        }
        var rows = r.Snapshots.Select(s => new SnapshotRow(s.Id, s.ShortId, s.Manifest.Time, s.Manifest.Kind, s.Manifest.Name, s.Manifest.Host, s.Size, s.Manifest.StoredBytes, s.Manifest.AddedBytes, s.Manifest.DurationMs, s.ItemCount, s.Manifest.Meta)).ToList();
        if (inv.Json)
        {
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListSnapshotRow));
            return ExitCodes.Ok;
        }
        if (rows.Count == 0)
        {
            inv.Console.Out.WriteLine("no snapshots yet; store one with 'cairn repo put NAME FILE'");
            return ExitCodes.Ok;
        }
        var t = new Table().AddColumns("ID", "Time (UTC)", "Kind", "Name", "Size", "Added", "Duration");
        foreach (var s in rows)
        {
            t.AddRow(s.ShortId, Format.Time(s.Time), s.Kind, Markup.Escape(s.Name), Format.Bytes(s.Size), Format.Bytes(s.AddedBytes), Format.Duration(TimeSpan.FromMilliseconds(s.DurationMs)));
        }
        inv.Console.Ansi.Write(t);
        return ExitCodes.Ok;
    }

    public static Command Doctor(CliContext ctx)
    {
        var cmd = new Command("doctor", "Check a repository location before first use: reachable, credentials, bucket, a write-read-delete probe (write-read when append-only), clock skew, conditional writes, versioning and Object Lock. Needs no passphrase; exit 1 when a check fails");
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new DoctorOperation(inv.Operations).RunAsync(new DoctorRequest(), ct).ConfigureAwait(false);
            if (inv.Json)
            {
                var rows = r.Checks.Select(c => new DoctorCheckRow(c.Name, c.State.ToString().ToLowerInvariant(), c.Detail)).ToList();
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(new DoctorOutput("summary", r.Ok, r.Location, r.AppendOnly, r.RepositoryExists, rows), CliJson.Default.DoctorOutput));
            }
            else
            {
                foreach (var c in r.Checks)
                {
                    inv.Console.Out.WriteLine($"{c.State.ToString().ToLowerInvariant(),-7} {c.Name}: {c.Detail}");
                }
                inv.Console.Out.WriteLine(r.Ok ? $"{r.Location}: ready{(r.AppendOnly ? " (append-only client)" : "")}" : $"{r.Location}: not usable; fix what failed above");
            }
            return r.Ok ? ExitCodes.Ok : ExitCodes.Failure;
        });
        return cmd;
    }

    public static Command Verify(CliContext ctx)
    {
        var readData = new Option<bool>("--read-data") { Description = "Also read and authenticate every pack (slow; reads the whole repository)" };
        var subset = new Option<string?>("--read-data-subset") { Description = "Read a random share of packs, e.g. 10% (spread the cost over days)" };
        var database = new Argument<string?>("DATABASE") { Description = "With --live: run this database's configured checks against the live database", Arity = ArgumentArity.ZeroOrOne };
        var live = new Option<bool>("--live") { Description = "Run the database's checks against the live database (read-only, with a statement timeout); exit 12 when one fails or cannot run" };
        var allowSkipped = DrillCommands.AllowSkippedOption();
        var evidenceFile = new Option<string?>("--evidence-file") { Description = "With --live: also write the runbook's backup_verify_TIMESTAMP.log into this folder, with the record's leaf hash as its 'Verification Hash:'" };
        var cmd = new Command("verify", "Check the repository: structure always; with --read-data every byte (exit 5 when damage is found). With DATABASE --live: the checks against the live database") { database, readData, subset, live, allowSkipped, evidenceFile };
        cmd.SetAction(ctx, (inv, p, ct) =>
        {
            if (p.GetValue(live) || p.GetValue(database) is not null)
            {
                var name = p.GetValue(database) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--live needs the DATABASE to check");
                if (!p.GetValue(live))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"to check the live database {name}, add --live; to check the repository, leave out the database");
                }
                return DrillCommands.VerifyLiveAsync(inv, new LiveVerifyRequest(inv.ResolveDatabase(name), p.GetValue(allowSkipped), p.GetValue(evidenceFile)), ct);
            }
            if (p.GetValue(allowSkipped))
            {
                throw new RepositoryException(ErrorKind.InvalidInput, "--allow-skipped applies to checks: use it with DATABASE --live");
            }
            var request = new VerifyRequest(p.GetValue(readData));
            if (p.GetValue(subset) is { } s)
            {
                var text = s.TrimEnd('%');
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var pct) || pct <= 0 || pct > 100)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"--read-data-subset wants a percentage between 0 and 100, like 10%; got '{s}'");
                }
                request = new VerifyRequest(ReadData: true, Fraction: pct / 100);
            }
            return VerifyAsync(inv, request, ct);
        }, "verify");
        return cmd;
    }

    public static async Task<int> VerifyAsync(Invocation inv, VerifyRequest request, CancellationToken ct)
    {
        var r = await inv.Console.WithProgressAsync("verify", null, sink =>
            new VerifyOperation(inv.Operations).RunAsync(request, new Progress<(int Done, int Total)>(x => sink.Describe($"verify: {x.Done}/{x.Total} packs")), ct)).ConfigureAwait(false);
        var report = r.Report;
        if (inv.Json)
        {
            var rows = report.Findings.Select(f => new FindingRow(f.Kind.ToString().ToLowerInvariant(), f.Object, f.Detail, f.AffectedSnapshots, f.IsDamage)).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new VerifyOutput("summary", !report.HasDamage, report.Snapshots, report.Indexes, report.Packs, report.PacksRead, report.BytesRead, report.Blobs, rows), CliJson.Default.VerifyOutput));
        }
        else
        {
            if (report.Findings.Count > 0)
            {
                var t = new Table().AddColumns("Finding", "Object", "Detail", "Affected snapshots");
                foreach (var f in report.Findings)
                {
                    t.AddRow(f.Kind.ToString().ToLowerInvariant(), Markup.Escape(f.Object), Markup.Escape(f.Detail), string.Join(", ", f.AffectedSnapshots));
                }
                inv.Console.Ansi.Write(t);
            }
            var readText = r.ReadData ? $", read {report.PacksRead} pack(s) ({Format.Bytes(report.BytesRead)})" : "";
            inv.Console.Out.WriteLine(report.HasDamage
                ? $"DAMAGED: {r.Damage.Count} finding(s) in {report.Snapshots} snapshot(s), {report.Packs} pack(s){readText}"
                : $"OK: {report.Snapshots} snapshot(s), {report.Indexes} index(es), {report.Packs} pack(s), {report.Blobs} blob(s){readText}{(report.Findings.Count > 0 ? $"; {report.Findings.Count} orphaned object(s) ('cairn prune' removes them)" : "")}");
        }
        return report.HasDamage ? ExitCodes.Damaged : ExitCodes.Ok;
    }

    public static Command Prune(CliContext ctx)
    {
        var dry = new Option<bool>("--dry-run", "-n") { Description = "Print what would go and what stays, and why; change nothing" };
        var acceptGap = new Option<bool>("--accept-gap") { Description = "Prune even when WAL is missing inside a keep_within recovery window (the loss is recorded in the evidence log)" };
        var cmd = new Command("prune", "Apply each database's retention (keep_last/daily/weekly/monthly/within in cairn.yaml), then delete data no snapshot references, under an exclusive lock") { dry, acceptGap };
        cmd.SetAction(ctx, (inv, p, ct) => PruneAsync(inv, new PruneRequest(p.GetValue(dry), p.GetValue(acceptGap)), ct), "prune");
        return cmd;
    }

    public static async Task<int> PruneAsync(Invocation inv, PruneRequest request, CancellationToken ct)
    {
        var r = await new PruneOperation(inv.Operations).RunAsync(request, ct).ConfigureAwait(false);
        var dryRun = r.DryRun;
        var data = r.Data;
        foreach (var gap in r.AcceptedGaps)
        {
            inv.Console.Info($"warning: accepted a gap: {gap}");
        }
        foreach (var w in r.Windows)
        {
            inv.Console.Info($"recovery window of {w.Database}: before prune from WAL position {w.OldestBefore}, after from {w.OldestAfter} ({w.SegmentsDeleted.Count} WAL segment(s) {(dryRun ? "would go" : "removed")}; nothing after the oldest kept backup is touched)");
        }
        if (dryRun && r.Forgotten > 0)
        {
            inv.Console.Info("dry run: packs that only forgotten snapshots use are freed by the real run, so the figures below undercount");
        }
        if (inv.Json)
        {
            var snapshots = r.Decisions.Select(d => new PruneSnapshotRow(d.Decision.Id, d.Database, d.Decision.Time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture), d.Decision.Keep, d.Decision.Reasons)).ToList();
            inv.Console.Out.WriteLine(JsonSerializer.Serialize(new PruneOutput("summary", dryRun, snapshots, data.PacksDeleted, data.PacksRepacked, data.BytesDeleted, data.BytesKept, data.OrphanPacks, r.WalObjectsDeleted, data.DeletedObjects,
                [.. r.Locked.Select(l => new LockedObjectRow(l.Path, l.Until.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture)))], r.LocksRenewed), CliJson.Default.PruneOutput));
            return ExitCodes.Ok;
        }
        if (r.Decisions.Count > 0)
        {
            var t = new Table().AddColumns("Snapshot", "Database", "Time (UTC)", dryRun ? "Would" : "Done", "Why");
            foreach (var (db, d) in r.Decisions)
            {
                t.AddRow(d.Id[..8], Markup.Escape(db), Format.Time(d.Time), d.Keep ? "[green]keep[/]" : "[red]forget[/]", Markup.Escape(d.Keep ? string.Join("; ", d.Reasons) : "no rule keeps it"));
            }
            inv.Console.Ansi.Write(t);
        }
        var verb = dryRun ? "would delete" : "deleted";
        foreach (var o in data.DeletedObjects)
        {
            inv.Console.Out.WriteLine($"{verb} {o}");
        }
        if (r.Locked.Count > 0)
        {
            // Not an error: Object Lock is doing its job; the objects go in a prune after their dates.
            inv.Console.Out.WriteLine($"left {r.Locked.Count} object(s) that S3 Object Lock still retains (the first free {Format.Time(r.Locked.Min(l => l.Until))}, the last {Format.Time(r.Locked.Max(l => l.Until))}); a prune after that removes them");
        }
        if (r.LocksRenewed > 0)
        {
            inv.Console.Out.WriteLine($"renewed the S3 Object Lock of {r.LocksRenewed} object(s) the kept backups need");
        }
        inv.Console.Out.WriteLine($"{(dryRun ? "dry run: " : "")}{(dryRun ? "would forget" : "forgot")} {r.Forgotten} snapshot(s), kept {r.Kept}; {verb} {data.PacksDeleted} pack(s) ({data.OrphanPacks} orphaned), repacked {data.PacksRepacked}, freed {Format.Bytes(data.BytesDeleted)}; {Format.Bytes(data.BytesKept)} kept");
        return ExitCodes.Ok;
    }

    public static Command Unlock(CliContext ctx)
    {
        var force = new Option<bool>("--force") { Description = "Remove every lock, even live ones (only when you know no Cairn process uses the repository)" };
        var cmd = new Command("unlock", "List locks and remove stale ones (left by a process that died)") { force };
        cmd.SetAction(ctx, async (inv, p, ct) =>
        {
            var r = await new UnlockOperation(inv.Operations).RunAsync(new UnlockRequest(p.GetValue(force)), ct).ConfigureAwait(false);
            if (inv.Json)
            {
                var rows = r.Before.Select(l => new LockRow(l.Id, l.Data.Host, l.Data.Pid, l.Data.Exclusive, l.Data.Operation, l.Data.Created, l.Data.Refreshed, l.IsStale, l.StaleReason)).ToList();
                inv.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListLockRow));
                return ExitCodes.Ok;
            }
            foreach (var l in r.Before)
            {
                inv.Console.Out.WriteLine($"{(r.WasRemoved(l) ? "removed" : "kept")} lock {l.Id[..8]}: {l.Data.Operation} pid {l.Data.Pid} on {l.Data.Host}{(l.IsStale ? $" (stale: {l.StaleReason})" : " (alive)")}");
            }
            inv.Console.Out.WriteLine($"{r.Removed.Count} lock(s) removed, {r.Before.Count - r.Removed.Count} kept");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
