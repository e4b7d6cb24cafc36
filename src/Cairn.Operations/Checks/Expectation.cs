using System.Globalization;
using System.Text.RegularExpressions;

namespace Cairn.Operations.Checks;

/// <summary>"= n", ">= n", "> n", "<= n", "< n", "between a and b", "= fingerprint".</summary>
public sealed partial record Expectation(string Op, decimal A, decimal B, bool Fingerprint)
{
    public static Expectation Parse(string text)
    {
        var t = text.Trim();
        if (FingerprintPattern().IsMatch(t))
        {
            return new Expectation("=", 0, 0, true);
        }
        var between = BetweenPattern().Match(t);
        if (between.Success)
        {
            return new Expectation("between", Num(between.Groups[1].Value, text), Num(between.Groups[2].Value, text), false);
        }
        var m = ComparePattern().Match(t);
        if (!m.Success)
        {
            throw new FormatException($"expect '{text}' is not one of: = n, >= n, > n, <= n, < n, between a and b, = fingerprint");
        }
        return new Expectation(m.Groups[1].Value is "==" ? "=" : m.Groups[1].Value, Num(m.Groups[2].Value, text), 0, false);
    }

    public bool Holds(decimal actual, decimal? fingerprint = null) => Op switch
    {
        "=" => actual == (Fingerprint ? fingerprint ?? throw new InvalidOperationException("no fingerprint value") : A),
        ">=" => actual >= A,
        ">" => actual > A,
        "<=" => actual <= A,
        "<" => actual < A,
        "between" => actual >= A && actual <= B,
        _ => false,
    };

    public override string ToString() => Fingerprint ? "= fingerprint" : Op == "between" ? $"between {A} and {B}" : $"{Op} {A}";

    private static decimal Num(string s, string text) => decimal.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : throw new FormatException($"'{s}' in expect '{text}' is not a number");

    [GeneratedRegex(@"^=\s*fingerprint\z")]
    private static partial Regex FingerprintPattern();

    [GeneratedRegex(@"^between\s+(-?[\d.]+)\s+and\s+(-?[\d.]+)\z", RegexOptions.IgnoreCase)]
    private static partial Regex BetweenPattern();

    [GeneratedRegex(@"^(>=|<=|==|=|>|<)\s*(-?[\d.]+)\z")]
    private static partial Regex ComparePattern();
}
