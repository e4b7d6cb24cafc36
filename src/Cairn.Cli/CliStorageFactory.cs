using Cairn.Operations;
using Cairn.Repository;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;

namespace Cairn.Cli;

/// <summary>
/// The storage backends this binary is built with: a local folder and S3 (the <c>s3:</c> block of cairn.yaml
/// and the standard AWS environment variables). With <paramref name="appendOnly"/> every storage is wrapped
/// in <see cref="AppendOnlyStorage"/>: this client creates objects and never deletes or replaces one.
/// </summary>
internal sealed class CliStorageFactory(TimeProvider time, S3Options? s3, Func<string, string?> environment, bool appendOnly = false) : IS3StorageFactory
{
    public IStorage Create(RepositoryLocation location) => Create(location, s3);

    /// <summary>A location with its own S3 settings (a copy's <c>s3:</c> block); null takes the top-level block's.</summary>
    public IStorage Create(RepositoryLocation location, S3Options? options)
    {
        options ??= s3;
        IStorage storage = location switch
        {
            LocalLocation local => new FileSystemStorage(local.Path, time),
            S3Location bucket => CreateS3(bucket, options),
            _ => throw new RepositoryException(ErrorKind.InvalidInput, $"no storage backend for the repository {location.Display}"),
        };
        return appendOnly ? new AppendOnlyStorage(storage) : storage;
    }

    private S3Storage CreateS3(S3Location location, S3Options? options)
    {
        try
        {
            return new S3Storage(location, (options ?? new S3Options()) with { AppendOnly = appendOnly }, environment, time);
        }
        catch (S3ConfigurationException e)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"the repository {location.Display}: {e.Message}", e);
        }
    }
}
