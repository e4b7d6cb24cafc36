using Cairn.Operations.StorageFiles;
using Cairn.PostgreSql.Physical;

namespace Cairn.Tests.Security;

/// <summary>
/// Names read from a repository, a tar, a bucket listing or a server are validated by anchored patterns. In .NET a
/// pattern's <c>$</c> also matches before a final "\n", so "000000010000000000000001\n" passed as a WAL segment
/// name; the patterns end in <c>\z</c> now. A name with a trailing newline reaching a path, a log line or a SQL
/// literal is exactly the kind of trick validation is for.
/// </summary>
public sealed class TrailingNewlineNameTests
{
    [Theory]
    [InlineData("000000010000000000000001")]
    [InlineData("00000002.history")]
    [InlineData("000000010000000000000001.partial")]
    [InlineData("000000010000000000000001.00000028.backup")]
    public void A_wal_name_is_valid_alone_and_refused_with_a_trailing_newline(string name)
    {
        Assert.True(WalNames.IsValid(name));
        Assert.False(WalNames.IsValid(name + "\n"));
        Assert.False(WalNames.IsSegment(name + "\n"));
    }

    [Fact]
    public void A_bucket_name_with_a_trailing_newline_is_refused()
    {
        Assert.Null(StorageNames.BucketProblem("avatars"));
        Assert.NotNull(StorageNames.BucketProblem("avatars\n"));
    }

    [Fact]
    public void An_incident_id_with_a_trailing_newline_is_refused()
    {
        Assert.True(Cairn.Repository.Repository.IsIncidentId("inc-20261205-081500-a1b2c3"));
        Assert.False(Cairn.Repository.Repository.IsIncidentId("inc-20261205-081500-a1b2c3\n"));
    }
}
