using System.Text;
using System.Text.Json.Nodes;
using Cairn.Evidence.Log;
using Cairn.Evidence.Notes;

namespace Cairn.Fuzz.Targets;

/// <summary>
/// The evidence log, as anyone who can write its folder (but holds no signing key) can change it: record lines,
/// pruned segments (leaf hashes), checkpoints (signed notes, C2SP checkpoints), verifier and signer keys.
/// Verification must report problems, never throw anything but an <see cref="EvidenceException"/>.
/// </summary>
internal static class EvidenceTargets
{
    private static readonly Type[] Errors = [typeof(EvidenceException)];

    public static IEnumerable<FuzzTarget> All()
    {
        yield return new FuzzTarget("evidence-segment", "a record segment (log/*.jsonl) -> LogVerifier.Verify (with --against) and ReadVerified", Segment, Errors) { Dictionary = ["\"seq\"", "\"kind\"", "\"evidence-prune\"", "\"details\"", "\"pruned_below\"", "\"time\"", "\"result\"", "1e400", "1.5", "-1", "{}", "null"] };
        yield return new FuzzTarget("evidence-leaves", "a pruned segment's leaf hashes (log/*.leaves) -> LogVerifier.Verify and ReadVerified", Leaves, Errors);
        yield return new FuzzTarget("checkpoint", "the checkpoint file (a C2SP signed note holding a tlog checkpoint) -> LogVerifier.Verify, SignedNote.Open, Checkpoint.Parse", CheckpointTarget, Errors) { Dictionary = ["\u2014 ", "\n\n", "cairn.evidence/fuzz", "+", "AAAA"] };
        yield return new FuzzTarget("note-key", "a verifier or signer key file (evidence.pub, the .key, a pinned key) -> NoteKey.ParseVerifier/ParseSigner, EvidenceLog.TrustedPublicKey", NoteKeyTarget, [typeof(FormatException), typeof(EvidenceException)]) { Dictionary = ["PRIVATE+KEY+", "+", "AQ", "=="] };
    }

    private const string FixedSigner = "PRIVATE+KEY+cairn.evidence-fuzz+4c31bf62+AQfhQx2NfKuaOLzlHMN9I/4420hCAO9ritrSezKuIAOH";

    /// <summary>A real log made once: records (two years old, so they can be pruned), a signed prune statement, more records.</summary>
    internal static readonly Lazy<(string Folder, NoteKey Key, string Against)> Log = new(Create);

    private sealed class Clock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;

        public override DateTimeOffset GetUtcNow() => Now;
    }

    private static (string, NoteKey, string) Create()
    {
        var folder = Path.Combine(Directory.Exists("/dev/shm") ? "/dev/shm" : Path.GetTempPath(), $"cairn-fuzz-{Environment.ProcessId}-evidence-base");
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
        File.Delete(folder + ".key");
        // Made once per process and removed when it exits (each CI run would otherwise leave one in /dev/shm).
        AppDomain.CurrentDomain.ProcessExit += (_, _) => Remove(folder);
        var clock = new Clock(new DateTimeOffset(2023, 1, 10, 3, 0, 0, TimeSpan.Zero));
        var log = new EvidenceLog(folder, null, clock);
        log.Init("cairn.evidence/fuzz");
        // A fixed key (a fuzz key, it signs nothing else), so committed checkpoints pass the signature check.
        var key = NoteKey.ParseSigner(FixedSigner);
        File.WriteAllText(log.SigningKeyPath, key.SignerKey + "\n");
        File.WriteAllText(log.PublicKeyPath, key.VerifierKey + "\n");
        var empty = SignedNote.Sign(new Checkpoint("cairn.evidence/fuzz", 0, Cairn.Evidence.Merkle.MerkleTree.Root([])).Body, key);
        File.WriteAllText(log.CheckpointPath, empty);
        foreach (var daily in Directory.EnumerateFiles(Path.Combine(folder, "checkpoints")))
        {
            File.WriteAllText(daily, empty);
        }
        for (var i = 0; i < 3; i++)
        {
            log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "ok", ["database"] = "app", ["details"] = new JsonObject { ["snapshot"] = $"{i:x8}" } }, "cairn fuzz");
        }
        clock.Now = new DateTimeOffset(2023, 2, 10, 3, 0, 0, TimeSpan.Zero);
        log.Append(new JsonObject { ["kind"] = "drill", ["result"] = "fail", ["database"] = "app" }, "cairn fuzz");
        var against = Path.Combine(Path.GetDirectoryName(folder)!, Path.GetFileName(folder) + ".against");
        File.Copy(log.CheckpointPath, against, overwrite: true);
        clock.Now = new DateTimeOffset(2025, 3, 1, 3, 0, 0, TimeSpan.Zero);
        log.Prune(new DateTimeOffset(2023, 2, 1, 0, 0, 0, TimeSpan.Zero), new JsonObject { ["kind"] = "evidence-prune" }, "cairn fuzz");
        log.Append(new JsonObject { ["kind"] = "backup", ["result"] = "ok", ["database"] = "app" }, "cairn fuzz");
        return (folder, key, against);
    }

    private static void Remove(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
            File.Delete(folder + ".key");
            File.Delete(Path.Combine(Path.GetDirectoryName(folder)!, Path.GetFileName(folder) + ".against"));
        }
        catch (IOException)
        {
        }
    }

    /// <summary>A copy of the log in a scratch folder, with one file replaced, verified the ways readers do.</summary>
    private static void WithFile(Func<string, string> pick, byte[] input)
    {
        var (folder, key, against) = Log.Value;
        using var scratch = new Scratch("evidence");
        var copy = Path.Combine(scratch.Target);
        CopyFolder(folder, copy);
        var path = pick(copy);
        File.WriteAllBytes(path, input);
        var log = new EvidenceLog(copy, Path.Combine(scratch.Folder, "no.key"), TimeProvider.System);
        _ = LogVerifier.Verify(log, key, against);
        _ = LogVerifier.ReadVerified(log, key);
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var dest = Path.Combine(to, Path.GetRelativePath(from, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(f, dest);
        }
    }

    internal static string SegmentOf(string copy) => Directory.EnumerateFiles(Path.Combine(copy, "log"), "*.jsonl").Order(StringComparer.Ordinal).Last();

    internal static string LeavesOf(string copy) => Directory.EnumerateFiles(Path.Combine(copy, "log"), "*.leaves").Order(StringComparer.Ordinal).First();

    private static void Segment(byte[] input) => WithFile(SegmentOf, input);

    private static void Leaves(byte[] input) => WithFile(LeavesOf, input);

    private static void CheckpointTarget(byte[] input)
    {
        var (_, key, _) = Log.Value;
        try
        {
            _ = Checkpoint.Parse(SignedNote.Open(Encoding.UTF8.GetString(input), key));
        }
        catch (InvalidDataException)
        {
            // What readers catch: a malformed or unsigned checkpoint is a problem they report.
        }
        WithFile(c => Path.Combine(c, "checkpoint"), input);
    }

    private static void NoteKeyTarget(byte[] input)
    {
        var text = Encoding.UTF8.GetString(input);
        try
        {
            var k = NoteKey.ParseVerifier(text);
            _ = k.Verify("x\n"u8.ToArray(), new byte[64]);
        }
        catch (FormatException)
        {
        }
        try
        {
            _ = NoteKey.ParseSigner(text);
        }
        catch (FormatException)
        {
        }
        var (folder, _, _) = Log.Value;
        using var scratch = new Scratch("keys");
        CopyFolder(folder, scratch.Target);
        File.WriteAllBytes(Path.Combine(scratch.Target, "evidence.pub"), input);
        File.WriteAllBytes(Path.Combine(scratch.Folder, "signing.key"), input);
        var log = new EvidenceLog(scratch.Target, Path.Combine(scratch.Folder, "signing.key"), TimeProvider.System);
        var (key, _) = log.TrustedPublicKey(null);
        _ = LogVerifier.ReadVerified(log, key);
    }
}
