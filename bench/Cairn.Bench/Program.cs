using System.Diagnostics;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;

if (args.Length == 7 && args[0] == "scale-generate")
{
    return await Cairn.Bench.ScaleBench.GenerateAsync(args[1..]);
}
if (args.Length == 3 && args[0] == "scale-profile")
{
    return await Cairn.Bench.ScaleBench.ProfileAsync(args[1..]);
}

if (args.Length == 2 && args[0] == "stages")
{
    return Cairn.Bench.StagesBench.Run(args[1..]);
}

if (args.Length == 2 && args[0] == "levels")
{
    return Cairn.Bench.LevelsBench.Run(args[1..]);
}

if (args.Length == 5 && args[0] == "scale-plan")
{
    return await Cairn.Bench.ScaleBench.PlanAsync(args[1..]);
}

// bench/s3-storage.sh: put and get one item of SIZE_MB through the repository engine, on a folder and
// on S3, and print the times and the ratio. Usage: Cairn.Bench s3-storage ENDPOINT BUCKET FOLDER SIZE_MB
if (args.Length != 5 || args[0] != "s3-storage")
{
    Console.Error.WriteLine("usage: Cairn.Bench s3-storage ENDPOINT BUCKET FOLDER SIZE_MB | scale-generate FOLDER PASSPHRASE_FILE DATABASES SNAPSHOTS WAL_OBJECTS CHUNKS_PER_BACKUP | scale-plan FOLDER PASSPHRASE_FILE DATABASE TARGET_TIME | scale-profile FOLDER PASSPHRASE_FILE | stages FILE | levels DATA_DIRECTORY");
    return 2;
}
var endpoint = new Uri(args[1]);
var bucket = args[2];
var folder = args[3];
var size = int.Parse(args[4], System.Globalization.CultureInfo.InvariantCulture) * 1_000_000;

// Half table-like text, half random: about what a dump compresses to, so compression does not hide the storage.
var data = new byte[size];
var rng = new Random(7);
rng.NextBytes(data.AsSpan(0, size / 2));
var row = "4711\tb3c1e5a0-5a8c-4a39-9f3e-1c7d2b3a4f5e\tuser4711@example.com\t{\"plan\":\"pro\",\"n\":123456}\n"u8;
for (var i = size / 2; i < size; i++)
{
    data[i] = row[i % row.Length];
}

var results = new List<(string Backend, double Put, double Get, int Objects)>();
foreach (var backend in (string[])["folder", "s3"])
{
    IStorage storage = backend == "folder"
        ? new FileSystemStorage(folder)
        : new S3Storage(new S3Location(bucket, "bench-" + Guid.NewGuid().ToString("N")[..8]), new S3Options { Endpoint = endpoint }, Environment.GetEnvironmentVariable, TimeProvider.System);
    using var repo = await Repository.InitAsync(storage, "bench", new RepositoryOptions { Kdf = KdfParameters.Fast }, TimeProvider.System, CancellationToken.None);
    var clock = Stopwatch.StartNew();
    Cairn.Repository.Manifests.Snapshot snapshot;
    await using (var writer = repo.BeginWrite())
    {
        await writer.AddStreamAsync("item", new MemoryStream(data, writable: false), null, CancellationToken.None);
        snapshot = await writer.CommitAsync("item", "file", null, CancellationToken.None);
    }
    var put = clock.Elapsed.TotalSeconds;
    using var reopened = await Repository.OpenAsync(storage, "bench", TimeProvider.System, CancellationToken.None);
    var read = await reopened.LoadSnapshotAsync(snapshot.Id, CancellationToken.None);
    var sink = new CountingStream();
    clock.Restart();
    await reopened.ReadItemAsync(read.Manifest.Items[0], sink, null, CancellationToken.None);
    var get = clock.Elapsed.TotalSeconds;
    if (sink.Length != size)
    {
        Console.Error.WriteLine($"{backend}: read {sink.Length} bytes, expected {size}");
        return 1;
    }
    var objects = 0;
    await foreach (var _ in storage.ListAsync(ObjectKind.Data, CancellationToken.None))
    {
        objects++;
    }
    results.Add((backend, put, get, objects));
    (storage as IDisposable)?.Dispose();
}

Console.WriteLine($"{"backend",-8} {"put s",8} {"put MB/s",9} {"get s",8} {"get MB/s",9} {"packs",6}");
foreach (var r in results)
{
    Console.WriteLine($"{r.Backend,-8} {r.Put,8:0.00} {size / 1e6 / r.Put,9:0} {r.Get,8:0.00} {size / 1e6 / r.Get,9:0} {r.Objects,6}");
}
Console.WriteLine($"ratio s3/folder: put {results[1].Put / results[0].Put:0.00}x, get {results[1].Get / results[0].Get:0.00}x");
return 0;

/// <summary>Counts what is written and keeps nothing.</summary>
internal sealed class CountingStream : Stream
{
    private long _length;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _length;
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => _length += count;
    public override void Write(ReadOnlySpan<byte> buffer) => _length += buffer.Length;
    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _length += buffer.Length;
        return ValueTask.CompletedTask;
    }
}
