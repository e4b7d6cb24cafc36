using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Repository;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>
/// The same storage contract as the folder backend, on a real S3 server (s3rver), each test under its
/// own prefix. s3rver ignores <c>If-None-Match: *</c>, so requests pass through <see cref="FaultProxy"/>
/// answering conditional creates as AWS does (412 when the key exists, one at a time per key); on
/// s3rver alone a create-only put is refused (<see cref="S3CreateOnlyTests"/>).
/// </summary>
public sealed class S3StorageConformanceTests : StorageConformanceTests, IClassFixture<S3rverFixture>
{
    private readonly FaultProxy _proxy;
    private readonly S3Storage _storage;

    public S3StorageConformanceTests(S3rverFixture s3)
    {
        _proxy = new FaultProxy(s3.Endpoint) { EmulateConditionalWrites = true };
        _storage = s3.NewStorage("conformance", endpoint: _proxy.Endpoint);
    }

    protected override IStorage Storage => _storage;

    public override void Dispose()
    {
        _storage.Dispose();
        _proxy.DisposeAsync().AsTask().GetAwaiter().GetResult();
        base.Dispose();
    }
}
