using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// Create-only puts (<c>If-None-Match: *</c>). s3rver ignores the header on PUT, so on it the call must
/// refuse rather than emulate; the proxy stands in for a server that honours it (412 when the key exists),
/// which is AWS's documented answer.
/// </summary>
public sealed class S3CreateOnlyTests(S3rverFixture s3) : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const int MiB = 1024 * 1024;
    private FaultProxy _proxy = null!;

    public Task InitializeAsync()
    {
        _proxy = new FaultProxy(s3.Endpoint);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    private static StorageKey Wal(string n) => new(ObjectKind.Named, "db@" + n);

    /// <summary>Answers 412 to a conditional PUT or CompleteMultipartUpload of a key that a conditional write already created.</summary>
    private void HonourIfNoneMatch()
    {
        var created = new ConcurrentDictionary<string, bool>();
        _proxy.OnRequest = r =>
        {
            var conditional = r.Headers.TryGetValue("If-None-Match", out var v) && v == "*";
            var creates = (r.Method == "PUT" && !r.IsPartUpload) || (r.Method == "POST" && r.Query.Contains("uploadId=", StringComparison.Ordinal));
            if (conditional && creates && !created.TryAdd(r.Path, true))
            {
                return new Fault.Error(412, "PreconditionFailed");
            }
            return null;
        };
    }

    [Fact]
    public async Task Create_only_put_on_a_server_that_ignores_If_None_Match_is_refused_not_emulated()
    {
        using var viaProxy = s3.NewStorage("ignores-inm", endpoint: _proxy.Endpoint);

        var e = await Assert.ThrowsAsync<NotSupportedException>(() => viaProxy.PutIfAbsentAsync(Wal("1"), new byte[] { 1 }, default));

        Assert.Contains("ignores conditional writes", e.Message, StringComparison.Ordinal);
        Assert.Null(await viaProxy.StatAsync(Wal("1"), default));
        var probes = _proxy.Requests.Where(r => r.Path.Contains(".cairn-probe-", StringComparison.Ordinal)).ToList();
        Assert.Equal(["PUT", "PUT", "DELETE"], probes.Select(r => r.Method));
        Assert.All(probes.Where(r => r.Method == "PUT"), r => Assert.Equal("*", r.Headers["If-None-Match"]));
        // Asked again, the storage remembers and does not probe twice.
        await Assert.ThrowsAsync<NotSupportedException>(() => viaProxy.PutIfAbsentAsync(Wal("2"), new byte[] { 1 }, default));
        Assert.Equal(3, _proxy.Requests.Count(r => r.Path.Contains(".cairn-probe-", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Create_only_put_creates_once_and_a_second_one_changes_nothing()
    {
        HonourIfNoneMatch();
        using var viaProxy = s3.NewStorage("honours-inm", endpoint: _proxy.Endpoint);
        var first = Encoding.ASCII.GetBytes("first segment");

        Assert.True(await viaProxy.PutIfAbsentAsync(Wal("1"), first, default));
        Assert.False(await viaProxy.PutIfAbsentAsync(Wal("1"), Encoding.ASCII.GetBytes("another segment"), default));

        Assert.Equal(first, await viaProxy.GetAllAsync(Wal("1"), default));
        Assert.All(_proxy.Requests.Where(r => r.Method == "PUT" && r.Path.EndsWith("db@1", StringComparison.Ordinal)), r => Assert.Equal("*", r.Headers["If-None-Match"]));
    }

    [Fact]
    public async Task Create_only_multipart_put_that_loses_is_aborted_and_leaves_the_first_object()
    {
        HonourIfNoneMatch();
        var options = new S3Options { MultipartThreshold = 5 * MiB, PartSize = 5 * MiB };
        using var viaProxy = s3.NewStorage("honours-inm-mp", options, _proxy.Endpoint);
        var key = new StorageKey(ObjectKind.Data, Convert.ToHexStringLower(SHA256.HashData(Encoding.ASCII.GetBytes("mp"))));
        var first = TestData.Random(11 * MiB, 1);

        Assert.True(await viaProxy.PutIfAbsentAsync(key, first, default));
        Assert.False(await viaProxy.PutIfAbsentAsync(key, TestData.Random(11 * MiB, 2), default));

        var stored = await viaProxy.GetAllAsync(key, default);
        Assert.True(first.AsSpan().SequenceEqual(stored));
        var completes = _proxy.Requests.Where(r => r.Method == "POST" && r.Query.Contains("uploadId=", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, completes.Count);
        Assert.All(completes, r => Assert.Equal("*", r.Headers["If-None-Match"]));
        Assert.Single(_proxy.Requests, r => r.Method == "DELETE" && r.Query.Contains("uploadId=", StringComparison.Ordinal));
    }
}
