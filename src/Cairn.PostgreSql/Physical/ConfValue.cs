using System.Text;

namespace Cairn.PostgreSql.Physical;

/// <summary>Values written into postgresql.conf / postgresql.auto.conf.</summary>
public static class ConfValue
{
    /// <summary>
    /// A quoted configuration value that PostgreSQL reads back exactly: inside single quotes its parser turns '' into
    /// ' and processes backslash escapes (\\, \n, …), and a raw newline would end the line. So ' is doubled, a
    /// backslash doubled, and line breaks written as \n / \r.
    /// </summary>
    public static string Quote(string value)
    {
        var sb = new StringBuilder(value.Length + 2).Append('\'');
        foreach (var c in value)
        {
            _ = c switch
            {
                '\'' => sb.Append("''"),
                '\\' => sb.Append("\\\\"),
                '\n' => sb.Append("\\n"),
                '\r' => sb.Append("\\r"),
                '\0' => throw new ArgumentException("a configuration value cannot hold a NUL character", nameof(value)),
                _ => sb.Append(c),
            };
        }
        return sb.Append('\'').ToString();
    }
}
