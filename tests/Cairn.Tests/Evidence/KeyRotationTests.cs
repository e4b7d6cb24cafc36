using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Cairn.Evidence.Canonical;
using Cairn.Evidence.Log;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;
using Cairn.Operations.Monitoring;
using Cairn.Tests.Support;
using Microsoft.Extensions.Time.Testing;

namespace Cairn.Tests.Evidence;

/// <summary>
/// Signing-key rotation (docs/evidence.md, "Signing-key rotation"): a hand-over record whose checkpoint both keys sign; verifiers
/// pinning the old key follow it, verifiers pinning the new key say where their trust starts; forged, one-sided, retired-key and
/// truncated hand-overs are refused. Real folders and files; the CLI where a user would type the command.
/// </summary>
public class KeyRotationTests
{
    private static readonly DateTimeOffset Start = DateTimeOffset.Parse("2026-12-01T00:00:00Z", CultureInfo.InvariantCulture);

    private static (EvidenceLog Log, TempDir Dir, FakeTimeProvider Clock) NewLog(int records, DateTimeOffset? start = null)
    {
        var dir = new TempDir();
        var clock = new FakeTimeProvider(start ?? Start);
        var log = new EvidenceLog(Path.Combine(dir.Path, "evidence"), null, clock);
        log.Init("test.example/rotation");
        Append(log, clock, records);
        return (log, dir, clock);
    }

    private static void Append(EvidenceLog log, FakeTimeProvider clock, int records)
    {
        for (var i = 0; i < records; i++)
        {
            log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app" }, "cairn test");
            clock.Advance(TimeSpan.FromMinutes(10));
        }
    }

    private static string SavePublicKey(EvidenceLog log, TempDir dir, string name)
    {
        var path = dir.File(name);
        File.Copy(log.PublicKeyPath, path);
        return path;
    }

    private static EvidenceLog.KeyRotation Rotate(EvidenceLog log, bool keepOld = false)
        => log.RotateKey(new JsonObject { ["details"] = new JsonObject { ["reason"] = "test" } }, "cairn test", keepOld);

    /// <summary>Appends a line and signs a checkpoint covering it with <paramref name="keys"/>, as someone holding those keys (and not the current one) could.</summary>
    private static long ForgeAppend(EvidenceLog log, JsonObject record, params NoteKey[] keys)
    {
        var entries = log.ReadEntries(out _);
        record["seq"] = entries.Count;
        record["time"] = "2026-12-02T00:00:00.000Z";
        var line = JsonCanonicalizer.CanonicalString(record);
        var segment = Directory.GetFiles(log.LogFolder, "*.jsonl").Order(StringComparer.Ordinal).Last();
        File.AppendAllText(segment, line + "\n");
        var leaves = entries.Select(e => e.LeafHash).Append(MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line))).ToList();
        var note = SignedNote.Sign(new Checkpoint(log.Origin, leaves.Count, MerkleTree.Root(leaves)).Body, keys);
        File.WriteAllText(log.CheckpointPath, note);
        return entries.Count;
    }

    [Fact]
    public async Task Rotate_key_through_the_cli_hands_over_and_both_pins_verify_the_log_end_to_end()
    {
        var (log, dir, clock) = NewLog(4);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var oldSigner = File.ReadAllText(log.SigningKeyPath);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder }) { Time = clock };

        var (code, json, err) = await cli.RunAsync("evidence", "rotate-key", "--reason", "yearly", "--json");

        Assert.True(code == 0, json + err);
        Assert.DoesNotContain("PRIVATE", json + err, StringComparison.Ordinal);
        var r = JsonNode.Parse(json)!;
        var seq = r["seq"]!.GetValue<long>();
        Assert.Equal(4, seq);
        Assert.Null(r["kept_old_key"]);
        var oldKey = NoteKey.ParseVerifier(File.ReadAllText(oldPub));
        var newKey = NoteKey.ParseVerifier(r["new_key"]!.GetValue<string>());
        Assert.Equal(oldKey.VerifierKey, r["old_key"]!.GetValue<string>());
        // The new key is stored as the old one was; the old private key is gone (no copy beside it).
        Assert.NotEqual(oldSigner, File.ReadAllText(log.SigningKeyPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(log.SigningKeyPath));
        Assert.Equal(newKey.VerifierKey, NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath)).VerifierKey);
        Assert.DoesNotContain(Directory.GetFiles(Path.GetDirectoryName(log.SigningKeyPath)!), f => f.StartsWith(log.SigningKeyPath + ".", StringComparison.Ordinal));
        Assert.Equal(newKey.VerifierKey, File.ReadAllText(log.PublicKeyPath).Trim());

        // The hand-over record names both keys; its checkpoint carries both signatures.
        var handover = log.ReadEntries(out _)[(int)seq];
        Assert.Equal(EvidenceLog.HandoverKind, handover.Kind);
        Assert.Equal(oldKey.VerifierKey, handover.Record!["details"]!["old_key"]!.GetValue<string>());
        Assert.Equal(oldKey.Name, handover.Record!["details"]!["old_key_name"]!.GetValue<string>());
        Assert.Equal(Convert.ToHexStringLower(oldKey.KeyHash), handover.Record!["details"]!["old_key_id"]!.GetValue<string>());
        Assert.Equal(newKey.VerifierKey, handover.Record!["details"]!["new_key"]!.GetValue<string>());
        Assert.Equal("yearly", handover.Record!["details"]!["reason"]!.GetValue<string>());
        var cosigned = File.ReadAllText(log.HandoverCheckpointPath(seq));
        Assert.True(SignedNote.SignedBy(cosigned, oldKey));
        Assert.True(SignedNote.SignedBy(cosigned, newKey));

        // After it, the new key alone signs.
        Append(log, clock, 3);
        var newest = File.ReadAllText(log.CheckpointPath);
        Assert.True(SignedNote.SignedBy(newest, newKey));
        Assert.False(SignedNote.SignedBy(newest, oldKey));

        // A verifier pinning the old key follows the hand-over.
        (code, var output, err) = await cli.RunAsync("evidence", "verify", "--public-key", oldPub);
        Assert.True(code == 0, output + err);
        Assert.Contains("OK: 8 record(s)", output, StringComparison.Ordinal);
        Assert.Contains("trust starts at record 0", output, StringComparison.Ordinal);
        // One pinning the new key verifies from the hand-over and says so.
        (code, output, err) = await cli.RunAsync("evidence", "verify", "--public-key", log.PublicKeyPath);
        Assert.True(code == 0, output + err);
        Assert.Contains("trust starts at record 4", output, StringComparison.Ordinal);
        // Monitoring pinned to the old key trusts the whole log, and the replaced evidence.pub is no finding.
        var reading = EvidenceHealth.Read(log, oldPub);
        Assert.Equal(8, reading.Entries.Count);
        Assert.Equal(HealthState.Ok, Assert.Single(reading.Findings).State);
    }

    [Fact]
    public void Several_rotations_in_a_row_verify_from_each_key_and_keep_old_keeps_the_retired_key_private()
    {
        var (log, dir, clock) = NewLog(2);
        using var _d = dir;
        var pubs = new List<string> { SavePublicKey(log, dir, "k0.pub") };
        var seqs = new List<long>();
        for (var i = 1; i <= 3; i++)
        {
            var r = Rotate(log, keepOld: i == 2);
            seqs.Add(r.Seq);
            if (i == 2)
            {
                Assert.NotNull(r.KeptOldKey);
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(r.KeptOldKey!));
                Assert.Equal(r.OldKey.VerifierKey, NoteKey.ParseSigner(File.ReadAllText(r.KeptOldKey!)).VerifierKey);
            }
            pubs.Add(SavePublicKey(log, dir, $"k{i}.pub"));
            Append(log, clock, 2);
        }

        for (var i = 0; i < pubs.Count; i++)
        {
            var v = LogVerifier.Verify(log, log.LoadPublicKey(pubs[i]), null);
            Assert.True(v.Ok, $"pinned k{i}: " + string.Join("; ", v.Problems));
            Assert.Equal(4, v.Keys.Count);
            Assert.Equal(seqs, v.Handovers.ToList());
            Assert.Equal(i == 0 ? 0 : seqs[i - 1], v.TrustFrom);
        }
    }

    [Fact]
    public async Task A_hand_over_signed_by_the_new_key_alone_is_refused()
    {
        var (log, dir, _) = NewLog(3);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log);
        // Someone with the new key alone re-signs the hand-over checkpoint (as a thief who never held the old key would have to).
        var newKey = NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath));
        var body = KeyChainBody(File.ReadAllText(log.HandoverCheckpointPath(r.Seq)));
        File.WriteAllText(log.HandoverCheckpointPath(r.Seq), SignedNote.Sign(body, newKey));
        File.WriteAllText(log.CheckpointPath, SignedNote.Sign(body, newKey));

        var v = LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null);

        Assert.False(v.Ok);
        Assert.Contains(v.Problems, p => p.Contains($"hand-over at record {r.Seq} is signed by the new key", StringComparison.Ordinal) && p.Contains("alone", StringComparison.Ordinal));
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var (code, output, err) = await cli.RunAsync("evidence", "verify", "--public-key", oldPub);
        Assert.True(code == Cairn.Cli.ExitCodes.Damaged, output + err);
        Assert.Contains("alone", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_checkpoint_after_the_hand_over_signed_with_the_old_key_is_refused_and_the_old_key_cannot_append()
    {
        var (log, dir, _) = NewLog(3);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log, keepOld: true);
        var oldSigner = NoteKey.ParseSigner(File.ReadAllText(r.KeptOldKey!));
        var newPub = SavePublicKey(log, dir, "new.pub");

        // Whoever kept the old key put it back: the log refuses to sign with a retired key.
        var current = File.ReadAllText(log.SigningKeyPath);
        File.WriteAllText(log.SigningKeyPath, oldSigner.SignerKey + "\n");
        File.WriteAllText(log.PublicKeyPath, oldSigner.VerifierKey + "\n");
        var refused = Assert.Throws<EvidenceException>(() => log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "pass" }, "t"));
        Assert.Contains($"handed over to the key {r.NewKey.VerifierKey} at record {r.Seq}", refused.Message, StringComparison.Ordinal);
        File.WriteAllText(log.SigningKeyPath, current);
        File.WriteAllText(log.PublicKeyPath, r.NewKey.VerifierKey + "\n");

        // The thief extends the log by hand and signs with the old key.
        ForgeAppend(log, new JsonObject { ["kind"] = "backup", ["result"] = "pass", ["database"] = "app" }, oldSigner);

        foreach (var pin in new[] { oldPub, newPub })
        {
            var v = LogVerifier.Verify(log, log.LoadPublicKey(pin), null);
            Assert.False(v.Ok);
            Assert.Contains(v.Problems, p => p.Contains($"signed by key {KeyChain.Id(oldSigner)}, which was retired at record {r.Seq}", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void A_second_hand_over_from_the_retired_key_is_refused()
    {
        var (log, dir, clock) = NewLog(3);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log, keepOld: true);
        Append(log, clock, 1);
        var oldSigner = NoteKey.ParseSigner(File.ReadAllText(r.KeptOldKey!));
        var thief = NoteKey.Generate(oldSigner.Name);

        // The retired key's holder hands the log over to a key of their own, co-signed as a real hand-over is.
        var seq = ForgeAppend(log, new JsonObject
        {
            ["kind"] = EvidenceLog.HandoverKind,
            ["result"] = "pass",
            ["details"] = new JsonObject { ["old_key"] = oldSigner.VerifierKey, ["new_key"] = thief.VerifierKey },
        }, oldSigner, thief);
        File.Copy(log.CheckpointPath, log.HandoverCheckpointPath(seq));

        var v = LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null);

        Assert.False(v.Ok);
        Assert.Contains(v.Problems, p => p.Contains($"record {seq} is a second hand-over from key {KeyChain.Id(oldSigner)}, which was retired at record {r.Seq}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_log_truncated_around_the_hand_over_is_refused_for_both_pins()
    {
        var (log, dir, clock) = NewLog(3);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log);
        Append(log, clock, 2);
        // The hand-over record and everything after it are cut off; the newest checkpoint stays.
        var segment = Directory.GetFiles(log.LogFolder, "*.jsonl").Single();
        File.WriteAllLines(segment, File.ReadAllLines(segment).Take((int)r.Seq));

        foreach (var pin in new[] { oldPub, log.PublicKeyPath })
        {
            var v = LogVerifier.Verify(log, log.LoadPublicKey(pin), null);
            Assert.False(v.Ok);
            Assert.Contains(v.Problems, p => p.Contains("truncated around the hand-over at record " + r.Seq, StringComparison.Ordinal));
        }
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var (code, output, err) = await cli.RunAsync("evidence", "verify", "--public-key", oldPub);
        Assert.True(code == Cairn.Cli.ExitCodes.Damaged, output + err);
        Assert.Contains("truncated around the hand-over", output, StringComparison.Ordinal);
    }

    [Fact]
    public void A_rotation_interrupted_after_its_co_signed_checkpoint_is_finished_by_the_next_append_and_one_before_it_is_undone()
    {
        var (log, dir, clock) = NewLog(2);
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log, keepOld: true);
        // The state of a crash between the co-signed checkpoint and the key's installation: the old key in place, the new one waiting.
        File.WriteAllText(log.NextKeyPath, File.ReadAllText(log.SigningKeyPath));
        File.WriteAllText(log.SigningKeyPath, File.ReadAllText(r.KeptOldKey!));
        File.WriteAllText(log.PublicKeyPath, r.OldKey.VerifierKey + "\n");

        Append(log, clock, 1);

        Assert.False(File.Exists(log.NextKeyPath));
        Assert.Equal(r.NewKey.VerifierKey, NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath)).VerifierKey);
        Assert.True(SignedNote.SignedBy(File.ReadAllText(log.CheckpointPath), r.NewKey));
        Assert.True(LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null).Ok);

        // A key planted beside ours with a checkpoint it signed itself is no hand-over: it is removed, not installed.
        var planted = NoteKey.Generate(r.NewKey.Name);
        var current = File.ReadAllText(log.CheckpointPath);
        File.WriteAllText(log.NextKeyPath, planted.SignerKey + "\n");
        File.WriteAllText(log.CheckpointPath, SignedNote.Sign(KeyChainBody(current), NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath)), planted));
        Append(log, clock, 1);
        Assert.False(File.Exists(log.NextKeyPath));
        Assert.Equal(r.NewKey.VerifierKey, NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath)).VerifierKey);

        // A waiting key the checkpoint never carried: the rotation did not happen, the current key stays.
        File.WriteAllText(log.NextKeyPath, NoteKey.Generate("stray").SignerKey + "\n");
        Append(log, clock, 1);
        Assert.False(File.Exists(log.NextKeyPath));
        Assert.Equal(r.NewKey.VerifierKey, NoteKey.ParseSigner(File.ReadAllText(log.SigningKeyPath)).VerifierKey);
        Assert.True(LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null).Ok);
    }

    [Fact]
    public void A_pruned_hand_over_keeps_its_body_beside_its_checkpoint_so_the_old_pin_still_follows_it()
    {
        var (log, dir, clock) = NewLog(2, DateTimeOffset.Parse("2024-01-10T00:00:00Z", CultureInfo.InvariantCulture));
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        var r = Rotate(log);
        clock.Advance(TimeSpan.FromDays(800));
        Append(log, clock, 1);
        var (segments, records) = log.Prune(DateTimeOffset.Parse("2024-06-01T00:00:00Z", CultureInfo.InvariantCulture), new JsonObject(), "t");
        Assert.Equal(1, segments);
        Assert.Equal(3, records);
        Assert.True(log.ReadEntries(out _)[(int)r.Seq].Pruned);

        var v = LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null);
        Assert.True(v.Ok, string.Join("; ", v.Problems));
        Assert.Equal(new List<long> { r.Seq }, v.Handovers.ToList());

        File.Delete(Path.ChangeExtension(log.HandoverCheckpointPath(r.Seq), ".record"));
        v = LogVerifier.Verify(log, log.LoadPublicKey(oldPub), null);
        Assert.False(v.Ok);
        Assert.Contains(v.Problems, p => p.Contains($"record {r.Seq} was pruned and its hand-over body", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_export_right_after_a_rotation_carries_the_hand_over_and_openssl_verifies_the_new_key_s_signature()
    {
        var (log, dir, _) = NewLog(2);
        using var _d = dir;
        var r = Rotate(log);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var export = dir.File("export");

        var (code, output, err) = await cli.RunAsync("evidence", "export", "--to", export);

        Assert.True(code == 0, output + err);
        Assert.Equal(File.ReadAllText(log.HandoverCheckpointPath(r.Seq)), File.ReadAllText(Path.Combine(export, "handovers", Path.GetFileName(log.HandoverCheckpointPath(r.Seq)))));
        // The newest checkpoint is the co-signed one (old key's line first): checkpoint.sig must be the new key's signature.
        var psi = new System.Diagnostics.ProcessStartInfo("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", "public-key.pem", "-rawin", "-in", "checkpoint-body.txt", "-sigfile", "checkpoint.sig"])
        {
            WorkingDirectory = export,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var said = await p.StandardOutput.ReadToEndAsync() + await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.True(p.ExitCode == 0, said);
        Assert.Contains("Signature Verified Successfully", said, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_py_follows_two_hand_overs_from_an_export_and_openssl_checks_both_signatures_of_each()
    {
        var (log, dir, clock) = NewLog(3);
        using var _d = dir;
        var oldPub = File.ReadAllText(log.PublicKeyPath).Trim();
        var first = Rotate(log);
        Append(log, clock, 4);
        var second = Rotate(log);
        Append(log, clock, 2);
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder });
        var export = dir.File("export");
        var (code, output, err) = await cli.RunAsync("evidence", "export", "--to", export);
        Assert.True(code == 0, output + err);

        var (py, said) = await Run(export, "/usr/bin/python3", "verify.py");
        Assert.True(py == 0, said);
        Assert.Contains($"OK  hand-over {first.Seq}: ", said, StringComparison.Ordinal);
        Assert.Contains($"OK  hand-over {second.Seq}: ", said, StringComparison.Ordinal);
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(export, "handovers.json")))!["handovers"]!.AsArray();
        Assert.Equal(oldPub, doc[0]!["old_key"]!.GetValue<string>());
        Assert.Equal(doc[0]!["new_key"]!.GetValue<string>(), doc[1]!["old_key"]!.GetValue<string>());
        Assert.NotEmpty(doc[0]!["consistency_proof"]!.AsArray());
        // Exactly the hand-over commands VERIFYING.md gives, with /bin/sh and openssl: both signatures of each hand-over.
        var guide = File.ReadAllText(Path.Combine(export, "VERIFYING.md"));
        var signatures = System.Text.RegularExpressions.Regex.Matches(guide, "```sh\n(.*?)```", System.Text.RegularExpressions.RegexOptions.Singleline)
            .SelectMany(m => m.Groups[1].Value.Split('\n')).Where(l => l.StartsWith("openssl pkeyutl -verify -pubin -inkey handovers/", StringComparison.Ordinal)).ToList();
        Assert.Equal(4, signatures.Count);
        Assert.Contains($"handovers/{first.Seq:D12}-old.pem", signatures[0], StringComparison.Ordinal);
        Assert.Contains($"handovers/{second.Seq:D12}-new.sig", signatures[3], StringComparison.Ordinal);
        foreach (var command in signatures)
        {
            var (ok, text) = await Run(export, "/bin/sh", "-c", command);
            Assert.True(ok == 0 && text.Contains("Signature Verified Successfully", StringComparison.Ordinal), $"{command}: {text}");
        }
        // A signature that is not the old key's fails openssl: the new key's signature checked against the old key.
        var (swapped, said2) = await Run(export, "/bin/sh", "-c", signatures[0].Replace("-old.sig", "-new.sig", StringComparison.Ordinal));
        Assert.True(swapped != 0, said2);

        // Each check can fail: a consistency proof off by one hash, a record naming another key, a chain that skips a key.
        var original = File.ReadAllText(Path.Combine(export, "handovers.json"));
        var bent = JsonNode.Parse(original)!;
        var proof = bent["handovers"]![0]!["consistency_proof"]!.AsArray();
        proof[0] = new string('0', 64);
        File.WriteAllText(Path.Combine(export, "handovers.json"), bent.ToJsonString());
        (py, said) = await Run(export, "/usr/bin/python3", "verify.py");
        Assert.Equal(1, py);
        Assert.Contains($"BAD hand-over {first.Seq}: the co-signed checkpoint's tree is not a prefix", said, StringComparison.Ordinal);

        bent = JsonNode.Parse(original)!;
        bent["handovers"]![1]!["record"] = bent["handovers"]![1]!["record"]!.GetValue<string>().Replace(doc[1]!["new_key"]!.GetValue<string>(), oldPub, StringComparison.Ordinal);
        bent["handovers"]![1]!["new_key"] = oldPub;
        File.WriteAllText(Path.Combine(export, "handovers.json"), bent.ToJsonString());
        (py, said) = await Run(export, "/usr/bin/python3", "verify.py");
        Assert.Equal(1, py);
        Assert.Contains($"BAD hand-over {second.Seq}: the hand-over record is not record {second.Seq}", said, StringComparison.Ordinal);
        Assert.Contains("BAD hand-overs: the last hand-over is to", said, StringComparison.Ordinal);

        bent = JsonNode.Parse(original)!;
        bent["handovers"]!.AsArray().RemoveAt(0);
        File.WriteAllText(Path.Combine(export, "handovers.json"), bent.ToJsonString());
        (py, said) = await Run(export, "/usr/bin/python3", "verify.py");
        Assert.Equal(0, py); // the export still proves the newer hand-over; the auditor compares old_key with the key they hold
        Assert.DoesNotContain($"hand-over {first.Seq}", said, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Out)> Run(string folder, string program, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(program, args) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = await p.StandardOutput.ReadToEndAsync();
        var e = await p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, o + e);
    }

    [Fact]
    public async Task Reports_made_before_and_after_a_rotation_chain_and_verify_with_the_old_key_pinned()
    {
        var (log, dir, clock) = NewLog(0, DateTimeOffset.Parse("2026-11-05T00:00:00Z", CultureInfo.InvariantCulture));
        using var _d = dir;
        var oldPub = SavePublicKey(log, dir, "old.pub");
        await File.WriteAllTextAsync(dir.File("cairn.yaml"), "databases:\n  app:\n    connection: \"host=/nonexistent dbname=app\"\n");
        var cli = new CliRunner(new Dictionary<string, string> { ["CAIRN_EVIDENCE"] = log.Folder, ["CAIRN_CONFIG"] = dir.File("cairn.yaml"), ["CAIRN_EVIDENCE_PUBLIC_KEY"] = oldPub }) { Time = clock };
        Append(log, clock, 3);
        clock.SetUtcNow(DateTimeOffset.Parse("2026-12-01T06:00:00Z", CultureInfo.InvariantCulture));
        var (code, output, err) = await cli.RunAsync("report", "--month", "2026-11", "--format", "json", "--out", dir.File("november.json"));
        Assert.True(code == 0, output + err);

        Rotate(log);
        Append(log, clock, 2);
        clock.SetUtcNow(DateTimeOffset.Parse("2027-01-01T06:00:00Z", CultureInfo.InvariantCulture));
        // December's report proves the log extends November's checkpoint, which the retired key signed.
        (code, output, err) = await cli.RunAsync("report", "--month", "2026-12", "--format", "json", "--out", dir.File("december.json"));
        Assert.True(code == 0, output + err);

        foreach (var file in new[] { "november.json", "december.json" })
        {
            (code, output, err) = await cli.RunAsync("report", "verify", dir.File(file));
            Assert.True(code == 0, file + ": " + output + err);
        }
        Assert.NotNull(JsonNode.Parse(File.ReadAllText(dir.File("december.json")))!["proof"]!["previous"]);
    }

    private static string KeyChainBody(string note) => note[..(note.LastIndexOf("\n\n", StringComparison.Ordinal) + 1)];
}
