using System.Globalization;
using System.Text;
using Npgsql;

namespace Cairn.PostgreSql.Connections;

/// <summary>
/// A connection to a PostgreSQL server, parsed from a libpq URI (<c>postgresql://user@host:5432/db?sslmode=require</c>)
/// or key=value string (<c>host=db port=5432 dbname=app user=cairn</c>). The password (from the
/// string, a password file, or PGPASSFILE/.pgpass) is never printed and never put into a program's
/// arguments: child programs get a private PGPASSFILE.
/// </summary>
public sealed class PgConnection
{
    private readonly Dictionary<string, string> _params;

    private readonly bool _noPassword;

    private PgConnection(Dictionary<string, string> parameters, string? password, bool noPassword = false)
    {
        _params = parameters;
        Password = password;
        _noPassword = noPassword;
    }

    public string? Host => _params.GetValueOrDefault("host");

    public int Port => int.TryParse(_params.GetValueOrDefault("port"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : 5432;

    public string User => _params.GetValueOrDefault("user") ?? Environment.GetEnvironmentVariable("PGUSER") ?? Environment.UserName;

    public string Database => _params.GetValueOrDefault("dbname") ?? User;

    internal string? Password { get; }

    public IReadOnlyDictionary<string, string> Parameters => _params;

    /// <summary>Parses a connection string; <paramref name="passwordFile"/> (first line) overrides an embedded password.</summary>
    public static PgConnection Parse(string connection, string? passwordFile = null)
    {
        var p = connection.StartsWith("postgres://", StringComparison.Ordinal) || connection.StartsWith("postgresql://", StringComparison.Ordinal)
            ? ParseUri(connection)
            : ParseKeyValue(connection);
        var password = p.Remove("password", out var pw) ? pw : null;
        if (passwordFile is not null)
        {
            try
            {
                password = File.ReadLines(passwordFile).FirstOrDefault()?.TrimEnd('\r') ?? "";
            }
            catch (IOException e)
            {
                throw new PgToolException($"cannot read password_file {passwordFile}: {e.Message}", e);
            }
            catch (UnauthorizedAccessException)
            {
                throw new PgToolException($"cannot read password_file {passwordFile}: permission denied");
            }
        }
        return new PgConnection(p, password);
    }

    /// <summary>The same server, another database.</summary>
    public PgConnection WithDatabase(string database)
    {
        var p = new Dictionary<string, string>(_params) { ["dbname"] = database };
        return new PgConnection(p, Password, _noPassword);
    }

    /// <summary>
    /// The same connection, never with a password, not even PGPASSWORD's: for servers Cairn started itself
    /// (peer authentication), so the live database's password never lands in a scratch server's programs.
    /// </summary>
    public PgConnection WithoutPassword() => new(new Dictionary<string, string>(_params), null, noPassword: true);

    private string? EffectivePassword => _noPassword ? null : Password ?? EnvironmentPassword;

    /// <summary>
    /// A libpq URI of this connection without any password (a program given it finds the password through PGPASSFILE
    /// in <see cref="ProgramEnvironment"/>): every parameter but the password, escaped, the host in the query part.
    /// </summary>
    public string UrlWithoutPassword()
        => $"postgresql://{Uri.EscapeDataString(User)}@/{Uri.EscapeDataString(Database)}"
            + string.Concat(_params.Where(p => p.Key is not ("user" or "dbname" or "password")).OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select((p, i) => $"{(i == 0 ? '?' : '&')}{Uri.EscapeDataString(p.Key)}={Uri.EscapeDataString(p.Value)}"));

    /// <summary>For messages and evidence: user@host:port/db, never the password.</summary>
    public string Redacted => $"{User}@{(Host is { } h && h.StartsWith('/') ? "[socket " + h + "]" : Host ?? "localhost")}:{Port}/{Database}";

    public string NpgsqlConnectionString(string? applicationName = "cairn")
    {
        var b = new NpgsqlConnectionStringBuilder
        {
            Host = Host ?? Environment.GetEnvironmentVariable("PGHOST") ?? "/var/run/postgresql",
            Port = Port,
            Username = User,
            Database = Database,
            ApplicationName = applicationName,
            Pooling = false,
            Timeout = 15,
            CommandTimeout = 0,
        };
        if (EffectivePassword is { } password)
        {
            b.Password = password;
        }
        else if (Environment.GetEnvironmentVariable("PGPASSFILE") is { } pf)
        {
            b.Passfile = pf;
        }
        if (_params.TryGetValue("sslrootcert", out var rootCert))
        {
            b.RootCertificate = rootCert;
        }
        if (_params.TryGetValue("sslcert", out var clientCert))
        {
            b.SslCertificate = clientCert;
        }
        if (_params.TryGetValue("sslkey", out var clientKey))
        {
            b.SslKey = clientKey;
        }
        if (_params.TryGetValue("sslmode", out var ssl))
        {
            b.SslMode = ssl switch
            {
                "disable" => SslMode.Disable,
                "allow" => SslMode.Allow,
                "prefer" => SslMode.Prefer,
                "require" => SslMode.Require,
                "verify-ca" => SslMode.VerifyCA,
                "verify-full" => SslMode.VerifyFull,
                _ => throw new PgToolException($"unknown sslmode '{ssl}'"),
            };
        }
        return b.ConnectionString;
    }

    public async Task<NpgsqlConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var c = new NpgsqlConnection(NpgsqlConnectionString());
        try
        {
            await c.OpenAsync(cancellationToken).ConfigureAwait(false);
            return c;
        }
        catch (NpgsqlException e)
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw new PgToolException(Explain(e), e);
        }
    }

    /// <summary>Turns a connection failure into a message that names the fix (and no secret).</summary>
    public string Explain(Exception e)
    {
        var pe = e as PostgresException ?? e.InnerException as PostgresException;
        if (pe?.SqlState == "28P01")
        {
            return $"wrong password for {Redacted}: check password_file / PGPASSFILE";
        }
        if (pe?.SqlState == "28000")
        {
            return $"the server refused {Redacted} ({pe.MessageText}); check pg_hba.conf and the user name";
        }
        if (pe?.SqlState == "3D000")
        {
            return $"database {Database} does not exist on {Redacted}";
        }
        if (pe is not null)
        {
            return $"{Redacted}: {pe.MessageText}";
        }
        for (var inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Security.Authentication.AuthenticationException tls)
            {
                var ca = _params.GetValueOrDefault("sslrootcert");
                return $"cannot connect to {Redacted}: the TLS handshake failed ({tls.Message}): the server's certificate was not accepted " +
                    (ca is null ? "" : $"with the CA file {ca} ") + $"under sslmode={_params.GetValueOrDefault("sslmode", "prefer")}. " +
                    "Give sslrootcert the CA that signed the server's certificate (Supabase: the CA certificate from the project's Database settings) and connect by the name the certificate holds";
            }
        }
        if (Ipv6Only(e) is { } v6)
        {
            return $"cannot connect to {Redacted}: {v6} has only IPv6 addresses and this machine cannot reach it over IPv6 (an IPv4-only network?). " +
                "Use an IPv4 route: on Supabase, the session pooler URL (the pooler host on port 5432, user postgres.<project-ref>) instead of db.<project-ref>.supabase.co, " +
                "or buy the IPv4 add-on; elsewhere, give the machine IPv6 connectivity";
        }
        return $"cannot connect to {Redacted}: {e.Message.Replace(Password ?? "\u0000", "***", StringComparison.Ordinal)}; is the server running and reachable?";
    }

    /// <summary>
    /// The host, when the failure was the network refusing an IPv6 route and the host has no IPv4 address:
    /// Supabase's direct hosts are IPv6-only, and an IPv4-only network fails them with a bare socket error.
    /// </summary>
    private string? Ipv6Only(Exception e)
    {
        var socket = e as System.Net.Sockets.SocketException;
        for (var inner = e; socket is null && inner is not null; inner = inner.InnerException)
        {
            socket = inner as System.Net.Sockets.SocketException;
        }
        if (socket?.SocketErrorCode is not (System.Net.Sockets.SocketError.NetworkUnreachable or System.Net.Sockets.SocketError.HostUnreachable
            or System.Net.Sockets.SocketError.AddressFamilyNotSupported or System.Net.Sockets.SocketError.TimedOut))
        {
            return null;
        }
        if (Host is not { } host || host.StartsWith('/'))
        {
            return null;
        }
        try
        {
            var addresses = System.Net.IPAddress.TryParse(host, out var ip) ? [ip] : System.Net.Dns.GetHostAddresses(host);
            return addresses.Length > 0 && addresses.All(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6) ? host : null;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return null;
        }
    }

    /// <summary>
    /// Variables for pg_dump/pg_restore/psql and command checks: PG* connection variables and, only when
    /// we hold a password, PGPASSFILE naming a 0600 file in a new 0700 folder under
    /// <paramref name="parent"/> (default: the temp folder). Dispose it when the program has exited: the
    /// folder and the password in it are deleted.
    /// </summary>
    public ProgramEnvironment ProgramEnvironment(string? parent = null)
    {
        var env = new Dictionary<string, string>
        {
            ["PGHOST"] = Host ?? Environment.GetEnvironmentVariable("PGHOST") ?? "/var/run/postgresql",
            ["PGPORT"] = Port.ToString(CultureInfo.InvariantCulture),
            ["PGUSER"] = User,
            ["PGDATABASE"] = Database,
            ["PGAPPNAME"] = "cairn",
            ["PGCONNECT_TIMEOUT"] = "15",
        };
        var map = new Dictionary<string, string>
        {
            ["sslmode"] = "PGSSLMODE",
            ["sslrootcert"] = "PGSSLROOTCERT",
            ["sslcert"] = "PGSSLCERT",
            ["sslkey"] = "PGSSLKEY",
            ["options"] = "PGOPTIONS",
            ["target_session_attrs"] = "PGTARGETSESSIONATTRS",
        };
        foreach (var (key, variable) in map)
        {
            if (_params.TryGetValue(key, out var v))
            {
                env[variable] = v;
            }
        }
        var password = EffectivePassword;
        if (password is null)
        {
            return new ProgramEnvironment(env, null);
        }
        var folder = Connections.ProgramEnvironment.CreatePrivateFolder(parent ?? Path.GetTempPath());
        try
        {
            var file = Path.Combine(folder, "pgpass");
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            using (var fs = new FileStream(file, options))
            {
                static string Esc(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(":", "\\:", StringComparison.Ordinal);
                fs.Write(Encoding.UTF8.GetBytes($"*:*:*:{Esc(User)}:{Esc(password)}\n"));
            }
            env["PGPASSFILE"] = file;
            return new ProgramEnvironment(env, folder);
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
    }

    /// <summary>
    /// PGPASSWORD as it was when Cairn started (set once by the CLI, which removes it from the process
    /// environment so no child inherits it): the password of connections that name none, as libpq does.
    /// </summary>
    public static string? EnvironmentPassword { get; set; }

    private static Dictionary<string, string> ParseUri(string uri)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var rest = uri[(uri.IndexOf("://", StringComparison.Ordinal) + 3)..];
        var q = rest.IndexOf('?', StringComparison.Ordinal);
        var query = q >= 0 ? rest[(q + 1)..] : "";
        rest = q >= 0 ? rest[..q] : rest;
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        var authority = slash >= 0 ? rest[..slash] : rest;
        var db = slash >= 0 ? rest[(slash + 1)..] : "";
        var at = authority.LastIndexOf('@');
        if (at >= 0)
        {
            var userinfo = authority[..at];
            authority = authority[(at + 1)..];
            var colon = userinfo.IndexOf(':', StringComparison.Ordinal);
            result["user"] = Uri.UnescapeDataString(colon >= 0 ? userinfo[..colon] : userinfo);
            if (colon >= 0)
            {
                result["password"] = Uri.UnescapeDataString(userinfo[(colon + 1)..]);
            }
        }
        if (authority.Length > 0)
        {
            var portSep = authority.StartsWith('[') ? authority.IndexOf("]:", StringComparison.Ordinal) + 1 : authority.LastIndexOf(':');
            if (portSep > 0)
            {
                result["port"] = authority[(portSep + 1)..];
                authority = authority[..portSep];
            }
            result["host"] = Uri.UnescapeDataString(authority.Trim('[', ']'));
        }
        if (db.Length > 0)
        {
            result["dbname"] = Uri.UnescapeDataString(db);
        }
        foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                result[Uri.UnescapeDataString(pair[..eq])] = Uri.UnescapeDataString(pair[(eq + 1)..]);
            }
        }
        return result;
    }

    private static Dictionary<string, string> ParseKeyValue(string text)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var i = 0;
        while (i < text.Length)
        {
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }
            if (i >= text.Length)
            {
                break;
            }
            var eq = text.IndexOf('=', i);
            if (eq < 0)
            {
                throw new PgToolException($"malformed connection string near '{text[i..Math.Min(text.Length, i + 20)]}': expected key=value");
            }
            var key = text[i..eq].Trim();
            i = eq + 1;
            while (i < text.Length && char.IsWhiteSpace(text[i]))
            {
                i++;
            }
            var sb = new StringBuilder();
            if (i < text.Length && text[i] == '\'')
            {
                i++;
                while (i < text.Length && text[i] != '\'')
                {
                    if (text[i] == '\\' && i + 1 < text.Length)
                    {
                        i++;
                    }
                    sb.Append(text[i++]);
                }
                i++;
            }
            else
            {
                while (i < text.Length && !char.IsWhiteSpace(text[i]))
                {
                    if (text[i] == '\\' && i + 1 < text.Length)
                    {
                        i++;
                    }
                    sb.Append(text[i++]);
                }
            }
            result[key] = sb.ToString();
        }
        return result;
    }
}
