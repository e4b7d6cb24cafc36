using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.Repository;
using Cairn.Repository.Storage;
using Cairn.Tests.Support;

namespace Cairn.Tests.Repository;

/// <summary>The repository location is parsed once: a folder, or s3://bucket/prefix; nothing else becomes a folder by accident.</summary>
public class RepositoryLocationTests
{
    [Fact]
    public void A_path_is_a_local_folder_made_absolute()
    {
        Assert.Equal(new LocalLocation("/srv/cairn/repo"), RepositoryLocation.Parse("/srv/cairn/repo"));
        Assert.Equal(new LocalLocation("/etc/cairn/repo"), RepositoryLocation.Parse("repo", "/etc/cairn"));
        Assert.Equal(new LocalLocation("/srv/with space"), RepositoryLocation.Parse("file:///srv/with%20space"));
    }

    [Fact]
    public void An_s3_url_is_a_bucket_and_a_prefix()
    {
        Assert.Equal(new S3Location("backups", "cairn/prod"), RepositoryLocation.Parse("s3://backups/cairn/prod/"));
        Assert.Equal(new S3Location("backups", ""), RepositoryLocation.Parse("s3://backups"));
        Assert.Equal("s3://backups/cairn/prod", RepositoryLocation.Parse("s3://backups/cairn/prod").Display);
    }

    [Theory]
    [InlineData("gs://bucket/x", "'gs://' is not supported")]
    [InlineData("ftp://host/x", "'ftp://' is not supported")]
    [InlineData("s3://Not_A_Bucket/x", "not a valid bucket name")]
    [InlineData("s3://key:secret@bucket/x", "not a valid bucket name")]
    [InlineData("file://relative/x", "absolute path")]
    [InlineData(" ", "--repo")]
    public void Anything_else_is_a_clear_error(string text, string says)
    {
        var e = Assert.Throws<RepositoryException>(() => RepositoryLocation.Parse(text));
        Assert.Equal(ErrorKind.InvalidInput, e.Kind);
        Assert.Contains(says, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("s3://bucket/x", "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set")]
    [InlineData("gs://bucket/x", "'gs://' is not supported")]
    public async Task The_cli_refuses_a_location_it_cannot_use_and_creates_no_folder(string location, string says)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        // Half a key pair: the S3 backend refuses it before any request.
        var env = new Dictionary<string, string> { ["CAIRN_PASSPHRASE"] = TestData.Passphrase, ["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE", ["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1" };
        var ctx = new CliContext(new CliConsole(o, e, false, false), TimeProvider.System, k => env.GetValueOrDefault(k));
        var scheme = location[..location.IndexOf(':', StringComparison.Ordinal)] + ":";
        Assert.Equal(ExitCodes.Usage, await CairnCli.RunAsync(["init", "--repo", location, "--kdf-memory-mib", "8", "--kdf-iterations", "1"], ctx));
        Assert.Contains(says, e.ToString(), StringComparison.Ordinal);
        // Before, the URL became a folder named after it in the current directory.
        Assert.False(Directory.Exists(scheme), $"a folder {scheme} was created");
    }
}
