using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace Cairn.PostgreSql.Files;

/// <summary>
/// Writes a data directory for a physical restore, under handles only (see <see cref="SafeDirectory"/>): folders are
/// opened or created one component at a time without following links and kept open, so the files written into them
/// land there even if the server's user renames or swaps things meanwhile; files are created new (O_EXCL|O_NOFOLLOW)
/// under a random name, filled, given their (masked) mode and owner through their handle, then renamed over their
/// name, which replaces a link there instead of writing through it. What the restore creates is handed to
/// <c>owner</c> (the server's user when Cairn runs as root) by handle as it is created; nothing else is chowned.
/// Names must have been checked with <see cref="DataPaths.Problem"/> first.
/// </summary>
public sealed class RestoreTree : IDisposable
{
    private const UnixFileMode PrivateFolder = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private readonly ConcurrentDictionary<string, SafeDirectory> _folders = new(StringComparer.Ordinal);
    private readonly FileOwner? _owner;

    /// <summary>Takes over <paramref name="root"/> (disposed with the tree), makes it 0700 and hands it to <paramref name="owner"/>.</summary>
    public RestoreTree(SafeDirectory root, FileOwner? owner)
    {
        _owner = owner;
        _folders[""] = root;
        root.SetMode(PrivateFolder);
        if (owner is { } o)
        {
            root.SetOwner(o);
        }
    }

    public SafeDirectory Root => _folders[""];

    /// <summary>
    /// Set when the restore writes into an empty target: a file is then created under its own name (O_EXCL|O_NOFOLLOW,
    /// so nothing already there is written through or replaced) instead of a random one renamed over it, which saves
    /// a rename per file; when something of that name is there after all (a mapped tablespace folder kept by --delta,
    /// an entry the server's user made meanwhile), the file is written the usual way and replaces it.
    /// </summary>
    public bool Fresh { get; init; }

    /// <summary>
    /// Makes names under <paramref name="name"/> (a <c>pg_tblspc/OID</c> link) resolve inside <paramref name="folder"/>
    /// directly, never through the link in the data directory. The tree takes over the handle.
    /// </summary>
    public void Map(string name, SafeDirectory folder)
    {
        if (!_folders.TryAdd(name, folder))
        {
            throw new ArgumentException($"{name} is mapped twice", nameof(name));
        }
    }

    /// <summary>The mapped folders (tablespaces) and the names they stand for.</summary>
    public IEnumerable<(string Name, SafeDirectory Folder)> Mapped
        => _folders.Where(f => f.Key.Length > 0 && DataPaths.IsTablespaceLink(f.Key)).Select(f => (f.Key, f.Value));

    /// <summary>
    /// The folder <paramref name="name"/> with <paramref name="mode"/>: created when missing (its parent must already be
    /// in the tree, unless <paramref name="createParents"/>), an entry of another kind in its place (a file, a link
    /// the server's user planted) removed first — the link itself, never what it points to.
    /// </summary>
    public SafeDirectory Directory(string name, UnixFileMode mode, bool createParents = false)
    {
        if (_folders.TryGetValue(name, out var known))
        {
            known.SetMode(mode);
            return known;
        }
        var parentName = DataPaths.Parent(name);
        var parent = createParents && !_folders.ContainsKey(parentName) ? Directory(parentName, PrivateFolder, createParents: true) : Folder(parentName);
        var leaf = DataPaths.Leaf(name);
        if (parent.Stat(leaf) is { IsDirectory: false })
        {
            parent.Remove(leaf);
        }
        var folder = parent.CreateDirectory(leaf, mode, out var created);
        try
        {
            folder.SetMode(mode);
            if (created && _owner is { } o)
            {
                folder.SetOwner(o);
            }
        }
        catch
        {
            folder.Dispose();
            throw;
        }
        if (!_folders.TryAdd(name, folder))
        {
            folder.Dispose();
            return _folders[name];
        }
        return folder;
    }

    /// <summary>A folder already in the tree (created or mapped before what goes into it).</summary>
    public SafeDirectory Folder(string name)
        => _folders.TryGetValue(name, out var f) ? f : throw new UnsafePathException($"'{name}' is not a folder of the restored data directory");

    public bool HasFolder(string name) => _folders.ContainsKey(name);

    /// <summary>Fills a file just created (the handle is taken over): preallocated, written, then its mode and owner set by handle.</summary>
    private async Task FillAsync(SafeFileHandle handle, long size, UnixFileMode mode, Func<Stream, CancellationToken, Task> fill, CancellationToken ct)
    {
        await using var fs = new PositionalWriteStream(handle);
        SafeDirectory.Preallocate(handle, size);
        await fill(fs, ct).ConfigureAwait(false);
        SafeDirectory.SetMode(handle, mode);
        if (_owner is { } o)
        {
            SafeDirectory.SetOwner(handle, o);
        }
    }

    /// <summary>
    /// Writes a file: a fresh file under a random name (O_CREAT|O_EXCL|O_NOFOLLOW, 0600), filled by
    /// <paramref name="fill"/>, given <paramref name="mode"/> and its owner through its handle, then renamed over
    /// <paramref name="name"/> — a link or file already there is replaced, never written through; a folder there is removed.
    /// </summary>
    public async Task WriteFileAsync(string name, long size, UnixFileMode mode, Func<Stream, CancellationToken, Task> fill, CancellationToken ct)
    {
        var parent = Folder(DataPaths.Parent(name));
        var leaf = DataPaths.Leaf(name);
        if (Fresh && parent.TryCreateFile(leaf, PrivateFile) is { } direct)
        {
            try
            {
                await FillAsync(direct, size, mode, fill, ct).ConfigureAwait(false);
            }
            catch
            {
                try
                {
                    parent.Remove(leaf);
                }
                catch (IOException)
                {
                    // the first error is the one to report
                }
                throw;
            }
            return;
        }
        var temp = ".cairn-" + RandomNumberGenerator.GetHexString(16, lowercase: true);
        try
        {
            await FillAsync(parent.CreateFile(temp, PrivateFile), size, mode, fill, ct).ConfigureAwait(false);
            parent.Rename(temp, leaf);
        }
        catch
        {
            try
            {
                parent.Remove(temp);
            }
            catch (IOException)
            {
                // the first error is the one to report
            }
            throw;
        }
    }

    /// <summary>
    /// For --delta: true when <paramref name="name"/> is a regular file with a single link, of <paramref name="size"/>
    /// bytes, whose content <paramref name="matches"/> accepts; it then gets <paramref name="mode"/> through its handle.
    /// A link, a folder, a FIFO or a hard-linked file under that name never matches (it is rewritten).
    /// </summary>
    public async Task<bool> KeepIfMatchesAsync(string name, long size, UnixFileMode mode, Func<Stream, CancellationToken, Task<bool>> matches, CancellationToken ct)
    {
        var parent = Folder(DataPaths.Parent(name));
        var leaf = DataPaths.Leaf(name);
        if (parent.Stat(leaf) is not { IsFile: true, Links: 1 } st || st.Size != size)
        {
            return false;
        }
        SafeFileHandle? handle;
        try
        {
            handle = parent.OpenFile(leaf);
        }
        catch (UnsafePathException)
        {
            return false; // swapped since the look: rewrite it
        }
        if (handle is null)
        {
            return false;
        }
        await using var fs = new FileStream(handle, FileAccess.Read, bufferSize: 0);
        if (SafeDirectory.Stat(handle) is not { IsFile: true, Links: 1 } now || now.Size != size)
        {
            return false;
        }
        SafeDirectory.SequentialScan(handle);
        if (!await matches(fs, ct).ConfigureAwait(false))
        {
            return false;
        }
        SafeDirectory.SetMode(handle, mode);
        return true;
    }

    /// <summary>A symbolic link (whatever is there is removed first); its owner is set on the link itself.</summary>
    public void Link(string name, string target)
    {
        var parent = Folder(DataPaths.Parent(name));
        var leaf = DataPaths.Leaf(name);
        parent.Remove(leaf);
        parent.Symlink(leaf, target);
        if (_owner is { } o)
        {
            parent.SetOwner(leaf, o);
        }
    }

    /// <summary>A hard link to a file this restore wrote (<paramref name="existing"/>); whatever is at <paramref name="name"/> is removed first.</summary>
    public void HardLink(string name, string existing)
    {
        var parent = Folder(DataPaths.Parent(name));
        var leaf = DataPaths.Leaf(name);
        var from = Folder(DataPaths.Parent(existing));
        if (from.Stat(DataPaths.Leaf(existing)) is not { IsFile: true })
        {
            throw new UnsafePathException($"'{existing}' is not a regular file of the restored data directory");
        }
        parent.Remove(leaf);
        parent.HardLink(from, DataPaths.Leaf(existing), leaf);
    }

    /// <summary>
    /// For --delta: removes what the backup does not hold, in the data directory and in the mapped tablespace folders.
    /// Links are removed or kept, never entered; folders are entered through handles.
    /// </summary>
    public int RemoveExtra(IReadOnlySet<string> keep)
    {
        var removed = RemoveExtra(Root, "", keep);
        foreach (var (name, folder) in Mapped)
        {
            removed += RemoveExtra(folder, name, keep);
        }
        return removed;
    }

    private static int RemoveExtra(SafeDirectory dir, string prefix, IReadOnlySet<string> keep)
    {
        var removed = 0;
        foreach (var name in dir.Names())
        {
            var rel = prefix.Length == 0 ? name : prefix + "/" + name;
            if (!keep.Contains(rel))
            {
                removed += dir.Remove(name) ? 1 : 0;
            }
            else if (dir.Stat(name) is { IsDirectory: true })
            {
                using var sub = dir.OpenDirectory(name);
                if (sub is not null)
                {
                    removed += RemoveExtra(sub, rel, keep);
                }
            }
        }
        return removed;
    }

    public void Dispose()
    {
        foreach (var f in _folders.Values)
        {
            f.Dispose();
        }
        _folders.Clear();
    }
}
