using System.Globalization;
using System.Text;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Storage;

/// <summary>
/// S3 Object Lock as the requests show it: s3rver ignores the lock headers and answers NotImplemented for retention
/// calls, so these tests read what Cairn sends through the recording proxy, and the proxy stands in for the answers
/// s3rver cannot give. The server's side (a locked version refusing DELETE) is checked against Ceph RGW by scripts/ceph-s3.
/// </summary>
public sealed class S3ObjectLockTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-12-05T10:00:00.250Z", CultureInfo.InvariantCulture);

    private static S3Options Locked(ObjectLockMode mode, int days = 7) => new()
    {
        ObjectLock = new ObjectLockPolicy(mode, TimeSpan.FromDays(days)),
        PartSize = 5 * 1024 * 1024,
        MultipartThreshold = 5 * 1024 * 1024,
        Retry = new S3RetryOptions { MaxAttempts = 1 },
    };

    private static string Header(ProxyRequest r, string name) => r.Headers.TryGetValue(name, out var v) ? v : "";

    [Theory]
    [InlineData(ObjectLockMode.Governance, "GOVERNANCE")]
    [InlineData(ObjectLockMode.Compliance, "COMPLIANCE")]
    public async Task Every_object_Cairn_creates_carries_the_lock_mode_retain_until_date_and_Content_MD5_but_locks_and_pins_do_not(ObjectLockMode mode, string wire)
    {
        await using var proxy = new FaultProxy(s3.Endpoint);
        using var storage = s3.NewStorage("lock-headers", Locked(mode), proxy.Endpoint, new FakeTimeProvider(Now));
        var small = Encoding.ASCII.GetBytes("sealed pack bytes");
        await storage.PutAsync(new StorageKey(ObjectKind.Data, "ab" + new string('0', 62)), small, default);
        await storage.PutAsync(new StorageKey(ObjectKind.Snapshot, new string('c', 64)), small, default);
        await storage.PutAsync(new StorageKey(ObjectKind.Key, "k1"), small, default);
        await storage.PutAsync(new StorageKey(ObjectKind.Lock, "lock1"), small, default);
        await storage.PutAsync(new StorageKey(ObjectKind.Pin, new string('d', 64)), small, default);
        await storage.PutAsync(new StorageKey(ObjectKind.Data, "ef" + new string('1', 62)), new byte[6 * 1024 * 1024], default);

        var puts = proxy.Requests.Where(r => r.Method == "PUT" && !r.IsPartUpload).ToList();
        var until = "2026-12-12T10:00:01"; // now + 7 days, rounded up to the second
        foreach (var folder in (string[])["/data/ab/", "/snapshots/", "/keys/"])
        {
            var put = Assert.Single(puts, r => r.Path.Contains(folder, StringComparison.Ordinal));
            Assert.Equal(wire, Header(put, "x-amz-object-lock-mode"));
            Assert.StartsWith(until, Header(put, "x-amz-object-lock-retain-until-date"), StringComparison.Ordinal);
            Assert.NotEqual("", Header(put, "Content-MD5"));
        }
        foreach (var folder in (string[])["/locks/", "/pins/"])
        {
            var put = Assert.Single(puts, r => r.Path.Contains(folder, StringComparison.Ordinal));
            Assert.Equal("", Header(put, "x-amz-object-lock-mode"));
            Assert.Equal("", Header(put, "x-amz-object-lock-retain-until-date"));
        }
        // The multipart upload is locked when it starts; every part carries its MD5.
        var start = Assert.Single(proxy.Requests, r => r.Method == "POST" && r.Query.StartsWith("uploads", StringComparison.Ordinal));
        Assert.Equal(wire, Header(start, "x-amz-object-lock-mode"));
        Assert.StartsWith(until, Header(start, "x-amz-object-lock-retain-until-date"), StringComparison.Ordinal);
        Assert.All(proxy.Requests.Where(r => r.IsPartUpload), r => Assert.NotEqual("", Header(r, "Content-MD5")));
    }

    [Fact]
    public async Task Delete_of_a_locked_object_is_refused_without_sending_a_DELETE_and_an_expired_one_goes_by_its_version()
    {
        await using var proxy = new FaultProxy(s3.Endpoint);
        var clock = new FakeTimeProvider(Now);
        using var storage = s3.NewStorage("lock-delete", Locked(ObjectLockMode.Governance), proxy.Endpoint, clock);
        var key = new StorageKey(ObjectKind.Data, "ab" + new string('2', 62));
        await storage.PutAsync(key, new byte[100], default);
        var retained = DateTimeOffset.Parse("2026-12-07T10:00:00Z", CultureInfo.InvariantCulture);
        proxy.OnRequest = r => r.Method == "HEAD" && r.Path.Contains("/data/ab/", StringComparison.Ordinal)
            ? new Fault.Headers(new Dictionary<string, string>
            {
                ["Content-Length"] = "100",
                ["Last-Modified"] = Now.ToString("R", CultureInfo.InvariantCulture),
                ["x-amz-version-id"] = "v-42",
                ["x-amz-object-lock-mode"] = "GOVERNANCE",
                ["x-amz-object-lock-retain-until-date"] = "2026-12-07T10:00:00.000Z",
            })
            : null;

        var e = await Assert.ThrowsAsync<ObjectLockedException>(() => storage.DeleteAsync(key, default));
        Assert.Equal(retained, e.Until);
        Assert.Equal(retained, await storage.LockedUntilAsync(key, default));
        Assert.DoesNotContain(proxy.Requests, r => r.Method == "DELETE");
        Assert.Equal(retained, await storage.DeleteUnlessLockedAsync(key, default));

        // After the date the object goes for good: DELETE of its version, not a delete marker in front of it.
        clock.Advance(TimeSpan.FromDays(3));
        Assert.Null(await storage.LockedUntilAsync(key, default));
        await storage.DeleteAsync(key, default);
        var delete = Assert.Single(proxy.Requests, r => r.Method == "DELETE");
        Assert.Contains("versionId=v-42", delete.Query, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ExtendLock_sends_a_later_retention_in_the_objects_own_mode_and_never_a_shorter_one()
    {
        await using var proxy = new FaultProxy(s3.Endpoint);
        using var storage = s3.NewStorage("lock-extend", Locked(ObjectLockMode.Governance), proxy.Endpoint, new FakeTimeProvider(Now));
        var key = new StorageKey(ObjectKind.Snapshot, new string('e', 64));
        var current = Now.AddDays(10);
        proxy.OnRequest = r => r.Method switch
        {
            "HEAD" => new Fault.Headers(new Dictionary<string, string>
            {
                ["Content-Length"] = "10",
                ["Last-Modified"] = Now.ToString("R", CultureInfo.InvariantCulture),
                ["x-amz-version-id"] = "v-7",
                ["x-amz-object-lock-mode"] = "COMPLIANCE",
                ["x-amz-object-lock-retain-until-date"] = current.UtcDateTime.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            }),
            "PUT" when r.Query.StartsWith("retention", StringComparison.Ordinal) => new Fault.Canned(200, ""),
            _ => null,
        };

        Assert.False(await storage.ExtendLockAsync(key, Now.AddDays(5), default));
        Assert.DoesNotContain(proxy.Requests, r => r.Query.StartsWith("retention", StringComparison.Ordinal));

        Assert.True(await storage.ExtendLockAsync(key, Now.AddDays(30), default));
        var put = Assert.Single(proxy.Requests, r => r.Method == "PUT" && r.Query.StartsWith("retention", StringComparison.Ordinal));
        Assert.Contains("versionId=v-7", put.Query, StringComparison.Ordinal);
        var xml = Encoding.UTF8.GetString(put.Body);
        Assert.Contains("<Mode>COMPLIANCE</Mode>", xml, StringComparison.Ordinal);
        Assert.Contains("2027-01-04T10:00:01", xml, StringComparison.Ordinal);
    }
}
