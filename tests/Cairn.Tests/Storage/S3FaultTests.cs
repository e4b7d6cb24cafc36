using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// Faults between Cairn and a real S3 server (s3rver behind <see cref="FaultProxy"/>): each ends in
/// success after retries, or in a clear error with nothing half-visible.
/// </summary>
public sealed class S3FaultTests(S3rverFixture s3) : IClassFixture<S3rverFixture>, IAsyncLifetime
{
    private const int MiB = 1024 * 1024;

    /// <summary>Fast retries so the tests take milliseconds per retry, not seconds.</summary>
    private static readonly S3Options Fast = new()
    {
        MultipartThreshold = 5 * MiB,
        PartSize = 5 * MiB,
        Retry = new S3RetryOptions { MaxAttempts = 5, BaseDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(50), RequestTimeout = TimeSpan.FromSeconds(20) },
    };

    private FaultProxy _proxy = null!;

    public Task InitializeAsync()
    {
        _proxy = new FaultProxy(s3.Endpoint);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _proxy.DisposeAsync();

    private static StorageKey Pack(string seed) => new(ObjectKind.Data, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(seed))));

    private (S3Storage ThroughProxy, S3Storage Direct) Pair(string name, S3Options? options = null)
    {
        var location = s3.NewLocation(name);
        return (s3.NewStorage(location, options ?? Fast, _proxy.Endpoint), s3.NewStorage(location, options ?? Fast));
    }

    private static async Task<List<ObjectInfo>> ListAllAsync(IStorage storage, ObjectKind kind)
    {
        var all = new List<ObjectInfo>();
        await foreach (var o in storage.ListAsync(kind, default))
        {
            all.Add(o);
        }
        return all;
    }

    [Fact]
    public async Task Put_through_a_burst_of_503_SlowDown_succeeds_after_retries()
    {
        var (viaProxy, direct) = Pair("slowdown");
        using var _ = viaProxy;
        using var __ = direct;
        var puts = 0;
        _proxy.OnRequest = r => r.Method == "PUT" && Interlocked.Increment(ref puts) <= 3 ? new Fault.Error(503, "SlowDown") : null;
        var data = TestData.Random(100_000, 1);

        await viaProxy.PutAsync(Pack("a"), data, default);

        Assert.Equal(3, viaProxy.Retries);
        Assert.Equal(data, await direct.GetAllAsync(Pack("a"), default));
    }

    [Fact]
    public async Task Put_when_the_server_stays_overloaded_fails_clearly_and_leaves_nothing()
    {
        var (viaProxy, direct) = Pair("overloaded");
        using var _ = viaProxy;
        using var __ = direct;
        _proxy.OnRequest = r => r.Method == "PUT" ? new Fault.Error(500, "InternalError") : null;

        var e = await Assert.ThrowsAsync<S3StorageException>(() => viaProxy.PutAsync(Pack("b"), TestData.Random(1000, 2), default));

        Assert.True(e.Transient);
        Assert.Contains("after 5 attempts", e.Message, StringComparison.Ordinal);
        Assert.Contains("500 InternalError", e.Message, StringComparison.Ordinal);
        Assert.Equal(5, _proxy.Requests.Count(r => r.Method == "PUT"));
        Assert.Null(await direct.StatAsync(Pack("b"), default));
        Assert.Empty(await ListAllAsync(direct, ObjectKind.Data));
    }

    [Fact]
    public async Task Server_refusing_a_damaged_body_with_BadDigest_gets_the_bytes_again()
    {
        var (viaProxy, direct) = Pair("baddigest");
        using var _ = viaProxy;
        using var __ = direct;
        var puts = 0;
        _proxy.OnRequest = r => r.Method == "PUT" && Interlocked.Increment(ref puts) == 1 ? new Fault.Error(400, "BadDigest") : null;
        var data = TestData.Random(50_000, 3);

        await viaProxy.PutAsync(Pack("c"), data, default);

        Assert.Equal(1, viaProxy.Retries);
        Assert.Equal(data, await direct.GetAllAsync(Pack("c"), default));
    }

    [Fact]
    public async Task Every_put_and_part_carries_the_Content_MD5_of_its_body()
    {
        var (viaProxy, direct) = Pair("md5");
        using var _ = viaProxy;
        using var __ = direct;
        await viaProxy.PutAsync(Pack("small"), TestData.Random(10_000, 4), default);
        await viaProxy.PutAsync(Pack("large"), TestData.Random((12 * MiB) + 17, 5), default);

        var bodies = _proxy.Requests.Where(r => r.Method == "PUT").ToList();
        Assert.Equal(4, bodies.Count); // one PUT + three parts
        foreach (var r in bodies)
        {
            Assert.True(r.Headers.TryGetValue("Content-MD5", out var md5), $"{r.Target} has no Content-MD5");
            Assert.Equal(Convert.ToBase64String(MD5.HashData(r.Body)), md5);
        }
    }

    [Fact]
    public async Task Connection_reset_mid_upload_of_a_part_is_retried_and_the_object_is_whole()
    {
        var (viaProxy, direct) = Pair("reset");
        using var _ = viaProxy;
        using var __ = direct;
        var resets = 0;
        _proxy.OnRequest = r => r.IsPartUpload && r.Query.Contains("partNumber=2", StringComparison.Ordinal) && Interlocked.Increment(ref resets) == 1 ? new Fault.ResetMidRequest() : null;
        var data = TestData.Random((12 * MiB) + 3, 6);

        await viaProxy.PutAsync(Pack("d"), data, default);

        Assert.True(1 == viaProxy.Retries, string.Join("\n", _proxy.Requests.Select(r => $"{r.Method} {r.Target} {r.Body.Length}")));
        Assert.Equal(data, await direct.GetAllAsync(Pack("d"), default));
    }

    [Fact]
    public async Task Connection_reset_on_every_attempt_of_a_part_aborts_the_upload_and_leaves_nothing_visible()
    {
        var (viaProxy, direct) = Pair("reset-always");
        using var _ = viaProxy;
        using var __ = direct;
        _proxy.OnRequest = r => r.IsPartUpload && r.Query.Contains("partNumber=2", StringComparison.Ordinal) ? new Fault.ResetMidRequest() : null;

        var e = await Assert.ThrowsAsync<S3StorageException>(() => viaProxy.PutAsync(Pack("e"), TestData.Random(12 * MiB, 7), default));

        Assert.Contains("part 2/3", e.Message, StringComparison.Ordinal);
        Assert.Null(await direct.StatAsync(Pack("e"), default));
        Assert.Empty(await ListAllAsync(direct, ObjectKind.Data));
        var upload = _proxy.Requests.First(r => r.Method == "POST" && r.Query.Contains("uploads", StringComparison.Ordinal));
        Assert.Contains(_proxy.Requests, r => r.Method == "DELETE" && r.Path == upload.Path && r.Query.Contains("uploadId=", StringComparison.Ordinal));
        Assert.DoesNotContain(_proxy.Requests, r => r.Method == "POST" && r.Query.Contains("uploadId=", StringComparison.Ordinal)); // never completed
    }

    [Fact]
    public async Task Cancelled_multipart_put_aborts_the_upload_and_leaves_nothing_visible()
    {
        var (viaProxy, direct) = Pair("cancel");
        using var _ = viaProxy;
        using var __ = direct;
        using var cts = new CancellationTokenSource();
        _proxy.OnRequest = r =>
        {
            if (r.IsPartUpload)
            {
                cts.Cancel();
                return new Fault.Delay(TimeSpan.FromSeconds(2));
            }
            return null;
        };

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => viaProxy.PutAsync(Pack("f"), TestData.Random(12 * MiB, 8), cts.Token));

        Assert.Null(await direct.StatAsync(Pack("f"), default));
        Assert.Contains(_proxy.Requests, r => r.Method == "DELETE" && r.Query.Contains("uploadId=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Truncated_response_body_is_retried_and_returns_the_whole_range()
    {
        var (viaProxy, direct) = Pair("truncate");
        using var _ = viaProxy;
        using var __ = direct;
        var data = TestData.Random(300_000, 9);
        await direct.PutAsync(Pack("g"), data, default);
        var gets = 0;
        _proxy.OnRequest = r => r.Method == "GET" && Interlocked.Increment(ref gets) <= 2 ? new Fault.TruncateResponse() : null;

        Assert.Equal(data, await viaProxy.GetAllAsync(Pack("g"), default));
        Assert.Equal(data[1000..201_000], await viaProxy.GetAsync(Pack("g"), 1000, 200_000, default));
        Assert.Equal(2, viaProxy.Retries);
    }

    [Fact]
    public async Task Truncated_response_on_every_attempt_fails_with_a_clear_error()
    {
        var (viaProxy, direct) = Pair("truncate-always");
        using var _ = viaProxy;
        using var __ = direct;
        await direct.PutAsync(Pack("h"), TestData.Random(300_000, 10), default);
        _proxy.OnRequest = r => r.Method == "GET" ? new Fault.TruncateResponse() : null;

        var e = await Assert.ThrowsAsync<S3StorageException>(() => viaProxy.GetAllAsync(Pack("h"), default));

        Assert.Contains($"GET {Pack("h")} failed after 5 attempts", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Slow_server_times_out_and_the_retry_succeeds()
    {
        var options = Fast with { Retry = Fast.Retry with { RequestTimeout = TimeSpan.FromSeconds(1) } };
        var (viaProxy, direct) = Pair("slow", options);
        using var _ = viaProxy;
        using var __ = direct;
        var data = TestData.Random(100_000, 11);
        await direct.PutAsync(Pack("i"), data, default);
        var gets = 0;
        _proxy.OnRequest = r => r.Method == "GET" && Interlocked.Increment(ref gets) == 1 ? new Fault.Delay(TimeSpan.FromSeconds(4)) : null;

        Assert.Equal(data, await viaProxy.GetAllAsync(Pack("i"), default));
        Assert.Equal(1, viaProxy.Retries);
    }

    [Fact]
    public async Task Server_that_never_answers_in_time_fails_within_the_total_bound()
    {
        var options = Fast with { Retry = Fast.Retry with { MaxAttempts = 100, RequestTimeout = TimeSpan.FromMilliseconds(500), MaxTotal = TimeSpan.FromSeconds(3) } };
        var (viaProxy, direct) = Pair("dead", options);
        using var _ = viaProxy;
        using var __ = direct;
        _proxy.OnRequest = _ => new Fault.Delay(TimeSpan.FromSeconds(30));
        var clock = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<S3StorageException>(() => viaProxy.PutAsync(Pack("j"), TestData.Random(1000, 12), default));

        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(10));
        Assert.Contains("timed out", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_70_MiB_object_goes_up_in_parallel_parts_and_reads_back_identical_with_ranged_reads()
    {
        var location = s3.NewLocation("large");
        using var viaProxy = s3.NewStorage(location, new S3Options(), _proxy.Endpoint);
        var data = TestData.Random(70 * MiB, 13);
        var key = Pack("large");

        await viaProxy.PutAsync(key, data, default);

        var parts = _proxy.Requests.Where(r => r.IsPartUpload).ToList();
        Assert.Equal(9, parts.Count); // 8 MiB parts: 8 full + 6 MiB
        Assert.Equal(70 * MiB, parts.Sum(p => p.Body.Length));
        Assert.True(_proxy.MaxInFlight > 1, "the parts went up one at a time");
        Assert.Equal(70L * MiB, (await viaProxy.StatAsync(key, default))!.Value.Size);
        foreach (var (offset, length) in new (int, int)[] { (0, 4096), ((8 * MiB) - 100, 200), (33 * MiB, 5 * MiB), ((70 * MiB) - 10, 100) })
        {
            var end = Math.Min(offset + length, data.Length);
            Assert.Equal(data[offset..end], await viaProxy.GetAsync(key, offset, length, default));
        }
        var whole = await viaProxy.GetAllAsync(key, default);
        Assert.True(data.AsSpan().SequenceEqual(whole));
    }

    [Fact]
    public async Task Listing_pages_through_thousands_of_objects()
    {
        var (viaProxy, direct) = Pair("many");
        using var _ = viaProxy;
        using var __ = direct;
        var names = Enumerable.Range(0, 2_500).Select(i => $"db@{i:X24}").ToList();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (n, ct) => await direct.PutAsync(new StorageKey(ObjectKind.Named, n), new byte[] { 1 }, ct));

        var listed = await ListAllAsync(viaProxy, ObjectKind.Named);

        Assert.Equal(names.Order(StringComparer.Ordinal), listed.Select(o => o.Key.Name).Order(StringComparer.Ordinal));
        Assert.Equal(3, _proxy.Requests.Count(r => r.Method == "GET" && r.Query.Contains("list-type=2", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Objects_are_stored_under_the_prefix_with_the_folder_layout_and_options_reach_the_server()
    {
        var location = s3.NewLocation("layout");
        using var viaProxy = s3.NewStorage(location, new S3Options { Sse = S3ServerSideEncryption.Kms, SseKmsKeyId = "alias/cairn", StorageClass = "STANDARD_IA" }, _proxy.Endpoint);
        _proxy.OnRequest = r => r.Method == "PUT" ? new Fault.Canned(200, "") : null; // s3rver does not speak KMS; the headers are what is checked
        var key = Pack("layout");

        await viaProxy.PutAsync(key, new byte[] { 1, 2, 3 }, default);

        var put = Assert.Single(_proxy.Requests, r => r.Method == "PUT");
        Assert.Equal($"/{S3rverFixture.Bucket}/{location.Prefix}/data/{key.Name[..2]}/{key.Name}", put.Path);
        Assert.Equal("aws:kms", put.Headers["x-amz-server-side-encryption"]);
        Assert.Equal("alias/cairn", put.Headers["x-amz-server-side-encryption-aws-kms-key-id"]);
        Assert.Equal("STANDARD_IA", put.Headers["x-amz-storage-class"]);
    }

    [Fact]
    public async Task Leftover_multipart_uploads_older_than_a_day_are_aborted_and_younger_ones_kept()
    {
        var location = s3.NewLocation("leftovers");
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 3, 10, 12, 0, 0, TimeSpan.Zero));
        using var viaProxy = s3.NewStorage(location, Fast, _proxy.Endpoint, time);
        // s3rver does not implement ListMultipartUploads; the proxy answers with AWS's documented form.
        var xml = $"""
            <?xml version="1.0" encoding="UTF-8"?>
            <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
              <Bucket>{S3rverFixture.Bucket}</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
              <NextKeyMarker></NextKeyMarker><NextUploadIdMarker></NextUploadIdMarker><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>
              <Upload><Key>{location.Prefix}/data/aa/aaold</Key><UploadId>old-upload</UploadId><Initiated>2026-03-08T11:00:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
              <Upload><Key>{location.Prefix}/wal/db@000000010000000000000001</Key><UploadId>fresh-upload</UploadId><Initiated>2026-03-10T11:30:00.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
            </ListMultipartUploadsResult>
            """;
        _proxy.OnRequest = r => r.Method == "GET" && r.Query.Contains("uploads", StringComparison.Ordinal) ? new Fault.Canned(200, xml)
            : r.Method == "DELETE" ? new Fault.Canned(204, "") : null;

        Assert.Equal(1, await viaProxy.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: true, default));
        Assert.DoesNotContain(_proxy.Requests, r => r.Method == "DELETE");
        Assert.Equal(1, await viaProxy.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, default));

        var abort = Assert.Single(_proxy.Requests, r => r.Method == "DELETE");
        Assert.Equal($"/{S3rverFixture.Bucket}/{location.Prefix}/data/aa/aaold", abort.Path);
        Assert.Contains("uploadId=old-upload", abort.Query, StringComparison.Ordinal);
        var list = _proxy.Requests.First(r => r.Method == "GET");
        Assert.Contains($"prefix={location.Prefix}%2F", list.Query, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Leftover_cleanup_on_a_server_without_upload_listing_reports_nothing()
    {
        using var direct = s3.NewStorage("no-uploads-api");
        Assert.Equal(0, await direct.RemoveLeftoversAsync(TimeSpan.Zero, dryRun: false, default));
    }
}
