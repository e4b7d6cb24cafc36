using System.Security.Cryptography;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Setup;

public sealed record DoctorRequest;

/// <summary>What <c>cairn doctor</c> found: <see cref="Ok"/> when no check failed (warnings allowed).</summary>
public sealed record DoctorResult(string Location, bool AppendOnly, bool RepositoryExists, IReadOnlyList<StorageCheck> Checks)
{
    public bool Ok => Checks.All(c => c.State != StorageCheckState.Fail);
}

/// <summary>
/// <c>cairn doctor</c>: checks a repository location before first use (and any time after): for S3 reachable,
/// credentials valid, bucket there, a write-read-delete probe (write-read for an append-only client), clock skew,
/// conditional writes, versioning and Object Lock; for a folder, that it can be created, written, read and cleaned.
/// Needs no passphrase and changes nothing but its own probe objects.
/// </summary>
public sealed class DoctorOperation(OperationContext context)
{
    public async Task<DoctorResult> RunAsync(DoctorRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var location = context.RepositoryLocation;
        var storage = context.OpenStorage();
        var appendOnly = AppendOnlyStorage.Is(storage);
        var inner = storage is AppendOnlyStorage a ? a.Inner : storage;
        var checks = new List<StorageCheck>();
        switch (inner)
        {
            case IDiagnosableStorage diagnosable:
                checks.AddRange(await diagnosable.DiagnoseAsync(appendOnly, cancellationToken).ConfigureAwait(false));
                break;
            case FileSystemStorage when location is LocalLocation local:
                checks.Add(CheckFolder(local.Path, appendOnly));
                break;
            default:
                checks.Add(new("backend", StorageCheckState.Warning, $"no checks for the storage of {location.Display}"));
                break;
        }
        var exists = false;
        if (checks.All(c => c.State != StorageCheckState.Fail))
        {
            try
            {
                exists = await Repository.Repository.ExistsAsync(storage, cancellationToken).ConfigureAwait(false);
                checks.Add(new("repository", StorageCheckState.Ok, exists ? $"a Cairn repository is at {location.Display}" : $"no repository yet; create one with 'cairn init --repo {location.Display}'"));
            }
            catch (IOException e)
            {
                checks.Add(new("repository", StorageCheckState.Fail, e.Message));
            }
        }
        return new DoctorResult(location.Display, appendOnly, exists, checks);
    }

    /// <summary>A folder: created if missing (0700, as init would), then a probe file written, read back and removed.</summary>
    private static StorageCheck CheckFolder(string path, bool appendOnly)
    {
        var probe = Path.Combine(path, ".cairn-doctor-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)));
        try
        {
            if (!Directory.Exists(path))
            {
                var parent = Path.GetDirectoryName(path);
                return parent is not null && Directory.Exists(parent)
                    ? new("folder", StorageCheckState.Ok, $"{path} does not exist yet; 'cairn init' creates it in {parent}")
                    : new("folder", StorageCheckState.Fail, $"neither {path} nor its parent folder exists; create the parent (mkdir -p {parent}) or choose another --repo");
            }
            var bytes = RandomNumberGenerator.GetBytes(32);
            using (var f = new FileStream(probe, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
            {
                f.Write(bytes);
            }
            if (!File.ReadAllBytes(probe).AsSpan().SequenceEqual(bytes))
            {
                return new("write-read-delete", StorageCheckState.Fail, $"the probe file {probe} read back different bytes");
            }
            File.Delete(probe);
            return new(appendOnly ? "write-read" : "write-read-delete", StorageCheckState.Ok, $"wrote, read back and removed a probe file in {path}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new("write-read-delete", StorageCheckState.Fail, $"{path}: {e.Message}; check the folder's owner and mode (Cairn needs to write there) and free space");
        }
    }
}
