using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Cairn.PostgreSql.Files;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Microsoft.Win32.SafeHandles;

namespace Cairn.Operations.Physical;

/// <summary>
/// One area of a database's WAL spool (<c>SPOOL/DATABASE/push</c> or <c>SPOOL/DATABASE/fetch</c>): a folder of the user
/// the server runs as, 0700, opened through handles (<see cref="SafeDirectory"/>) so no link in it is ever followed.
/// The spool never holds the only copy of anything: a push marker says a segment is already durably in the repository,
/// a prefetched segment is a copy of one that is. Whatever is missing, torn or does not match is ignored and deleted,
/// and the caller falls back to the direct path.
/// </summary>
public sealed class WalSpool : IDisposable
{
    private const string PushMagic = "cairn-wal-pushed 1";
    private const string FetchMagic = "cairn-wal-prefetched 1";
    private readonly SafeDirectory _dir;

    private WalSpool(SafeDirectory dir, string repository, string database)
    {
        _dir = dir;
        Repository = repository;
        Database = database;
    }

    /// <summary>The repository location the spool's records are bound to (a record for another repository is no acknowledgement).</summary>
    public string Repository { get; }

    public string Database { get; }

    public string Path => _dir.Path;

    /// <summary>Opens (creating) <c>SPOOL/DATABASE/AREA</c>; refuses a folder this user does not own or others may write.</summary>
    public static WalSpool Open(string spool, string database, string area, string repository)
    {
        if (!System.IO.Path.IsPathFullyQualified(spool))
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"the WAL spool '{spool}' must be an absolute path (wal.spool in cairn.yaml)");
        }
        using var root = SafeDirectory.Open(spool, create: true);
        Owned(root);
        using var db = root.CreateDirectory(database, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, out _);
        Owned(db);
        var dir = db.CreateDirectory(area, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, out _);
        try
        {
            Owned(dir);
            return new WalSpool(dir, repository, database);
        }
        catch
        {
            dir.Dispose();
            throw;
        }
    }

    private static void Owned(SafeDirectory dir)
    {
        var st = dir.StatSelf();
        if (st.Uid != Accounts.EffectiveUid || (st.Mode & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
        {
            throw new RepositoryException(ErrorKind.InvalidInput,
                $"the WAL spool folder {dir.Path} belongs to uid {st.Uid} or others may write to it; it must be a folder of the server's user (uid {Accounts.EffectiveUid}) that only it may write (chown it to that user, chmod 700)");
        }
    }

    /// <summary>The names in the spool area (validated by the caller before use).</summary>
    public List<string> Names() => _dir.Names();

    public bool Remove(string name) => _dir.Remove(name);

    // ---- push markers: "NAME.ok" says the pusher stored exactly this file (by identity) durably in the repository.

    /// <summary>The identity of a WAL file as the pusher read it: a later stat that differs means another file.</summary>
    public sealed record FileIdentity(long Size, ulong Inode, ulong Device, long ModifiedTicks)
    {
        public static FileIdentity? Of(string path)
        {
            using var dir = SafeDirectory.Open(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
            var st = dir.Stat(System.IO.Path.GetFileName(path));
            return st is { IsFile: true } ? new FileIdentity(st.Size, st.Identity.Inode, st.Identity.Device, st.Modified.UtcTicks) : null;
        }
    }

    /// <summary>Records that <paramref name="name"/> (the file with <paramref name="identity"/>) is durably in the repository.</summary>
    public void MarkPushed(string name, FileIdentity identity)
        => WriteRecord(name + ".ok", $"{PushMagic}\n{Repository}\n{Database}\n{name}\n{identity.Size} {identity.Inode} {identity.Device} {identity.ModifiedTicks}\n");

    /// <summary>True when a marker says this very file was stored for this repository and database.</summary>
    public bool IsMarkedPushed(string name, FileIdentity identity)
        => ReadRecord(name + ".ok") == $"{PushMagic}\n{Repository}\n{Database}\n{name}\n{identity.Size} {identity.Inode} {identity.Device} {identity.ModifiedTicks}\n";

    public bool HasMarker(string name) => _dir.Stat(name + ".ok") is not null;

    // ---- prefetched segments: "NAME" with "NAME.ok" holding its size and SHA-256, both written by the prefetcher.

    /// <summary>Where the prefetcher writes <paramref name="name"/> before it is complete (never handed to PostgreSQL).</summary>
    public string PartialPath(string name) => System.IO.Path.Combine(_dir.Path, name + ".part");

    /// <summary>Publishes a fetched (already authenticated) segment: its hash is recorded, then it takes its name.</summary>
    public void PublishPrefetched(string name)
    {
        byte[] hash;
        long size;
        using (var handle = _dir.OpenFile(name + ".part") ?? throw new FileNotFoundException($"{name}.part vanished from the spool"))
        {
            SafeDirectory.SetMode(handle, UnixFileMode.UserRead | UnixFileMode.UserWrite);
            using var stream = new FileStream(handle, FileAccess.Read);
            size = stream.Length;
            hash = SHA256.HashData(stream);
        }
        WriteRecord(name + ".ok", $"{FetchMagic}\n{Repository}\n{Database}\n{name}\n{size} {Convert.ToHexStringLower(hash)}\n");
        _dir.Rename(name + ".part", name);
    }

    public bool HasPrefetched(string name) => _dir.Stat(name) is not null;

    /// <summary>
    /// Hands a prefetched segment to <paramref name="destination"/> when it is exactly what the prefetcher recorded: a
    /// regular file of this user, mode 0600, one link, the recorded size and SHA-256. The checked file itself is linked
    /// next to the destination and renamed onto it, so recovery's critical path reads the segment once and writes nothing
    /// (measured: the copy was about a quarter of a delivering call's CPU); on another file system it is copied, hashed
    /// again on the bytes copied. False, with the spool copy deleted, when anything differs: the caller then fetches
    /// from the repository.
    /// </summary>
    public bool TryDeliverPrefetched(string name, string destination, out string? rejected)
    {
        rejected = null;
        if (PrefetchedRecord(name) is not { } recorded)
        {
            rejected = _dir.Stat(name + ".ok") is null ? null : "its record is damaged or for another repository, database or name";
            Forget(name);
            return false;
        }
        var (size, sha256) = recorded;
        SafeFileHandle? opened;
        try
        {
            opened = _dir.OpenFile(name);
        }
        catch (IOException e)
        {
            rejected = $"it is not a regular file ({e.Message})";
            Forget(name);
            return false;
        }
        if (opened is null)
        {
            return false;
        }
        try
        {
            using var handle = opened;
            var st = SafeDirectory.Stat(handle);
            if (st is not { IsFile: true, Links: 1 } || st.Uid != Accounts.EffectiveUid || st.Mode != (UnixFileMode.UserRead | UnixFileMode.UserWrite) || st.Size != size)
            {
                rejected = "it is not a private regular file of the recorded size";
                return false;
            }
            if (!string.Equals(Sha256Of(handle, null), sha256, StringComparison.Ordinal))
            {
                rejected = "its content does not match the SHA-256 recorded when it was fetched";
                return false;
            }
            var full = System.IO.Path.GetFullPath(destination);
            using var target = SafeDirectory.Open(System.IO.Path.GetDirectoryName(full)!);
            var file = System.IO.Path.GetFileName(full);
            var temp = file + ".cairn-partial";
            target.Remove(temp);
            try
            {
                target.HardLink(_dir, name, temp);
            }
            catch (IOException)
            {
                // Another file system (or no links allowed there): a copy, checked again on the bytes written.
                using (var copy = target.CreateFile(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite))
                {
                    if (!string.Equals(Sha256Of(handle, copy), sha256, StringComparison.Ordinal))
                    {
                        rejected = "its content changed while it was being copied";
                    }
                }
                if (rejected is not null)
                {
                    target.Remove(temp);
                    return false;
                }
                target.Rename(temp, file);
                return true;
            }
            // The link must be the very file that was checked: nothing may have replaced the spool entry meanwhile.
            if (target.Stat(temp) is not { } linked || linked.Identity != st.Identity)
            {
                target.Remove(temp);
                rejected = "it was replaced while it was being checked";
                return false;
            }
            target.Rename(temp, file);
            return true;
        }
        finally
        {
            Forget(name);
        }
    }

    /// <summary>SHA-256 of an open file, read through one pooled 1 MiB buffer; each piece also written to <paramref name="copy"/> when given.</summary>
    private static string Sha256Of(SafeFileHandle file, SafeFileHandle? copy)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(1024 * 1024);
        try
        {
            long offset = 0;
            int n;
            while ((n = RandomAccess.Read(file, buffer.AsSpan(0, 1024 * 1024), offset)) > 0)
            {
                hash.AppendData(buffer, 0, n);
                if (copy is not null)
                {
                    RandomAccess.Write(copy, buffer.AsSpan(0, n), offset);
                }
                offset += n;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The size and SHA-256 the prefetcher recorded for <paramref name="name"/>; null when there is no valid record.</summary>
    public (long Size, string Sha256)? PrefetchedRecord(string name)
    {
        var head = $"{FetchMagic}\n{Repository}\n{Database}\n{name}\n";
        if (ReadRecord(name + ".ok") is not { } record || !record.StartsWith(head, StringComparison.Ordinal))
        {
            return null;
        }
        var fields = record[head.Length..].TrimEnd('\n').Split(' ');
        return fields.Length == 2 && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var size) && fields[1].Length == 64 ? (size, fields[1]) : null;
    }

    /// <summary>Deletes a segment's spool entries (data, record, leftovers of an interrupted fetch).</summary>
    public void Forget(string name)
    {
        _dir.Remove(name);
        _dir.Remove(name + ".ok");
        _dir.Remove(name + ".part");
    }

    // ---- the prefetcher's position: the segment recovery asked for last, and the segment size.

    private const string WantMagic = "cairn-wal-want 1";

    public void WriteWant(string name, long segmentSize) => WriteRecord("want", $"{WantMagic}\n{Repository}\n{Database}\n{name} {segmentSize}\n");

    public (string Name, long SegmentSize)? ReadWant()
    {
        var head = $"{WantMagic}\n{Repository}\n{Database}\n";
        if (ReadRecord("want") is not { } record || !record.StartsWith(head, StringComparison.Ordinal))
        {
            return null;
        }
        var fields = record[head.Length..].TrimEnd('\n').Split(' ');
        return fields.Length == 2 && WalNames.IsSegment(fields[0]) && long.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var size) && size > 0
            ? (fields[0], size) : null;
    }

    // ---- one background process per area: a flock on "worker.lock", released by the kernel when it dies.

    /// <summary>Takes the area's worker lock; null when another live process holds it.</summary>
    public IDisposable? TryLockWorker() => _dir.TryLock("worker.lock");

    /// <summary>True when a live process holds the area's worker lock.</summary>
    public bool WorkerRunning()
    {
        using var probe = _dir.TryLock("worker.lock");
        return probe is null;
    }

    // ---- records: small text files written whole under a temporary name, then renamed.

    private void WriteRecord(string name, string text)
    {
        var temp = $".{name}.{Environment.ProcessId}.tmp";
        _dir.Remove(temp);
        using (var handle = _dir.CreateFile(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite))
        {
            RandomAccess.Write(handle, Encoding.UTF8.GetBytes(text), 0);
        }
        _dir.Rename(temp, name);
    }

    private string? ReadRecord(string name)
    {
        SafeFileHandle? handle;
        try
        {
            handle = _dir.OpenFile(name);
        }
        catch (IOException)
        {
            return null;
        }
        if (handle is null)
        {
            return null;
        }
        using (handle)
        {
            var st = SafeDirectory.Stat(handle);
            if (st is null || st.Uid != Accounts.EffectiveUid || st.Size > 4096)
            {
                return null;
            }
            var buffer = new byte[st.Size];
            var n = RandomAccess.Read(handle, buffer, 0);
            return Encoding.UTF8.GetString(buffer, 0, n);
        }
    }

    /// <summary>A spool entry name is a WAL file name, optionally with one of the spool's suffixes; anything else is not ours.</summary>
    public static string? WalNameOf(string entry)
    {
        foreach (var suffix in new[] { ".part.cairn-partial", ".ok", ".part", "" })
        {
            if (entry.EndsWith(suffix, StringComparison.Ordinal) && WalNames.IsValid(entry[..^suffix.Length]))
            {
                return entry[..^suffix.Length];
            }
        }
        return null;
    }

    public void Dispose() => _dir.Dispose();
}
