using System.Globalization;

namespace Cairn.PostgreSql.Logical;

/// <summary>
/// Reads the roles.sql item that Cairn wrote before roles.json existed, as data: the text must be exactly
/// the statements that version generated (one DO block per role, one GRANT per membership), with names
/// read as the quoted literals and identifiers they are — also when a name holds a newline, which the old
/// restore split on. Nothing in the file is ever executed; anything else in it refuses the whole file.
/// </summary>
public static class LegacyRolesSql
{
    private const string Header = "-- ";
    private const string DoStart = "DO $cairn$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ";
    private const string DoThen = ") THEN CREATE ROLE ";
    private const string DoEnd = "; END IF; END $cairn$;";

    private static readonly (string Yes, string No)[] Flags =
    [
        ("SUPERUSER", "NOSUPERUSER"), ("INHERIT", "NOINHERIT"), ("CREATEROLE", "NOCREATEROLE"), ("CREATEDB", "NOCREATEDB"),
        ("LOGIN", "NOLOGIN"), ("REPLICATION", "NOREPLICATION"), ("BYPASSRLS", "NOBYPASSRLS"),
    ];

    public static RoleSet Parse(string text)
    {
        var p = new Cursor(text);
        if (p.StartsWith(Header))
        {
            p.SkipLine();
        }
        var roles = new List<RoleDefinition>();
        var grants = new List<(string Role, string Member)>();
        while (true)
        {
            p.SkipNewlines();
            if (p.AtEnd)
            {
                break;
            }
            if (p.TryTake(DoStart))
            {
                var literalName = p.Literal();
                p.Expect(DoThen);
                var name = p.Identifier();
                if (name != literalName)
                {
                    throw p.Error($"the role is checked as '{literalName}' but created as \"{name}\"");
                }
                var flags = new bool[Flags.Length];
                for (var i = 0; i < Flags.Length; i++)
                {
                    p.Expect(" ");
                    flags[i] = p.TryTake(Flags[i].Yes) ? true : p.TryTake(Flags[i].No) ? false : throw p.Error($"expected {Flags[i].Yes} or {Flags[i].No}");
                }
                p.Expect(" CONNECTION LIMIT ");
                var limit = p.Integer();
                string? password = null;
                if (p.TryTake(" PASSWORD "))
                {
                    password = p.Literal();
                }
                p.Expect(DoEnd);
                p.ExpectEndOfLine();
                roles.Add(new RoleDefinition
                {
                    Name = name,
                    Superuser = flags[0], Inherit = flags[1], CreateRole = flags[2], CreateDb = flags[3], Login = flags[4], Replication = flags[5], BypassRls = flags[6],
                    ConnectionLimit = limit,
                    Password = password,
                });
            }
            else if (p.TryTake("GRANT "))
            {
                var role = p.Identifier();
                p.Expect(" TO ");
                var member = p.Identifier();
                p.Expect(";");
                p.ExpectEndOfLine();
                grants.Add((role, member));
            }
            else
            {
                throw p.Error("this is not a statement Cairn writes");
            }
        }
        foreach (var (role, member) in grants)
        {
            var m = roles.FirstOrDefault(r => r.Name == member) ?? throw new PgToolException($"roles.sql grants {role} to {member}, a role the file does not define; refusing the file (restore with --no-owner to skip roles)");
            m.MemberOf.Add(new RoleMembership(role));
        }
        return new RoleSet { Roles = roles };
    }

    private sealed class Cursor(string text)
    {
        private int _pos;

        public bool AtEnd => _pos >= text.Length;

        public bool StartsWith(string s) => string.CompareOrdinal(text, _pos, s, 0, s.Length) == 0;

        public bool TryTake(string s)
        {
            if (!StartsWith(s))
            {
                return false;
            }
            _pos += s.Length;
            return true;
        }

        public void Expect(string s)
        {
            if (!TryTake(s))
            {
                throw Error($"expected '{s}'");
            }
        }

        public void SkipLine()
        {
            while (!AtEnd && text[_pos] != '\n')
            {
                _pos++;
            }
        }

        public void SkipNewlines()
        {
            while (!AtEnd && text[_pos] == '\n')
            {
                _pos++;
            }
        }

        public void ExpectEndOfLine()
        {
            if (!AtEnd && text[_pos] != '\n')
            {
                throw Error("expected the end of the line");
            }
        }

        public string Literal() => Quoted('\'');

        public string Identifier() => Quoted('"');

        private string Quoted(char quote)
        {
            Expect(quote.ToString());
            var sb = new System.Text.StringBuilder();
            while (true)
            {
                if (AtEnd)
                {
                    throw Error("a quoted name or value is not closed");
                }
                var c = text[_pos++];
                if (c != quote)
                {
                    sb.Append(c);
                }
                else if (!AtEnd && text[_pos] == quote)
                {
                    sb.Append(quote);
                    _pos++;
                }
                else
                {
                    return sb.ToString();
                }
            }
        }

        public int Integer()
        {
            var start = _pos;
            if (!AtEnd && text[_pos] == '-')
            {
                _pos++;
            }
            while (!AtEnd && char.IsAsciiDigit(text[_pos]))
            {
                _pos++;
            }
            return int.TryParse(text.AsSpan(start, _pos - start), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) ? n : throw Error("expected a number");
        }

        public PgToolException Error(string what)
        {
            var line = 1 + text.AsSpan(0, Math.Min(_pos, text.Length)).Count('\n');
            return new PgToolException($"the backup's roles.sql (written by an older Cairn) is not in the form Cairn wrote at line {line}: {what}; refusing to use it (nothing was run). Restore with --no-owner to skip roles, or create them by hand");
        }
    }
}
