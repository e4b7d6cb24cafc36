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
/// compressed, deduplicated chunks. See docs/repository-format.md for the rules it keeps.
/// </summary>
public sealed class Repository : IDisposable
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

    public RepositoryConfig Config { get; }

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
                data = JsonSerializer.Deserialize(await storage.GetAsync(k.Key, 0, KeyFile.MaxFileSize, cancellationToken).ConfigureAwait(false), RepositoryJson.Default.KeyFileData);
            }
            catch (JsonException)
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
                config = JsonSerializer.Deserialize(plain, RepositoryJson.Default.RepositoryConfig)
                    ?? throw new DataDamagedException("the repository config is empty");
            }
            if (config.Version != 1)
            {
                throw new RepositoryException(ErrorKind.General, $"repository format version {config.Version} is newer than this Cairn understands; upgrade Cairn");
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

    /// <summary>Reads every index object into memory. Damaged indexes are skipped here and reported by verify.</summary>
    public async Task LoadIndexAsync(CancellationToken cancellationToken)
    {
        _index.Clear();
        _indexFiles.Clear();
        _indexListed.Clear();
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            _indexListed.Add(o.Key.Name);
            IndexFile file;
            try
            {
                file = await ReadIndexAsync(o.Key.Name, cancellationToken).ConfigureAwait(false);
            }
            catch (DataDamagedException)
            {
                continue;
            }
            catch (ObjectNotFoundException)
            {
                continue;
            }
            _indexFiles.Add(o.Key.Name);
            AddToIndex(file);
        }
    }

    internal void AddToIndex(IndexFile file)
    {
        foreach (var p in file.Packs)
        {
            var pack = ContentId.Parse(p.Id);
            foreach (var b in p.Blobs)
            {
                _index.TryAdd(ContentId.Parse(b.Id), new BlobLocation(pack, b.Offset, b.Length, b.RawLength));
            }
        }
    }

    internal async Task<IndexFile> ReadIndexAsync(string name, CancellationToken cancellationToken)
    {
        var bytes = await Storage.GetAllAsync(new StorageKey(ObjectKind.Index, name), cancellationToken).ConfigureAwait(false);
        var json = OpenObject(bytes, Aead.IndexContext, $"index {name[..Math.Min(8, name.Length)]}", name);
        return JsonSerializer.Deserialize(json, RepositoryJson.Default.IndexFile) ?? throw new DataDamagedException($"index {name} is empty");
    }

    /// <summary>Seals and compresses metadata, stores it under the SHA-256 of the stored bytes, returns that name.</summary>
    internal async Task<string> PutObjectAsync(ObjectKind kind, ReadOnlyMemory<byte> json, CancellationToken cancellationToken)
    {
        var context = kind == ObjectKind.Index ? Aead.IndexContext : Aead.SnapshotContext;
        var compressed = Zstd.Compress(json.Span, 3);
        var sealedBytes = Aead.Seal(compressed, context);
        var name = ContentId.Sha256(sealedBytes).ToHex();
        await Storage.PutAsync(new StorageKey(kind, name), sealedBytes, cancellationToken).ConfigureAwait(false);
        return name;
    }

    internal byte[] OpenObject(byte[] stored, byte[] context, string what, string expectedName)
    {
        if (ContentId.Sha256(stored).ToHex() != expectedName)
        {
            throw new DataDamagedException($"{what} is damaged: its content no longer matches its name (SHA-256)");
        }
        byte[] compressed;
        try
        {
            compressed = Aead.Open(stored, context, what);
        }
        catch (AuthenticationFailedException e)
        {
            throw new DataDamagedException(e.Message, e);
        }
        try
        {
            return Zstd.Decompress(compressed);
        }
        catch (InvalidDataException e)
        {
            throw new DataDamagedException($"{what} does not decompress: {e.Message}", e);
        }
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

    /// <summary>Reloads the index when the set of index objects changed since it was loaded (indexes are immutable, so equal names mean equal content).</summary>
    public async Task RefreshIndexAsync(CancellationToken cancellationToken)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        await foreach (var o in Storage.ListAsync(ObjectKind.Index, cancellationToken).ConfigureAwait(false))
        {
            names.Add(o.Key.Name);
        }
        if (!names.SetEquals(_indexListed))
        {
            await LoadIndexAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Starts writing a new backup. The caller holds a shared lock until <see cref="ItemWriter.CommitAsync"/> returns.</summary>
    public ItemWriter BeginWrite(RepositoryOptions? options = null) => new(this, options ?? new RepositoryOptions());

    // ---- snapshots ----------------------------------------------------------------------------

    public Task<List<Snapshot>> ListSnapshotsAsync(CancellationToken cancellationToken) => ListSnapshotsAsync(null, cancellationToken);

    /// <summary>Every readable snapshot, oldest first; <paramref name="onDamaged"/> hears of each manifest that cannot be read.</summary>
    public async Task<List<Snapshot>> ListSnapshotsAsync(Action<string, Exception>? onDamaged, CancellationToken cancellationToken)
    {
        var result = new List<Snapshot>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                result.Add(await LoadSnapshotAsync(o.Key.Name, cancellationToken).ConfigureAwait(false));
            }
            catch (Exception e) when (e is DataDamagedException or JsonException or ObjectNotFoundException)
            {
                onDamaged?.Invoke(o.Key.Name, e);
            }
        }
        result.Sort((a, b) => a.Manifest.Time.CompareTo(b.Manifest.Time) is var c && c != 0 ? c : string.CompareOrdinal(a.Id, b.Id));
        return result;
    }

    public async Task<Snapshot> LoadSnapshotAsync(string id, CancellationToken cancellationToken)
    {
        var bytes = await Storage.GetAllAsync(new StorageKey(ObjectKind.Snapshot, id), cancellationToken).ConfigureAwait(false);
        var json = OpenObject(bytes, Aead.SnapshotContext, $"manifest {id[..Math.Min(8, id.Length)]}", id);
        var m = JsonSerializer.Deserialize(json, RepositoryJson.Default.Manifest) ?? throw new DataDamagedException($"manifest {id} is empty");
        return new Snapshot(id, m);
    }

    /// <summary>Finds a snapshot by full ID or unique prefix.</summary>
    public async Task<Snapshot> FindSnapshotAsync(string idOrPrefix, CancellationToken cancellationToken)
    {
        var matches = new List<string>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Snapshot, cancellationToken).ConfigureAwait(false))
        {
            if (o.Key.Name.StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase))
            {
                matches.Add(o.Key.Name);
            }
        }
        return matches.Count switch
        {
            0 => throw new RepositoryException(ErrorKind.NotFound, $"no snapshot {idOrPrefix}; list them with 'cairn repo ls'"),
            1 => await LoadSnapshotAsync(matches[0], cancellationToken).ConfigureAwait(false),
            _ => throw new RepositoryException(ErrorKind.InvalidInput, $"snapshot prefix {idOrPrefix} is ambiguous ({matches.Count} match); give more characters"),
        };
    }

    /// <summary>Removes a manifest. Its data stays until <c>prune</c>.</summary>
    public Task ForgetAsync(Snapshot snapshot, CancellationToken cancellationToken)
        => Storage.DeleteAsync(new StorageKey(ObjectKind.Snapshot, snapshot.Id), cancellationToken);

    // ---- reading ------------------------------------------------------------------------------

    /// <summary>Writes an item's content to <paramref name="output"/>, reading ahead in parallel. Never writes unauthenticated bytes.</summary>
    public async Task ReadItemAsync(ManifestItem item, Stream output, IProgress<long>? progress, CancellationToken cancellationToken)
    {
        var window = Math.Max(4, Environment.ProcessorCount * 4);
        var queue = new Queue<Task<(byte[] Buffer, int Length)>>();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        try
        {
            var next = 0;
            long written = 0;
            while (next < item.Chunks.Count || queue.Count > 0)
            {
                while (next < item.Chunks.Count && queue.Count < window)
                {
                    var id = ContentId.Parse(item.Chunks[next++]);
                    queue.Enqueue(Task.Run(() => LoadBlobPooledAsync(id, cts.Token), cts.Token));
                }
                var (buffer, length) = await queue.Dequeue().ConfigureAwait(false);
                try
                {
                    await output.WriteAsync(buffer.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
                }
                written += length;
                progress?.Report(written);
            }
            if (written != item.Size)
            {
                throw new DataDamagedException($"item {item.Name} read back {written} bytes, the manifest says {item.Size}");
            }
        }
        catch
        {
            await cts.CancelAsync().ConfigureAwait(false);
            foreach (var t in queue)
            {
                try
                {
                    System.Buffers.ArrayPool<byte>.Shared.Return((await t.ConfigureAwait(false)).Buffer);
                }
                catch (Exception)
                {
                    // The first error is the one reported.
                }
            }
            throw;
        }
    }

    /// <summary>True when <paramref name="content"/> chunks to exactly the item's chunk IDs (keyed, so a match proves equal content).</summary>
    public async Task<bool> ContentMatchesAsync(ManifestItem item, Stream content, CancellationToken cancellationToken)
    {
        var i = 0;
        await foreach (var c in Chunker.ChunkAsync(content, cancellationToken).ConfigureAwait(false))
        {
            try
            {
                if (i >= item.Chunks.Count || Keys.ChunkId(c.Span).ToHex() != item.Chunks[i])
                {
                    return false;
                }
                i++;
            }
            finally
            {
                c.Return();
            }
        }
        return i == item.Chunks.Count;
    }

    /// <summary>Reads one blob: range read, authenticate, decompress, and check its ID.</summary>
    public async Task<byte[]> LoadBlobAsync(ContentId id, CancellationToken cancellationToken)
    {
        var (sealedBlob, loc, packName) = await ReadSealedAsync(id, cancellationToken).ConfigureAwait(false);
        return DecodeBlob(id, sealedBlob, loc.RawLength, packName);
    }

    /// <summary>The sealed bytes of a blob from its pack, with a clear error when the pack or the range is gone.</summary>
    private async Task<(byte[] Sealed, BlobLocation Location, string PackName)> ReadSealedAsync(ContentId id, CancellationToken cancellationToken)
    {
        if (!_index.TryGetValue(id, out var loc))
        {
            throw new DataDamagedException($"blob {id.Short} is not in any index (missing data); run 'cairn verify' to see what is affected");
        }
        var packName = loc.Pack.ToHex();
        byte[] sealedBlob;
        try
        {
            sealedBlob = await Storage.GetAsync(new StorageKey(ObjectKind.Data, packName), loc.Offset, loc.Length, cancellationToken).ConfigureAwait(false);
        }
        catch (ObjectNotFoundException e)
        {
            throw new DataDamagedException($"pack {loc.Pack.Short} holding blob {id.Short} is missing from the repository", e);
        }
        if (sealedBlob.Length != loc.Length)
        {
            throw new DataDamagedException($"pack {loc.Pack.Short} is truncated: blob {id.Short} should be {loc.Length} bytes at offset {loc.Offset}, found {sealedBlob.Length}");
        }
        return (sealedBlob, loc, packName);
    }

    internal byte[] DecodeBlob(ContentId id, ReadOnlySpan<byte> sealedBlob, int rawLength, string packName)
    {
        var raw = GC.AllocateUninitializedArray<byte>(rawLength);
        DecodeBlobInto(id, sealedBlob, raw, packName);
        return raw;
    }

    /// <summary>Authenticates, decompresses into <paramref name="raw"/> (exactly the blob's raw length) and checks the ID.</summary>
    private void DecodeBlobInto(ContentId id, ReadOnlySpan<byte> sealedBlob, Span<byte> raw, string packName)
    {
        Span<byte> aad = stackalloc byte[Aead.BlobContext.Length + ContentId.Size];
        Aead.BlobContext.CopyTo(aad);
        id.WriteTo(aad[Aead.BlobContext.Length..]);
        var compressed = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, sealedBlob.Length));
        try
        {
            int n;
            try
            {
                n = Aead.Open(sealedBlob, aad, compressed, $"blob {id.Short} in pack {packName[..8]}");
            }
            catch (AuthenticationFailedException e)
            {
                throw new DataDamagedException(e.Message, e);
            }
            int m;
            try
            {
                m = Zstd.Decompress(compressed.AsSpan(0, n), raw);
            }
            catch (InvalidDataException e)
            {
                throw new DataDamagedException($"blob {id.Short} does not decompress: {e.Message}", e);
            }
            if (m != raw.Length || Keys.ChunkId(raw) != id)
            {
                throw new DataDamagedException($"blob {id.Short} in pack {packName[..8]} does not match its ID (tampered)");
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    /// <summary>Like <see cref="LoadBlobAsync"/>, into a pooled buffer the caller returns (streaming reads reuse memory instead of faulting in fresh pages).</summary>
    private async Task<(byte[] Buffer, int Length)> LoadBlobPooledAsync(ContentId id, CancellationToken cancellationToken)
    {
        var (sealedBlob, loc, packName) = await ReadSealedAsync(id, cancellationToken).ConfigureAwait(false);
        var raw = System.Buffers.ArrayPool<byte>.Shared.Rent(Math.Max(1, loc.RawLength));
        try
        {
            DecodeBlobInto(id, sealedBlob, raw.AsSpan(0, loc.RawLength), packName);
        }
        catch
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(raw);
            throw;
        }
        return (raw, loc.RawLength);
    }

    // ---- keys ---------------------------------------------------------------------------------

    public async Task<List<(string Id, KeyFileData Data)>> ListKeysAsync(CancellationToken cancellationToken)
    {
        var result = new List<(string, KeyFileData)>();
        await foreach (var o in Storage.ListAsync(ObjectKind.Key, cancellationToken).ConfigureAwait(false))
        {
            // Unreadable and oversized key files are listed too, so 'key remove' can take them away.
            KeyFileData? data = null;
            if (o.Size <= KeyFile.MaxFileSize)
            {
                try
                {
                    data = JsonSerializer.Deserialize(await Storage.GetAllAsync(o.Key, cancellationToken).ConfigureAwait(false), RepositoryJson.Default.KeyFileData);
                }
                catch (JsonException)
                {
                }
                catch (ObjectNotFoundException)
                {
                    continue;
                }
            }
            result.Add((o.Key.Name, data ?? new KeyFileData { Label = $"(unreadable key file of {o.Size} bytes)" }));
        }
        result.Sort((a, b) => a.Item2.Created.CompareTo(b.Item2.Created));
        return result;
    }

    /// <summary>Adds a passphrase: one new key file wrapping the same master secret. No data is rewritten.</summary>
    public async Task<string> AddKeyAsync(string passphrase, KdfParameters kdf, string? label, CancellationToken cancellationToken)
    {
        if (string.IsNullOrEmpty(passphrase))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "an empty passphrase is not allowed");
        }
        var id = NewKeyId();
        var data = KeyFile.Wrap(id, Keys.Master, passphrase, kdf, Time.GetUtcNow(), label);
        await Storage.PutAsync(new StorageKey(ObjectKind.Key, id), JsonSerializer.SerializeToUtf8Bytes(data, RepositoryJson.Default.KeyFileData), cancellationToken).ConfigureAwait(false);
        return id;
    }

    /// <summary>Removes a passphrase. Refuses the key in use and the last key.</summary>
    public async Task RemoveKeyAsync(string idOrPrefix, CancellationToken cancellationToken)
    {
        var keys = await ListKeysAsync(cancellationToken).ConfigureAwait(false);
        var matches = keys.Where(k => k.Id.StartsWith(idOrPrefix, StringComparison.OrdinalIgnoreCase)).ToList();
        if (matches.Count == 0)
        {
            throw new RepositoryException(ErrorKind.NotFound, $"no key {idOrPrefix}; list keys with 'cairn key list'");
        }
        if (matches.Count > 1)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"key prefix {idOrPrefix} is ambiguous; give more characters");
        }
        var id = matches[0].Id;
        if (id == KeyId)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"key {id[..8]} is the one this session opened the repository with; open with another passphrase to remove it");
        }
        if (keys.Count <= 1)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, "refusing to remove the last key: the repository could never be opened again");
        }
        await Storage.DeleteAsync(new StorageKey(ObjectKind.Key, id), cancellationToken).ConfigureAwait(false);
    }

    private static string NewKeyId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    private static byte[] EncodeConfig(RepositoryConfig config, Aead aead, byte[] repoId)
    {
        var json = JsonSerializer.SerializeToUtf8Bytes(config, RepositoryJson.Default.RepositoryConfig);
        var sealedConfig = aead.Seal(json, Aead.Concat(Aead.ConfigContext, repoId));
        var header = Encoding.ASCII.GetBytes(config.Id + "\n");
        return [.. ConfigMagic, .. header, .. sealedConfig];
    }
}
