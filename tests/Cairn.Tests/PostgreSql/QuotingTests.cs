using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// archive_command and restore_command are run by /bin/sh as the server's user, and recovery settings are parsed by
/// PostgreSQL: a path or value holding shell or configuration syntax must come out exactly as it went in.
/// </summary>
public class QuotingTests
{
    public static TheoryData<string> Hostile => new()
    {
        "/srv/repo with spaces",
        "/srv/`touch /tmp/cairn-pwned-backtick`",
        "/srv/$(touch /tmp/cairn-pwned-dollar)",
        "/srv/$HOME/${PATH}",
        "/srv/\"double\" and 'single' quotes",
        "/srv/back\\slash\\n and tab\t",
        "/srv/100%p and %f and %%",
        "/srv/semi;colon|pipe&amp>redirect<in*glob?",
        "-starts-with-a-dash",
        "",
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task Shell_quoting_round_trips_through_bin_sh(string value)
    {
        var r = await PgProcess.RunAsync("/bin/sh", ["-c", "printf '%s' " + ShellQuote.Quote(value)], null, default);

        Assert.Equal(0, r.ExitCode);
        Assert.Equal(value, r.StandardOutput);
        Assert.False(File.Exists("/tmp/cairn-pwned-backtick") || File.Exists("/tmp/cairn-pwned-dollar"), "the shell ran a command substitution");
    }

    [Fact]
    public async Task Archive_command_built_with_the_quoting_runs_exactly_once_in_a_real_server_with_hostile_text()
    {
        using var dir = new TempDir();
        var outFolder = dir.File("out");
        Directory.CreateDirectory(outFolder);
        PgProcess.GiveToServerUser(outFolder);
        var hostile = "it's `id` $(id) \"%p\" %% \\n";
        var command = $"printf '%s|%s\\n' {ShellQuote.ForPostgresCommand(hostile)} %f >> {ShellQuote.ForPostgresCommand(Path.Combine(outFolder, "log"))}";
        await using var server = await ScratchServer.StartAsync(settings: new Dictionary<string, string> { ["archive_mode"] = "on", ["wal_level"] = "replica", ["archive_command"] = ConfValue.Quote(command) });
        var wal = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_lsn())");
        await server.ExecuteAsync("SELECT pg_switch_wal()");
        var log = Path.Combine(outFolder, "log");
        // The shell creates the file (>>) before printf writes the line: wait for the whole line, not for the file.
        for (var i = 0; i < 100 && !(File.Exists(log) && (await File.ReadAllTextAsync(log)).EndsWith('\n')); i++)
        {
            await Task.Delay(100);
        }

        Assert.Equal($"{hostile}|{wal}\n", await File.ReadAllTextAsync(log));
    }

    [Fact]
    public async Task Recovery_settings_with_quotes_and_backslashes_are_read_back_by_postgres_exactly()
    {
        using var dir = new TempDir("cairn-test-o'brien");
        var data = dir.File("data");
        Directory.CreateDirectory(data);
        await File.WriteAllTextAsync(Path.Combine(data, "PG_VERSION"), "15\n");
        await File.WriteAllTextAsync(Path.Combine(data, "postgresql.conf"), "");
        var socket = dir.File("it's a socket \\ folder");
        var restore = "CAIRN_PASSPHRASE_FILE='/etc/it'\\''s' cairn wal-fetch %f %p --database 'o''brien \\ x'";
        var target = new RecoveryTarget(Name: "before it's \\ gone", Action: "promote");

        await PhysicalRestorer.ConfigureRecoveryAsync(data, restore, target, 5499, socket, keepArchiving: false, default);

        var bin = PgBinaries.Find();
        async Task<string> Show(string name)
        {
            var r = await PgProcess.RunAsServerUserAsync(bin["postgres"], ["-D", data, "-C", name], null, default);
            Assert.True(r.ExitCode == 0, r.StandardError);
            return r.StandardOutput.TrimEnd('\n');
        }
        Assert.Equal(restore, await Show("restore_command"));
        Assert.Equal(socket, await Show("unix_socket_directories"));
        Assert.Equal("before it's \\ gone", await Show("recovery_target_name"));
        Assert.Equal("5499", await Show("port"));
    }

    [Fact]
    public void Recovery_target_values_are_quoted_so_a_quote_cannot_add_a_setting()
    {
        var settings = new RecoveryTarget(Lsn: "0/1' recovery_target_action = 'shutdown", Action: "promote").Settings().ToList();

        Assert.DoesNotContain(settings, s => s.StartsWith("recovery_target_lsn = '0/1' ", StringComparison.Ordinal));
        Assert.Contains("recovery_target_lsn = '0/1'' recovery_target_action = ''shutdown'", settings);
    }
}
