using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Cli;

/// <summary>The storage backends this binary is built with: a local folder. (The S3 backend plugs in here.)</summary>
internal sealed class CliStorageFactory(TimeProvider time) : IStorageFactory
{
    public IStorage Create(RepositoryLocation location) => location switch
    {
        LocalLocation local => new FileSystemStorage(local.Path, time),
        S3Location s3 => throw new RepositoryException(ErrorKind.InvalidInput, $"the repository {s3.Display} is in S3, but the S3 backend is not built into this binary yet; use a local folder"),
        _ => throw new RepositoryException(ErrorKind.InvalidInput, $"no storage backend for the repository {location.Display}"),
    };
}
