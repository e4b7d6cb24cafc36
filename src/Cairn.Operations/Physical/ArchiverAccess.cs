using Cairn.PostgreSql.Files;
using Cairn.Repository;
using Cairn.Repository.Storage;

namespace Cairn.Operations.Physical;

/// <summary>What <see cref="ArchiverAccess.AllowAsync"/> opened to the archiver's group.</summary>
/// <param name="OnlyKey">The shared key file is the repository's only one: the server's user holds the administrator's key file too.</param>
public sealed record ArchiverAccessResult(string Repository, string Group, uint Gid, string KeyId, string? KeyLabel, int WalObjects, int Tightened, bool OnlyKey);

/// <summary>
/// The documented way to let the server's user archive WAL into a repository Cairn (root) owns: archive_command
/// and restore_command run as the server's user, which needs the WAL area, the config and the key file it opens
/// the repository with, and nothing else. The repository stays 0700/0600 for everything else, so the server's user
/// cannot read snapshots, the index, packs or the other key files (which would let it guess their passphrases offline).
/// </summary>
public static class ArchiverAccess
{
    /// <summary>
    /// Shares the WAL area with <paramref name="group"/> and the key file <paramref name="keyIdOrPrefix"/> (default: the
    /// key the repository was opened with, i.e. the passphrase given to this command).
    /// </summary>
    public static async Task<ArchiverAccessResult> AllowAsync(Repository.Repository repo, string group, string? keyIdOrPrefix, CancellationToken ct)
    {
        if (repo.Storage is not FileSystemStorage storage)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"{repo.Storage.Location} is not a local folder; only a folder repository has file modes to share");
        }
        var gid = Accounts.Group(group) ?? throw new RepositoryException(ErrorKind.InvalidInput, $"there is no group '{group}' on this machine; name the group of the server's user (usually postgres)");
        var keys = await repo.ListKeysAsync(ct).ConfigureAwait(false);
        var matches = keyIdOrPrefix is null ? keys.Where(k => k.Id == repo.KeyId).ToList() : keys.Where(k => k.Id.StartsWith(keyIdOrPrefix, StringComparison.OrdinalIgnoreCase)).ToList();
        if (matches.Count != 1)
        {
            throw new RepositoryException(matches.Count == 0 ? ErrorKind.NotFound : ErrorKind.InvalidInput, matches.Count == 0
                ? $"no key {keyIdOrPrefix} in the repository; see 'cairn key list'"
                : $"key prefix {keyIdOrPrefix} is ambiguous; give more of the ID (see 'cairn key list')");
        }
        var (id, data) = matches[0];
        var shared = storage.ShareWalArea(gid, id);
        return new ArchiverAccessResult(shared.Repository, group, gid, id, data.Label, shared.WalObjects, shared.Tightened, keys.Count == 1);
    }

    /// <summary>
    /// Lets <paramref name="group"/> read a file (0640) or enter a folder (0710) Cairn's user owns, never through a
    /// link: for the archiver's passphrase file and the folders above it.
    /// </summary>
    public static void ShareForReading(string path, string group)
    {
        var gid = Accounts.Group(group) ?? throw new RepositoryException(ErrorKind.InvalidInput, $"there is no group '{group}' on this machine");
        var full = Path.GetFullPath(path);
        using var parent = SafeDirectory.Open(Path.GetDirectoryName(full)!);
        var name = Path.GetFileName(full);
        var st = parent.Stat(name) ?? throw new RepositoryException(ErrorKind.NotFound, $"{full} does not exist");
        if (st.IsLink)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"{full} is a symbolic link; share the file it points to");
        }
        parent.SetOwner(name, new FileOwner(st.Uid, gid));
        if (st.IsDirectory)
        {
            using var dir = parent.OpenDirectory(name)!;
            dir.SetMode(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute);
        }
        else
        {
            using var file = parent.OpenFile(name)!;
            SafeDirectory.SetMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        }
    }
}

/// <summary>Let <see cref="Group"/> push and fetch WAL with the key file <see cref="Key"/> (default: the key of the passphrase given).</summary>
public sealed record ArchiverAllowRequest(string Group, string? Key);

/// <summary><c>archiver allow</c>: the server's user gets the WAL area and one key file, nothing else; the grant goes on the record.</summary>
public sealed class ArchiverAllowOperation(OperationContext context)
{
    public async Task<ArchiverAccessResult> RunAsync(ArchiverAllowRequest request, CancellationToken cancellationToken)
    {
        using var repo = await context.OpenRepositoryAsync(cancellationToken).ConfigureAwait(false);
        var r = await ArchiverAccess.AllowAsync(repo, request.Group, request.Key, cancellationToken).ConfigureAwait(false);
        context.Evidence.Record(new Recording.ArchiverAllowEvent(r.KeyId[..8], r.Group, r.Gid) { Repository = repo.Storage.Location });
        return r;
    }
}
