using System.Diagnostics;
using Cairn.Cli;
using Cairn.Operations;
using Cairn.Operations.Configuration;
using Cairn.Operations.Physical;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>
/// Asynchronous wal-push and wal-fetch's prefetch on a local repository and a fake pg_wal (no server): what a spool
/// entry may and may not stand for, and a kill -9 of the background pusher losing nothing.
/// </summary>
public sealed class WalAsyncTests : IDisposable
{
    private const string Passphrase = "wal async passphrase 7c1d";
    private readonly TempDir _dir = new();

    private string Repo => _dir.File("repo");

    private string WalDir => _dir.File("pg_wal");

    private string Spool => _dir.File("spool");

    public void Dispose() => _dir.Dispose();

    private async Task<OperationContext> SetUpAsync(string walYaml)
    {
        var pass = _dir.File("pass");
        await File.WriteAllTextAsync(pass, Passphrase + "\n");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = Repo, ["CAIRN_PASSPHRASE_FILE"] = pass });
        var init = await cli.RunAsync("init", "--kdf-memory-mib", "1", "--kdf-iterations", "1");
        Assert.True(init.Code == 0, init.Err);
        var yaml = _dir.File("cairn.yaml");
        await File.WriteAllTextAsync(yaml, $"databases:\n  app:\n    connection: \"host=/nonexistent dbname=app\"\n    wal:\n{walYaml}");
        var config = CairnConfig.Load(yaml);
        var env = new Dictionary<string, string> { ["CAIRN_PASSPHRASE_FILE"] = pass, ["CAIRN_CONFIG"] = yaml };
        return new OperationContext(config, TimeProvider.System, new FileSecrets(pass), new CliStorageFactory(TimeProvider.System, null, env.GetValueOrDefault), env.GetValueOrDefault,
            Repo, _dir.File("evidence"), selfCommand: $"{WalCommands.Sh(Environment.ProcessPath!)} {WalCommands.Sh(CairnProcess.Dll)}");
    }

    private sealed class FileSecrets(string file) : ISecretSource
    {
        public string Passphrase(bool confirm = false) => File.ReadAllText(file).TrimEnd('\n');

        public string NewPassphrase() => throw new NotSupportedException();
    }

    /// <summary>Segments 1..count of 1 MiB, distinct content, each marked ready as PostgreSQL does.</summary>
    private List<string> MakeSegments(int count)
    {
        Directory.CreateDirectory(Path.Combine(WalDir, "archive_status"));
        var names = new List<string>();
        for (var i = 1; i <= count; i++)
        {
            var name = OperationsHarness.Segment(i);
            var data = new byte[1024 * 1024];
            new Random(i).NextBytes(data.AsSpan(0, 300_000));
            File.WriteAllBytes(Path.Combine(WalDir, name), data);
            File.WriteAllText(Path.Combine(WalDir, "archive_status", name + ".ready"), "");
            names.Add(name);
        }
        return names;
    }

    /// <summary>What PostgreSQL's archiver does after archive_command succeeded.</summary>
    private void Done(string name) => File.Move(Path.Combine(WalDir, "archive_status", name + ".ready"), Path.Combine(WalDir, "archive_status", name + ".done"));

    private string PushSpool => Path.Combine(Spool, "app", "push");

    private static async Task<bool> InRepositoryAsync(OperationContext context, string name)
        => await new WalArchive(context.OpenStorage(), "app").ExistsAsync(name, default);

    /// <summary>The pusher processes working on this test's pg_wal (found by its unique path, never by a program name).</summary>
    private List<int> PusherPids()
    {
        var pids = new List<int>();
        foreach (var proc in Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)))
        {
            try
            {
                var cmdline = File.ReadAllText($"/proc/{proc}/cmdline").Replace('\0', ' ');
                if (cmdline.Contains("wal-push-ahead", StringComparison.Ordinal) && cmdline.Contains(WalDir, StringComparison.Ordinal) && !cmdline.StartsWith("/bin/sh", StringComparison.Ordinal))
                {
                    pids.Add(int.Parse(proc!, System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            catch (IOException)
            {
            }
        }
        return pids;
    }

    [Fact]
    public async Task Async_push_acknowledges_what_the_pusher_stored_and_a_kill_9_of_the_pusher_loses_nothing()
    {
        var context = await SetUpAsync($"      async: true\n      spool: {Spool}\n      push_ahead: 3\n");
        var names = MakeSegments(12);
        var push = new WalPushOperation(context);

        // The first call stores its segment itself and starts the pusher on the ones after it.
        var first = await push.RunAsync(new WalPushRequest(Path.Combine(WalDir, names[0]), "app"), default);
        Assert.False(first.Acknowledged);
        Done(names[0]);
        await Eventually.UntilAsync(() => File.Exists(Path.Combine(PushSpool, names[1] + ".ok")), TimeSpan.FromSeconds(60), "the pusher marking the next segment");
        // The queue is bounded: never more than push_ahead marked ahead of the archiver.
        await Task.Delay(500);
        Assert.InRange(Directory.EnumerateFiles(PushSpool, "*.ok").Count(), 1, 3);

        var acknowledged = 0;
        for (var i = 1; i < 5; i++)
        {
            var r = await push.RunAsync(new WalPushRequest(Path.Combine(WalDir, names[i]), "app"), default);
            acknowledged += r.Acknowledged ? 1 : 0;
            Done(names[i]);
        }
        Assert.True(acknowledged >= 1, "no segment was acknowledged from the background pusher's marker");

        // kill -9 of the pusher in the middle of its work.
        await Eventually.UntilAsync(() => PusherPids().Count > 0, TimeSpan.FromSeconds(30), "the pusher running");
        foreach (var pid in PusherPids())
        {
            using var p = Process.GetProcessById(pid);
            p.Kill();
            await p.WaitForExitAsync();
        }
        // Every marker left behind stands for a segment durably in the repository; everything else is still .ready.
        foreach (var marker in Directory.EnumerateFiles(PushSpool, "*.ok"))
        {
            Assert.True(await InRepositoryAsync(context, Path.GetFileNameWithoutExtension(marker)), $"{marker} marks a segment that is not in the repository");
        }
        foreach (var name in names)
        {
            Assert.True(File.Exists(Path.Combine(WalDir, "archive_status", name + ".ready")) || await InRepositoryAsync(context, name), $"{name} is neither ready nor archived");
        }

        // The archiver goes on; every call succeeds (a new pusher or the call itself stores what is missing).
        for (var i = 5; i < names.Count; i++)
        {
            await push.RunAsync(new WalPushRequest(Path.Combine(WalDir, names[i]), "app"), default);
            Done(names[i]);
        }
        using var repo = await context.OpenRepositoryForWalAsync(default);
        foreach (var name in names)
        {
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, name)), await new WalArchive(repo, "app").GetAsync(name, default));
        }
        await Eventually.UntilAsync(() => PusherPids().Count == 0, TimeSpan.FromSeconds(60), "the pusher exiting when nothing is ready");
    }

    /// <summary>
    /// Between the acknowledgement and PostgreSQL's rename of .ready to .done, a pusher must not store the segment again
    /// (a second put hashes the file and reads back the stored object): the marker stays until the segment is no longer ready.
    /// </summary>
    [Fact]
    public async Task An_acknowledged_segment_still_ready_is_not_pushed_again()
    {
        var context = await SetUpAsync($"      async: true\n      spool: {Spool}\n      push_ahead: 2\n");
        var names = MakeSegments(1);
        // What the pusher leaves: the object stored, then the marker.
        var path = Path.Combine(WalDir, names[0]);
        using (var repo = await context.OpenRepositoryForWalAsync(default))
        {
            await new WalArchive(repo, "app").PutFileAsync(path, default);
        }
        using (var spool = WalSpool.Open(Spool, "app", "push", context.RepositoryLocation.Display))
        {
            spool.MarkPushed(names[0], WalSpool.FileIdentity.Of(path)!);
        }
        var r = await new WalPushOperation(context).RunAsync(new WalPushRequest(Path.Combine(WalDir, names[0]), "app"), default);
        Assert.True(r.Acknowledged);
        Assert.True(File.Exists(Path.Combine(PushSpool, names[0] + ".ok")), "the marker went with the acknowledgement");

        // PostgreSQL has not renamed .ready yet: a pusher now leaves it alone.
        var again = await new WalPushAheadOperation(context).RunAsync(new WalPushAheadRequest(WalDir, "app", null), default);
        Assert.Equal(0, again.Pushed);
        // Once it is .done, the pusher deletes the marker. The acknowledging wal-push also started a background pusher;
        // while that one holds the spool, a second run steps aside, so run until a pusher has had its turn (at most 30 s).
        Done(names[0]);
        var marker = Path.Combine(PushSpool, names[0] + ".ok");
        var deadline = System.Diagnostics.Stopwatch.StartNew();
        do
        {
            await new WalPushAheadOperation(context).RunAsync(new WalPushAheadRequest(WalDir, "app", null), default);
        }
        while (File.Exists(marker) && deadline.Elapsed < TimeSpan.FromSeconds(30) && await Task.Delay(100).ContinueWith(_ => true));
        Assert.False(File.Exists(marker), "a pusher left the marker of a segment that is no longer ready");
    }

    [Fact]
    public async Task A_marker_whose_object_is_not_in_the_repository_is_no_acknowledgement()
    {
        var context = await SetUpAsync($"      async: true\n      spool: {Spool}\n");
        var names = MakeSegments(1);
        var path = Path.Combine(WalDir, names[0]);
        using (var spool = WalSpool.Open(Spool, "app", "push", context.RepositoryLocation.Display))
        {
            spool.MarkPushed(names[0], WalSpool.FileIdentity.Of(path)!);
        }
        var r = await new WalPushOperation(context).RunAsync(new WalPushRequest(path, "app"), default);
        Assert.False(r.Acknowledged);
        Assert.True(await InRepositoryAsync(context, names[0]));
    }

    [Fact]
    public async Task A_marker_for_another_file_of_the_same_name_is_no_acknowledgement()
    {
        var context = await SetUpAsync($"      async: true\n      spool: {Spool}\n");
        var names = MakeSegments(1);
        var path = Path.Combine(WalDir, names[0]);
        using var spool = WalSpool.Open(Spool, "app", "push", context.RepositoryLocation.Display);
        var before = WalSpool.FileIdentity.Of(path)!;
        spool.MarkPushed(names[0], before);
        Assert.True(spool.IsMarkedPushed(names[0], before));
        // The same name rewritten (a new inode): the marker was for the old file.
        File.Copy(path, path + ".new");
        File.Move(path + ".new", path, overwrite: true);
        Assert.False(spool.IsMarkedPushed(names[0], WalSpool.FileIdentity.Of(path)!));
        using var other = WalSpool.Open(Spool, "app", "push", "/another/repository");
        Assert.False(other.IsMarkedPushed(names[0], before));
    }

    [Fact]
    public async Task Prefetch_delivers_the_next_segments_from_the_spool_and_never_a_corrupted_one()
    {
        var context = await SetUpAsync($"      spool: {Spool}\n      fetch_ahead: 3\n");
        var names = MakeSegments(6);
        using (var repo = await context.OpenRepositoryForWalAsync(default))
        {
            foreach (var name in names)
            {
                await new WalArchive(repo, "app").PutFileAsync(Path.Combine(WalDir, name), default);
            }
        }
        var fetchSpool = Path.Combine(Spool, "app", "fetch");
        var fetch = new WalFetchOperation(context);
        var target = _dir.File("RECOVERYXLOG");
        Assert.True((await fetch.RunAsync(new WalFetchRequest(names[0], target, "app"), default)).Found);
        // The prefetcher fetches the three after it into the spool, private files with their records.
        await Eventually.UntilAsync(() => names.Skip(1).Take(3).All(n => File.Exists(Path.Combine(fetchSpool, n))), TimeSpan.FromSeconds(60), "three segments prefetched");
        Assert.False(File.Exists(Path.Combine(fetchSpool, names[4])));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(fetchSpool, names[1])));

        Assert.True((await fetch.RunAsync(new WalFetchRequest(names[1], target, "app"), default)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, names[1])), await File.ReadAllBytesAsync(target));
        Assert.False(File.Exists(Path.Combine(fetchSpool, names[1])));

        // A flipped byte in a prefetched segment: not handed to PostgreSQL, deleted, fetched from the repository instead.
        var spooled = Path.Combine(fetchSpool, names[2]);
        var bytes = await File.ReadAllBytesAsync(spooled);
        bytes[1000] ^= 0x40;
        await File.WriteAllBytesAsync(spooled, bytes);
        Assert.True((await fetch.RunAsync(new WalFetchRequest(names[2], target, "app"), default)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, names[2])), await File.ReadAllBytesAsync(target));

        // A link planted under a segment's name is never followed.
        await Eventually.UntilAsync(() => File.Exists(Path.Combine(fetchSpool, names[3])), TimeSpan.FromSeconds(60), "the next segment prefetched");
        File.Delete(Path.Combine(fetchSpool, names[3]));
        File.CreateSymbolicLink(Path.Combine(fetchSpool, names[3]), Path.Combine(WalDir, names[0]));
        Assert.True((await fetch.RunAsync(new WalFetchRequest(names[3], target, "app"), default)).Found);
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, names[3])), await File.ReadAllBytesAsync(target));
    }

    /// <summary>A checked prefetched segment is handed over as that very file (no second write); on another file system, as a checked copy.</summary>
    [Fact]
    public async Task A_prefetched_segment_is_linked_into_place_and_copied_across_file_systems()
    {
        var context = await SetUpAsync($"      spool: {Spool}\n      fetch_ahead: 2\n");
        var names = MakeSegments(2);
        using var spool = WalSpool.Open(Spool, "app", "fetch", context.RepositoryLocation.Display);
        foreach (var name in names)
        {
            File.Copy(Path.Combine(WalDir, name), spool.PartialPath(name));
            spool.PublishPrefetched(name);
        }

        // Same file system: the destination is the spool's inode, and the spool entry is gone.
        var spooled = Path.Combine(spool.Path, names[0]);
        var inode = Inode(spooled);
        var target = _dir.File("RECOVERYXLOG");
        await File.WriteAllTextAsync(target, "an older file PostgreSQL left there");
        Assert.True(spool.TryDeliverPrefetched(names[0], target, out var rejected), rejected);
        Assert.Equal(inode, Inode(target));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, names[0])), await File.ReadAllBytesAsync(target));
        Assert.False(File.Exists(spooled));
        Assert.Equal(1u, Links(target));

        // /dev/shm is another file system (tmpfs): a copy, checked, and the spool entry gone too.
        var shm = Path.Combine("/dev/shm", $"cairn-t-{Guid.NewGuid():N}");
        Directory.CreateDirectory(shm);
        try
        {
            var other = Path.Combine(shm, "RECOVERYXLOG");
            Assert.True(spool.TryDeliverPrefetched(names[1], other, out rejected), rejected);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, names[1])), await File.ReadAllBytesAsync(other));
            Assert.False(File.Exists(Path.Combine(spool.Path, names[1])));
            Assert.Empty(Directory.EnumerateFiles(shm, "*.cairn-partial"));
        }
        finally
        {
            Directory.Delete(shm, recursive: true);
        }
    }

    private static ulong Inode(string path) => Cairn.PostgreSql.Files.SafeDirectory.Open(Path.GetDirectoryName(path)!).Stat(Path.GetFileName(path))!.Identity.Inode;

    private static uint Links(string path) => Cairn.PostgreSql.Files.SafeDirectory.Open(Path.GetDirectoryName(path)!).Stat(Path.GetFileName(path))!.Links;

    /// <summary>
    /// The background worker's own variables: the two file names, no secret, and the thread-pool spin limit 0 (its
    /// workers would otherwise spin between segments: ~1 ms CPU per segment, docs/benchmarks.md).
    /// </summary>
    [Fact]
    public async Task The_background_worker_gets_file_names_and_no_thread_pool_spinning()
    {
        var context = await SetUpAsync($"      async: true\n      spool: {Spool}\n");
        var variables = WalBackground.ChildVariables(context, _dir.File("pass"), _dir.File("cairn.yaml"));
        Assert.Equal("0", variables["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"]);
        Assert.Equal(_dir.File("pass"), variables["CAIRN_PASSPHRASE_FILE"]);
        Assert.Equal(_dir.File("cairn.yaml"), variables["CAIRN_CONFIG"]);
        Assert.DoesNotContain(variables.Keys, k => k is "CAIRN_PASSPHRASE" or "PGPASSWORD");
    }

    [Fact]
    public void Following_segments_cross_the_log_boundary_for_the_segment_size()
    {
        Assert.Equal(["0000000200000001000000FF", "000000020000000200000000"], WalBackground.Following("0000000200000001000000FE", 16 * 1024 * 1024, 2));
        Assert.Equal(["000000010000000000000800"], WalBackground.Following("0000000100000000000007FF", 1024 * 1024, 1));
        Assert.Empty(WalBackground.Following("00000001.history", 16 * 1024 * 1024, 2));
    }

    [Theory]
    [InlineData("      async: true\n", "needs spool")]
    [InlineData("      async: true\n      spool: /s\n      push_ahead: 0\n", "push_ahead must be between 1")]
    [InlineData("      spool: /s\n      fetch_ahead: 65\n", "fetch_ahead must be between 0")]
    [InlineData("      asynch: true\n", "unknown key 'databases.app.wal.asynch'")]
    [InlineData("      compression: zstd:0\n", "compression must be zstd:N with a level N from 1 to 19 (smallest), one of zstd's fast levels zstd:-1 to zstd:-5 (faster, larger), or zstd:auto (the default for WAL, zstd:1), e.g. compression: zstd:3; not 'zstd:0'")]
    [InlineData("      compression: zstd:20\n", "not 'zstd:20'")]
    [InlineData("      compression: zstd:-6\n", "not 'zstd:-6'")]
    [InlineData("      compression: zstd:-0\n", "not 'zstd:-0'")]
    [InlineData("      compression: zstd:01\n", "not 'zstd:01'")]
    [InlineData("      compression: lz4\n", "not 'lz4'")]
    [InlineData("      compression: zstd\n", "not 'zstd'")]
    public void Wal_settings_that_cannot_work_are_refused_with_the_fix(string walYaml, string expected)
    {
        var e = Assert.Throws<ConfigException>(() => CairnConfig.Parse($"databases:\n  app:\n    connection: \"host=/x\"\n    wal:\n{walYaml}", "cairn.yaml"));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Wal_settings_are_read_per_database()
    {
        var c = CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/x\"\n    wal: { async: true, spool: /var/spool/cairn, push_ahead: 8, fetch_ahead: 6 }\n  other:\n    connection: \"host=/x\"\n", "/etc/cairn.yaml");
        Assert.Equal(new WalConfig(true, "/var/spool/cairn", 8, 6), c.Databases["app"].Wal);
        Assert.Equal(WalConfig.Synchronous, c.Databases["other"].Wal);
        Assert.Equal(1, c.Databases["app"].Wal.CompressionLevel);
        Assert.Equal(1, CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/x\"\n    wal: { compression: \"zstd:auto\" }\n", "c.yaml").Databases["app"].Wal.CompressionLevel);
        Assert.Equal(19, CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/x\"\n    wal: { compression: zstd:19 }\n", "c.yaml").Databases["app"].Wal.CompressionLevel);
        Assert.Equal(-1, CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/x\"\n    wal: { compression: zstd:-1 }\n", "c.yaml").Databases["app"].Wal.CompressionLevel);
        Assert.Equal(-5, CairnConfig.Parse("databases:\n  app:\n    connection: \"host=/x\"\n    wal: { compression: \"zstd:-5\" }\n", "c.yaml").Databases["app"].Wal.CompressionLevel);
    }

    /// <summary><c>wal: { compression: zstd:N }</c> reaches both writers: wal-push itself and the background pusher.</summary>
    [Theory]
    [InlineData(false, 9)]
    [InlineData(true, 9)]
    [InlineData(false, -2)]
    [InlineData(true, -2)]
    public async Task Wal_compression_sets_the_level_segments_are_stored_at(bool background, int level)
    {
        var setting = $"      compression: zstd:{level}\n";
        var context = await SetUpAsync(background ? $"      async: true\n      spool: {Spool}\n      push_ahead: 4\n{setting}" : setting);
        var names = MakeSegments(3);
        foreach (var (name, i) in names.Select((n, i) => (n, i)))
        {
            await File.WriteAllBytesAsync(Path.Combine(WalDir, name), TestData.Rows(1024 * 1024, i)); // compressible: the levels differ
        }
        if (background)
        {
            Assert.Equal(3, (await new WalPushAheadOperation(context).RunAsync(new WalPushAheadRequest(WalDir, "app", null), default)).Pushed);
        }
        else
        {
            foreach (var name in names)
            {
                await new WalPushOperation(context).RunAsync(new WalPushRequest(Path.Combine(WalDir, name), "app"), default);
            }
        }
        // The size each level gives (sealed objects of one content and level have one size).
        using var reference = await TestData.NewRepoAsync();
        async Task<long> SizeAtAsync(string name, int level)
        {
            var key = $"app@{name}.{level}";
            await Cairn.Repository.NamedFiles.PutAsync(reference, key, await File.ReadAllBytesAsync(Path.Combine(WalDir, name)), level, default);
            return (await reference.Storage.StatAsync(new Cairn.Repository.Storage.StorageKey(Cairn.Repository.Storage.ObjectKind.Named, key), default))!.Value.Size;
        }
        foreach (var name in names)
        {
            var stored = new FileInfo(Path.Combine(Repo, "wal", "app@" + name)).Length;
            Assert.Equal(await SizeAtAsync(name, level), stored);
            Assert.NotEqual(await SizeAtAsync(name, 1), stored);
            using var repo = await context.OpenRepositoryForWalAsync(default);
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(WalDir, name)), await Cairn.Repository.NamedFiles.GetAsync(repo, "app@" + name, default));
        }
    }
}
