using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Cairn.Cli.Terminal;
using Cairn.Repository;
using Cairn.Repository.Checking;
using Cairn.Repository.Locks;
using Cairn.Repository.Pruning;
using System.Text.Json.Nodes;
using Cairn.Operations.Configuration;
using Cairn.Operations.Retention;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>Commands on the repository itself: init, key, repo put/get/ls/rm, verify, prune, unlock.</summary>
internal static class RepositoryCommands
{
    public static Command Init(CliContext ctx)
    {
        var mem = new Option<int?>("--kdf-memory-mib") { Description = "Argon2id memory per passphrase try, in MiB (default 64)" };
        var iter = new Option<int?>("--kdf-iterations") { Description = "Argon2id passes (default 3)" };
        var cmd = new Command("init", "Create an encrypted repository. The passphrase comes from CAIRN_PASSPHRASE_FILE, CAIRN_PASSPHRASE or a prompt.") { mem, iter };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var storage = ctx.Storage(p.GetValue(CommandRunner.Repo));
            if (await Repository.Repository.ExistsAsync(storage, ct).ConfigureAwait(false))
            {
                throw new RepositoryException(ErrorKind.AlreadyExists, $"a repository already exists at {storage.Location}; nothing was changed");
            }
            var pass = ctx.Passphrase(confirm: true);
            var options = new RepositoryOptions { Kdf = CliContext.Kdf(p.GetValue(mem), p.GetValue(iter)) };
            using var repo = await Repository.Repository.InitAsync(storage, pass, options, ctx.Time, ct).ConfigureAwait(false);
            var log = Evidence.Open(ctx, repo.Storage.Location);
            if (!log.Exists)
            {
                log.Init();
                ctx.Console.Out.WriteLine($"created the evidence log at {log.Folder}; its signing key is {log.SigningKeyPath} (keep a copy; publish {log.PublicKeyPath})");
            }
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "key-change", "pass", new() { ["action"] = "init", ["key"] = repo.KeyId[..8], ["repository_id"] = repo.Config.Id }, ct).ConfigureAwait(false);
            ctx.Console.Out.WriteLine($"created repository {repo.Config.Id[..8]} at {storage.Location}");
            ctx.Console.Out.WriteLine("keep the passphrase safe: without it the data cannot be read back");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command Key(CliContext ctx)
    {
        var list = new Command("list", "List the passphrases (key files) that open the repository");
        list.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            var rows = (await repo.ListKeysAsync(ct).ConfigureAwait(false))
                .Select(k => new KeyRow(k.Id, k.Id == repo.KeyId, k.Data.Created, k.Data.Host, k.Data.Label, k.Data.MemoryKib, k.Data.Iterations)).ToList();
            if (p.GetValue(CommandRunner.Json))
            {
                ctx.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListKeyRow));
                return ExitCodes.Ok;
            }
            var t = new Table().AddColumns(" ", "ID", "Created", "Host", "Label", "KDF");
            foreach (var r in rows)
            {
                t.AddRow(r.Current ? "*" : "", r.Id[..8], Format.Time(r.Created), Markup.Escape(r.Host), Markup.Escape(r.Label ?? ""), $"argon2id {r.KdfMemoryKib / 1024} MiB x{r.KdfIterations}");
            }
            ctx.Console.Ansi.Write(t);
            return ExitCodes.Ok;
        });

        var label = new Option<string?>("--label") { Description = "A note to tell keys apart (no secrets)" };
        var mem = new Option<int?>("--kdf-memory-mib") { Description = "Argon2id memory in MiB (default 64)" };
        var iter = new Option<int?>("--kdf-iterations") { Description = "Argon2id passes (default 3)" };
        var add = new Command("add", "Add a passphrase. The new one comes from CAIRN_NEW_PASSPHRASE_FILE, CAIRN_NEW_PASSPHRASE or a prompt; no data is rewritten") { label, mem, iter };
        add.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            var id = await repo.AddKeyAsync(ctx.NewPassphrase(), CliContext.Kdf(p.GetValue(mem), p.GetValue(iter)), p.GetValue(label), ct).ConfigureAwait(false);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "key-change", "pass", new() { ["action"] = "add", ["key"] = id[..8] }, ct).ConfigureAwait(false);
            ctx.Console.Out.WriteLine($"added key {id[..8]}");
            return ExitCodes.Ok;
        }, "key-change");

        var idArg = new Argument<string>("ID") { Description = "Key ID or a unique prefix (see 'cairn key list')" };
        var remove = new Command("remove", "Remove a passphrase. Refuses the key in use and the last key") { idArg };
        remove.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: true, "key remove", ct).ConfigureAwait(false);
            var id = p.GetValue(idArg)!;
            await repo.RemoveKeyAsync(id, ct).ConfigureAwait(false);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "key-change", "pass", new() { ["action"] = "remove", ["key"] = id.Length > 8 ? id[..8] : id }, ct).ConfigureAwait(false);
            ctx.Console.Out.WriteLine($"removed key {id}");
            return ExitCodes.Ok;
        }, "key-change");
        return new Command("key", "Manage the passphrases of the repository") { list, add, remove };
    }

    public static Command Repo(CliContext ctx)
    {
        var name = new Argument<string>("NAME") { Description = "The item's name in the repository" };
        var file = new Argument<string?>("FILE") { Description = "File to read, or - for stdin (default: -)", Arity = ArgumentArity.ZeroOrOne };
        var put = new Command("put", "Store a file or stdin in the repository as a new snapshot of NAME") { name, file };
        put.SetAction(ctx, (p, ct) => PutAsync(ctx, p, p.GetValue(name)!, p.GetValue(file), ct), "backup");

        var getName = new Argument<string>("NAME") { Description = "The item's name" };
        var getFile = new Argument<string?>("FILE") { Description = "Where to write, or - for stdout (default: -)", Arity = ArgumentArity.ZeroOrOne };
        var snapshot = new Option<string?>("--snapshot", "-s") { Description = "Snapshot ID (default: the newest of NAME)" };
        var get = new Command("get", "Write the newest (or a given) snapshot of NAME to a file or stdout") { getName, getFile, snapshot };
        get.SetAction(ctx, (p, ct) => GetAsync(ctx, p, p.GetValue(getName)!, p.GetValue(getFile), p.GetValue(snapshot), ct), "restore");

        var ls = new Command("ls", "List the snapshots in the repository");
        ls.SetAction(ctx, (p, ct) => ListAsync(ctx, p, ct));

        var rmArg = new Argument<string>("SNAPSHOT") { Description = "Snapshot ID or unique prefix" };
        var rm = new Command("rm", "Forget a snapshot; 'cairn prune' then frees its data") { rmArg };
        rm.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: false, "forget", ct).ConfigureAwait(false);
            var s = await repo.FindSnapshotAsync(p.GetValue(rmArg)!, ct).ConfigureAwait(false);
            await repo.ForgetAsync(s, ct).ConfigureAwait(false);
            ctx.Console.Out.WriteLine($"forgot snapshot {s.ShortId} ({s.Manifest.Name}); run 'cairn prune' to free its data");
            return ExitCodes.Ok;
        });
        return new Command("repo", "Store and fetch any file or stream (for support engineers and scripts)") { put, get, ls, rm };
    }

    private static async Task<int> PutAsync(CliContext ctx, ParseResult p, string name, string? file, CancellationToken ct)
    {
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "put", ct).ConfigureAwait(false);
        var stdin = file is null or "-";
        Stream input;
        try
        {
            input = stdin ? System.Console.OpenStandardInput() : new FileStream(file!, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"file {file} does not exist");
        }
        var sw = Stopwatch.StartNew();
        await using (input)
        {
            long? total = stdin ? null : input.Length;
            var (snap, stats) = await ctx.Console.WithProgressAsync($"put {name}", total, async sink =>
            {
                await using var w = repo.BeginWrite();
                await w.AddStreamAsync(name, input, sink, ct).ConfigureAwait(false);
                var s = await w.CommitAsync(name, "file", null, ct).ConfigureAwait(false);
                return (s, w.Stats);
            }).ConfigureAwait(false);
            var secs = sw.Elapsed.TotalSeconds;
            var mbps = stats.BytesRead / 1e6 / Math.Max(secs, 1e-6);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "backup", "pass", new()
            {
                ["name"] = name,
                ["size_bytes"] = stats.BytesRead.ToString(CultureInfo.InvariantCulture),
                ["added_bytes"] = stats.BytesAdded.ToString(CultureInfo.InvariantCulture),
                ["chunks_new"] = stats.ChunksNew.ToString(CultureInfo.InvariantCulture),
                ["chunks_total"] = stats.ChunksTotal.ToString(CultureInfo.InvariantCulture),
            }, ct, snapshot: snap.Id, durationMs: sw.ElapsedMilliseconds).ConfigureAwait(false);
            if (p.GetValue(CommandRunner.Json))
            {
                ctx.Console.Out.WriteLine(JsonSerializer.Serialize(new PutOutput("summary", snap.Id, name, stats.BytesRead, stats.BytesAdded, stats.ChunksTotal, stats.ChunksNew, secs, mbps), CliJson.Default.PutOutput));
            }
            else
            {
                ctx.Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"snapshot {snap.ShortId} of {name}: {Format.Bytes(stats.BytesRead)} read, {Format.Bytes(stats.BytesAdded)} added ({stats.ChunksNew} of {stats.ChunksTotal} chunks new) in {Format.Duration(sw.Elapsed)} ({mbps:0.0} MB/s)"));
            }
        }
        return ExitCodes.Ok;
    }

    private static async Task<int> GetAsync(CliContext ctx, ParseResult p, string name, string? file, string? snapshotId, CancellationToken ct)
    {
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        await using var l = await repo.LockAsync(exclusive: false, "get", ct).ConfigureAwait(false);
        Repository.Manifests.Snapshot snap;
        if (snapshotId is not null)
        {
            snap = await repo.FindSnapshotAsync(snapshotId, ct).ConfigureAwait(false);
        }
        else
        {
            var all = await repo.ListSnapshotsAsync(ct).ConfigureAwait(false);
            snap = all.LastOrDefault(s => s.Manifest.Name == name)
                ?? throw new RepositoryException(ErrorKind.NotFound, $"no snapshot named {name}; list them with 'cairn repo ls'");
        }
        var item = snap.Manifest.Items.FirstOrDefault(i => i.Name == name) ?? snap.Manifest.Items.FirstOrDefault()
            ?? throw new RepositoryException(ErrorKind.NotFound, $"snapshot {snap.ShortId} holds no item");
        if (file is null or "-")
        {
            await using var stdout = System.Console.OpenStandardOutput();
            await repo.ReadItemAsync(item, stdout, null, ct).ConfigureAwait(false);
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "restore", "pass", new() { ["name"] = name, ["size_bytes"] = item.Size.ToString(CultureInfo.InvariantCulture), ["target"] = "stdout" }, ct, snapshot: snap.Id).ConfigureAwait(false);
            return ExitCodes.Ok;
        }
        // Write beside the target and rename at the end: a failed read never leaves a file that looks complete.
        var full = Path.GetFullPath(file);
        var temp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.cairn-partial");
        try
        {
            await using (var output = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous))
            {
                await ctx.Console.WithProgressAsync($"get {name}", item.Size, async sink =>
                {
                    await repo.ReadItemAsync(item, output, sink, ct).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);
            }
            File.Move(temp, full, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
        await Evidence.RecordAsync(ctx, repo.Storage.Location, "restore", "pass", new() { ["name"] = name, ["size_bytes"] = item.Size.ToString(CultureInfo.InvariantCulture), ["target"] = "file" }, ct, snapshot: snap.Id).ConfigureAwait(false);
        ctx.Console.Error.WriteLine($"wrote {Format.Bytes(item.Size)} of snapshot {snap.ShortId} to {file}");
        return ExitCodes.Ok;
    }

    private static async Task<int> ListAsync(CliContext ctx, ParseResult p, CancellationToken ct)
    {
        using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
        var snaps = await repo.ListSnapshotsAsync(ct, (id, e) => ctx.Console.Error.WriteLine($"warning: manifest {id[..8]} is unreadable: {e.Message}")).ConfigureAwait(false);
        var rows = snaps.Select(s => new SnapshotRow(s.Id, s.ShortId, s.Manifest.Time, s.Manifest.Kind, s.Manifest.Name, s.Manifest.Host, s.Size, s.Manifest.StoredBytes, s.Manifest.AddedBytes, s.Manifest.DurationMs, s.Manifest.Items.Count, s.Manifest.Meta)).ToList();
        if (p.GetValue(CommandRunner.Json))
        {
            ctx.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListSnapshotRow));
            return ExitCodes.Ok;
        }
        if (rows.Count == 0)
        {
            ctx.Console.Out.WriteLine("no snapshots yet; store one with 'cairn repo put NAME FILE'");
            return ExitCodes.Ok;
        }
        var t = new Table().AddColumns("ID", "Time (UTC)", "Kind", "Name", "Size", "Added", "Duration");
        foreach (var r in rows)
        {
            t.AddRow(r.ShortId, Format.Time(r.Time), r.Kind, Markup.Escape(r.Name), Format.Bytes(r.Size), Format.Bytes(r.AddedBytes), Format.Duration(TimeSpan.FromMilliseconds(r.DurationMs)));
        }
        ctx.Console.Ansi.Write(t);
        return ExitCodes.Ok;
    }

    public static Command Verify(CliContext ctx)
    {
        var readData = new Option<bool>("--read-data") { Description = "Also read and authenticate every pack (slow; reads the whole repository)" };
        var subset = new Option<string?>("--read-data-subset") { Description = "Read a random share of packs, e.g. 10% (spread the cost over days)" };
        var database = new Argument<string?>("DATABASE") { Description = "With --live: run this database's configured checks against the live database", Arity = ArgumentArity.ZeroOrOne };
        var live = new Option<bool>("--live") { Description = "Run the database's checks against the live database (read-only, with a statement timeout); exit 12 when one fails" };
        var cmd = new Command("verify", "Check the repository: structure always; with --read-data every byte (exit 5 when damage is found). With DATABASE --live: the checks against the live database") { database, readData, subset, live };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            if (p.GetValue(live) || p.GetValue(database) is not null)
            {
                var name = p.GetValue(database) ?? throw new RepositoryException(ErrorKind.InvalidInput, "--live needs the DATABASE to check");
                if (!p.GetValue(live))
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"to check the live database {name}, add --live; to check the repository, leave out the database");
                }
                return await DrillCommands.VerifyLiveAsync(ctx, p, name, ct).ConfigureAwait(false);
            }
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: false, "verify", ct).ConfigureAwait(false);
            var fraction = 1.0;
            var read = p.GetValue(readData);
            if (p.GetValue(subset) is { } s)
            {
                var text = s.TrimEnd('%');
                if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var pct) || pct <= 0 || pct > 100)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"--read-data-subset wants a percentage between 0 and 100, like 10%; got '{s}'");
                }
                fraction = pct / 100;
                read = true;
            }
            var sw = Stopwatch.StartNew();
            var report = await ctx.Console.WithProgressAsync("verify", null, async sink =>
                await new Checker(repo).CheckAsync(new CheckOptions(read, fraction), new Progress<(int Done, int Total)>(x => sink.Describe($"verify: {x.Done}/{x.Total} packs")), ct).ConfigureAwait(false)).ConfigureAwait(false);
            // WAL: continuity from each physical backup's start to the newest segment, across timeline switches;
            // with --read-data also every archived segment's integrity and size.
            var physical = (await repo.ListSnapshotsAsync(ct).ConfigureAwait(false)).Where(x => x.Manifest.Kind == Cairn.Operations.Physical.PhysicalOperation.Kind).ToList();
            var walFindings = await Cairn.Operations.Physical.WalArchive.CheckAsync(repo, physical, read, fraction, ct).ConfigureAwait(false);
            if (walFindings.Count > 0)
            {
                report = report with { Findings = [.. report.Findings, .. walFindings] };
            }
            var damage = report.Findings.Where(f => f.IsDamage).ToList();
            await Evidence.RecordAsync(ctx, repo.Storage.Location, "verify", report.HasDamage ? "fail" : "pass", new()
            {
                ["scope"] = read ? (fraction < 1 ? $"read-data {fraction * 100:0.#}%" : "read-data") : "structure",
                ["snapshots"] = report.Snapshots.ToString(CultureInfo.InvariantCulture),
                ["packs_read"] = report.PacksRead.ToString(CultureInfo.InvariantCulture),
                ["bytes_read"] = report.BytesRead.ToString(CultureInfo.InvariantCulture),
                ["damage_findings"] = damage.Count.ToString(CultureInfo.InvariantCulture),
                ["wal_findings"] = walFindings.Count.ToString(CultureInfo.InvariantCulture),
                ["wal_databases"] = string.Join(",", physical.Select(x => x.Manifest.Name).Distinct().Order(StringComparer.Ordinal)),
                ["duration_ms"] = sw.ElapsedMilliseconds.ToString(CultureInfo.InvariantCulture),
            }, ct).ConfigureAwait(false);
            if (p.GetValue(CommandRunner.Json))
            {
                var rows = report.Findings.Select(f => new FindingRow(f.Kind.ToString().ToLowerInvariant(), f.Object, f.Detail, f.AffectedSnapshots, f.IsDamage)).ToList();
                ctx.Console.Out.WriteLine(JsonSerializer.Serialize(new VerifyOutput("summary", !report.HasDamage, report.Snapshots, report.Indexes, report.Packs, report.PacksRead, report.BytesRead, report.Blobs, rows), CliJson.Default.VerifyOutput));
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
                    ctx.Console.Ansi.Write(t);
                }
                var readText = read ? $", read {report.PacksRead} pack(s) ({Format.Bytes(report.BytesRead)})" : "";
                ctx.Console.Out.WriteLine(report.HasDamage
                    ? $"DAMAGED: {damage.Count} finding(s) in {report.Snapshots} snapshot(s), {report.Packs} pack(s){readText}"
                    : $"OK: {report.Snapshots} snapshot(s), {report.Indexes} index(es), {report.Packs} pack(s), {report.Blobs} blob(s){readText}{(report.Findings.Count > 0 ? $"; {report.Findings.Count} orphaned object(s) ('cairn prune' removes them)" : "")}");
            }
            return report.HasDamage ? ExitCodes.Damaged : ExitCodes.Ok;
        }, "verify");
        return cmd;
    }

    public static Command Prune(CliContext ctx)
    {
        var dry = new Option<bool>("--dry-run", "-n") { Description = "Print what would go and what stays, and why; change nothing" };
        var cmd = new Command("prune", "Apply each database's retention (keep_last/daily/weekly/monthly/within in cairn.yaml), then delete data no snapshot references, under an exclusive lock") { dry };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            using var repo = await ctx.OpenRepositoryAsync(p.GetValue(CommandRunner.Repo), ct).ConfigureAwait(false);
            await using var l = await repo.LockAsync(exclusive: true, "prune", ct).ConfigureAwait(false);
            var dryRun = p.GetValue(dry);
            var json = p.GetValue(CommandRunner.Json);
            var decisions = new List<(string Database, RetentionDecision Decision)>();
            var snapshots = await repo.ListSnapshotsAsync(ct).ConfigureAwait(false);
            // Logical and physical backups of a database are judged separately: each kind keeps its own history.
            foreach (var group in snapshots.Where(s => s.Manifest.Kind != "file").GroupBy(s => (s.Manifest.Name, s.Manifest.Kind)))
            {
                var policy = ctx.Config.Databases.TryGetValue(group.Key.Name, out var dbc) ? dbc.Retention : new RetentionPolicy();
                foreach (var d in RetentionPlanner.Plan(group.Select(s => (s.Id, s.Manifest.Time)), policy))
                {
                    decisions.Add((group.Key.Name, d));
                }
            }
            var forget = decisions.Where(d => !d.Decision.Keep).ToList();
            // WAL: delete only segments from before the start of the oldest physical backup that stays, so
            // no restorable point inside the kept window loses the WAL it needs (no gap is ever created).
            var walToDelete = new List<string>();
            var windowLines = new List<string>();
            foreach (var group in snapshots.Where(s => s.Manifest.Kind == Cairn.Operations.Physical.PhysicalOperation.Kind).GroupBy(s => s.Manifest.Name))
            {
                var kept = group.Where(s => !forget.Any(f => f.Decision.Id == s.Id)).ToList();
                if (kept.Count == 0)
                {
                    continue;
                }
                var oldestAll = group.Select(s => s.Manifest.Meta["start_wal"][8..]).Min(StringComparer.Ordinal)!;
                var oldestKept = kept.Select(s => s.Manifest.Meta["start_wal"][8..]).Min(StringComparer.Ordinal)!;
                var wal = await Cairn.Operations.Physical.PhysicalOperation.WalFilesAsync(repo, group.Key, ct).ConfigureAwait(false);
                var goes = wal.Where(w => Cairn.PostgreSql.Physical.WalNames.IsSegment(w) && string.CompareOrdinal(w[8..], oldestKept) < 0).ToList();
                walToDelete.AddRange(goes.Select(w => Cairn.Operations.Physical.PhysicalOperation.WalObjectName(group.Key, w)));
                windowLines.Add($"recovery window of {group.Key}: before prune from WAL position {oldestAll}, after from {oldestKept} ({goes.Count} WAL segment(s) {(dryRun ? "would go" : "removed")}; nothing after the oldest kept backup is touched)");
            }
            if (!dryRun)
            {
                foreach (var (_, d) in forget)
                {
                    await repo.ForgetAsync(snapshots.First(s => s.Id == d.Id), ct).ConfigureAwait(false);
                }
                foreach (var w in walToDelete)
                {
                    await repo.Storage.DeleteAsync(new Cairn.Repository.Storage.StorageKey(Cairn.Repository.Storage.ObjectKind.Named, w), ct).ConfigureAwait(false);
                }
            }
            foreach (var line in windowLines)
            {
                ctx.Console.Info(line);
            }
            var r = await new Pruner(repo).PruneAsync(dryRun, ct).ConfigureAwait(false);
            if (dryRun && forget.Count > 0)
            {
                ctx.Console.Info("dry run: packs that only forgotten snapshots use are freed by the real run, so the figures below undercount");
            }
            if (!dryRun)
            {
                await Evidence.RecordAsync(ctx, repo.Storage.Location, "prune", "pass", new()
                {
                    ["snapshots_forgotten"] = forget.Count.ToString(CultureInfo.InvariantCulture),
                    ["wal_segments_deleted"] = walToDelete.Count.ToString(CultureInfo.InvariantCulture),
                    ["snapshots_kept"] = (decisions.Count - forget.Count).ToString(CultureInfo.InvariantCulture),
                    ["packs_deleted"] = r.PacksDeleted.ToString(CultureInfo.InvariantCulture),
                    ["packs_repacked"] = r.PacksRepacked.ToString(CultureInfo.InvariantCulture),
                    ["bytes_deleted"] = r.BytesDeleted.ToString(CultureInfo.InvariantCulture),
                    ["bytes_kept"] = r.BytesKept.ToString(CultureInfo.InvariantCulture),
                }, ct).ConfigureAwait(false);
            }
            if (json)
            {
                var o = new JsonObject
                {
                    ["message_type"] = "summary",
                    ["dry_run"] = dryRun,
                    ["snapshots"] = new JsonArray([.. decisions.Select(d => (JsonNode)new JsonObject
                    {
                        ["id"] = d.Decision.Id,
                        ["database"] = d.Database,
                        ["time"] = d.Decision.Time.ToUniversalTime().ToString("O", CultureInfo.InvariantCulture),
                        ["keep"] = d.Decision.Keep,
                        ["reasons"] = new JsonArray([.. d.Decision.Reasons.Select(x => (JsonNode?)JsonValue.Create(x))]),
                    })]),
                    ["packs_deleted"] = r.PacksDeleted,
                    ["packs_repacked"] = r.PacksRepacked,
                    ["bytes_deleted"] = r.BytesDeleted,
                    ["bytes_kept"] = r.BytesKept,
                    ["orphan_packs"] = r.OrphanPacks,
                    ["wal_deleted"] = new JsonArray([.. walToDelete.Select(x => (JsonNode?)JsonValue.Create(x))]),
                    ["deleted_objects"] = new JsonArray([.. r.DeletedObjects.Select(x => (JsonNode?)JsonValue.Create(x))]),
                };
                ctx.Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                return ExitCodes.Ok;
            }
            if (decisions.Count > 0)
            {
                var t = new Table().AddColumns("Snapshot", "Database", "Time (UTC)", dryRun ? "Would" : "Done", "Why");
                foreach (var (db, d) in decisions)
                {
                    t.AddRow(d.Id[..8], Markup.Escape(db), Format.Time(d.Time), d.Keep ? "[green]keep[/]" : "[red]forget[/]", Markup.Escape(d.Keep ? string.Join("; ", d.Reasons) : "no rule keeps it"));
                }
                ctx.Console.Ansi.Write(t);
            }
            var verb = dryRun ? "would delete" : "deleted";
            foreach (var o in r.DeletedObjects)
            {
                ctx.Console.Out.WriteLine($"{verb} {o}");
            }
            ctx.Console.Out.WriteLine($"{(dryRun ? "dry run: " : "")}{(dryRun ? "would forget" : "forgot")} {forget.Count} snapshot(s), kept {decisions.Count - forget.Count}; {verb} {r.PacksDeleted} pack(s) ({r.OrphanPacks} orphaned), repacked {r.PacksRepacked}, freed {Format.Bytes(r.BytesDeleted)}; {Format.Bytes(r.BytesKept)} kept");
            return ExitCodes.Ok;
        }, "prune");
        return cmd;
    }

    public static Command Unlock(CliContext ctx)
    {
        var force = new Option<bool>("--force") { Description = "Remove every lock, even live ones (only when you know no Cairn process uses the repository)" };
        var cmd = new Command("unlock", "List locks and remove stale ones (left by a process that died)") { force };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var storage = ctx.Storage(p.GetValue(CommandRunner.Repo));
            var before = await RepositoryLock.ListAsync(storage, ctx.Time, ct).ConfigureAwait(false);
            var removed = await RepositoryLock.RemoveAsync(storage, ctx.Time, p.GetValue(force), ct).ConfigureAwait(false);
            if (removed.Count > 0)
            {
                await Evidence.RecordLockRemovalAsync(ctx, storage.Location, new StaleLockRemoval(removed, p.GetValue(force) ? "unlock --force" : "unlock"), ct, announce: false).ConfigureAwait(false);
            }
            if (p.GetValue(CommandRunner.Json))
            {
                var rows = before.Select(l => new LockRow(l.Id, l.Data.Host, l.Data.Pid, l.Data.Exclusive, l.Data.Operation, l.Data.Created, l.Data.Refreshed, l.IsStale, l.StaleReason)).ToList();
                ctx.Console.Out.WriteLine(JsonSerializer.Serialize(rows, CliJson.Default.ListLockRow));
                return ExitCodes.Ok;
            }
            foreach (var l in before)
            {
                var gone = removed.Any(r => r.Id == l.Id);
                ctx.Console.Out.WriteLine($"{(gone ? "removed" : "kept")} lock {l.Id[..8]}: {l.Data.Operation} pid {l.Data.Pid} on {l.Data.Host}{(l.IsStale ? $" (stale: {l.StaleReason})" : " (alive)")}");
            }
            ctx.Console.Out.WriteLine($"{removed.Count} lock(s) removed, {before.Count - removed.Count} kept");
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
