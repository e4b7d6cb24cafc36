using System.Text;
using Cairn.Repository;
using Cairn.Repository.Chunking;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;

namespace Cairn.Tests.Support;

public static class TestData
{
    /// <summary>Small chunks and packs so tests exercise many of each on little data.</summary>
    public static readonly RepositoryOptions SmallRepo = new()
    {
        Kdf = KdfParameters.Fast,
        Chunker = new ChunkerParameters(4 * 1024, 16 * 1024, 64 * 1024),
        PackSize = 256 * 1024,
    };

    public const string Passphrase = "correct horse battery staple";

    /// <summary>Deterministic, partly compressible data that looks like table rows.</summary>
    public static byte[] Rows(int size, int seed)
    {
        var rng = new Random(seed);
        var sb = new StringBuilder(size + 200);
        var i = 0;
        while (sb.Length < size)
        {
            sb.Append(i++).Append('\t').Append(new Guid(rng.Next(), (short)rng.Next(), (short)rng.Next(), (byte)rng.Next(), 1, 2, 3, 4, 5, 6, 7)).Append('\t').Append("user").Append(rng.Next(100000)).Append("@example.com\t{\"plan\":\"")
              .Append(rng.Next(3) switch { 0 => "free", 1 => "pro", _ => "team" }).Append("\",\"n\":").Append(rng.Next()).Append("}\n");
        }
        return Encoding.ASCII.GetBytes(sb.ToString())[..size];
    }

    public static byte[] Random(int size, int seed)
    {
        var b = new byte[size];
        new Random(seed).NextBytes(b);
        return b;
    }

    public static async Task<Repo> NewRepoAsync(IStorage? storage = null)
        => await Repo.InitAsync(storage ?? new InMemoryStorage(), Passphrase, SmallRepo, TimeProvider.System, CancellationToken.None);

    public static async Task<Cairn.Repository.Manifests.Snapshot> PutAsync(Repo repo, string name, byte[] data)
    {
        await using var w = repo.BeginWrite(new RepositoryOptions { Workers = 2 });
        await w.AddStreamAsync(name, new MemoryStream(data), null, CancellationToken.None);
        return await w.CommitAsync(name, "file", null, CancellationToken.None);
    }

    public static async Task<byte[]> GetAsync(Repo repo, Cairn.Repository.Manifests.Snapshot s)
    {
        var ms = new MemoryStream();
        await repo.ReadItemAsync(s.Manifest.Items[0], ms, null, CancellationToken.None);
        return ms.ToArray();
    }
}
