using System.Globalization;
using System.Text;

namespace Cairn.Repository.Crypto;

/// <summary>
/// Unicode canonical normalisation (NFC and NFD, UAX #15) of Cairn's own, for passphrases: the published binary runs with
/// InvariantGlobalization, where <see cref="string.Normalize()"/> returns non-ASCII text unchanged, so "é" typed composed
/// on one machine and decomposed ("e" + U+0301) on another would derive different keys. Tables: the embedded
/// <c>unicode-nfc.txt</c> (scripts/gen-unicode-nfc, from Perl's Unicode database); Hangul syllables by their formula.
/// </summary>
public static class Nfc
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, int[]> Decompositions = [];
        public readonly Dictionary<long, int> Compositions = [];
        public readonly List<(int First, int Last, byte Class)> Classes = [];
        public string Version = "";
    }

    private static readonly Lazy<Tables> Data = new(Load);

    /// <summary>The Unicode version of the tables.</summary>
    public static string UnicodeVersion => Data.Value.Version;

    /// <summary>Canonical composition (NFC).</summary>
    public static string Compose(string text) => IsAscii(text) ? text : ToText(ComposeAll(DecomposeAll(text)));

    /// <summary>Canonical decomposition (NFD).</summary>
    public static string Decompose(string text) => IsAscii(text) ? text : ToText(DecomposeAll(text));

    private static bool IsAscii(string text) => Ascii.IsValid(text);

    private static List<int> DecomposeAll(string text)
    {
        var t = Data.Value;
        var output = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes())
        {
            Append(t, rune.Value, output);
        }
        // Canonical order: within each run of non-starters, a stable sort by combining class.
        for (var i = 1; i < output.Count; i++)
        {
            var c = Class(t, output[i]);
            if (c == 0)
            {
                continue;
            }
            for (var j = i; j > 0 && Class(t, output[j - 1]) > c; j--)
            {
                (output[j - 1], output[j]) = (output[j], output[j - 1]);
            }
        }
        return output;
    }

    private static void Append(Tables t, int cp, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            var s = cp - SBase;
            output.Add(LBase + (s / NCount));
            output.Add(VBase + (s % NCount / TCount));
            if (s % TCount != 0)
            {
                output.Add(TBase + (s % TCount));
            }
            return;
        }
        if (t.Decompositions.TryGetValue(cp, out var d))
        {
            foreach (var x in d)
            {
                Append(t, x, output);
            }
            return;
        }
        output.Add(cp);
    }

    private static List<int> ComposeAll(List<int> cps)
    {
        if (cps.Count == 0)
        {
            return cps;
        }
        var t = Data.Value;
        var starterPos = 0;
        var starter = cps[0];
        var lastClass = Class(t, starter) == 0 ? 0 : 256; // a leading non-starter composes with nothing
        var write = 1;
        for (var read = 1; read < cps.Count; read++)
        {
            var ch = cps[read];
            var cls = Class(t, ch);
            var composite = Composite(t, starter, ch);
            if (composite >= 0 && (lastClass < cls || lastClass == 0))
            {
                cps[starterPos] = composite;
                starter = composite;
                continue;
            }
            if (cls == 0)
            {
                starterPos = write;
                starter = ch;
            }
            lastClass = cls;
            cps[write++] = ch;
        }
        cps.RemoveRange(write, cps.Count - write);
        return cps;
    }

    private static int Composite(Tables t, int first, int second)
    {
        if (first is >= LBase and < LBase + LCount && second is >= VBase and < VBase + VCount)
        {
            return SBase + ((((first - LBase) * VCount) + (second - VBase)) * TCount);
        }
        if (first is >= SBase and < SBase + SCount && (first - SBase) % TCount == 0 && second is > TBase and < TBase + TCount)
        {
            return first + (second - TBase);
        }
        return t.Compositions.TryGetValue(((long)first << 21) | (uint)second, out var c) ? c : -1;
    }

    private static byte Class(Tables t, int cp)
    {
        if (cp < 0x300)
        {
            return 0;
        }
        var list = t.Classes;
        int lo = 0, hi = list.Count - 1;
        while (lo <= hi)
        {
            var mid = (lo + hi) >>> 1;
            var (first, last, cls) = list[mid];
            if (cp < first)
            {
                hi = mid - 1;
            }
            else if (cp > last)
            {
                lo = mid + 1;
            }
            else
            {
                return cls;
            }
        }
        return 0;
    }

    private static string ToText(List<int> cps)
    {
        var sb = new StringBuilder(cps.Count + 4);
        foreach (var cp in cps)
        {
            sb.Append(char.ConvertFromUtf32(cp));
        }
        return sb.ToString();
    }

    private static Tables Load()
    {
        var t = new Tables();
        using var stream = typeof(Nfc).Assembly.GetManifestResourceStream("Cairn.Repository.Crypto.unicode-nfc.txt")
            ?? throw new InvalidOperationException("the Unicode tables (unicode-nfc.txt) are not in the assembly");
        using var reader = new StreamReader(stream, Encoding.ASCII);
        static int Hex(string s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        while (reader.ReadLine() is { } line)
        {
            var f = line.Split(' ');
            switch (f[0])
            {
                case "#":
                    t.Version = f[^1];
                    break;
                case "D":
                    var excluded = f[^1] == "X";
                    var parts = f[2..(excluded ? ^1 : ^0)].Select(Hex).ToArray();
                    var cp = Hex(f[1]);
                    t.Decompositions[cp] = parts;
                    if (!excluded && parts.Length == 2)
                    {
                        t.Compositions[((long)parts[0] << 21) | (uint)parts[1]] = cp;
                    }
                    break;
                case "C":
                    t.Classes.Add((Hex(f[1]), Hex(f[2]), byte.Parse(f[3], CultureInfo.InvariantCulture)));
                    break;
            }
        }
        return t.Decompositions.Count > 2000 && t.Classes.Count > 300 ? t : throw new InvalidOperationException("the Unicode tables (unicode-nfc.txt) are incomplete");
    }
}
