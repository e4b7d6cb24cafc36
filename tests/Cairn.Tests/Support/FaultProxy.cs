using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Cairn.Tests.Support;

/// <summary>One HTTP request as the proxy saw it.</summary>
public sealed record ProxyRequest(int Ordinal, string Method, string Target, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    public string Path => Target.Split('?')[0];

    public string Query => Target.Contains('?', StringComparison.Ordinal) ? Target[(Target.IndexOf('?', StringComparison.Ordinal) + 1)..] : "";

    public bool IsPartUpload => Method == "PUT" && Query.Contains("uploadId=", StringComparison.Ordinal);
}

/// <summary>What the proxy does to one request instead of passing it through.</summary>
public abstract record Fault
{
    /// <summary>Answer with an S3 error document (e.g. 503 SlowDown) without asking the server.</summary>
    public sealed record Error(int Status, string Code) : Fault;

    /// <summary>Read part of the request body, then reset the connection (RST), before the server sees anything.</summary>
    public sealed record ResetMidRequest : Fault;

    /// <summary>Pass the request on, but send back only the headers and the first half of the response body, then close.</summary>
    public sealed record TruncateResponse : Fault;

    /// <summary>Pass the request on and hold the response back for a while (a slow server).</summary>
    public sealed record Delay(TimeSpan Time) : Fault;

    /// <summary>Flip one byte of the request body on its way to the server (a transfer damaged in transit).</summary>
    public sealed record CorruptRequestBody : Fault;

    /// <summary>Pass the request on, and flip one byte in the middle of the response body on its way back (damaged in transit).</summary>
    public sealed record CorruptResponseBody : Fault;

    /// <summary>Answer with this XML document (an answer s3rver cannot give, e.g. a list of multipart uploads).</summary>
    public sealed record Canned(int Status, string Xml) : Fault;

    /// <summary>Answer 200 with these headers and no body (a HEAD answer s3rver cannot give, e.g. an object's Object Lock retention).</summary>
    public sealed record Headers(IReadOnlyDictionary<string, string> Values) : Fault;
}

/// <summary>
/// A small fault-injecting HTTP/1.1 proxy in front of the real S3 server: one request per connection
/// (it answers with Connection: close), every request recorded, and a per-instance hook that picks a
/// fault for a request. Listens on 127.0.0.1 only.
/// </summary>
public sealed class FaultProxy : IAsyncDisposable
{
    private readonly Uri _upstream;
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accept;
    private int _ordinal;

    public FaultProxy(Uri upstream)
    {
        _upstream = upstream;
        _listener.Start();
        Endpoint = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
        _accept = AcceptLoopAsync();
    }

    public Uri Endpoint { get; }

    /// <summary>Picks the fault for a request (null passes it through). Runs on the proxy's threads.</summary>
    public Func<ProxyRequest, Fault?>? OnRequest { get; set; }

    public ConcurrentQueue<ProxyRequest> Requests { get; } = new();

    public int Faults => _faults;

    /// <summary>The most requests that were in the proxy at the same time.</summary>
    public int MaxInFlight => _maxInFlight;

    private int _faults;
    private int _inFlight;
    private int _maxInFlight;

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _accept;
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
        _stop.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            _ = Task.Run(() => HandleAsync(client));
        }
    }

    private async Task HandleAsync(TcpClient client)
    {
        using (client)
        {
            var now = Interlocked.Increment(ref _inFlight);
            for (var max = _maxInFlight; now > max && Interlocked.CompareExchange(ref _maxInFlight, now, max) != max; max = _maxInFlight)
            {
            }
            try
            {
                await HandleCoreAsync(client);
            }
            catch (UpstreamFailedException e)
            {
                // Say why instead of hanging up: a bare close reads as "the response ended prematurely" in the
                // client, which hides whether s3rver died, refused, or the test host ran out of sockets.
                Interlocked.Increment(ref _upstreamFailures);
                await TryAnswerAsync(client, 502, "ProxyUpstreamFailed", e.Message);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
            catch (Exception e)
            {
                // A bug in the proxy itself: answer with it rather than leaving an unobserved task exception.
                await TryAnswerAsync(client, 500, "ProxyBug", e.ToString());
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    private async Task HandleCoreAsync(TcpClient client)
    {
        var ct = _stop.Token;
        var stream = client.GetStream();
        var (head, rest) = await ReadHeadAsync(stream, ct);
        if (head is null)
        {
            return;
        }
        var lines = head.Split("\r\n");
        var requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var l in lines.Skip(1).Where(l => l.Length > 0))
        {
            var colon = l.IndexOf(':', StringComparison.Ordinal);
            headers[l[..colon].Trim()] = l[(colon + 1)..].Trim();
        }
        var length = headers.TryGetValue("Content-Length", out var cl) ? long.Parse(cl, System.Globalization.CultureInfo.InvariantCulture) : 0;
        if (headers.TryGetValue("Expect", out var expect) && expect.Equals("100-continue", StringComparison.OrdinalIgnoreCase))
        {
            await stream.WriteAsync("HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(), ct);
        }
        var request = new ProxyRequest(Interlocked.Increment(ref _ordinal), requestLine[0], requestLine[1], headers, []);
        var fault = OnRequest?.Invoke(request);
        if (fault is not null)
        {
            Interlocked.Increment(ref _faults);
        }
        if (fault is Fault.ResetMidRequest)
        {
            // Take some of the body so the client is mid-upload, then reset the connection.
            var some = new byte[Math.Min(length, 64 * 1024)];
            var got = Math.Min(rest.Length, some.Length);
            var n = got;
            while (n < some.Length && (got = await stream.ReadAsync(some.AsMemory(n), ct)) > 0)
            {
                n += got;
            }
            Requests.Enqueue(request);
            client.Client.LingerState = new LingerOption(true, 0);
            client.Client.Close();
            return;
        }
        var body = new byte[length];
        rest.AsSpan(0, (int)Math.Min(rest.Length, length)).CopyTo(body);
        var read = (int)Math.Min(rest.Length, length);
        while (read < length)
        {
            var n = await stream.ReadAsync(body.AsMemory(read), ct);
            if (n == 0)
            {
                return;
            }
            read += n;
        }
        request = request with { Body = body };
        Requests.Enqueue(request);
        if (fault is Fault.Error error)
        {
            var xml = Encoding.UTF8.GetBytes($"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{error.Code}</Code><Message>injected by the test proxy</Message><RequestId>proxy</RequestId></Error>");
            var response = Encoding.ASCII.GetBytes($"HTTP/1.1 {error.Status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {xml.Length}\r\nConnection: close\r\n\r\n");
            await stream.WriteAsync(response, ct);
            if (request.Method != "HEAD")
            {
                await stream.WriteAsync(xml, ct);
            }
            return;
        }
        if (fault is Fault.Canned canned)
        {
            var xml = Encoding.UTF8.GetBytes(canned.Xml);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {canned.Status} OK\r\nContent-Type: application/xml\r\nContent-Length: {xml.Length}\r\nConnection: close\r\n\r\n"), ct);
            await stream.WriteAsync(xml, ct);
            return;
        }
        if (fault is Fault.Headers answer)
        {
            var text = new StringBuilder("HTTP/1.1 200 OK\r\n");
            foreach (var (k, v) in answer.Values)
            {
                text.Append(k).Append(": ").Append(v).Append("\r\n");
            }
            await stream.WriteAsync(Encoding.ASCII.GetBytes(text.Append("Content-Length: 0\r\nConnection: close\r\n\r\n").ToString()), ct);
            return;
        }
        if (fault is Fault.CorruptRequestBody && body.Length > 0)
        {
            body[body.Length / 2] ^= 0x55;
        }

        // The append-only bucket policy of docs/security.md, as AWS enforces it: no DeleteObject, and every object
        // PUT (and CompleteMultipartUpload) must carry If-None-Match: * (condition key s3:if-none-match).
        var objectWrite = (request.Method == "PUT" && !request.IsPartUpload) || (request.Method == "POST" && request.Query.Contains("uploadId=", StringComparison.Ordinal));
        if (AppendOnlyPolicy && (request.Method == "DELETE" || (objectWrite && !(headers.TryGetValue("If-None-Match", out var star) && star == "*"))))
        {
            Interlocked.Increment(ref _denied);
            var xml = Encoding.UTF8.GetBytes("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied (append-only policy in the test proxy)</Message><RequestId>proxy</RequestId></Error>");
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {xml.Length}\r\nConnection: close\r\n\r\n"), ct);
            await stream.WriteAsync(xml, ct);
            return;
        }

        // A server that honours If-None-Match: * (s3rver ignores it): one conditional create per key at a
        // time, refused with 412 when the key exists upstream.
        var conditionalCreate = (EmulateConditionalWrites || AppendOnlyPolicy) && headers.TryGetValue("If-None-Match", out var inm) && inm == "*"
            && ((request.Method == "PUT" && !request.IsPartUpload) || (request.Method == "POST" && request.Query.Contains("uploadId=", StringComparison.Ordinal)));
        SemaphoreSlim? gate = null;
        if (conditionalCreate)
        {
            gate = _gates.GetOrAdd(request.Path, _ => new SemaphoreSlim(1, 1));
            await gate.WaitAsync(ct);
        }
        try
        {
            if (conditionalCreate && await ExistsUpstreamAsync(request.Path, ct))
            {
                var xml = Encoding.UTF8.GetBytes("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>");
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/xml\r\nContent-Length: {xml.Length}\r\nConnection: close\r\n\r\n"), ct);
                await stream.WriteAsync(xml, ct);
                return;
            }
            await ForwardAsync(stream, client, lines, headers, body, fault, ct);
        }
        finally
        {
            gate?.Release();
        }
    }

    /// <summary>
    /// Stand in for an append-only IAM/bucket policy (s3rver cannot enforce one): DELETE and any object PUT without
    /// If-None-Match: * are refused with 403 AccessDenied, as AWS refuses them; conditional creates are emulated.
    /// </summary>
    public bool AppendOnlyPolicy { get; set; }

    /// <summary>Requests the append-only policy refused.</summary>
    public int Denied => _denied;

    private int _denied;

    /// <summary>Answer conditional creates the way AWS does (412 when the key exists), atomically per key.</summary>
    public bool EmulateConditionalWrites { get; set; }

    private readonly ConcurrentDictionary<string, SemaphoreSlim> _gates = new(StringComparer.Ordinal);

    private async Task<bool> ExistsUpstreamAsync(string path, CancellationToken ct)
    {
        using var upstream = await ConnectUpstreamAsync(ct);
        var up = upstream.GetStream();
        await up.WriteAsync(Encoding.ASCII.GetBytes($"HEAD {path} HTTP/1.1\r\nHost: {_upstream.Authority}\r\nConnection: close\r\n\r\n"), ct);
        var answer = new MemoryStream();
        await up.CopyToAsync(answer, ct);
        var status = Encoding.ASCII.GetString(answer.ToArray()).Split(' ', 3);
        return status.Length > 1 && status[1] == "200";
    }

    private async Task ForwardAsync(NetworkStream stream, TcpClient client, string[] lines, Dictionary<string, string> headers, byte[] body, Fault? fault, CancellationToken ct)
    {
        // Forward with Connection: close, read the whole answer until the server closes.
        using var upstream = await ConnectUpstreamAsync(ct);
        var up = upstream.GetStream();
        var forwarded = new StringBuilder().Append(lines[0]).Append("\r\n");
        foreach (var (k, v) in headers)
        {
            if (k.Equals("Connection", StringComparison.OrdinalIgnoreCase) || k.Equals("Expect", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            forwarded.Append(k).Append(": ").Append(v).Append("\r\n");
        }
        forwarded.Append("Connection: close\r\n\r\n");
        await up.WriteAsync(Encoding.ASCII.GetBytes(forwarded.ToString()), ct);
        await up.WriteAsync(body, ct);
        var answer = new MemoryStream();
        await up.CopyToAsync(answer, ct);
        var bytes = answer.ToArray();
        if (fault is Fault.Delay delay)
        {
            await Task.Delay(delay.Time, ct);
        }
        if (fault is Fault.CorruptResponseBody)
        {
            var start = bytes.AsSpan().IndexOf("\r\n\r\n"u8) + 4;
            if (bytes.Length > start)
            {
                bytes[start + ((bytes.Length - start) / 2)] ^= 0x55;
            }
        }
        if (fault is Fault.TruncateResponse)
        {
            var end = bytes.AsSpan().IndexOf("\r\n\r\n"u8) + 4;
            var bodyLength = bytes.Length - end;
            await stream.WriteAsync(bytes.AsMemory(0, end + (bodyLength / 2)), ct);
            await stream.FlushAsync(ct);
            client.Client.Shutdown(SocketShutdown.Both);
            return;
        }
        await stream.WriteAsync(bytes, ct);
    }

    /// <summary>Requests the proxy answered 502 because the upstream server could not be reached.</summary>
    public int UpstreamFailures => _upstreamFailures;

    private int _upstreamFailures;

    private async Task<TcpClient> ConnectUpstreamAsync(CancellationToken ct)
    {
        var upstream = new TcpClient();
        try
        {
            await upstream.ConnectAsync(_upstream.Host, _upstream.Port, ct);
            return upstream;
        }
        catch (SocketException e)
        {
            upstream.Dispose();
            throw new UpstreamFailedException($"the test proxy could not connect to the S3 server at {_upstream.Authority}: {e.SocketErrorCode} ({e.Message}){S3rverFixture.HealthOf(_upstream.Authority)}", e);
        }
    }

    private static async Task TryAnswerAsync(TcpClient client, int status, string code, string message)
    {
        try
        {
            var xml = Encoding.UTF8.GetBytes($"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{System.Security.SecurityElement.Escape(message)}</Message><RequestId>proxy</RequestId></Error>");
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {status} Proxy\r\nContent-Type: application/xml\r\nContent-Length: {xml.Length}\r\nConnection: close\r\n\r\n"));
            await stream.WriteAsync(xml);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    private sealed class UpstreamFailedException(string message, Exception inner) : Exception(message, inner);

    private static async Task<(string? Head, byte[] Remainder)> ReadHeadAsync(NetworkStream stream, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        var n = 0;
        while (true)
        {
            var got = await stream.ReadAsync(buffer.AsMemory(n), ct);
            if (got == 0)
            {
                return (null, []);
            }
            n += got;
            var end = buffer.AsSpan(0, n).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                return (Encoding.ASCII.GetString(buffer, 0, end), buffer[(end + 4)..n]);
            }
            if (n == buffer.Length)
            {
                throw new IOException("request head larger than 64 KiB");
            }
        }
    }
}
