using System.Diagnostics;
using System.Text.RegularExpressions;

namespace Cairn.Tests.Support;

/// <summary>
/// Debian's headless Chromium (installed by scripts/test through need_packages): renders a local page to a PNG, a PDF
/// or its DOM after scripts ran, with console messages on stderr (--enable-logging=stderr --v=0).
/// </summary>
public static partial class Chromium
{
    public const string Binary = "/usr/bin/chromium";

    /// <summary>What one headless run printed: stdout (the DOM with --dump-dom) and the console messages found on stderr.</summary>
    public sealed record Run(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>Every console message of the page (errors, uncaught exceptions, console.log): a clean report has none.</summary>
        public IReadOnlyList<string> ConsoleMessages => [.. Stderr.Split('\n').Where(l => ConsoleLine().IsMatch(l))];
    }

    public static async Task<Run> RenderAsync(string page, params string[] mode)
    {
        Assert.True(File.Exists(Binary), $"{Binary} is missing: scripts/test installs Debian's chromium (apt-get install chromium)");
        using var profile = new TempDir("cairn-chromium");
        var psi = new ProcessStartInfo(Binary) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--disable-extensions", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", $"--user-data-dir={profile.Path}", "--window-size=1200,1800",
        }.Concat(mode).Append(new Uri(page).AbsoluteUri))
        {
            psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await p.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }
        return new Run(p.ExitCode, await stdout, await stderr);
    }

    /// <summary>Pages in a PDF Chromium printed (its page objects).</summary>
    public static int PdfPages(byte[] pdf) => PageObject().Matches(System.Text.Encoding.Latin1.GetString(pdf)).Count;

    [GeneratedRegex(@":CONSOLE\b|Uncaught ")]
    private static partial Regex ConsoleLine();

    [GeneratedRegex(@"/Type\s*/Page(?![a-zA-Z])")]
    private static partial Regex PageObject();
}
