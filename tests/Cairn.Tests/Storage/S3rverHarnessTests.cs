using System.Net;
using System.Net.Sockets;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// The S3 test harness itself: a dead s3rver is restarted on its port (and said), and the fault proxy answers
/// an unreachable upstream with a 502 that names the cause instead of hanging up. A CI run once lost a whole
/// test class to "the response ended prematurely" with nothing to say why.
/// </summary>
public sealed class S3rverHarnessTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static readonly S3Options Fast = new()
    {
        Retry = new S3RetryOptions { MaxAttempts = 2, BaseDelay = TimeSpan.FromMilliseconds(5), MaxDelay = TimeSpan.FromMilliseconds(10), RequestTimeout = TimeSpan.FromSeconds(10) },
    };

    [Fact]
    public async Task A_killed_s3rver_is_restarted_on_its_port_with_its_objects()
    {
        using var storage = s3.NewStorage("harness");
        var key = new StorageKey(ObjectKind.Named, "kept");
        await storage.PutAsync(key, TestData.Random(1000, 7), default);

        s3.KillServerForTest();

        byte[]? read = null;
        await Eventually.UntilAsync(
            async () =>
            {
                try
                {
                    read = await storage.GetAllAsync(key, default);
                    return true;
                }
                catch (S3StorageException)
                {
                    return false;
                }
            },
            TimeSpan.FromSeconds(60),
            "a read from the restarted s3rver");
        Assert.Equal(TestData.Random(1000, 7), read);
        Assert.Contains("exited with code", S3rverFixture.HealthOf(s3.Endpoint.Authority), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_proxy_answers_an_unreachable_upstream_with_a_502_that_names_the_cause()
    {
        // A port nobody listens on: bind, read the port, close.
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var proxy = new FaultProxy(new Uri($"http://127.0.0.1:{port}"));
        using var storage = s3.NewStorage("harness-502", Fast, proxy.Endpoint);

        // A GET: a HEAD answer has no body to carry the text.
        var e = await Assert.ThrowsAsync<S3StorageException>(() => storage.GetAllAsync(new StorageKey(ObjectKind.Named, "x"), default));

        Assert.Contains("could not connect to the S3 server", e.ToString(), StringComparison.Ordinal);
        Assert.True(proxy.UpstreamFailures > 0);
    }
}
