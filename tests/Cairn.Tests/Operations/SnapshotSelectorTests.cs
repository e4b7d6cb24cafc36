using System.Globalization;
using Cairn.Operations.Snapshots;
using Cairn.PostgreSql.Physical;
using Cairn.Repository;
using Cairn.Repository.Manifests;
using Cairn.Tests.Support;

namespace Cairn.Tests.Operations;

/// <summary>One answer to "which snapshot did the user mean", for every command.</summary>
public class SnapshotSelectorTests
{
    private static Snapshot Snap(string id, string name, string kind, int hour, int startSegment = 1)
        => new(id, new Manifest
        {
            Name = name,
            Kind = kind,
            Time = OperationsHarness.T0.AddHours(hour),
            Meta = kind != BackupKinds.Physical ? [] : new Dictionary<string, string>
            {
                ["start_lsn"] = $"0/{startSegment:X}000028",
                ["stop_lsn"] = $"0/{hour + 1:X}000100",
                ["timeline"] = "1",
                ["start_wal"] = OperationsHarness.Segment(startSegment),
                ["stop_time"] = OperationsHarness.T0.AddHours(hour).AddMinutes(5).UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
            },
        });

    // Oldest first, as the repository lists them.
    private static readonly List<Snapshot> All =
    [
        Snap("aa11" + new string('0', 60), "app", BackupKinds.Logical, 1),
        Snap("aa22" + new string('0', 60), "app", BackupKinds.Physical, 2),
        Snap("bb33" + new string('0', 60), "app", BackupKinds.Logical, 3),
        Snap("cc44" + new string('0', 60), "other", BackupKinds.Logical, 4),
        Snap("dd55" + new string('0', 60), "app", BackupKinds.Physical, 5),
    ];

    [Fact]
    public void Latest_is_the_newest_of_the_database_and_kind()
    {
        Assert.Equal("bb33", SnapshotSelector.Select(All, "latest", new SnapshotFilter("app", BackupKinds.Logical)).Id[..4]);
        Assert.Equal("dd55", SnapshotSelector.Select(All, null, new SnapshotFilter("app", BackupKinds.Physical)).Id[..4]);
        Assert.Equal("cc44", SnapshotSelector.Select(All, "latest", new SnapshotFilter("other")).Id[..4]);
    }

    [Fact]
    public void Latest_with_none_of_that_kind_names_the_command_that_takes_one()
    {
        var e = Assert.Throws<RepositoryException>(() => SnapshotSelector.Select(All, "latest", new SnapshotFilter("other", BackupKinds.Physical)));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        Assert.Contains("cairn backup other --physical", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_unique_prefix_selects_its_snapshot_whatever_its_age()
    {
        Assert.Equal("aa11", SnapshotSelector.Select(All, "AA1", new SnapshotFilter("app", BackupKinds.Logical)).Id[..4]);
    }

    [Fact]
    public void An_ambiguous_prefix_is_an_error_naming_how_many_match()
    {
        var e = Assert.Throws<RepositoryException>(() => SnapshotSelector.Select(All, "aa", new SnapshotFilter("app")));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains("ambiguous (2 candidates)", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_prefix_is_unique_within_the_kind_asked_for()
    {
        // "aa" names a logical and a physical backup: among the physical ones it is one.
        Assert.Equal("aa22", SnapshotSelector.Select(All, "aa", new SnapshotFilter("app", BackupKinds.Physical)).Id[..4]);
    }

    [Fact]
    public void A_prefix_of_another_kind_or_database_is_refused_naming_what_it_is()
    {
        var e = Assert.Throws<RepositoryException>(() => SnapshotSelector.Select(All, "dd", new SnapshotFilter("app", BackupKinds.Logical)));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains("is a physical backup of app", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<RepositoryException>(() => SnapshotSelector.Select(All, "cc", new SnapshotFilter("app", BackupKinds.Logical)));
        Assert.Contains("of other", e.Message, StringComparison.Ordinal);
        Assert.Equal(ErrorKind.NotFound, Assert.Throws<RepositoryException>(() => SnapshotSelector.Select(All, "ff", new SnapshotFilter("app"))).Kind);
    }

    [Fact]
    public void Newest_before_a_target_is_the_newest_physical_backup_that_finished_before_it()
    {
        var physical = All.Where(new SnapshotFilter("app", BackupKinds.Physical).Matches).ToList();
        var between = OperationsHarness.T0.AddHours(4).ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + "+00";
        Assert.Equal("aa22", SnapshotSelector.NewestBefore(physical, new RecoveryTarget(Time: between), "app").Id[..4]);
        Assert.Equal("dd55", SnapshotSelector.NewestBefore(physical, new RecoveryTarget(Time: "2027-01-01 00:00:00+00"), "app").Id[..4]);
        Assert.Equal("aa22", SnapshotSelector.NewestBefore(physical, new RecoveryTarget(Lsn: "0/3000100"), "app").Id[..4]);
        Assert.Equal("dd55", SnapshotSelector.NewestBefore(physical, new RecoveryTarget(), "app").Id[..4]);
        var e = Assert.Throws<RepositoryException>(() => SnapshotSelector.NewestBefore(physical, new RecoveryTarget(Time: "2026-12-01 01:00:00+00"), "app"));
        Assert.Equal(ErrorKind.NotFound, e.Kind);
        Assert.Contains("the oldest ends at 2026-12-01T02:05:00", e.Message, StringComparison.Ordinal);
    }
}
