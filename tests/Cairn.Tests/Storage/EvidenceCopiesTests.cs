using Cairn.Repository.Copying;
using Cairn.Repository.Storage;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Storage;

public class EvidenceCopiesTests
{
    [Theory]
    [InlineData('0', 'f')]
    [InlineData('f', '0')]
    public async Task Of_two_versions_of_a_log_file_stored_in_the_same_second_the_longer_is_the_latest(char olderHash, char newerHash)
    {
        // Object stores give LastModified to the second; two copy runs within one second store two versions of
        // the month's log file with equal times. The log only grows, so the longer version is the later one.
        var storage = new InMemoryStorage(new FakeTimeProvider(DateTimeOffset.Parse("2026-12-05T05:00:00Z", System.Globalization.CultureInfo.InvariantCulture)));
        var older = "log~2026-12.jsonl." + new string(olderHash, 64);
        var newer = "log~2026-12.jsonl." + new string(newerHash, 64);
        await storage.PutAsync(new StorageKey(ObjectKind.Evidence, older), new byte[100], default);
        await storage.PutAsync(new StorageKey(ObjectKind.Evidence, newer), new byte[180], default);

        var latest = await EvidenceCopies.LatestAsync(storage, default);

        Assert.Equal(newer, latest["log/2026-12.jsonl"]);
    }
}
