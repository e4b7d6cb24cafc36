using Cairn.Cli;
using Cairn.Repository;
using Cairn.Repository.Locks;
using Cairn.Repository.Storage;
using Cairn.Storage.S3;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Storage;

/// <summary>
/// A repository an intruder on the database host cannot erase: the host's client is append-only and its credentials
/// may not delete or overwrite (s3rver cannot enforce IAM, so the proxy stands in for the policy of docs/security.md:
/// DELETE and any object PUT without If-None-Match: * are refused with 403, as AWS refuses them).
/// </summary>
public sealed class S3AppendOnlyTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    [Fact]
    public async Task Append_only_client_backs_up_and_archives_is_refused_at_delete_and_the_repository_stays_intact()
    {
        await using var policy = new FaultProxy(s3.Endpoint) { AppendOnlyPolicy = true };
        using var setup = new S3CycleTests.S3Setup(s3, "appendonly");
        // The privileged side (prune host) talks to the server directly; the database host through the policy.
        var admin = setup.Cli;
        var (code, output, err) = await admin.RunAsync("init", "--kdf-memory-mib", "8", "--kdf-iterations", "1");
        Assert.True(code == 0, output + err);

        var hostConfig = setup.Dir.File("host.yaml");
        await File.WriteAllTextAsync(hostConfig, $"append_only: true\ns3:\n  endpoint: \"{policy.Endpoint}\"\n  credentials_file: {setup.Credentials}\nevidence:\n  path: {setup.Dir.File("evidence")}\n");
        var host = new CliRunner(new Dictionary<string, string>(setup.Env) { ["CAIRN_CONFIG"] = hostConfig });
        var data = setup.Dir.File("data.bin");
        await File.WriteAllBytesAsync(data, TestData.Random(3_000_000, 7));
        var segment = setup.Dir.File("000000010000000000000003");
        await File.WriteAllBytesAsync(segment, TestData.Random(16 * 1024 * 1024, 8));

        // Backups (locks, packs, indexes, snapshots) and WAL pushes succeed without one delete or overwrite.
        (code, output, err) = await host.RunAsync("repo", "put", "db.dump", data);
        Assert.True(code == 0, output + err);
        (code, output, err) = await host.RunAsync("repo", "put", "db.dump", data);
        Assert.True(code == 0, output + err);
        (code, output, err) = await host.RunAsync("wal-push", segment, "--database", "app");
        Assert.True(code == 0, output + err);
        (code, output, err) = await host.RunAsync("wal-push", segment, "--database", "app");
        Assert.True(code == 0, output + err);
        Assert.Equal(0, policy.Denied);

        // What needs a delete is refused by the client itself, naming where to run it.
        (code, output, err) = await host.RunAsync("repo", "ls");
        Assert.True(code == 0, output + err);
        foreach (var args in (string[][])[["prune"], ["unlock"], ["repo", "rm", "0"]])
        {
            (code, output, err) = await host.RunAsync(args);
            Assert.True(code == ExitCodes.Usage, string.Join(' ', args) + ": " + output + err);
            Assert.Contains("append-only", err, StringComparison.Ordinal);
        }

        // The intruder with the host's credentials goes around Cairn: the server refuses the delete and the overwrite.
        using var intruder = s3.NewStorage(S3Location.Parse(setup.Location), endpoint: policy.Endpoint);
        StorageKey victim = default;
        await foreach (var o in intruder.ListAsync(ObjectKind.Data, default))
        {
            victim = o.Key;
        }
        var denied = await Assert.ThrowsAsync<S3StorageException>(() => intruder.DeleteAsync(victim, default));
        Assert.Contains("AccessDenied", denied.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<S3StorageException>(() => intruder.PutAsync(victim, new byte[] { 1, 2, 3 }, default));
        await Assert.ThrowsAsync<S3StorageException>(() => intruder.PutAsync(new StorageKey(ObjectKind.Named, "app@000000010000000000000003"), new byte[] { 1 }, default));
        Assert.True(policy.Denied >= 3);

        // The append-only client's locks are released by tombstones: no live lock, their objects still there.
        Assert.Empty(await RepositoryLock.ListAsync(intruder, TimeProvider.System, default));
        var lockObjects = 0;
        await foreach (var _ in intruder.ListAsync(ObjectKind.Lock, default))
        {
            lockObjects++;
        }
        Assert.True(lockObjects >= 4, $"expected the released locks' objects, found {lockObjects}");

        // The repository is intact: the privileged side verifies every byte and sees both snapshots; its locks
        // collect the released locks' objects in passing, and its unlock finds nothing left.
        (code, output, err) = await admin.RunAsync("verify", "--read-data", "--json");
        Assert.True(code == 0, output + err);
        (code, output, err) = await admin.RunAsync("repo", "ls");
        Assert.True(code == 0, output + err);
        Assert.Equal(2, output.Split('\n').Count(l => l.Contains("db.dump", StringComparison.Ordinal)));
        (code, output, err) = await admin.RunAsync("unlock");
        Assert.True(code == 0, output + err);
        await foreach (var o in intruder.ListAsync(ObjectKind.Lock, default))
        {
            Assert.Fail($"lock object {o.Key} left after the privileged side's commands");
        }

        // A client that is not append-only, with the same credentials, is refused at its first plain PUT (its lock): the policy bites.
        var naive = new CliRunner(new Dictionary<string, string>(setup.Env) { ["CAIRN_CONFIG"] = hostConfig, ["CAIRN_APPEND_ONLY"] = "0" });
        await File.WriteAllTextAsync(hostConfig, (await File.ReadAllTextAsync(hostConfig)).Replace("append_only: true\n", "", StringComparison.Ordinal));
        (code, _, err) = await naive.RunAsync("repo", "put", "other", data);
        Assert.NotEqual(0, code);
        Assert.Contains("AccessDenied", err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Append_only_lock_is_refreshed_and_released_by_new_objects_and_collected_by_a_deleting_client()
    {
        await using var policy = new FaultProxy(s3.Endpoint) { AppendOnlyPolicy = true };
        var location = s3.NewLocation("aolock");
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        using var raw = s3.NewStorage(location, new S3Options { AppendOnly = true }, endpoint: policy.Endpoint);
        var host = new AppendOnlyStorage(raw);
        var held = await RepositoryLock.AcquireAsync(host, clock, exclusive: false, "backup", default);

        // Refresh after 5 minutes: a new object ID.1, whose time is the lock's.
        clock.Advance(RepositoryLock.RefreshInterval + TimeSpan.FromSeconds(1));
        for (var i = 0; i < 100 && (await Names(raw)).Count < 2; i++)
        {
            await Task.Delay(50);
        }
        Assert.Equal(new[] { held.Id, held.Id + ".1" }, await Names(raw));
        var info = Assert.Single(await RepositoryLock.ListAsync(host, clock, default));
        Assert.Equal(clock.GetUtcNow(), info.Data.Refreshed);
        Assert.False(info.IsStale);

        // A second shared lock beside it.
        await using (var other = await RepositoryLock.AcquireAsync(host, clock, exclusive: false, "wal", default))
        {
            Assert.Equal(2, (await RepositoryLock.ListAsync(host, clock, default)).Count);
        }

        // An exclusive lock (prune) conflicts while the shared one is held.
        using var direct = s3.NewStorage(location);
        await Assert.ThrowsAsync<RepositoryLockedException>(() => RepositoryLock.AcquireAsync(direct, clock, exclusive: true, "prune", default));

        await held.DisposeAsync();
        Assert.Contains(held.Id + ".released", await Names(raw));
        Assert.Equal(0, policy.Denied);
        Assert.Empty(await RepositoryLock.ListAsync(host, clock, default));

        // A client that may delete takes the lock and removes the released locks' objects in passing.
        await using (await RepositoryLock.AcquireAsync(direct, clock, exclusive: true, "prune", default))
        {
            Assert.DoesNotContain(await Names(direct), n => n.StartsWith(held.Id, StringComparison.Ordinal));
        }
        Assert.Empty(await Names(direct));
    }

    private static async Task<List<string>> Names(IStorage storage)
    {
        var names = new List<string>();
        await foreach (var o in storage.ListAsync(ObjectKind.Lock, default))
        {
            names.Add(o.Key.Name);
        }
        names.Sort(StringComparer.Ordinal);
        return names;
    }
}
