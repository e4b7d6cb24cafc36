using System.Text;
using Cairn.Repository.Storage;

namespace Cairn.Tests.Repository;

/// <summary>The name order of a listing with a start: the order of the names' UTF-8 bytes, which is S3's key order.</summary>
public class StorageKeyOrderTests
{
    [Fact]
    public void CompareNames_orders_names_as_their_UTF8_bytes_do_also_above_U_FFFF()
    {
        // U+FF5E (a full-width tilde) is one UTF-16 unit above the surrogates; U+1F600 is two units below it in UTF-16 but
        // four bytes above it in UTF-8: ordinal UTF-16 order and S3's order disagree exactly there.
        string[] names = ["db@a", "db@\uFF5E", "db@\U0001F600", "db@z", "db", "db@", "db@\u00E9", "db@\uE000", "db@\uD7FF"];
        var rng = new Random(7);
        for (var i = 0; i < 200; i++)
        {
            var a = names[rng.Next(names.Length)] + names[rng.Next(names.Length)];
            var b = names[rng.Next(names.Length)] + names[rng.Next(names.Length)];
            var bytes = Math.Sign(Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b)));
            Assert.Equal(bytes, Math.Sign(StorageKey.CompareNames(a, b)));
        }
        Assert.True(StorageKey.CompareNames("db@\U0001F600", "db@\uFF5E") > 0);
        Assert.True(string.CompareOrdinal("db@\U0001F600", "db@\uFF5E") < 0); // why CompareOrdinal is not used
    }
}
