using Cairn.PostgreSql.Programs;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>
/// A logical backup hands pg_dump's files to the repository once no process holds them open, read from /proc.
/// When /proc cannot show the writer's open files, nothing may be called complete (a half-written table file
/// stored as the backup would be silent data loss).
/// </summary>
public class OpenFilesTests
{
    [Fact]
    public async Task A_file_held_open_by_a_live_process_is_reported_open()
    {
        using var dir = new TempDir();
        var file = dir.File("table.dat");
        await File.WriteAllTextAsync(file, "");
        var psi = new System.Diagnostics.ProcessStartInfo("/bin/sh") { RedirectStandardInput = true };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add($"exec 3>>'{file}'; read line");
        using var writer = System.Diagnostics.Process.Start(psi)!;
        try
        {
            HashSet<string>? open = null;
            for (var i = 0; i < 50 && open?.Contains(file) != true; i++)
            {
                await Task.Delay(50);
                open = OpenFiles.Under(dir.Path, writer.Id);
            }
            Assert.NotNull(open);
            Assert.Contains(file, open);
        }
        finally
        {
            writer.StandardInput.WriteLine("done");
            await writer.WaitForExitAsync();
        }
    }

    [Fact]
    public void Without_a_readable_proc_nothing_is_known_closed()
    {
        using var dir = new TempDir();
        var fakeProc = dir.File("proc");
        Directory.CreateDirectory(fakeProc); // mounted nowhere: no process is visible

        Assert.Null(OpenFiles.Under(dir.Path, Environment.ProcessId, fakeProc));
        Assert.Null(OpenFiles.Under(dir.Path, Environment.ProcessId, dir.File("no-such-proc")));
    }

    [Fact]
    public void A_writer_whose_descriptors_cannot_be_read_makes_the_answer_unknown()
    {
        using var dir = new TempDir();
        var fakeProc = dir.File("proc");
        Directory.CreateDirectory(Path.Combine(fakeProc, "4242")); // the writer is listed, but its fd folder is not readable (hidepid, another user)

        Assert.Null(OpenFiles.Under(dir.Path, 4242, fakeProc));
    }
}
