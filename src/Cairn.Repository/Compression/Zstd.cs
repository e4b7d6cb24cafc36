using System.Runtime.InteropServices;

namespace Cairn.Repository.Compression;

/// <summary>
/// zstd compression. Uses the system's libzstd (Debian's libzstd1, which dpkg itself depends on)
/// when it can be loaded — it is about 1.8× faster than the managed port on this workload — and
/// falls back to ZstdSharp (a managed port of the same library; identical format) otherwise.
/// Contexts are per thread: creating one per call would cost more than the work.
/// </summary>
internal static partial class Zstd
{
    private static readonly bool Native = ProbeNative();

    [ThreadStatic] private static IntPtr t_cctx;
    [ThreadStatic] private static IntPtr t_dctx;
    [ThreadStatic] private static ZstdSharp.Compressor? t_managedCompressor;
    [ThreadStatic] private static int t_managedLevel;
    [ThreadStatic] private static ZstdSharp.Decompressor? t_managedDecompressor;
    [ThreadStatic] private static IntPtr t_checksumCctx;
    [ThreadStatic] private static int t_checksumLevel;
    [ThreadStatic] private static ZstdSharp.Compressor? t_managedChecksumCompressor;
    [ThreadStatic] private static int t_managedChecksumLevel;

    public static string Implementation => Native ? "libzstd" : "ZstdSharp";

    /// <summary>Whether the system's libzstd loaded (tests check that both implementations read each other's frames).</summary>
    internal static bool NativeAvailable => Native;

    /// <summary>Compresses with the implementation chosen by <paramref name="native"/>, whatever the probe found (a test seam).</summary>
    internal static byte[] CompressWith(bool native, ReadOnlySpan<byte> source, int level)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(CompressBound(source.Length));
        var n = native ? CompressNative(source, buffer, level) : CompressManaged(source, buffer, level);
        return buffer[..n];
    }

    /// <summary>Decompresses with the implementation chosen by <paramref name="native"/> (a test seam).</summary>
    internal static byte[] DecompressWith(bool native, ReadOnlySpan<byte> source, int size)
    {
        var result = new byte[size];
        var n = native ? DecompressNative(source, result) : DecompressManaged(source, result);
        return n == size ? result : throw new InvalidDataException($"zstd frame decompressed to {n} bytes, expected {size}");
    }

    public static int Compress(ReadOnlySpan<byte> source, Span<byte> destination, int level)
        => Native ? CompressNative(source, destination, level) : CompressManaged(source, destination, level);

    public static int CompressBound(int length) => length + (length >> 8) + 64 + (length < (128 << 10) ? ((128 << 10) - length) >> 11 : 0);

    private static int CompressManaged(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        if (t_managedCompressor is null || t_managedLevel != level)
        {
            t_managedCompressor?.Dispose();
            t_managedCompressor = new ZstdSharp.Compressor(level);
            t_managedLevel = level;
        }
        return t_managedCompressor.Wrap(source, destination);
    }

    private static unsafe int CompressNative(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        if (t_cctx == IntPtr.Zero)
        {
            t_cctx = ZSTD_createCCtx();
        }
        fixed (byte* s = source)
        fixed (byte* d = destination)
        {
            var n = ZSTD_compressCCtx(t_cctx, d, (nuint)destination.Length, s, (nuint)source.Length, level);
            if (ZSTD_isError(n) != 0)
            {
                throw new InvalidDataException($"zstd compression failed: {Marshal.PtrToStringUTF8(ZSTD_getErrorName(n))}");
            }
            return (int)n;
        }
    }

    /// <summary>
    /// Compresses into one frame that records its content checksum (XXH64 of <paramref name="source"/>, zstd's
    /// <c>Content_Checksum</c>), which every decoder checks while it decompresses: a damaged or mis-decoded frame
    /// fails instead of handing out other bytes. Costs about a millisecond per 16 MiB (a SHA-256 costs eight).
    /// </summary>
    /// <remarks><paramref name="native"/> forces one implementation (a test seam); null takes the one the probe found.</remarks>
    public static int CompressChecksummed(ReadOnlySpan<byte> source, Span<byte> destination, int level, bool? native = null)
        => (native ?? Native) ? CompressNativeChecksummed(source, destination, level) : CompressManagedChecksummed(source, destination, level);

    private static int CompressManagedChecksummed(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        if (t_managedChecksumCompressor is null || t_managedChecksumLevel != level)
        {
            t_managedChecksumCompressor?.Dispose();
            t_managedChecksumCompressor = new ZstdSharp.Compressor(level);
            t_managedChecksumCompressor.SetParameter(ZstdSharp.Unsafe.ZSTD_cParameter.ZSTD_c_checksumFlag, 1);
            t_managedChecksumLevel = level;
        }
        return t_managedChecksumCompressor.Wrap(source, destination);
    }

    private static unsafe int CompressNativeChecksummed(ReadOnlySpan<byte> source, Span<byte> destination, int level)
    {
        // A context of its own: ZSTD_compress2 uses the parameters set on the context (they stay set), while
        // ZSTD_compressCCtx above takes only a level and writes no checksum.
        if (t_checksumCctx == IntPtr.Zero || t_checksumLevel != level)
        {
            if (t_checksumCctx == IntPtr.Zero)
            {
                t_checksumCctx = ZSTD_createCCtx();
            }
            Check(ZSTD_CCtx_reset(t_checksumCctx, 3)); // session and parameters
            Check(ZSTD_CCtx_setParameter(t_checksumCctx, 100, level)); // ZSTD_c_compressionLevel
            Check(ZSTD_CCtx_setParameter(t_checksumCctx, 201, 1)); // ZSTD_c_checksumFlag
            t_checksumLevel = level;
        }
        fixed (byte* s = source)
        fixed (byte* d = destination)
        {
            return (int)Check(ZSTD_compress2(t_checksumCctx, d, (nuint)destination.Length, s, (nuint)source.Length));
        }
    }

    private static nuint Check(nuint code) => ZSTD_isError(code) == 0
        ? code
        : throw new InvalidDataException($"zstd compression failed: {Marshal.PtrToStringUTF8(ZSTD_getErrorName(code))}");

    /// <summary>Whether <paramref name="frame"/> starts a zstd frame whose header says it records its content checksum.</summary>
    public static bool HasContentChecksum(ReadOnlySpan<byte> frame)
        => frame.Length >= 5 && System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(frame) == 0xFD2FB528 && (frame[4] & 0x04) != 0;

    public static byte[] Compress(ReadOnlySpan<byte> source, int level)
    {
        var buffer = GC.AllocateUninitializedArray<byte>(CompressBound(source.Length));
        var n = Compress(source, buffer, level);
        return buffer[..n];
    }

    /// <summary>Decompresses into <paramref name="destination"/>; throws <see cref="InvalidDataException"/> on damaged input.</summary>
    public static int Decompress(ReadOnlySpan<byte> source, Span<byte> destination)
        => Native ? DecompressNative(source, destination) : DecompressManaged(source, destination);

    private static int DecompressManaged(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        t_managedDecompressor ??= new ZstdSharp.Decompressor();
        try
        {
            return t_managedDecompressor.Unwrap(source, destination);
        }
        catch (ZstdSharp.ZstdException e)
        {
            throw new InvalidDataException($"zstd data is damaged: {e.Message}", e);
        }
    }

    private static unsafe int DecompressNative(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (t_dctx == IntPtr.Zero)
        {
            t_dctx = ZSTD_createDCtx();
        }
        fixed (byte* s = source)
        fixed (byte* d = destination)
        {
            var n = ZSTD_decompressDCtx(t_dctx, d, (nuint)destination.Length, s, (nuint)source.Length);
            if (ZSTD_isError(n) != 0)
            {
                throw new InvalidDataException($"zstd data is damaged: {Marshal.PtrToStringUTF8(ZSTD_getErrorName(n))}");
            }
            return (int)n;
        }
    }

    /// <summary>
    /// Decompresses <paramref name="source"/> piece by piece through one reused <paramref name="window"/>, handing
    /// each piece to <paramref name="sink"/>: a large file is written without ever holding it in fresh memory
    /// (on virtual machines, faulting in fresh pages costs more than decompressing them). Returns the total size.
    /// </summary>
    public static unsafe long DecompressStreaming(ReadOnlySpan<byte> source, Span<byte> window, SpanSink sink)
    {
        if (!Native)
        {
            var all = Decompress(source);
            sink(all);
            return all.Length;
        }
        if (t_dctx == IntPtr.Zero)
        {
            t_dctx = ZSTD_createDCtx();
        }
        ZSTD_DCtx_reset(t_dctx, 1); // session only
        long total = 0;
        fixed (byte* s = source)
        fixed (byte* w = window)
        {
            var input = new Buffer { Data = s, Size = (nuint)source.Length, Pos = 0 };
            while (true)
            {
                var output = new Buffer { Data = w, Size = (nuint)window.Length, Pos = 0 };
                var r = ZSTD_decompressStream(t_dctx, &output, &input);
                if (ZSTD_isError(r) != 0)
                {
                    throw new InvalidDataException($"zstd data is damaged: {Marshal.PtrToStringUTF8(ZSTD_getErrorName(r))}");
                }
                if (output.Pos > 0)
                {
                    sink(window[..(int)output.Pos]);
                    total += (long)output.Pos;
                }
                if (r == 0 && input.Pos == input.Size)
                {
                    return total;
                }
                if (output.Pos == 0 && input.Pos == input.Size)
                {
                    throw new InvalidDataException("zstd data is truncated");
                }
            }
        }
    }

    public delegate void SpanSink(ReadOnlySpan<byte> piece);

    /// <summary>The decompressed size a frame's header records; throws <see cref="InvalidDataException"/> when it records none.</summary>
    public static int FrameContentSize(ReadOnlySpan<byte> source)
    {
        ulong size;
        try
        {
            size = ZstdSharp.Decompressor.GetDecompressedSize(source);
        }
        catch (ZstdSharp.ZstdException e)
        {
            throw new InvalidDataException($"zstd data is damaged: {e.Message}", e);
        }
        return size <= int.MaxValue ? (int)size : throw new InvalidDataException($"zstd frame records an implausible size ({size})");
    }

    /// <summary>Largest size a frame header may claim and have allocated at once; a larger claim is checked against real output.</summary>
    public const int TrustedClaim = 64 * 1024 * 1024;

    /// <summary>Decompresses a frame whose size is recorded in its header (metadata objects, named files).</summary>
    public static byte[] Decompress(ReadOnlySpan<byte> source)
    {
        var size = FrameContentSize(source);
        if (size > TrustedClaim)
        {
            // A header is a claim: a forged object of a few bytes can claim 2 GB. Memory grows with what the frame
            // really holds, and output beyond the claim is refused.
            return DecompressGrowing(source, size);
        }
        var result = GC.AllocateUninitializedArray<byte>(size);
        var n = Decompress(source, result);
        return n == result.Length ? result : throw new InvalidDataException($"zstd frame decompressed to {n} bytes, its header says {result.Length}");
    }

    private static byte[] DecompressGrowing(ReadOnlySpan<byte> source, int claimed)
    {
        using var output = new MemoryStream();
        try
        {
            using var z = new ZstdSharp.DecompressionStream(new MemoryStream(source.ToArray()));
            var buffer = new byte[1 << 20];
            int n;
            while ((n = z.Read(buffer)) > 0)
            {
                if (output.Length + n > claimed)
                {
                    throw new InvalidDataException($"zstd frame holds more than the {claimed} bytes its header says");
                }
                output.Write(buffer, 0, n);
            }
        }
        catch (ZstdSharp.ZstdException e)
        {
            throw new InvalidDataException($"zstd data is damaged: {e.Message}", e);
        }
        return output.Length == claimed ? output.ToArray() : throw new InvalidDataException($"zstd frame decompressed to {output.Length} bytes, its header says {claimed}");
    }

    private static bool ProbeNative()
    {
        if (Environment.GetEnvironmentVariable("CAIRN_ZSTD") == "managed")
        {
            return false;
        }
        try
        {
            var c = ZSTD_createCCtx();
            if (c == IntPtr.Zero)
            {
                return false;
            }
            _ = ZSTD_freeCCtx(c);
            return true;
        }
        catch (DllNotFoundException)
        {
            return false;
        }
        catch (EntryPointNotFoundException)
        {
            return false;
        }
    }

    private const string Lib = "libzstd.so.1";

    [LibraryImport(Lib)]
    private static partial IntPtr ZSTD_createCCtx();

    [LibraryImport(Lib)]
    private static partial nuint ZSTD_freeCCtx(IntPtr cctx);

    [LibraryImport(Lib)]
    private static unsafe partial nuint ZSTD_compressCCtx(IntPtr cctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize, int level);

    [LibraryImport(Lib)]
    private static partial nuint ZSTD_CCtx_reset(IntPtr cctx, int reset);

    [LibraryImport(Lib)]
    private static partial nuint ZSTD_CCtx_setParameter(IntPtr cctx, int param, int value);

    [LibraryImport(Lib)]
    private static unsafe partial nuint ZSTD_compress2(IntPtr cctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize);

    [LibraryImport(Lib)]
    private static partial IntPtr ZSTD_createDCtx();

    [LibraryImport(Lib)]
    private static unsafe partial nuint ZSTD_decompressDCtx(IntPtr dctx, byte* dst, nuint dstCapacity, byte* src, nuint srcSize);

    [LibraryImport(Lib)]
    private static unsafe partial nuint ZSTD_decompressStream(IntPtr dctx, Buffer* output, Buffer* input);

    [LibraryImport(Lib)]
    private static partial nuint ZSTD_DCtx_reset(IntPtr dctx, int reset);

    /// <summary>ZSTD_inBuffer and ZSTD_outBuffer have the same layout: pointer, size, position.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct Buffer
    {
        public byte* Data;
        public nuint Size;
        public nuint Pos;
    }

    [LibraryImport(Lib)]
    private static partial uint ZSTD_isError(nuint code);

    [LibraryImport(Lib)]
    private static partial IntPtr ZSTD_getErrorName(nuint code);
}
