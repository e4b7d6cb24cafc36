namespace Cairn.Tests.Support;

/// <summary>
/// The documented way (docs/security.md) to let archive_command and restore_command, which run as the postgres
/// user, use a repository root owns: 'cairn archiver allow' and a passphrase file the postgres group can read.
/// </summary>
public static class ArchiverSetup
{
    public static async Task AllowAsync(CliRunner cli, string passFile)
    {
        var (code, output, err) = await cli.RunAsync("archiver", "allow", "--group", "postgres");
        Assert.True(code == 0, output + err);
        Cairn.Operations.Physical.ArchiverAccess.ShareForReading(passFile, "postgres");
    }
}
