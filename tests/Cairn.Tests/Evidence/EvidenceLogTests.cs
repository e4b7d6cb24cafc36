using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;
using Cairn.Evidence.Canonical;
using Cairn.Evidence.Log;
using Cairn.Evidence.Notes;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Evidence;

public class EvidenceLogTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-12-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture);

    private static (EvidenceLog Log, TempDir Dir, FakeTimeProvider Clock) NewLog(int records = 5)
    {
        var dir = new TempDir();
        var clock = new FakeTimeProvider(Start);
        var log = new EvidenceLog(Path.Combine(dir.Path, "evidence"), null, clock);
        log.Init("test.example/evidence");
        for (var i = 0; i < records; i++)
        {
            log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app", ["details"] = new JsonObject { ["n"] = i } }, "cairn test");
            clock.Advance(TimeSpan.FromHours(1));
        }
        return (log, dir, clock);
    }

    private static string Segment(EvidenceLog log) => Directory.EnumerateFiles(log.LogFolder, "*.jsonl").Single();

    private static VerifyResult Verify(EvidenceLog log, string? against = null) => LogVerifier.Verify(log, log.LoadPublicKey(), against);

    [Fact]
    public void A_fresh_log_verifies_and_leaves_are_the_exact_lines()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var r = Verify(log);
        Assert.True(r.Ok, string.Join("; ", r.Problems));
        Assert.Equal(5, r.Records);
        var lines = File.ReadAllLines(Segment(log));
        Assert.Equal(5, lines.Length);
        var entries = log.ReadEntries(out _);
        Assert.Equal(Cairn.Evidence.Merkle.MerkleTree.LeafHash(Encoding.UTF8.GetBytes(lines[2])), entries[2].LeafHash);
        Assert.Contains("\"seq\":2", lines[2], StringComparison.Ordinal);
    }

    [Fact]
    public void Edited_record_fails_verification()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var path = Segment(log);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"result\":\"pass\",\"seq\":3", "\"result\":\"fail\",\"seq\":3", StringComparison.Ordinal));
        var r = Verify(log);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("signed root", StringComparison.Ordinal));
    }

    [Fact]
    public void Removed_record_fails_verification()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var path = Segment(log);
        var lines = File.ReadAllLines(path).ToList();
        lines.RemoveAt(4);
        File.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        Assert.False(Verify(log).Ok);
    }

    [Fact]
    public void Inserted_record_fails_verification()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var path = Segment(log);
        var lines = File.ReadAllLines(path).ToList();
        lines.Insert(2, lines[2]);
        File.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        var r = Verify(log);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("sequence number", StringComparison.Ordinal));
    }

    [Fact]
    public void Reordered_records_fail_verification()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var path = Segment(log);
        var lines = File.ReadAllLines(path).ToList();
        (lines[1], lines[3]) = (lines[3], lines[1]);
        File.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        Assert.False(Verify(log).Ok);
    }

    [Fact]
    public void Rolled_back_log_fails_against_an_earlier_checkpoint()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var saved = Path.Combine(dir.Path, "saved-checkpoint");
        File.Copy(log.CheckpointPath, saved);
        // Roll back: drop the last two records and re-sign with the (stolen) key; the log alone now verifies...
        var path = Segment(log);
        var lines = File.ReadAllLines(path).Take(3).ToList();
        File.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        var key = log.LoadSigningKey();
        var leaves = lines.Select(l => Cairn.Evidence.Merkle.MerkleTree.LeafHash(Encoding.UTF8.GetBytes(l))).ToList();
        File.WriteAllText(log.CheckpointPath, SignedNote.Sign(new Checkpoint(log.Origin, 3, Cairn.Evidence.Merkle.MerkleTree.Root(leaves)).Body, key));
        Assert.True(Verify(log).Ok);
        // ...but not against the checkpoint an auditor kept.
        var r = Verify(log, saved);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("rolled back", StringComparison.Ordinal));
    }

    [Fact]
    public void Rewritten_history_fails_against_an_earlier_checkpoint()
    {
        var (log, dir, clock) = NewLog(4);
        using var _d = dir;
        var saved = Path.Combine(dir.Path, "saved");
        File.Copy(log.CheckpointPath, saved);
        log.Append(new JsonObject { ["kind"] = "verify", ["result"] = "pass" }, "t");
        Assert.True(Verify(log, saved).Ok);
        // Rewrite record 1 and re-sign everything with the key: consistency with the saved checkpoint breaks.
        var path = Segment(log);
        var lines = File.ReadAllLines(path);
        var rec = (JsonObject)JsonNode.Parse(lines[1])!;
        rec["result"] = "fail";
        lines[1] = JsonCanonicalizer.CanonicalString(rec);
        File.WriteAllText(path, string.Concat(lines.Select(l => l + "\n")));
        var leaves = lines.Select(l => Cairn.Evidence.Merkle.MerkleTree.LeafHash(Encoding.UTF8.GetBytes(l))).ToList();
        File.WriteAllText(log.CheckpointPath, SignedNote.Sign(new Checkpoint(log.Origin, leaves.Count, Cairn.Evidence.Merkle.MerkleTree.Root(leaves)).Body, log.LoadSigningKey()));
        Assert.True(Verify(log).Ok);
        var r = Verify(log, saved);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("rewritten", StringComparison.Ordinal));
        _ = clock;
    }

    [Fact]
    public void Checkpoint_signed_by_another_key_fails()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var other = NoteKey.Generate(log.LoadPublicKey().Name);
        var body = Checkpoint.Parse(File.ReadAllText(log.CheckpointPath)).Body;
        File.WriteAllText(log.CheckpointPath, SignedNote.Sign(body, other));
        var r = Verify(log);
        Assert.False(r.Ok);
        Assert.Contains(r.Problems, p => p.Contains("signature", StringComparison.Ordinal));
    }

    [Fact]
    public void Checkpoint_that_does_not_match_the_records_fails_loudly()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var text = File.ReadAllText(log.CheckpointPath);
        File.WriteAllText(log.CheckpointPath, text.Replace("\n5\n", "\n6\n", StringComparison.Ordinal));
        Assert.False(Verify(log).Ok);
    }

    [Fact]
    public void Truncated_last_line_is_detected_and_repaired_by_the_next_append()
    {
        var (log, dir, _) = NewLog();
        using var _d = dir;
        var path = Segment(log);
        File.AppendAllText(path, "{\"kind\":\"backup\",\"res");
        var r = Verify(log);
        Assert.Contains(r.Problems, p => p.Contains("incomplete", StringComparison.Ordinal));
        var (seq, _) = log.Append(new JsonObject { ["kind"] = "verify", ["result"] = "pass" }, "t");
        Assert.Equal(5, seq);
        var after = Verify(log);
        Assert.True(after.Ok, string.Join("; ", after.Problems));
        Assert.Equal(6, after.Records);
    }

    [Fact]
    public void Missing_signing_key_is_a_clear_error()
    {
        var (log, dir, _) = NewLog(1);
        using var _d = dir;
        File.Delete(log.SigningKeyPath);
        var e = Assert.Throws<EvidenceException>(() => log.Append(new JsonObject { ["kind"] = "x" }, "t"));
        Assert.Contains("signing key", e.Message, StringComparison.Ordinal);
        Assert.True(Verify(log).Ok);
    }

    [Fact]
    public void Wrong_signing_key_is_refused()
    {
        var (log, dir, _) = NewLog(1);
        using var _d = dir;
        File.WriteAllText(log.SigningKeyPath, NoteKey.Generate("someone-else").SignerKey);
        Assert.Throws<EvidenceException>(() => log.Append(new JsonObject { ["kind"] = "x" }, "t"));
    }

    [Fact]
    public void Signing_key_file_is_private()
    {
        var (log, dir, _) = NewLog(0);
        using var _d = dir;
        var mode = File.GetUnixFileMode(log.SigningKeyPath);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, mode);
    }

    [Fact]
    public void Prune_refuses_young_records_and_keeps_the_tree_verifiable()
    {
        var (log, dir, clock) = NewLog(3);
        using var _d = dir;
        Assert.Throws<EvidenceException>(() => log.Prune(Start.AddMonths(1), new JsonObject(), "t"));
        clock.Advance(TimeSpan.FromDays(400));
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass" }, "t");
        var (segments, records) = log.Prune(Start.AddDays(35), new JsonObject(), "t");
        Assert.Equal(1, segments);
        Assert.Equal(3, records);
        var r = Verify(log);
        Assert.True(r.Ok, string.Join("; ", r.Problems));
        Assert.Equal(3, r.Pruned);
        Assert.Equal(5, r.Records); // three pruned, one backup, the signed evidence-prune statement
        Assert.Equal(3, r.PrunedBelow);
    }

    [Fact]
    public void Canonical_json_sorts_keys_and_escapes_minimally()
    {
        var o = new JsonObject { ["b"] = 1, ["a"] = "x\ny\u0001\"é€", ["c"] = new JsonArray(true, null, -5) };
        Assert.Equal("{\"a\":\"x\\ny\\u0001\\\"é€\",\"b\":1,\"c\":[true,null,-5]}", JsonCanonicalizer.CanonicalString(o));
        // RFC 8785 sorts by UTF-16 code units.
        var p = new JsonObject { ["\u20ac"] = 1, ["\r"] = 2, ["1"] = 3, ["\ud83d\ude00"] = 4, ["\u0080"] = 5, ["\u00f6"] = 6 };
        Assert.Equal("{\"\\r\":2,\"1\":3,\"\u0080\":5,\"\u00f6\":6,\"\u20ac\":1,\"\ud83d\ude00\":4}", JsonCanonicalizer.CanonicalString(p));
    }

    [Fact]
    public void Checkpoint_verifies_with_an_independent_Ed25519_implementation()
    {
        var (log, dir, _) = NewLog(2);
        using var _d = dir;
        var note = File.ReadAllText(log.CheckpointPath);
        var verifierKey = log.LoadPublicKey().VerifierKey;
        var script = Path.Combine(dir.Path, "check.py");
        File.WriteAllText(script, """
            import base64, hashlib, sys
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
            note = open(sys.argv[1], encoding="utf-8").read()
            name, keyhash, key = open(sys.argv[2]).read().strip().split("+", 2)
            raw = base64.b64decode(key)
            assert raw[0] == 1
            assert hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex() == keyhash
            text, sigs = note.split("\n\n", 1)
            line = sigs.strip().split("\n")[0]
            assert line.startswith("\u2014 " + name + " ")
            blob = base64.b64decode(line.rsplit(" ", 1)[1])
            assert blob[:4].hex() == keyhash
            Ed25519PublicKey.from_public_bytes(raw[1:]).verify(blob[4:], (text + "\n").encode())
            print("verified")
            """.Replace("\n            ", "\n", StringComparison.Ordinal));
        File.WriteAllText(Path.Combine(dir.Path, "key.txt"), verifierKey);
        var python = File.Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        var psi = new ProcessStartInfo(python, [script, log.CheckpointPath, Path.Combine(dir.Path, "key.txt")]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, output);
        Assert.Contains("verified", output, StringComparison.Ordinal);
        _ = note;
    }
}

public class EvidenceConcurrencyTests
{
    [Fact]
    public async Task Concurrent_appenders_never_interleave_or_lose_a_record()
    {
        using var dir = new TempDir();
        var folder = Path.Combine(dir.Path, "evidence");
        new EvidenceLog(folder, null, TimeProvider.System).Init("test/concurrent");
        await Task.WhenAll(Enumerable.Range(0, 4).Select(w => Task.Run(() =>
        {
            var log = new EvidenceLog(folder, null, TimeProvider.System);
            for (var i = 0; i < 25; i++)
            {
                log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["details"] = new JsonObject { ["writer"] = w, ["i"] = i } }, "t");
            }
        })));
        var check = new EvidenceLog(folder, null, TimeProvider.System);
        var r = LogVerifier.Verify(check, check.LoadPublicKey(), null);
        Assert.True(r.Ok, string.Join("; ", r.Problems));
        Assert.Equal(100, r.Records);
    }

    [Fact]
    public async Task Operations_record_evidence_including_failures()
    {
        using var dir = new TempDir();
        var env = new Dictionary<string, string> { ["CAIRN_REPOSITORY"] = dir.File("repo") };
        Assert.Equal(0, (await CairnProcess.RunAsync(["init", "--kdf-memory-mib", "8", "--kdf-iterations", "1"], env)).Code);
        await File.WriteAllBytesAsync(dir.File("f"), TestData.Rows(200_000, 3));
        Assert.Equal(0, (await CairnProcess.RunAsync(["repo", "put", "f", dir.File("f")], env)).Code);
        Assert.Equal(0, (await CairnProcess.RunAsync(["verify", "--read-data"], env)).Code);
        Assert.Equal(0, (await CairnProcess.RunAsync(["repo", "get", "f", dir.File("g")], env)).Code);
        Assert.Equal(0, (await CairnProcess.RunAsync(["prune"], env)).Code);
        var bad = new Dictionary<string, string>(env) { ["CAIRN_PASSPHRASE"] = "wrong" };
        Assert.Equal(Cairn.Cli.ExitCodes.WrongPassphrase, (await CairnProcess.RunAsync(["repo", "put", "f", dir.File("f")], bad)).Code);
        var (code, json, err) = await CairnProcess.RunAsync(["evidence", "list", "--json"], env);
        Assert.True(code == 0, err);
        var records = JsonNode.Parse(json)!.AsArray().Select(n => (n!["kind"]!.GetValue<string>(), n["result"]!.GetValue<string>())).ToList();
        Assert.Equal([("key-change", "pass"), ("backup", "pass"), ("verify", "pass"), ("restore", "pass"), ("prune", "pass"), ("backup", "error")], records);
        var (vcode, vout, _) = await CairnProcess.RunAsync(["evidence", "verify"], env);
        Assert.True(vcode == 0, vout);
        // list --json and show each append an evidence-read record (the list after the records it showed)
        Assert.Equal(0, (await CairnProcess.RunAsync(["evidence", "show", "1"], env)).Code);
        var (_, json2, _) = await CairnProcess.RunAsync(["evidence", "list", "--kind", "evidence-read", "--json"], env);
        Assert.Equal(["list --json", "show"], JsonNode.Parse(json2)!.AsArray().Select(r => r!["details"]!["command"]!.GetValue<string>()));
        // Without --json, bodies are not shown and nothing is recorded.
        var (_, table, _) = await CairnProcess.RunAsync(["evidence", "list"], env);
        Assert.DoesNotContain("pass", table, StringComparison.Ordinal);
        var (_, json3, _) = await CairnProcess.RunAsync(["evidence", "list", "--kind", "evidence-read", "--json"], env);
        Assert.Equal(3, JsonNode.Parse(json3)!.AsArray().Count);
    }
}
