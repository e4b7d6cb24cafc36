using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Programs;

/// <summary>
/// Finds PostgreSQL's programs (pg_dump, pg_restore, initdb, pg_ctl, postgres, …) by major version:
/// a configured folder, then PATH, then <c>pg_config --bindir</c>, then /usr/lib/postgresql/*/bin.
/// </summary>
public sealed partial class PgBinaries
{
    private PgBinaries(string folder, int major)
    {
        Folder = folder;
        Major = major;
    }

    public string Folder { get; }

    public int Major { get; }

    public string this[string program] => Path.Combine(Folder, program);

    /// <summary>The newest installation, or the one with <paramref name="major"/> if given, or the one in <paramref name="configured"/>.</summary>
    public static PgBinaries Find(int? major = null, string? configured = null)
    {
        var candidates = Candidates(configured).Distinct().ToList();
        var found = new List<PgBinaries>();
        foreach (var dir in candidates)
        {
            if (!File.Exists(Path.Combine(dir, "pg_dump")))
            {
                continue;
            }
            var v = VersionOf(Path.Combine(dir, "pg_dump"));
            if (v is not null)
            {
                found.Add(new PgBinaries(dir, v.Value));
            }
        }
        if (configured is not null)
        {
            return found.FirstOrDefault(f => f.Folder == Path.GetFullPath(configured))
                ?? throw new PgToolException($"no PostgreSQL programs (pg_dump) in the configured folder {configured}");
        }
        var pick = major is { } m
            ? found.Where(f => f.Major == m).FirstOrDefault() ?? found.Where(f => f.Major > m).OrderBy(f => f.Major).FirstOrDefault()
            : found.OrderByDescending(f => f.Major).FirstOrDefault();
        return pick ?? throw new PgToolException(
            major is null
                ? "PostgreSQL's programs (pg_dump, pg_restore, initdb) were not found on PATH, through pg_config, or in /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql) or set postgres_bin in cairn.yaml"
                : $"no PostgreSQL {major} (or newer) programs found; pg_dump must be at least the server's version. Install postgresql-client-{major} or set postgres_bin");
    }

    /// <summary>True when a full server installation (initdb, pg_ctl, postgres) is here.</summary>
    public bool HasServer => File.Exists(this["initdb"]) && File.Exists(this["pg_ctl"]) && File.Exists(this["postgres"]);

    private static IEnumerable<string> Candidates(string? configured)
    {
        if (configured is not null)
        {
            yield return Path.GetFullPath(configured);
            yield break;
        }
        foreach (var dir in Directory.Exists("/usr/lib/postgresql") ? Directory.GetDirectories("/usr/lib/postgresql").Select(d => Path.Combine(d, "bin")) : [])
        {
            yield return dir;
        }
        foreach (var p in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var full = Path.Combine(p, "pg_dump");
            if (File.Exists(full))
            {
                // Debian's /usr/bin/pg_dump is a wrapper; resolve symlinks to the real folder when possible.
                var resolved = new FileInfo(full).ResolveLinkTarget(true)?.FullName ?? full;
                yield return Path.GetDirectoryName(resolved)!;
            }
        }
        var fromConfig = PgConfigBinDir();
        if (fromConfig is not null)
        {
            yield return fromConfig;
        }
    }

    private static string? PgConfigBinDir()
    {
        try
        {
            var psi = new ProcessStartInfo("pg_config", "--bindir") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            ChildEnvironment.Apply(psi, server: false);
            using var p = Process.Start(psi);
            if (p is null)
            {
                return null;
            }
            var output = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 && output.Length > 0 ? output : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    internal static int? VersionOf(string program)
    {
        try
        {
            var psi = new ProcessStartInfo(program, "--version") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            ChildEnvironment.Apply(psi, server: false);
            using var p = Process.Start(psi);
            if (p is null)
            {
                return null;
            }
            var output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            var m = VersionPattern().Match(output);
            return m.Success ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }

    [GeneratedRegex(@"\(PostgreSQL\) (\d+)")]
    private static partial Regex VersionPattern();
}
