using System.Globalization;
using System.Text;

namespace Cairn.Fuzz;

/// <summary>
/// Mutations of real objects, the way a damaged disk or a forger changes them: bit flips, interesting
/// numbers in place of numbers, truncation, inserted, deleted and duplicated ranges, duplicated and
/// reordered lines, splices of two inputs, and the target's own tokens. Deterministic for a seed.
/// </summary>
public sealed class Mutator(Random random, IReadOnlyList<string> dictionary)
{
    private static readonly string[] Numbers =
    [
        "-1", "0", "1", "-2147483648", "2147483647", "2147483648", "4294967295", "4294967296",
        "9223372036854775807", "-9223372036854775808", "18446744073709551616", "1e308", "1.5", "00", "0x10", "NaN",
        "65536", "16777216", "268435456", "1073741824", "99999999999999999999999",
    ];

    private static readonly string[] Generic =
    [
        "\"", "\\", "\0", "\n", "\r\n", "..", "../", "/", "//", "./", "{", "}", "[", "]", ":", ",", "null", "true", "\"\"",
        "\u2014 ", "%", "'", "`", "$(", "\t", " ", "+", "=", "#", "\u00e9", "\ud83d\ude00", "\uFEFF",
    ];

    public byte[] Mutate(byte[] input, IReadOnlyList<byte[]> corpus)
    {
        var data = new List<byte>(input);
        var rounds = 1 + random.Next(4);
        for (var r = 0; r < rounds; r++)
        {
            Apply(data, corpus);
        }
        return [.. data];
    }

    private void Apply(List<byte> d, IReadOnlyList<byte[]> corpus)
    {
        switch (random.Next(13))
        {
            case 0 when d.Count > 0:
                var bit = random.Next(d.Count * 8);
                d[bit / 8] ^= (byte)(1 << (bit % 8));
                break;
            case 1 when d.Count > 0:
                d[random.Next(d.Count)] = (byte)(random.Next(4) switch { 0 => 0, 1 => 0xFF, 2 => 0x7F, _ => random.Next(256) });
                break;
            case 2 when d.Count > 0:
                var keep = random.Next(d.Count);
                d.RemoveRange(keep, d.Count - keep);
                break;
            case 3 when d.Count > 0:
                var at = random.Next(d.Count);
                d.RemoveRange(at, Math.Min(d.Count - at, 1 + random.Next(Math.Max(1, d.Count / 8))));
                break;
            case 4 when d.Count > 0:
                var from = random.Next(d.Count);
                var len = Math.Min(d.Count - from, 1 + random.Next(Math.Max(1, d.Count / 4)));
                d.InsertRange(random.Next(d.Count + 1), d.GetRange(from, len));
                break;
            case 5:
                ReplaceNumber(d);
                break;
            case 6:
                Insert(d, Encoding.UTF8.GetBytes(Pick()));
                break;
            case 7:
                Lines(d);
                break;
            case 8 when corpus.Count > 0:
                var other = corpus[random.Next(corpus.Count)];
                if (other.Length > 0)
                {
                    var cut = random.Next(d.Count + 1);
                    var o = random.Next(other.Length);
                    d.RemoveRange(cut, d.Count - cut);
                    d.AddRange(other.AsSpan(o).ToArray());
                }
                break;
            case 9:
                var junk = new byte[1 + random.Next(16)];
                random.NextBytes(junk);
                Insert(d, junk);
                break;
            case 10 when d.Count >= 4:
                // A little-endian length field set to something a reader must refuse before allocating.
                var p = random.Next(d.Count - 3);
                var v = random.Next(3) switch { 0 => int.MaxValue, 1 => -1, _ => random.Next() };
                BitConverter.TryWriteBytes(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(d).Slice(p, 4), v);
                break;
            case 11:
                ReplaceString(d);
                break;
            default:
                Insert(d, Encoding.UTF8.GetBytes(Numbers[random.Next(Numbers.Length)]));
                break;
        }
    }

    private string Pick() => dictionary.Count > 0 && random.Next(3) > 0 ? dictionary[random.Next(dictionary.Count)] : Generic[random.Next(Generic.Length)];

    private void Insert(List<byte> d, byte[] bytes) => d.InsertRange(random.Next(d.Count + 1), bytes);

    /// <summary>Finds a run of digits (with its sign) and puts an interesting number there.</summary>
    private void ReplaceNumber(List<byte> d)
    {
        var starts = new List<int>();
        for (var i = 0; i < d.Count; i++)
        {
            if (char.IsAsciiDigit((char)d[i]) && (i == 0 || !char.IsAsciiDigit((char)d[i - 1])))
            {
                starts.Add(i);
            }
        }
        if (starts.Count == 0)
        {
            Insert(d, Encoding.ASCII.GetBytes(Numbers[random.Next(Numbers.Length)]));
            return;
        }
        var s = starts[random.Next(starts.Count)];
        var e = s;
        while (e < d.Count && char.IsAsciiDigit((char)d[e]))
        {
            e++;
        }
        d.RemoveRange(s, e - s);
        var n = random.Next(2) == 0 ? Numbers[random.Next(Numbers.Length)] : random.NextInt64(-1_000_000, 1_000_000_000_000).ToString(CultureInfo.InvariantCulture);
        d.InsertRange(s, Encoding.ASCII.GetBytes(n));
    }

    /// <summary>Replaces the content of one JSON/YAML string (between quotes) with a token or nothing.</summary>
    private void ReplaceString(List<byte> d)
    {
        var quotes = new List<int>();
        for (var i = 0; i < d.Count; i++)
        {
            if (d[i] == (byte)'"')
            {
                quotes.Add(i);
            }
        }
        if (quotes.Count < 2)
        {
            Insert(d, Encoding.UTF8.GetBytes(Pick()));
            return;
        }
        var k = random.Next(quotes.Count - 1);
        var (a, b) = (quotes[k] + 1, quotes[k + 1]);
        d.RemoveRange(a, b - a);
        var token = random.Next(4) switch
        {
            0 => "",
            1 => Pick(),
            2 => new string('A', 1 + random.Next(300)),
            _ => Pick() + Pick(),
        };
        d.InsertRange(a, Encoding.UTF8.GetBytes(token.Replace("\"", "\\\"", StringComparison.Ordinal)));
    }

    /// <summary>Duplicates, drops or swaps whole lines: duplicated and reordered entries.</summary>
    private void Lines(List<byte> d)
    {
        var lines = new List<List<byte>>();
        var cur = new List<byte>();
        foreach (var b in d)
        {
            cur.Add(b);
            if (b == (byte)'\n')
            {
                lines.Add(cur);
                cur = [];
            }
        }
        if (cur.Count > 0)
        {
            lines.Add(cur);
        }
        if (lines.Count == 0)
        {
            return;
        }
        var i = random.Next(lines.Count);
        switch (random.Next(3))
        {
            case 0:
                lines.Insert(random.Next(lines.Count + 1), [.. lines[i]]);
                break;
            case 1:
                lines.RemoveAt(i);
                break;
            default:
                var j = random.Next(lines.Count);
                (lines[i], lines[j]) = (lines[j], lines[i]);
                break;
        }
        d.Clear();
        foreach (var l in lines)
        {
            d.AddRange(l);
        }
    }
}
