using System.Buffers;
using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Cairn.Repository.Chunking;

/// <summary>Chunker sizes, fixed for a repository's life (stored in its config).</summary>
public sealed record ChunkerParameters(int Min, int Average, int Max)
{
    public static readonly ChunkerParameters Default = new(256 * 1024, 1024 * 1024, 4 * 1024 * 1024);

    public void Validate()
    {
        if (Min < 64 || Average <= Min || Max <= Average || !int.IsPow2(Average) || Max > 64 * 1024 * 1024)
        {
            throw new InvalidDataException($"chunker parameters min={Min} avg={Average} max={Max} are invalid");
        }
    }
}

/// <summary>
/// FastCDC content-defined chunking (Xia et al., USENIX ATC 2016) with normalised chunking: a
/// gear rolling hash, a stricter mask before the average size and a looser one after it. The gear
/// table is derived from a per-repository secret, so boundaries do not fingerprint content.
/// Cut points depend only on content, so an insertion shifts data without changing later chunks.
/// </summary>
public sealed class FastCdcChunker
{
    private readonly ulong[] _gear = new ulong[256];
    private readonly ulong _maskStrict;
    private readonly ulong _maskLoose;

    public FastCdcChunker(ChunkerParameters parameters, ReadOnlySpan<byte> seed)
    {
        parameters.Validate();
        Parameters = parameters;
        var bits = System.Numerics.BitOperations.Log2((uint)parameters.Average);
        // High-bit masks: with a left-shifting gear hash the top bits depend on the last 64 bytes.
        _maskStrict = ~0UL << (64 - (bits + 2));
        _maskLoose = ~0UL << (64 - (bits - 2));
        var table = new byte[256 * 8];
        // Expand the seed into the table with AES-CTR-like HKDF expansion; deterministic per repository.
        HKDF.Expand(HashAlgorithmName.SHA256, seed.ToArray(), table, "cairn/v1/gear"u8.ToArray());
        for (var i = 0; i < 256; i++)
        {
            _gear[i] = BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(i * 8));
        }
    }

    public ChunkerParameters Parameters { get; }

    /// <summary>Length of the first chunk in <paramref name="data"/>; <paramref name="final"/> says no more data follows.</summary>
    /// <returns>The cut length, or 0 when more data is needed to decide.</returns>
    public int FindCut(ReadOnlySpan<byte> data, bool final)
    {
        var min = Parameters.Min;
        var max = Parameters.Max;
        if (data.Length <= min)
        {
            return final ? data.Length : 0;
        }
        var end = Math.Min(data.Length, max);
        var normal = Math.Min(end, Parameters.Average);
        var cut = Scan(data, min, normal, end);
        if (cut > 0)
        {
            return cut;
        }
        if (end == max)
        {
            return max;
        }
        return final ? data.Length : 0;
    }

    /// <summary>The hot loop, without bounds checks: returns the cut length, or 0 when none was found before <paramref name="end"/>.</summary>
    private unsafe int Scan(ReadOnlySpan<byte> data, int start, int normal, int end)
    {
        ulong fp = 0;
        var strict = _maskStrict;
        var loose = _maskLoose;
        fixed (byte* p = data)
        fixed (ulong* gear = _gear)
        {
            var i = start;
            for (; i < normal; i++)
            {
                fp = (fp << 1) + gear[p[i]];
                if ((fp & strict) == 0)
                {
                    return i + 1;
                }
            }
            for (; i < end; i++)
            {
                fp = (fp << 1) + gear[p[i]];
                if ((fp & loose) == 0)
                {
                    return i + 1;
                }
            }
        }
        return 0;
    }

    /// <summary>Reads <paramref name="input"/> to its end and yields chunks in pooled buffers the consumer must return.</summary>
    public async IAsyncEnumerable<Chunk> ChunkAsync(Stream input, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var bufferSize = Parameters.Max * 2;
        var buffer = ArrayPool<byte>.Shared.Rent(bufferSize);
        try
        {
            var start = 0;
            var filled = 0;
            var eof = false;
            while (true)
            {
                if (!eof && filled - start < Parameters.Max)
                {
                    if (start > 0)
                    {
                        Buffer.BlockCopy(buffer, start, buffer, 0, filled - start);
                        filled -= start;
                        start = 0;
                    }
                    while (filled < bufferSize)
                    {
                        var n = await input.ReadAsync(buffer.AsMemory(filled, bufferSize - filled), cancellationToken).ConfigureAwait(false);
                        if (n == 0)
                        {
                            eof = true;
                            break;
                        }
                        filled += n;
                    }
                }
                if (filled == start)
                {
                    yield break;
                }
                var cut = FindCut(buffer.AsSpan(start, filled - start), eof);
                if (cut == 0)
                {
                    continue;
                }
                var chunk = ArrayPool<byte>.Shared.Rent(cut);
                Buffer.BlockCopy(buffer, start, chunk, 0, cut);
                start += cut;
                yield return new Chunk(chunk, cut);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>A chunk in a pooled buffer: <see cref="Buffer"/>[0..<see cref="Length"/>].</summary>
public readonly record struct Chunk(byte[] Buffer, int Length)
{
    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);

    public void Return() => ArrayPool<byte>.Shared.Return(Buffer);
}
