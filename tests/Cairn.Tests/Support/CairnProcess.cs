using System.Diagnostics;

namespace Cairn.Tests.Support;

/// <summary>Runs the real CLI (the built cairn.dll) as a child process, as a user would.</summary>
public static class CairnProcess
{
    public static string Dll => Path.Combine(AppContext.BaseDirectory, "cairn.dll");

    public static ProcessStartInfo StartInfo(IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        psi.Environment["CAIRN_PASSPHRASE"] = TestData.Passphrase;
        foreach (var (k, v) in env ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
        return psi;
    }

    public static async Task<(int Code, string Out, string Err)> RunAsync(IEnumerable<string> args, IDictionary<string, string>? env = null, string? stdinFile = null, TimeSpan? timeout = null)
    {
        using var p = Process.Start(StartInfo(args, env))!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdinFile is not null)
        {
            await using var f = File.OpenRead(stdinFile);
            await f.CopyToAsync(p.StandardInput.BaseStream);
        }
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await stdout, await stderr);
    }
}
