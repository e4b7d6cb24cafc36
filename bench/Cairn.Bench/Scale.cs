using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Cairn.Operations.Physical;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;

namespace Cairn.Bench;

/// <summary>
/// bench/scale.sh: a repository with years of history, made fast. Real backups would take days; instead the manifests
/// (physical and logical, several databases, with realistic item and chunk counts and the meta the operations read) and
/// the WAL objects are written through the repository engine itself, so they are sealed, named and listed exactly as
/// real ones. Every chunk a manifest names exists (a shared pool of blobs), so check, verify and prune see a consistent
/// repository. WAL objects hold a few bytes each, not 16 MiB: the operations measured list WAL, they do not read it.
/// </summary>
internal static class ScaleBench
{
    private static readonly DateTimeOffset Origin = new(2024, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>scale-generate FOLDER PASSPHRASE_FILE DATABASES SNAPSHOTS WAL_OBJECTS CHUNKS_PER_BACKUP</summary>
    public static async Task<int> GenerateAsync(string[] args)
    {
        var folder = args[0];
        var passphrase = File.ReadAllText(args[1]);
        var databases = Int(args[2]);
        var snapshots = Int(args[3]);
        var walObjects = Int(args[4]);
        var chunksPerBackup = Int(args[5]);
        var ct = CancellationToken.None;
        var clock = Stopwatch.StartNew();
        var storage = new FileSystemStorage(folder);
        using var repo = await Repository.Repository.InitAsync(storage, passphrase, new RepositoryOptions { Kdf = KdfParameters.Fast }, TimeProvider.System, ct);

        // The pool of blobs every manifest draws from: stored once, through the normal write path. Big enough that a
        // manifest's 2,000 references are mostly distinct, so manifests compress no better than real ones.
        var rng = new Random(18);
        var pool = new List<ManifestItem>();
        await using (var writer = repo.BeginWrite())
        {
            for (var i = 0; i < 4096; i++)
            {
                var bytes = new byte[1024];
                rng.NextBytes(bytes);
                pool.Add(await writer.AddStreamAsync($"pool/{i}", new MemoryStream(bytes), null, ct));
            }
            var seed = await writer.CommitAsync("scale-pool", BackupKinds.File, null, ct);
            await repo.ForgetAsync(seed, ct);
        }
        var chunkIds = pool.Select(p => p.Chunks[0]).ToArray();

        // Each database gets an equal share of the snapshots (half physical, half logical) and of the WAL, spread over
        // three years; a physical backup starts at the WAL segment its place in time corresponds to.
        var span = TimeSpan.FromDays(3 * 365);
        var perDb = snapshots / databases;
        var walPerDb = walObjects / databases;
        var written = 0;
        var options = new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = ct };
        for (var d = 0; d < databases; d++)
        {
            var db = $"db{d + 1}";
            var segments = new string[walPerDb];
            var s = "000000010000000000000001";
            for (var i = 0; i < walPerDb; i++)
            {
                segments[i] = s;
                s = WalContinuity.Next(s);
            }
            await Parallel.ForEachAsync(Enumerable.Range(0, perDb), options, async (i, token) =>
            {
                var physical = i % 2 == 0;
                var time = Origin + span * (i + 0.5) / perDb;
                var seg = segments[(int)((long)walPerDb * i / perDb)];
                var manifest = physical ? Physical(db, time, seg, chunkIds, chunksPerBackup, i) : Logical(db, time, chunkIds, chunksPerBackup, i);
                var json = JsonSerializer.SerializeToUtf8Bytes(manifest, RepositoryJson.Default.Manifest);
                await repo.PutObjectAsync(ObjectKind.Snapshot, json, token);
                Interlocked.Increment(ref written);
            });
            var payload = new byte[64];
            await Parallel.ForEachAsync(segments, options, async (seg, token) =>
                await NamedFiles.PutAsync(repo, $"{db}@{seg}", payload, token));
            Console.Error.WriteLine($"{db}: {perDb} snapshots, {walPerDb} WAL objects ({clock.Elapsed.TotalSeconds:0} s)");
        }
        Console.WriteLine($"generated {written} snapshots and {walPerDb * databases} WAL objects for {databases} databases in {clock.Elapsed.TotalSeconds:0.0} s");

        // The manifests were stored without the snapshot index, as a repository written before it has them: the next
        // write builds it (the migration), and every later write only reads and rewrites it.
        clock.Restart();
        await repo.UpdateSnapshotIndexAsync(null, ct);
        var migration = clock.Elapsed.TotalSeconds;
        clock.Restart();
        await repo.UpdateSnapshotIndexAsync(null, ct);
        Console.WriteLine($"snapshot index: built by the first write in {migration:0.00} s (every manifest read once); a later write's update {clock.Elapsed.TotalSeconds:0.00} s");

        // The WAL summary, as the next physical backup writes it (one listing of wal/).
        clock.Restart();
        var summary = await WalSummaries.WriteAsync(repo, ct);
        Console.WriteLine($"WAL summary: {summary.Databases.Count} databases, {summary.Databases.Sum(d => d.Runs.Count)} runs, written in {clock.Elapsed.TotalSeconds:0.00} s (one listing of wal/)");
        return 0;
    }

    /// <summary>
    /// scale-plan FOLDER PASSPHRASE_FILE DATABASE TARGET_TIME: what <c>restore --physical --target-time</c> does before it
    /// writes a byte (open, list the snapshots, choose the backup, check the WAL from its start for gaps), timed in-process
    /// with the operation's own code.
    /// </summary>
    public static async Task<int> PlanAsync(string[] args)
    {
        var ct = CancellationToken.None;
        var passphrase = File.ReadAllText(args[1]);
        var database = args[2];
        var target = new RecoveryTarget(Time: args[3]);
        var clock = Stopwatch.StartNew();
        using var repo = await Repository.Repository.OpenAsync(new FileSystemStorage(args[0]), passphrase, TimeProvider.System, ct);
        var open = clock.Elapsed.TotalSeconds;
        var chosen = await PhysicalRestoreOperation.ChooseAsync(repo, database, null, target, ct);
        var choose = clock.Elapsed.TotalSeconds;
        var missing = await new WalArchive(repo, database).MissingAsync(PhysicalBackupMeta.Of(chosen).StartWal, ct);
        var plan = clock.Elapsed.TotalSeconds;
        if (missing.Count > 0)
        {
            Console.Error.WriteLine($"the generated archive has a gap at {missing[0]}: the generator is wrong");
            return 1;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"open {open:0.00} s; choose backup for {args[3]}: {chosen.ShortId} of {chosen.Manifest.Time:u} at {choose:0.00} s; restore plan (WAL from {PhysicalBackupMeta.Of(chosen).StartWal} checked) at {plan:0.00} s; peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576} MiB"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"choose_s={choose:0.00} plan_s={plan:0.00}"));
        return 0;
    }

    /// <summary>
    /// scale-profile FOLDER PASSPHRASE_FILE: where <c>snapshots</c>' time goes, step by step, in-process (open, the snapshot
    /// index, the WAL summary, the WAL listing, the gap checks), and the listings <c>check</c> makes. Each step's wall time;
    /// the steps repeat what the commands do, they do not replace measuring the commands.
    /// </summary>
    public static async Task<int> ProfileAsync(string[] args)
    {
        var ct = CancellationToken.None;
        var passphrase = File.ReadAllText(args[1]);
        var clock = Stopwatch.StartNew();
        void Step(string what)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{what,-58} {clock.Elapsed.TotalSeconds,6:0.000} s"));
            clock.Restart();
        }
        var storage = new FileSystemStorage(args[0]);
        using var repo = await Repository.Repository.OpenAsync(storage, passphrase, TimeProvider.System, ct);
        Step("open (key derivation, config)");
        var all = await repo.ListSnapshotSummariesAsync((_, _) => { }, _ => { }, ct);
        Step($"snapshot index: {all.Count} summaries");
        var physical = all.Where(x => x.Manifest.Kind == BackupKinds.Physical).GroupBy(x => x.Manifest.Name).ToList();
        var from = physical.ToDictionary(g => g.Key, g => g.Select(x => PhysicalBackupMeta.Of(x).StartWal).Min(StringComparer.Ordinal)!, StringComparer.Ordinal);
        Step($"oldest start WAL of {from.Count} databases");
        var summary = await repo.ReadNewestWalSummaryAsync(null, ct);
        Step("WAL summary: read");
        var expanded = WalSummaries.Expand(summary!, from.Keys);
        Step($"WAL summary: expanded to {expanded.Values.Sum(v => v.Count)} names");
        foreach (var db in from.Keys)
        {
            var through = summary!.Databases.First(d => d.Database == db).Through;
            var tail = await new WalArchive(storage, db).ListAfterAsync(through, ct);
            Step($"listing after the summary of {db} alone ({tail.Count} objects)");
        }
        var (archived, _) = await WalSummaries.ArchivedAsync(repo, from, null, ct);
        Step($"WalSummaries.ArchivedAsync for {from.Count} databases");
        foreach (var (db, list) in archived)
        {
            var names = list.Select(w => w.Name).ToList();
            var missing = WalContinuity.Missing(names, from[db], null);
            Step($"gap check of {db} ({names.Count} names, {missing.Count} missing)");
        }
        var windows = await RecoveryWindow.ComputeAsync(repo, all, ct);
        Step($"RecoveryWindow.ComputeAsync ({windows.Count} windows)");
        var (byDb, bytes) = await WalArchive.ListAllAsync(storage, ct);
        Step($"check: one full listing of wal/ ({byDb.Values.Sum(v => v.Count)} objects, {bytes} bytes)");
        long other = 0;
        foreach (var kind in Enum.GetValues<ObjectKind>().Where(k => k != ObjectKind.Named))
        {
            await foreach (var o in storage.ListAsync(kind, ct))
            {
                other += o.Size;
            }
        }
        Step($"check: listing every other kind ({other} bytes)");
        Console.WriteLine($"peak working set {Process.GetCurrentProcess().PeakWorkingSet64 / 1048576} MiB");
        return 0;
    }

    private static Manifest Physical(string db, DateTimeOffset time, string startWal, string[] pool, int chunks, int n)
    {
        // A cluster of ~1,200 files (catalog and relation segments), the chunk references spread over them.
        const int files = 1200;
        var items = new List<ManifestItem>(files + 1);
        for (var f = 0; f < files; f++)
        {
            var count = chunks / files + (f < chunks % files ? 1 : 0);
            var ids = new List<string>(count);
            for (var c = 0; c < count; c++)
            {
                ids.Add(pool[(f * 7 + c + n) % pool.Length]);
            }
            items.Add(new ManifestItem
            {
                Name = $"base/16384/{16384 + f}",
                Type = "file",
                Size = 1024L * count,
                Chunks = ids,
                Meta = new() { ["mode"] = "600", ["mtime"] = Iso(time.AddMinutes(-f % 60)) },
            });
        }
        var seg = startWal;
        var stop = WalContinuity.Next(seg);
        var lsn = $"{Convert.ToUInt32(seg[8..16], 16):X}/{Convert.ToUInt32(seg[16..24], 16) << 24:X}";
        var stopLsn = $"{Convert.ToUInt32(stop[8..16], 16):X}/{(Convert.ToUInt32(stop[16..24], 16) << 24) + 0x100:X}";
        return new Manifest
        {
            Time = time.AddMinutes(5),
            Host = "scale",
            Name = db,
            Kind = BackupKinds.Physical,
            Items = items,
            Meta = new()
            {
                ["source"] = $"postgresql://postgres@db/{db}",
                ["server_version"] = "150010",
                ["system_identifier"] = "7300000000000000001",
                ["data_directory"] = $"/var/lib/postgresql/15/{db}",
                ["start_lsn"] = lsn,
                ["stop_lsn"] = stopLsn,
                ["timeline"] = "1",
                ["start_wal"] = seg,
                ["stop_wal"] = stop,
                ["start_time"] = Iso(time),
                ["stop_time"] = Iso(time.AddMinutes(4)),
                ["format"] = PhysicalBackupMeta.FilesFormat,
                ["from_standby"] = "no",
                ["incremental_from"] = "",
                ["reused_files"] = "0",
                ["reused_bytes"] = "0",
                ["reused_page_bytes"] = "0",
                ["data_checksums"] = "on",
            },
            DurationMs = 240_000,
            AddedBytes = 1024L * chunks,
            StoredBytes = 1024L * chunks,
        };
    }

    private static Manifest Logical(string db, DateTimeOffset time, string[] pool, int chunks, int n)
    {
        // A pg_dump directory: a table of contents and one data file per table, ~60 tables.
        const int tables = 60;
        var items = new List<ManifestItem>(tables + 2);
        for (var t = 0; t <= tables; t++)
        {
            var count = t == 0 ? 1 : chunks / tables;
            var ids = new List<string>(count);
            for (var c = 0; c < count; c++)
            {
                ids.Add(pool[(t * 13 + c + n) % pool.Length]);
            }
            items.Add(new ManifestItem { Name = t == 0 ? "dump/toc.dat" : $"dump/{3000 + t}.dat", Size = 1024L * count, Chunks = ids });
        }
        return new Manifest
        {
            Time = time,
            Host = "scale",
            Name = db,
            Kind = BackupKinds.Logical,
            Items = items,
            Meta = new()
            {
                ["database"] = db,
                ["source"] = $"postgresql://postgres@db/{db}",
                ["server_version"] = "150010",
                ["backup_time"] = Iso(time),
                ["format"] = "pg_dump-directory",
                ["tables"] = tables.ToString(CultureInfo.InvariantCulture),
                ["rows"] = "1000000",
                ["fingerprint"] = "count",
            },
            DurationMs = 60_000,
            AddedBytes = 1024L * chunks,
            StoredBytes = 1024L * chunks,
        };
    }

    private static int Int(string s) => int.Parse(s, NumberStyles.None, CultureInfo.InvariantCulture);

    private static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);
}
