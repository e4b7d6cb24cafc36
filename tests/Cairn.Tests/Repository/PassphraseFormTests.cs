using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Cairn.Repository.Crypto;

namespace Cairn.Tests.Repository;

/// <summary>
/// Passphrases in canonical form: Cairn's own NFC/NFD (the binary runs with InvariantGlobalization, where
/// string.Normalize leaves non-ASCII text as it is), checked against Perl's Unicode::Normalize; key files written
/// from either form open from both, including those an older Cairn wrote with the form as typed.
/// </summary>
public class PassphraseFormTests
{
    private static readonly string Decomposed = "caf" + "e\u0301" + " \u1100\u1161\u11A8 pass";  // e + combining acute; Hangul jamo
    private static readonly string Composed = "caf\u00e9 \uAC01 pass";

    [Fact]
    public void This_test_run_has_the_published_binarys_invariant_globalization_where_string_Normalize_does_nothing()
    {
        // The reason Cairn normalises by itself: were this to change, Nfc could go back to string.Normalize.
        Assert.True(AppContext.TryGetSwitch("System.Globalization.Invariant", out var invariant) && invariant);
        Assert.Equal(Decomposed, Decomposed.Normalize(NormalizationForm.FormC));
        Assert.Equal(Composed, Nfc.Compose(Decomposed));
        Assert.Equal(Decomposed, Nfc.Decompose(Composed));
    }

    [Fact]
    public void Nfc_and_nfd_equal_perls_Unicode_Normalize_for_every_code_point_and_the_tricky_sequences()
    {
        var lines = new List<string>();
        for (var cp = 0xA0; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF || CharUnicodeInfo.GetUnicodeCategory(cp) == UnicodeCategory.OtherNotAssigned)
            {
                continue;
            }
            lines.Add(char.ConvertFromUtf32(cp));
        }
        lines.AddRange([
            "a\u0323\u0307", "a\u0307\u0323", "a\u0301\u0301", "e\u0302\u0323", "\u0301a", "a\u0315\u0300\u05AE\u0300b",  // canonical order, blocking
            "\u1100\u1161", "\u1100\u1161\u11A8", "\uAC00\u11A8", "\u1100\u1161\u11A7", "\uD4DB\u11A8",                // Hangul: LV, LVT, not a T
            "\u0958", "\u2126", "\u212B", "\u0344", "\u0F73", "A\u030A\u0301", "\U0001D15E", "\U0001D160\u0301",       // exclusions, singletons, non-starters, astral
            "\u0041\u0308\u0304", "\u00C5\u0323", "o\u031B\u0323\u0302", "\u0DD9\u0DCF\u0DCA", "\U00011099\U000110BA",
            "plain ascii", "",
        ]);
        var input = string.Join('\n', lines) + "\n";
        string Perl(string form)
        {
            var psi = new ProcessStartInfo("perl", ["-CSDA", "-MUnicode::Normalize", "-ne", $"chomp; print {form}($_), \"\\n\""])
            {
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
                StandardOutputEncoding = new UTF8Encoding(false),
                StandardInputEncoding = new UTF8Encoding(false),
            };
            using var p = Process.Start(psi)!;
            var output = p.StandardOutput.ReadToEndAsync();
            p.StandardInput.Write(input);
            p.StandardInput.Close();
            p.WaitForExit();
            Assert.Equal(0, p.ExitCode);
            return output.Result;
        }
        var nfc = Perl("NFC").Split('\n');
        var nfd = Perl("NFD").Split('\n');
        Assert.Equal(lines.Count + 1, nfc.Length);
        var wrong = new List<string>();
        for (var i = 0; i < lines.Count; i++)
        {
            if (Nfc.Compose(lines[i]) != nfc[i] || Nfc.Decompose(lines[i]) != nfd[i] || Nfc.Compose(nfd[i]) != nfc[i])
            {
                wrong.Add(string.Join(' ', lines[i].EnumerateRunes().Select(r => r.Value.ToString("X4", CultureInfo.InvariantCulture))));
            }
        }
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {lines.Count} differ from Perl's (Unicode {Nfc.UnicodeVersion}): {string.Join("; ", wrong.Take(20))}");
        Assert.True(lines.Count > 100_000); // every assigned code point from U+00A0 was compared
    }

    [Fact]
    public void A_key_wrapped_from_either_form_opens_from_both_and_from_no_other_passphrase()
    {
        var master = RandomNumberGenerator.GetBytes(KeyMaterial.MasterSize);
        foreach (var (typed, other) in new[] { (Decomposed, Composed), (Composed, Decomposed) })
        {
            var key = KeyFile.Wrap("k1", master, typed, KdfParameters.Fast, DateTimeOffset.UnixEpoch, null);
            Assert.Equal(master, KeyFile.TryUnwrap("k1", key, typed));
            Assert.Equal(master, KeyFile.TryUnwrap("k1", key, other));
            Assert.Null(KeyFile.TryUnwrap("k1", key, "cafe \uAC01 pass"));

            // New key files are wrapped under the key of the NFC form, whichever form was typed (review: the fallbacks
            // alone would let both forms open even if Derive stopped normalising).
            var salt = Convert.FromBase64String(key.Salt!);
            var wrapped = Convert.FromBase64String(key.Wrapped!);
            var aad = Encoding.ASCII.GetBytes("cairn-keyk1");
            using (var nfc = new Aead(KdfParameters.Fast.DeriveExact(Composed, salt)))
            {
                Assert.Equal(master, nfc.Open(wrapped, aad, "key"));
            }
            using var nfd = new Aead(KdfParameters.Fast.DeriveExact(Decomposed, salt));
            Assert.ThrowsAny<Exception>(() => nfd.Open(wrapped, aad, "key"));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_key_an_older_Cairn_wrapped_from_the_form_as_typed_still_opens_from_both_forms(bool typedDecomposed)
    {
        // What Cairn wrote while its NFC was a no-op: the key of exactly the characters typed.
        var typed = typedDecomposed ? Decomposed : Composed;
        var master = RandomNumberGenerator.GetBytes(KeyMaterial.MasterSize);
        var salt = RandomNumberGenerator.GetBytes(16);
        var kdf = KdfParameters.Fast;
        var kek = kdf.DeriveExact(typed, salt);
        using var aead = new Aead(kek);
        var legacy = new KeyFileData
        {
            MemoryKib = kdf.MemoryKib,
            Iterations = kdf.Iterations,
            Parallelism = kdf.Parallelism,
            Salt = Convert.ToBase64String(salt),
            Wrapped = Convert.ToBase64String(aead.Seal(master, Encoding.ASCII.GetBytes("cairn-keyk1"))),
        };
        Assert.Equal(master, KeyFile.TryUnwrap("k1", legacy, Decomposed));
        Assert.Equal(master, KeyFile.TryUnwrap("k1", legacy, Composed));
        Assert.Null(KeyFile.TryUnwrap("k1", legacy, "cafe \uAC01 pass"));
    }
}
