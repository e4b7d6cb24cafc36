using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Repository;
using Cairn.Tests.Support;

namespace Cairn.Tests.Storage;

/// <summary>The same storage contract as the folder backend, on a real S3 server (s3rver), each test under its own prefix.</summary>
[Collection("s3")]
public sealed class S3StorageConformanceTests(S3rverFixture s3) : StorageConformanceTests
{
    private readonly S3Storage _storage = s3.NewStorage("conformance");

    protected override IStorage Storage => _storage;

    public override void Dispose()
    {
        _storage.Dispose();
        base.Dispose();
    }
}
