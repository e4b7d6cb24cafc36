using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Cairn.Repository.Chunking;
using Cairn.Repository.Compression;
using Cairn.Repository.Crypto;
using Cairn.Repository.Locks;
using Cairn.Repository.Manifests;
using Cairn.Repository.Packs;
using Cairn.Repository.Storage;

namespace Cairn.Repository;

/// <summary>
/// An open repository: keys unwrapped, index loaded. Stores and reads named items as encrypted,
/// compressed, deduplicated chunks. See docs/repository-format.md for the rules it keeps. This file: creating
/// and opening (the config object), locks and writing; the key ring, the master index, the object codec,
/// snapshots and blob reads are each in a Repository.*.cs file of their own.
/// </summary>
public sealed partial class Repository : IDisposable
{
    private static readonly byte[] ConfigMagic = "CAIRN1\n"u8.ToArray();
    private readonly ConcurrentDictionary<ContentId, BlobLocation> _index = new();
    private readonly HashSet<string> _indexFiles = [];

    /// <summary>Every index name listed at the last load, damaged ones included: what <see cref="RefreshIndexAsync"/> compares.</summary>
    private readonly HashSet<string> _indexListed = new(StringComparer.Ordinal);

    private Repository(IStorage storage, TimeProvider time, RepositoryConfig config, KeyMaterial keys, string keyId)
    {
        Storage = storage;
        Time = time;
        Config = config;
        Keys = keys;
        KeyId = keyId;
        _aead = new ThreadLocal<Aead>(() => new Aead(keys.EncryptionKey), trackAllValues: true);
        Chunker = new FastCdcChunker(config.Chunker, keys.ChunkerSeed);
    }

    public IStorage Storage { get; }

    /// <summary>What opening skipped and the user should know (out-of-bounds or oversized key files).</summary>
    public IReadOnlyList<string> Warnings { get; private init; } = [];

    public TimeProvider Time { get; }

    public RepositoryConfig Config { get; private set; }

    /// <summary>The key file this session was opened with.</summary>
    public string KeyId { get; }

    internal KeyMaterial Keys { get; }

    private readonly ThreadLocal<Aead> _aead;

    /// <summary>AES-GCM contexts are not thread-safe: one per thread.</summary>
    internal Aead Aead => _aead.Value!;

    internal FastCdcChunker Chunker { get; }

    internal IReadOnlyDictionary<ContentId, BlobLocation> Index => _index;

    internal IReadOnlyCollection<string> IndexFiles => _indexFiles;

    public void Dispose()
    {
        foreach (var a in _aead.Values)
        {
            a.Dispose();
        }
        _aead.Dispose();
    }

    public static async Task<bool> ExistsAsync(IStorage storage, CancellationToken cancellationToken)
        => await storage.StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false) is not null;

    /// <summary>Creates a repository: a fresh master secret, the config, and one key file for <paramref name="passphrase"/>.</summary>
    public static async Task<Repository> InitAsync(IStorage storage, string passphrase, RepositoryOptions options, TimeProvider time, CancellationToken cancellationToken)
    {
        if (await ExistsAsync(storage, cancellationToken).ConfigureAwait(false))
        {
            throw new RepositoryException(ErrorKind.AlreadyExists, $"a repository already exists at {storage.Location}; use it, or choose another location");
        }
        if (string.IsNullOrEmpty(passphrase))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "an empty passphrase is not allowed");
        }
        options.Chunker.Validate();
        var master = RandomNumberGenerator.GetBytes(KeyMaterial.MasterSize);
        var repoId = RandomNumberGenerator.GetBytes(16);
        var config = new RepositoryConfig
        {
            Id = Convert.ToHexStringLower(repoId),
            Chunker = options.Chunker,
            PackSize = options.PackSize,
        };
        var keys = KeyMaterial.Derive(master, repoId);
        var keyId = NewKeyId();
        var keyFile = KeyFile.Wrap(keyId, master, passphrase, options.Kdf, time.GetUtcNow(), "initial");
        // Key first, then config: a crash in between leaves no config, so no half-made repository is found.
        await storage.PutAsync(new StorageKey(ObjectKind.Key, keyId), JsonSerializer.SerializeToUtf8Bytes(keyFile, RepositoryJson.Default.KeyFileData), cancellationToken).ConfigureAwait(false);
        using (var aead = new Aead(keys.EncryptionKey))
        {
            await storage.PutAsync(StorageKey.Config, EncodeConfig(config, aead, repoId), cancellationToken).ConfigureAwait(false);
        }
        return new Repository(storage, time, config, keys, keyId);
    }

    /// <summary>Opens a repository with a passphrase. Throws <see cref="WrongPassphraseException"/> when no key opens.</summary>
    public static Task<Repository> OpenAsync(IStorage storage, string passphrase, TimeProvider time, CancellationToken cancellationToken)
        => OpenAsync(storage, passphrase, time, loadIndex: true, cancellationToken);

    /// <summary>
    /// Opens a repository for <see cref="NamedFiles"/> only (WAL push and fetch): the index is not loaded, so a user
    /// who may read only the config, its own key file and the WAL area (the archiver) can open it.
    /// </summary>
    public static Task<Repository> OpenForNamedFilesAsync(IStorage storage, string passphrase, TimeProvider time, CancellationToken cancellationToken)
        => OpenAsync(storage, passphrase, time, loadIndex: false, cancellationToken);

    private static async Task<Repository> OpenAsync(IStorage storage, string passphrase, TimeProvider time, bool loadIndex, CancellationToken cancellationToken)
    {
        byte[] configBytes;
        try
        {
            configBytes = await storage.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no repository at {storage.Location}; create one with 'cairn init' or check --repo / CAIRN_REPOSITORY");
        }
        if (configBytes.Length < ConfigMagic.Length + 33 || !configBytes.AsSpan(0, ConfigMagic.Length).SequenceEqual(ConfigMagic))
        {
            throw new DataDamagedException($"the config object of {storage.Location} is damaged or not a Cairn repository");
        }
        var repoIdHex = Encoding.ASCII.GetString(configBytes, ConfigMagic.Length, 32);
        if (!repoIdHex.All(char.IsAsciiHexDigit) || configBytes[ConfigMagic.Length + 32] != (byte)'\n')
        {
            throw new DataDamagedException($"the config object of {storage.Location} is damaged: its repository ID is not 32 hex digits");
        }
        var repoId = Convert.FromHexString(repoIdHex);
        var sealedConfig = configBytes.AsMemory(ConfigMagic.Length + 33);

        var keyObjects = new List<ObjectInfo>();
        await foreach (var k in storage.ListAsync(ObjectKind.Key, cancellationToken).ConfigureAwait(false))
        {
            keyObjects.Add(k);
        }
        if (keyObjects.Count == 0)
        {
            throw new DataDamagedException($"the repository at {storage.Location} has no key files (keys/ is empty); it cannot be opened");
        }
        var damagedKeys = new List<string>();
        var warnings = new List<string>();
        var unreadable = 0;
        var candidates = new List<(ObjectInfo Key, KeyFileData Data)>();
        foreach (var k in keyObjects)
        {
            if (k.Size > KeyFile.MaxFileSize)
            {
                warnings.Add($"key file {k.Key.Name} is {k.Size} bytes (a key file is under {KeyFile.MaxFileSize / 1024} KiB); skipped without reading it");
                continue;
            }
            KeyFileData? data;
            try
            {
                data = JsonSerializer.Deserialize(await storage.GetAsync(k.Key, 0, KeyFile.MaxFileSize, cancellationToken).ConfigureAwait(false), RepositoryJson.Default.KeyFileData) is { } d ? StoredJson.Checked(d) : null;
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException or OverflowException)
            {
                data = null;
            }
            catch (ObjectNotFoundException)
            {
                continue; // removed meanwhile
            }
            catch (UnauthorizedAccessException)
            {
                // Not shared with this user (the archiver reads only its own key file): not a candidate.
                unreadable++;
                continue;
            }
            if (data is null)
            {
                damagedKeys.Add(k.Key.Name);
                continue;
            }
            if (new KdfParameters(data.MemoryKib, data.Iterations, data.Parallelism).Problem() is { } problem)
            {
                warnings.Add($"key file {k.Key.Name} is skipped: its Argon2id {problem} (bounds: memory up to {KdfParameters.MaxMemoryKib / 1024 / 1024} GiB, {KdfParameters.MaxIterations} iterations, parallelism {KdfParameters.MaxParallelism}); remove it with 'cairn key remove' if you did not put it there");
                continue;
            }
            candidates.Add((k, data));
        }
        // Cheapest KDF first: a machine key with a random passphrase and a cheap KDF (wal-push) opens in milliseconds.
        foreach (var (k, data) in candidates.OrderBy(c => (long)c.Data.MemoryKib * c.Data.Iterations).ThenBy(c => c.Key.Key.Name, StringComparer.Ordinal))
        {
            byte[]? master;
            try
            {
                master = KeyFile.TryUnwrap(k.Key.Name, data, passphrase);
            }
            catch (Exception e) when (e is FormatException or InvalidDataException)
            {
                damagedKeys.Add(k.Key.Name);
                continue;
            }
            if (master is null)
            {
                continue;
            }
            var keys = KeyMaterial.Derive(master, repoId);
            RepositoryConfig config;
            using (var aead = new Aead(keys.EncryptionKey))
            {
                byte[] plain;
                try
                {
                    plain = aead.Open(sealedConfig.Span, Aead.Concat(Aead.ConfigContext, repoId), "the repository config");
                }
                catch (AuthenticationFailedException e)
                {
                    throw new DataDamagedException($"the config object of {storage.Location} is damaged: {e.Message}", e);
                }
                var what = $"the config object of {storage.Location}";
                config = StoredJson.Decode(plain, RepositoryJson.Default.RepositoryConfig, what);
                if (config.Version is not (1 or 2))
                {
                    throw new RepositoryException(ErrorKind.General, $"repository format version {config.Version} is newer than this Cairn understands; upgrade Cairn");
                }
                if (config.Features?.FirstOrDefault(f => !RepositoryConfig.KnownFeatures.Contains(f, StringComparer.Ordinal)) is { } unknown)
                {
                    throw new RepositoryException(ErrorKind.General, $"the repository uses the format feature '{unknown}', which this Cairn does not understand; upgrade Cairn");
                }
                config = StoredJson.Checked(config, what);
            }
            var repo = new Repository(storage, time, config, keys, k.Key.Name) { Warnings = warnings };
            if (loadIndex)
            {
                await repo.LoadIndexAsync(cancellationToken).ConfigureAwait(false);
            }
            return repo;
        }
        if (unreadable == keyObjects.Count)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"this user may not read any key file of the repository at {storage.Location}; run as the repository's owner, or share the archiver's key with 'cairn archiver allow'");
        }
        if (damagedKeys.Count + warnings.Count > 0 && damagedKeys.Count + warnings.Count + unreadable >= keyObjects.Count)
        {
            throw new DataDamagedException($"no usable key file in {storage.Location}: {string.Join("; ", damagedKeys.Select(d => $"key file {d} is damaged").Concat(warnings))}; restore keys/ from a copy");
        }
        throw warnings.Count == 0 ? new WrongPassphraseException(storage.Location)
            : new WrongPassphraseException(storage.Location, $" ({warnings.Count} key file(s) were skipped: {string.Join("; ", warnings)})");
    }

    /// <summary>
    /// Called when taking a lock removed locks of provably dead processes, so the caller can put that on
    /// record (the repository knows nothing of the evidence log).
    /// </summary>
    public Func<StaleLockRemoval, CancellationToken, Task>? StaleLocksRemoved { get; set; }

    /// <summary>
    /// Takes a repository lock, then makes the in-memory index current: the index was loaded when the
    /// repository was opened, before the lock, and a prune that ran in between may have deleted packs it
    /// lists. Deduplicating against those would commit a backup that references missing blobs.
    /// </summary>
    public async Task<RepositoryLock> LockAsync(bool exclusive, string operation, CancellationToken cancellationToken)
    {
        var l = await RepositoryLock.AcquireAsync(Storage, Time, exclusive, operation, cancellationToken).ConfigureAwait(false);
        try
        {
            if (l.RemovedStale.Count > 0 && StaleLocksRemoved is { } report)
            {
                await report(new StaleLockRemoval(l.RemovedStale, operation), cancellationToken).ConfigureAwait(false);
            }
            await RefreshIndexAsync(cancellationToken).ConfigureAwait(false);
            return l;
        }
        catch
        {
            await l.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Starts writing a new backup. The caller holds a shared lock until <see cref="ItemWriter.CommitAsync"/> returns.</summary>
    public ItemWriter BeginWrite(RepositoryOptions? options = null) => new(this, options ?? new RepositoryOptions());

    /// <summary>
    /// Switches a format feature on: rewrites <c>config</c> as version 2 naming it (docs/repository-format.md, "Page
    /// patches"). A Cairn that reads only version 1 refuses the repository from then on, so this is never done silently.
    /// The caller holds an exclusive lock. Returns false when the feature was already on (nothing written).
    /// </summary>
    public async Task<bool> UpgradeAsync(string feature, CancellationToken cancellationToken)
    {
        if (!RepositoryConfig.KnownFeatures.Contains(feature, StringComparer.Ordinal))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"unknown format feature '{feature}'; known: {string.Join(", ", RepositoryConfig.KnownFeatures)}");
        }
        if (Config.Has(feature))
        {
            return false;
        }
        var upgraded = Config with { Version = 2, Features = [.. Config.Features ?? [], feature] };
        await Storage.PutAsync(StorageKey.Config, EncodeConfig(upgraded, Aead, Convert.FromHexString(Config.Id)), cancellationToken).ConfigureAwait(false);
        Config = upgraded;
        return true;
    }

    /// <summary>
    /// Before a copy (<c>cairn copy</c>): when <paramref name="copy"/> holds this repository with an older config (made
    /// before <see cref="UpgradeAsync"/> here, or upgraded there the same way: the config's nonce differs), its config
    /// becomes this one's, so the copy can take this repository's version-2 objects and its readers refuse it if they
    /// predate them, as they refuse the primary. A copy whose config is not this one's, or is newer, is left alone (the
    /// copier then refuses it). True when the copy's config was replaced.
    /// </summary>
    public async Task<bool> CarryUpgradeToAsync(IStorage copy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(copy);
        if (await copy.StatAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false) is null)
        {
            return false;
        }
        var theirs = await copy.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
        var mine = await Storage.GetAllAsync(StorageKey.Config, cancellationToken).ConfigureAwait(false);
        if (theirs.AsSpan().SequenceEqual(mine) || !IsOlderConfigOfThis(theirs))
        {
            return false;
        }
        await copy.PutAsync(StorageKey.Config, mine, cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="config"/> (another location's <c>config</c> object) is this repository's config of an older
    /// format: the same ID, sealed under this repository's key, equal but for a lower or equal version and a subset of the
    /// features. Writes nothing.
    /// </summary>
    public bool IsOlderConfigOfThis(byte[] config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var header = ConfigMagic.Length + 33;
        var mine = EncodeConfigHeader();
        if (config.Length <= header || !config.AsSpan(0, header).SequenceEqual(mine))
        {
            return false;
        }
        RepositoryConfig other;
        try
        {
            var plain = Aead.Open(config.AsSpan(header), Aead.Concat(Aead.ConfigContext, Convert.FromHexString(Config.Id)), "the copy's config");
            other = StoredJson.Decode(plain, RepositoryJson.Default.RepositoryConfig, "the copy's config");
        }
        catch (Exception e) when (e is AuthenticationFailedException or DataDamagedException)
        {
            return false;
        }
        return other.Version <= Config.Version && (other.Features ?? []).All(Config.Has)
            && other with { Version = Config.Version, Features = Config.Features } == Config;
    }

    private byte[] EncodeConfigHeader() => [.. ConfigMagic, .. Encoding.ASCII.GetBytes(Config.Id + "\n")];

    internal static byte[] EncodeConfig(RepositoryConfig config, Aead aead, byte[] repoId)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(config, RepositoryJson.Default.RepositoryConfig);
        var sealedConfig = aead.Seal(json, Aead.Concat(Aead.ConfigContext, repoId));
        var header = Encoding.ASCII.GetBytes(config.Id + "\n");
        return [.. ConfigMagic, .. header, .. sealedConfig];
    }
}
