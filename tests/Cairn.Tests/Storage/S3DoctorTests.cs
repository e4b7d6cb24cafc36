using System.Text.Json.Nodes;
using Cairn.Cli;
using Cairn.Cli.Terminal;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Storage;

/// <summary><c>cairn doctor</c> against a real S3 server (s3rver), a missing bucket, a dead endpoint, a skewed clock and an append-only policy.</summary>
public sealed class S3DoctorTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private static async Task<(int Code, JsonNode Json, string Err)> DoctorAsync(Dictionary<string, string> env, TimeProvider? time = null)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var ctx = new CliContext(new CliConsole(o, e, false, false), time ?? TimeProvider.System, k => env.GetValueOrDefault(k));
        var code = await CairnCli.RunAsync(["doctor", "--json"], ctx);
        return (code, JsonNode.Parse(o.ToString() is { Length: > 0 } s ? s : "{}")!, e.ToString());
    }

    private static JsonNode Check(JsonNode doctor, string name) => doctor["checks"]!.AsArray().Single(c => c!["name"]!.GetValue<string>() == name)!;

    private static string State(JsonNode doctor, string name) => Check(doctor, name)["state"]!.GetValue<string>();

    [Fact]
    public async Task Doctor_passes_a_usable_bucket_and_warns_that_s3rver_ignores_conditional_writes()
    {
        using var setup = new S3CycleTests.S3Setup(s3, "doctor");
        var (code, json, err) = await DoctorAsync(setup.Env);
        Assert.True(code == 0, json.ToJsonString() + err);
        Assert.True(json["ok"]!.GetValue<bool>());
        Assert.Equal("ok", State(json, "bucket"));
        Assert.Equal("ok", State(json, "write-read-delete"));
        Assert.Equal("ok", State(json, "clock"));
        Assert.Equal("warning", State(json, "conditional writes"));
        Assert.Contains("one prefix per server", Check(json, "conditional writes")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Contains("cairn init", Check(json, "repository")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        // The probe leaves nothing in the prefix but the remembered conditional-write result.
        using var storage = s3.NewStorage(Cairn.Repository.Storage.S3Location.Parse(setup.Location));
        Assert.False(await storage.RememberedConditionalWritesAsync(default));
    }

    [Fact]
    public async Task Doctor_refuses_s3_object_lock_when_the_bucket_cannot_confirm_Object_Lock()
    {
        // s3rver answers NotImplemented for ?object-lock: configured but unconfirmed is a failure, not a warning.
        using var setup = new S3CycleTests.S3Setup(s3, "doctor-lock", "  object_lock: { mode: governance, days: 30 }\n");
        var (code, json, err) = await DoctorAsync(setup.Env);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.False(json["ok"]!.GetValue<bool>(), json.ToJsonString() + err);
        Assert.Equal("fail", State(json, "object lock"));
        Assert.Contains("s3.object_lock is set", Check(json, "object lock")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal("ok", State(json, "write-read-delete"));
    }

    [Fact]
    public async Task Doctor_fails_a_missing_bucket_a_dead_endpoint_and_a_clock_fifteen_minutes_off_naming_the_fix()
    {
        using var setup = new S3CycleTests.S3Setup(s3, "doctor-bad");
        var env = new Dictionary<string, string>(setup.Env) { ["CAIRN_REPOSITORY"] = "s3://no-such-bucket-4f1/x" };
        var (code, json, _) = await DoctorAsync(env);
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Equal("fail", State(json, "bucket"));
        Assert.Contains("create it first", Check(json, "bucket")["detail"]!.GetValue<string>(), StringComparison.Ordinal);

        // A port nobody listens on: reported in seconds, not after minutes of retries.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var deadPort = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await File.WriteAllTextAsync(setup.Dir.File("dead.yaml"), $"s3:\n  endpoint: \"http://127.0.0.1:{deadPort}\"\n  credentials_file: {setup.Credentials}\n");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        (code, json, _) = await DoctorAsync(new Dictionary<string, string>(setup.Env) { ["CAIRN_CONFIG"] = setup.Dir.File("dead.yaml") });
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("unreachable", Check(json, "bucket")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"took {sw.Elapsed}");

        // This host's clock 20 minutes ahead of the server's.
        var ahead = new FakeTimeProvider(TimeProvider.System.GetUtcNow().AddMinutes(20));
        (code, json, _) = await DoctorAsync(setup.Env, ahead);
        Assert.Equal("fail", State(json, "clock"));
        Assert.Contains("ahead of", Check(json, "clock")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Failure, code);
    }

    [Fact]
    public async Task Doctor_for_an_append_only_client_writes_and_reads_without_a_delete()
    {
        await using var policy = new FaultProxy(s3.Endpoint) { AppendOnlyPolicy = true };
        using var setup = new S3CycleTests.S3Setup(s3, "doctor-ao");
        await File.WriteAllTextAsync(setup.Dir.File("host.yaml"), $"append_only: true\ns3:\n  endpoint: \"{policy.Endpoint}\"\n  credentials_file: {setup.Credentials}\n");
        var (code, json, err) = await DoctorAsync(new Dictionary<string, string>(setup.Env) { ["CAIRN_CONFIG"] = setup.Dir.File("host.yaml") });
        Assert.True(code == 0, json.ToJsonString() + err);
        Assert.True(json["append_only"]!.GetValue<bool>());
        Assert.Equal("ok", State(json, "write-read"));
        Assert.Equal("ok", State(json, "conditional writes"));
        Assert.Equal(0, policy.Denied);

        // The same credentials without append_only: the delete of the probe is refused, and the fix is named.
        await File.WriteAllTextAsync(setup.Dir.File("host.yaml"), $"s3:\n  endpoint: \"{policy.Endpoint}\"\n  credentials_file: {setup.Credentials}\n");
        (code, json, _) = await DoctorAsync(new Dictionary<string, string>(setup.Env) { ["CAIRN_CONFIG"] = setup.Dir.File("host.yaml") });
        Assert.Equal(ExitCodes.Failure, code);
        Assert.Contains("append_only: true", Check(json, "write-read-delete")["detail"]!.GetValue<string>(), StringComparison.Ordinal);
    }
}
