using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Cairn.PostgreSql.Logical;

/// <summary>
/// Restoring onto a server that lacks roles the backup names (a Supabase backup on a plain PostgreSQL: anon,
/// authenticated, service_role, supabase_admin, …). pg_restore runs all GRANTs of an object as one command, so one
/// grant to a missing role would lose every grant of that object: such ACL and default-ACL entries are taken out of
/// pg_restore's list and their statements run here one by one, without those that name a missing role. A policy
/// <c>TO</c> a missing role is left out whole (fewer permissive policies grant less, never more). Each omission is a
/// <see cref="SkippedObject"/> with cause <c>role NAME</c>. Ownership by a missing role cannot be left out of
/// pg_restore's commands: its <c>ALTER … OWNER TO</c> fails alone, the object stays the restoring role's, and
/// <see cref="AcceptableOwnerErrors"/> turns exactly those errors into skipped objects (any other error still fails).
/// </summary>
public static partial class MissingRoles
{
    /// <summary>An entry of pg_restore's script: its dump ID and its SQL.</summary>
    public sealed record EntrySql(int Id, string Sql);

    /// <summary>What to run instead of pg_restore for the entries taken out, and what was left out.</summary>
    public sealed record RolePlan(IReadOnlySet<int> TakenOut, IReadOnlyList<string> Statements, IReadOnlyList<SkippedObject> Skipped);

    public static bool IsCandidate(string description) => description.StartsWith("ACL ", StringComparison.Ordinal) || description.StartsWith("DEFAULT ACL ", StringComparison.Ordinal)
        || description.StartsWith("POLICY ", StringComparison.Ordinal);

    [GeneratedRegex(@"^-- TOC entry (\d+) ", RegexOptions.Multiline)]
    private static partial Regex TocComment();

    /// <summary>Splits pg_restore's verbose script (<c>-f - -v</c>) into its entries by their <c>-- TOC entry N</c> comments.</summary>
    public static List<EntrySql> SplitScript(string script)
    {
        var matches = TocComment().Matches(script);
        var list = new List<EntrySql>();
        for (var i = 0; i < matches.Count; i++)
        {
            var start = matches[i].Index;
            var end = i + 1 < matches.Count ? matches[i + 1].Index : script.Length;
            // psql meta-commands (\restrict/\unrestrict around a whole script since PostgreSQL 15.14) are not SQL: dropped.
            var text = string.Join('\n', script[start..end].Split('\n').Where(l => !l.StartsWith('\\')));
            list.Add(new EntrySql(int.Parse(matches[i].Groups[1].Value, CultureInfo.InvariantCulture), text));
        }
        return list;
    }

    /// <summary>
    /// Decides, for the candidate entries (<see cref="IsCandidate"/>) with their SQL, what is taken out of pg_restore's
    /// list and which of their statements still run. <paramref name="exists"/> says whether a role exists on the target.
    /// </summary>
    public static RolePlan Decide(IReadOnlyList<RestorePlan.TocEntry> entries, IReadOnlyList<EntrySql> sql, Func<string, bool> exists)
    {
        var byId = entries.ToDictionary(e => e.Id);
        var takenOut = new HashSet<int>();
        var statements = new List<string>();
        var skipped = new List<SkippedObject>();
        foreach (var entry in sql)
        {
            if (!byId.TryGetValue(entry.Id, out var toc) || !IsCandidate(toc.Description))
            {
                continue;
            }
            var parts = SqlText.Statements(entry.Sql);
            var roles = parts.Select(p => (Sql: p, Roles: RolesOf(p))).ToList();
            if (!roles.Any(r => r.Roles.Any(x => !exists(x))))
            {
                continue;
            }
            takenOut.Add(entry.Id);
            if (toc.Description.StartsWith("POLICY ", StringComparison.Ordinal))
            {
                var missing = roles.SelectMany(r => r.Roles).First(x => !exists(x));
                skipped.Add(new SkippedObject(toc.Description, $"role {missing}", $"the policy applies TO role {missing}, which does not exist on the target; left out (a missing permissive policy grants less, not more)"));
                continue;
            }
            // SET SESSION AUTHORIZATION x … RESET: grants made by another grantor. If x is missing, the block goes.
            string? blockMissing = null;
            foreach (var (text, refs) in roles)
            {
                var first = SqlText.Tokens(text).FirstOrDefault();
                var word = first is { Quoted: false } ? first.Text.ToUpperInvariant() : "";
                if (word == "RESET")
                {
                    if (blockMissing is null)
                    {
                        statements.Add(text);
                    }
                    blockMissing = null;
                    continue;
                }
                if (word == "SET" && refs.Count > 0)
                {
                    blockMissing = refs.FirstOrDefault(x => !exists(x));
                    if (blockMissing is null)
                    {
                        statements.Add(text);
                    }
                    continue;
                }
                if (word is not ("GRANT" or "REVOKE" or "ALTER"))
                {
                    // Anything else in an ACL entry is not what pg_dump writes there: run nothing of it, say so.
                    skipped.Add(new SkippedObject(toc.Description, "role " + (refs.FirstOrDefault(x => !exists(x)) ?? "?"), $"an unexpected statement in an ACL entry was not run: {Short(text)}"));
                    continue;
                }
                var missing = blockMissing ?? refs.FirstOrDefault(x => !exists(x));
                if (missing is null)
                {
                    statements.Add(text);
                }
                else
                {
                    skipped.Add(new SkippedObject($"{toc.Description}: {Short(text)}", $"role {missing}",
                        blockMissing is null ? $"role {missing} does not exist on the target; this grant was left out (the entry's other grants were made)" : $"granted by role {missing}, which does not exist on the target"));
                }
            }
        }
        return new RolePlan(takenOut, statements, skipped);
    }

    /// <summary>The roles a GRANT, REVOKE, ALTER DEFAULT PRIVILEGES, SET SESSION AUTHORIZATION or CREATE POLICY statement names.</summary>
    public static List<string> RolesOf(string statement)
    {
        var t = SqlText.Tokens(statement);
        var roles = new List<string>();
        if (t.Count == 0)
        {
            return roles;
        }
        bool Is(int i, string word) => i < t.Count && !t[i].Quoted && !t[i].Symbol && !t[i].Literal && string.Equals(t[i].Text, word, StringComparison.OrdinalIgnoreCase);
        // Role lists: identifiers separated by commas, until a word that ends them.
        void ListFrom(int i, params string[] stop)
        {
            for (; i < t.Count; i++)
            {
                if (t[i].Symbol || t[i].Literal)
                {
                    if (t[i].Text == ",")
                    {
                        continue;
                    }
                    break;
                }
                if (!t[i].Quoted && stop.Any(s => Is(i, s)))
                {
                    break;
                }
                if (!t[i].Quoted && (Is(i, "GROUP") || Is(i, "ROLE") || Is(i, "USER")))
                {
                    continue;
                }
                if (!t[i].Quoted && (Is(i, "PUBLIC") || Is(i, "CURRENT_USER") || Is(i, "SESSION_USER") || Is(i, "CURRENT_ROLE")))
                {
                    continue;
                }
                roles.Add(t[i].Quoted ? t[i].Text : Fold(t[i].Text));
            }
        }
        int TopLevel(int from, string word)
        {
            var depth = 0;
            for (var i = from; i < t.Count; i++)
            {
                if (t[i].Symbol && t[i].Text == "(")
                {
                    depth++;
                }
                else if (t[i].Symbol && t[i].Text == ")")
                {
                    depth--;
                }
                else if (depth == 0 && Is(i, word))
                {
                    return i;
                }
            }
            return -1;
        }
        void GrantOrRevoke(int start)
        {
            var grant = Is(start, "GRANT");
            var at = TopLevel(start + 1, grant ? "TO" : "FROM");
            if (at >= 0)
            {
                ListFrom(at + 1, "WITH", "GRANTED", "CASCADE", "RESTRICT");
            }
            var by = TopLevel(start + 1, "GRANTED");
            if (by >= 0 && Is(by + 1, "BY"))
            {
                ListFrom(by + 2, "CASCADE", "RESTRICT");
            }
        }
        if (Is(0, "GRANT") || Is(0, "REVOKE"))
        {
            GrantOrRevoke(0);
        }
        else if (Is(0, "ALTER") && Is(1, "DEFAULT") && Is(2, "PRIVILEGES"))
        {
            var i = 3;
            if (Is(i, "FOR") && (Is(i + 1, "ROLE") || Is(i + 1, "USER")))
            {
                ListFrom(i + 2, "IN", "GRANT", "REVOKE");
            }
            var grantAt = TopLevel(3, "GRANT");
            var revokeAt = TopLevel(3, "REVOKE");
            var first = grantAt < 0 ? revokeAt : revokeAt < 0 ? grantAt : Math.Min(grantAt, revokeAt);
            if (first >= 0)
            {
                GrantOrRevoke(first);
            }
        }
        else if (Is(0, "SET") && Is(1, "SESSION") && Is(2, "AUTHORIZATION"))
        {
            ListFrom(3);
        }
        else if (Is(0, "CREATE") && Is(1, "POLICY"))
        {
            var on = TopLevel(2, "ON");
            var to = on < 0 ? -1 : TopLevel(on + 1, "TO");
            var usingAt = TopLevel(2, "USING");
            if (to >= 0 && (usingAt < 0 || to < usingAt))
            {
                ListFrom(to + 1, "USING", "WITH");
            }
        }
        return roles;
    }

    [GeneratedRegex(@"role ""((?:[^""]|"""")+)"" does not exist")]
    private static partial Regex RoleMissing();

    [GeneratedRegex(@"^pg_restore: from TOC entry (\d+); \d+ \d+ (.*)\z")]
    private static partial Regex FromEntry();

    /// <summary>
    /// pg_restore's errors when every one is an <c>ALTER … OWNER TO</c> of a role <paramref name="missing"/> says the target lacks, as skipped
    /// objects; null when any error is something else (the restore then fails as before, with pg_restore's words).
    /// </summary>
    public static List<SkippedObject>? AcceptableOwnerErrors(string stderr, Func<string, bool> missing)
    {
        var lines = stderr.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        var skipped = new List<SkippedObject>();
        string? entry = null;
        var errors = 0;
        for (var i = 0; i < lines.Count; i++)
        {
            if (FromEntry().Match(lines[i]) is { Success: true } f)
            {
                entry = f.Groups[2].Value.TrimEnd();
                continue;
            }
            if (!lines[i].Contains("error:", StringComparison.Ordinal))
            {
                continue;
            }
            errors++;
            var m = RoleMissing().Match(lines[i]);
            var command = i + 1 < lines.Count && lines[i + 1].StartsWith("Command was: ", StringComparison.Ordinal) ? lines[i + 1]["Command was: ".Length..] : "";
            if (!m.Success || !command.StartsWith("ALTER ", StringComparison.Ordinal) || !command.Contains(" OWNER TO ", StringComparison.Ordinal))
            {
                return null;
            }
            var role = m.Groups[1].Value.Replace("\"\"", "\"", StringComparison.Ordinal);
            if (!missing(role))
            {
                return null;
            }
            skipped.Add(new SkippedObject(entry ?? Short(command), $"role {role}", $"its owner {role} does not exist on the target; it belongs to the restoring role instead"));
        }
        return errors == 0 ? null : skipped;
    }

    private static string Fold(string word)
    {
        var sb = new StringBuilder(word.Length);
        foreach (var c in word)
        {
            sb.Append(c is >= 'A' and <= 'Z' ? (char)(c + 32) : c);
        }
        return sb.ToString();
    }

    private static string Short(string sql)
    {
        var one = string.Join(' ', sql.Split((char[])['\n', '\r', '\t'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        return one.Length > 160 ? one[..160] + "…" : one;
    }
}

/// <summary>Just enough of PostgreSQL's lexical rules to split pg_dump's output into statements and words.</summary>
public static class SqlText
{
    /// <summary>A word (keyword or identifier), a quoted identifier (unquoted text), a string literal, or one symbol.</summary>
    public sealed record Token(string Text, bool Quoted, bool Symbol, bool Literal = false);

    /// <summary>Statements (without their ';'), comments removed; quotes, dollar quotes and comments are respected.</summary>
    public static List<string> Statements(string sql)
    {
        var list = new List<string>();
        var current = new StringBuilder();
        var i = 0;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (c == '-' && i + 1 < sql.Length && sql[i + 1] == '-')
            {
                while (i < sql.Length && sql[i] != '\n')
                {
                    i++;
                }
                continue;
            }
            if (c == '/' && i + 1 < sql.Length && sql[i + 1] == '*')
            {
                var depth = 0;
                do
                {
                    if (i + 1 < sql.Length && sql[i] == '/' && sql[i + 1] == '*')
                    {
                        depth++;
                        i += 2;
                    }
                    else if (i + 1 < sql.Length && sql[i] == '*' && sql[i + 1] == '/')
                    {
                        depth--;
                        i += 2;
                    }
                    else
                    {
                        i++;
                    }
                }
                while (depth > 0 && i < sql.Length);
                current.Append(' ');
                continue;
            }
            if (c is '\'' or '"')
            {
                var end = QuotedEnd(sql, i, c);
                current.Append(sql, i, end - i);
                i = end;
                continue;
            }
            if (c == '$' && DollarTag(sql, i) is { } tag)
            {
                var close = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                var end = close < 0 ? sql.Length : close + tag.Length;
                current.Append(sql, i, end - i);
                i = end;
                continue;
            }
            if (c == ';')
            {
                Flush();
                i++;
                continue;
            }
            current.Append(c);
            i++;
        }
        Flush();
        return list;

        void Flush()
        {
            var s = current.ToString().Trim();
            if (s.Length > 0)
            {
                list.Add(s);
            }
            current.Clear();
        }
    }

    /// <summary>The tokens of one statement.</summary>
    public static List<Token> Tokens(string statement)
    {
        var list = new List<Token>();
        var i = 0;
        while (i < statement.Length)
        {
            var c = statement[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
                continue;
            }
            if (c == '"')
            {
                var end = QuotedEnd(statement, i, '"');
                list.Add(new Token(statement[(i + 1)..Math.Max(i + 1, end - 1)].Replace("\"\"", "\"", StringComparison.Ordinal), Quoted: true, Symbol: false));
                i = end;
                continue;
            }
            if (c == '\'')
            {
                var end = QuotedEnd(statement, i, '\'');
                list.Add(new Token(statement[i..end], Quoted: false, Symbol: false, Literal: true));
                i = end;
                continue;
            }
            if (c == '$' && DollarTag(statement, i) is { } tag)
            {
                var close = statement.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                var end = close < 0 ? statement.Length : close + tag.Length;
                list.Add(new Token(statement[i..end], Quoted: false, Symbol: false, Literal: true));
                i = end;
                continue;
            }
            if (char.IsLetterOrDigit(c) || c == '_' || c > 127)
            {
                var start = i;
                while (i < statement.Length && (char.IsLetterOrDigit(statement[i]) || statement[i] is '_' or '$' || statement[i] > 127))
                {
                    i++;
                }
                list.Add(new Token(statement[start..i], Quoted: false, Symbol: false));
                continue;
            }
            list.Add(new Token(c.ToString(), Quoted: false, Symbol: true));
            i++;
        }
        return list;
    }

    /// <summary>The index after a quoted run starting at <paramref name="start"/> (doubled quotes stay inside).</summary>
    private static int QuotedEnd(string s, int start, char quote)
    {
        var i = start + 1;
        while (i < s.Length)
        {
            if (s[i] == quote)
            {
                if (i + 1 < s.Length && s[i + 1] == quote)
                {
                    i += 2;
                    continue;
                }
                return i + 1;
            }
            // E'…' strings may escape a quote with a backslash; pg_dump writes standard strings, but a stray \' must not end the scan early either way.
            i++;
        }
        return s.Length;
    }

    private static string? DollarTag(string s, int start)
    {
        var i = start + 1;
        while (i < s.Length && (char.IsLetterOrDigit(s[i]) || s[i] == '_'))
        {
            i++;
        }
        return i < s.Length && s[i] == '$' && (i == start + 1 || !char.IsDigit(s[start + 1])) ? s[start..(i + 1)] : null;
    }
}
