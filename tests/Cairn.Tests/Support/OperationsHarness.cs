using System.Globalization;
using Cairn.Operations;
using Cairn.Operations.Configuration;
using Cairn.Operations.Physical;
using Cairn.Operations.Snapshots;
using Cairn.Repository.Manifests;
using Cairn.Repository.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Support;

/// <summary>
/// Operations on an in-memory repository with a fake clock and no PostgreSQL: the context an operation gets, plus
/// helpers that write physical-backup manifests and WAL objects the way the real ones are stored.
/// </summary>
public sealed class OperationsHarness : IDisposable
{
    public static readonly DateTimeOffset T0 = DateTimeOffset.Parse("2026-12-01T00:00:00Z", CultureInfo.InvariantCulture);

    private readonly TempDir _dir = new();

    /// <param name="wrap">Wraps the storage the operations open (e.g. in a <see cref="LockingStorage"/>); the harness's own writes go to <see cref="Storage"/> directly.</param>
    public OperationsHarness(string yaml = "", Func<IStorage, FakeTimeProvider, IStorage>? wrap = null)
    {
        Clock = new FakeTimeProvider(T0);
        Storage = new InMemoryStorage(Clock);
        Config = CairnConfig.Parse(yaml, _dir.File("cairn.yaml"));
        Context = new OperationContext(Config, Clock, new FixedSecrets(TestData.Passphrase), new OneStorage(wrap?.Invoke(Storage, Clock) ?? Storage), _ => null,
            repositoryOption: _dir.File("repo"), evidenceOption: _dir.File("evidence"));
    }

    public FakeTimeProvider Clock { get; }

    public InMemoryStorage Storage { get; }

    public CairnConfig Config { get; }

    public OperationContext Context { get; }

    public async Task<Repo> InitAsync() => await Repo.InitAsync(Storage, TestData.Passphrase, TestData.SmallRepo, Clock, default);

    /// <summary>A WAL segment name on timeline 1 at position <paramref name="n"/>.</summary>
    public static string Segment(int n, uint timeline = 1) => $"{timeline:X8}{0:X8}{n:X8}";

    /// <summary>A physical backup of <paramref name="database"/> whose WAL starts in segment <paramref name="startSegment"/>, stored now.</summary>
    public static async Task<Snapshot> PhysicalBackupAsync(Repo repo, string database, int startSegment, DateTimeOffset stopTime)
    {
        await using var w = repo.BeginWrite();
        await w.AddStreamAsync(PhysicalBackups.BaseItem, new MemoryStream(TestData.Rows(2000, startSegment)), null, "file", null, default);
        return await w.CommitAsync(database, BackupKinds.Physical, new Dictionary<string, string>
        {
            ["start_lsn"] = $"0/{startSegment:X}000028",
            ["stop_lsn"] = $"0/{startSegment:X}000100",
            ["timeline"] = "1",
            ["start_wal"] = Segment(startSegment),
            ["stop_time"] = stopTime.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            ["format"] = PhysicalBackupMeta.BaseBackupFormat,
        }, default);
    }

    /// <summary>Archives fake segments <paramref name="from"/>..<paramref name="to"/> of <paramref name="database"/>, one a minute on the fake clock.</summary>
    public async Task ArchiveAsync(Repo repo, string database, int from, int to, params int[] except)
    {
        var archive = new WalArchive(repo, database);
        for (var n = from; n <= to; n++)
        {
            if (!except.Contains(n))
            {
                await archive.PutAsync(Segment(n), TestData.Random(4096, n), default);
            }
            Clock.Advance(TimeSpan.FromMinutes(1));
        }
    }

    public void Dispose() => _dir.Dispose();

    private sealed class FixedSecrets(string passphrase) : ISecretSource
    {
        public string Passphrase(bool confirm = false) => passphrase;

        public string NewPassphrase() => passphrase + " (new)";
    }

    private sealed class OneStorage(IStorage storage) : IStorageFactory
    {
        public IStorage Create(RepositoryLocation location) => storage;
    }
}
