using System.Collections;
using System.Diagnostics;
using Cairn.PostgreSql.Connections;

namespace Cairn.PostgreSql.Programs;

/// <summary>
/// The environment every child process starts from: an allow-list, never a copy of Cairn's own.
/// A PostgreSQL server keeps its environment for life and any superuser of it can read it
/// (<c>/proc/PID/environ</c>, <c>COPY ... TO PROGRAM 'env'</c>), so secrets must never reach it.
/// Server programs (initdb, pg_ctl, postgres) get only what a process needs to run (path, home, locale,
/// time zone); client programs and commands (pg_dump, pg_restore, command checks, alert commands) also
/// get the libpq connection variables and TLS certificate locations, but never PGPASSWORD: a password
/// reaches a client program only through a private PGPASSFILE (<see cref="ProgramEnvironment"/>).
/// </summary>
public static class ChildEnvironment
{
    /// <summary>Variables Cairn reads once at start and then removes from its own environment.</summary>
    public static IReadOnlyList<string> SecretVariables { get; } =
        ["CAIRN_PASSPHRASE", "CAIRN_NEW_PASSPHRASE", "CAIRN_RESTORE_PASSPHRASE", "CAIRN_DB_PASSWORD", "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

    private static readonly HashSet<string> Basic = new(StringComparer.Ordinal) { "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME" };

    private static readonly HashSet<string> Client = new(StringComparer.Ordinal)
    {
        "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGAPPNAME",
        "PGSSLMODE", "PGREQUIRESSL", "PGSSLNEGOTIATION", "PGSSLCOMPRESSION", "PGSSLCERT", "PGSSLKEY", "PGSSLCERTMODE", "PGSSLROOTCERT", "PGSSLCRL", "PGSSLCRLDIR",
        "PGSSLSNI", "PGREQUIREPEER", "PGSSLMINPROTOCOLVERSION", "PGSSLMAXPROTOCOLVERSION", "PGGSSENCMODE", "PGKRBSRVNAME", "PGGSSLIB", "PGGSSDELEGATION",
        "PGCHANNELBINDING", "PGREQUIREAUTH", "PGCONNECT_TIMEOUT", "PGCLIENTENCODING", "PGTARGETSESSIONATTRS", "PGLOADBALANCEHOSTS", "PGDATESTYLE", "PGTZ",
        "PGSYSCONFDIR", "PGLOCALEDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
    };

    /// <summary>The allow-listed part of <paramref name="environment"/> for a server program, or for a client program or command.</summary>
    public static Dictionary<string, string> From(IDictionary environment, bool server)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (DictionaryEntry e in environment)
        {
            if (e.Key is string name && e.Value is string value && Allowed(name, server))
            {
                result[name] = value;
            }
        }
        return result;
    }

    public static bool Allowed(string name, bool server) =>
        Basic.Contains(name) || name.StartsWith("LC_", StringComparison.Ordinal) || (!server && Client.Contains(name));

    /// <summary>Replaces <paramref name="psi"/>'s inherited environment with the allow-listed one, then adds <paramref name="extra"/>.</summary>
    public static void Apply(ProcessStartInfo psi, bool server, IReadOnlyDictionary<string, string>? extra = null)
    {
        var allowed = From(Environment.GetEnvironmentVariables(), server);
        psi.Environment.Clear();
        foreach (var (k, v) in allowed)
        {
            psi.Environment[k] = v;
        }
        foreach (var (k, v) in extra ?? new Dictionary<string, string>())
        {
            psi.Environment[k] = v;
        }
    }

    /// <summary>
    /// Reads the secret variables once and removes them from this process's environment, so no child can
    /// inherit them even through a path that forgets <see cref="Apply"/>. PGPASSWORD becomes
    /// <see cref="PgConnection.EnvironmentPassword"/>. Returns what was read, for the CLI's settings.
    /// </summary>
    public static IReadOnlyDictionary<string, string> TakeSecrets()
    {
        var taken = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in SecretVariables)
        {
            if (Environment.GetEnvironmentVariable(name) is { } value)
            {
                taken[name] = value;
                Environment.SetEnvironmentVariable(name, null);
            }
        }
        if (taken.TryGetValue("PGPASSWORD", out var pg))
        {
            PgConnection.EnvironmentPassword = pg;
        }
        return taken;
    }
}
