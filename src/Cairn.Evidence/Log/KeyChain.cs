using System.Globalization;
using System.Text;
using System.Text.Json;
using Cairn.Evidence.Merkle;
using Cairn.Evidence.Notes;

namespace Cairn.Evidence.Log;

/// <summary>One signing-key hand-over: the record at <see cref="Seq"/> names both keys; the checkpoint of size Seq + 1 carries both signatures.</summary>
public sealed record KeyHandover(long Seq, NoteKey Old, NoteKey New);

/// <summary>
/// The signing keys of a log as a verifier holding one pinned key may follow them (docs/evidence.md, "Signing-key rotation").
/// Each <c>evidence-key-rotation</c> record names the old and the new key; the checkpoint covering exactly up to that record
/// (kept in <c>handovers/&lt;seq&gt;.txt</c>) must be signed by both. Starting from the pinned key, a hand-over is followed
/// only when it is from the key trusted at that point and both signatures verify; after it, only the new key signs.
/// </summary>
public sealed class KeyChain
{
    private readonly List<(NoteKey Key, long From, long Until)> _ranges = [];

    private KeyChain(NoteKey pinned)
    {
        Pinned = pinned;
    }

    public NoteKey Pinned { get; }

    /// <summary>Every hand-over found, in log order (also those before the pinned key came in).</summary>
    public List<KeyHandover> Handovers { get; } = [];

    /// <summary>The seq of the hand-over that introduced the pinned key (0 when it is the log's first key).</summary>
    public long TrustFrom { get; private set; }

    /// <summary>The key that must sign checkpoints after the last followed hand-over.</summary>
    public NoteKey Current { get; private set; } = null!;

    public List<string> Problems { get; } = [];

    /// <summary>The keys in the order they signed, as <c>name+hash</c>.</summary>
    public IReadOnlyList<string> KeyIds => [.. (Handovers.Count == 0 ? [Pinned] : Handovers.Select(h => h.Old).Append(Handovers[^1].New)).Select(Id)];

    public static string Id(NoteKey k) => $"{k.Name}+{Convert.ToHexStringLower(k.KeyHash)}";

    /// <summary>The key a checkpoint of <paramref name="size"/> records must carry, on the trusted part of the chain; null before the trust starts.</summary>
    public NoteKey? KeyFor(long size)
    {
        NoteKey? key = null;
        foreach (var (k, from, until) in _ranges)
        {
            if (size >= from && size <= until)
            {
                key = k; // the newest key valid at that size: at a hand-over both are, and the new one is asked for
            }
        }
        return key;
    }

    /// <summary>A retired key (on the chain, no longer valid at <paramref name="size"/>) that signed <paramref name="note"/>, with the hand-over that retired it.</summary>
    public (NoteKey Key, KeyHandover Handover)? RetiredSigner(string note, long size)
    {
        foreach (var h in Handovers)
        {
            if (size > h.Seq + 1 && SignedNote.SignedBy(note, h.Old))
            {
                return (h.Old, h);
            }
        }
        return null;
    }

    /// <summary>Opens a checkpoint signed by the key valid at its size on the chain (also before the trust start: those keys are vouched for by the co-signed hand-overs).</summary>
    public Checkpoint OpenAnySize(string note)
    {
        InvalidDataException? first = null;
        var size = Checkpoint.Parse(Body(note)).Size;
        foreach (var (k, from, until) in AllRanges())
        {
            if (size < from || size > until)
            {
                continue;
            }
            try
            {
                return Checkpoint.Parse(SignedNote.Open(note, k));
            }
            catch (InvalidDataException e)
            {
                first ??= e;
            }
        }
        throw first ?? new InvalidDataException($"no key of the log's chain ({string.Join(" -> ", KeyIds)}) signs checkpoints of {size} records");
    }

    private IEnumerable<(NoteKey Key, long From, long Until)> AllRanges()
    {
        if (Handovers.Count == 0)
        {
            return _ranges;
        }
        var all = new List<(NoteKey, long, long)>();
        long from = 0;
        foreach (var h in Handovers)
        {
            all.Add((h.Old, from, h.Seq + 1));
            from = h.Seq + 1;
        }
        all.Add((Handovers[^1].New, from, long.MaxValue));
        return all;
    }

    /// <summary>
    /// Builds the chain from <paramref name="pinned"/> over the log's hand-over records. <paramref name="leaves"/> are the log's
    /// leaf hashes: each co-signed checkpoint must hash to the log's prefix, so the hand-over record itself is proven.
    /// </summary>
    public static KeyChain Build(EvidenceLog log, IReadOnlyList<LogEntry> entries, IReadOnlyList<byte[]> leaves, NoteKey pinned)
    {
        var chain = new KeyChain(pinned) { Current = pinned };
        var found = ReadHandovers(log, entries, leaves, chain.Problems);
        chain.Handovers.AddRange(found);
        // Where the pinned key comes in: the hand-over naming it as the new key, else it must be the log's first key.
        var entry = found.FindIndex(h => h.New.VerifierKey == pinned.VerifierKey);
        var start = entry + 1;
        chain.TrustFrom = entry >= 0 ? found[entry].Seq : 0;
        long from = entry >= 0 ? found[entry].Seq + 1 : 0;
        var retired = new Dictionary<string, long>(StringComparer.Ordinal);
        for (var i = 0; i < start; i++)
        {
            retired[found[i].Old.VerifierKey] = found[i].Seq;
        }
        var current = pinned;
        for (var i = start; i < found.Count; i++)
        {
            var h = found[i];
            if (h.Old.VerifierKey != current.VerifierKey)
            {
                chain.Problems.Add(retired.TryGetValue(h.Old.VerifierKey, out var at)
                    ? $"record {h.Seq} is a second hand-over from key {Id(h.Old)}, which was retired at record {at}: whoever still holds a retired key cannot hand the log over again; only the current key {Id(current)} may"
                    : i == 0 && entry < 0
                        ? $"record {h.Seq} hands the log over from key {Id(h.Old)}, but the key you trust is {Id(pinned)}: it is neither this log's first key nor introduced by a hand-over. Pin the log's first key (or a key a hand-over introduced)"
                        : $"record {h.Seq} hands the log over from key {Id(h.Old)}, but the key trusted at that point is {Id(current)}: a forged hand-over");
                break;
            }
            chain._ranges.Add((current, from, h.Seq + 1));
            retired[current.VerifierKey] = h.Seq;
            current = h.New;
            from = h.Seq + 1;
        }
        chain._ranges.Add((current, from, long.MaxValue));
        chain.Current = current;
        return chain;
    }

    /// <summary>
    /// The hand-overs whose record and co-signed checkpoint both check out; the others are problems (and end the list there,
    /// since no key after a broken hand-over can be trusted from the pinned one).
    /// </summary>
    private static List<KeyHandover> ReadHandovers(EvidenceLog log, IReadOnlyList<LogEntry> entries, IReadOnlyList<byte[]> leaves, List<string> problems)
    {
        var seqs = new SortedSet<long>(entries.Where(e => e.Kind == EvidenceLog.HandoverKind).Select(e => e.Seq));
        if (Directory.Exists(log.HandoverFolder))
        {
            foreach (var f in Directory.EnumerateFiles(log.HandoverFolder, "*.txt"))
            {
                if (long.TryParse(Path.GetFileNameWithoutExtension(f), NumberStyles.None, CultureInfo.InvariantCulture, out var s))
                {
                    seqs.Add(s);
                }
            }
        }
        var result = new List<KeyHandover>();
        foreach (var seq in seqs)
        {
            var file = log.HandoverCheckpointPath(seq);
            var name = Path.GetRelativePath(log.Folder, file);
            if (seq >= entries.Count)
            {
                problems.Add($"the co-signed hand-over checkpoint {name} covers {seq + 1} records but the log holds {entries.Count}: the log was truncated around the hand-over at record {seq}");
                break;
            }
            var e = entries[(int)seq];
            var record = e.Record ?? ParseKept(ReadKeptRecord(log, seq, e.LeafHash));
            var kind = record?["kind"] is { } k && k.GetValueKind() == JsonValueKind.String ? k.GetValue<string>() : null;
            if (kind != EvidenceLog.HandoverKind)
            {
                problems.Add(e.Pruned && record is null
                    ? $"record {seq} was pruned and its hand-over body (handovers/{seq:D12}.record) is missing or does not hash to its leaf: the key hand-over there cannot be followed"
                    : $"{name} is a co-signed hand-over checkpoint, but record {seq} is not a hand-over record (kind {kind ?? "unreadable"}): a record was replaced or removed");
                break;
            }
            NoteKey oldKey, newKey;
            try
            {
                oldKey = NoteKey.ParseVerifier(Text(record!, "old_key"));
                newKey = NoteKey.ParseVerifier(Text(record!, "new_key"));
            }
            catch (FormatException x)
            {
                problems.Add($"record {seq} is a hand-over whose keys cannot be read ({x.Message})");
                break;
            }
            if (!File.Exists(file))
            {
                problems.Add($"record {seq} hands the signing key over, but its co-signed checkpoint {name} is missing: the hand-over cannot be checked (restore the file from a copy of the folder)");
                break;
            }
            var note = EvidenceLog.ReadCheckpointFile(file);
            Checkpoint cp;
            try
            {
                cp = Checkpoint.Parse(Body(note));
            }
            catch (InvalidDataException x)
            {
                problems.Add($"{name}: {x.Message}");
                break;
            }
            if (cp.Size != seq + 1 || cp.Origin != log.Origin)
            {
                problems.Add($"{name} is not the checkpoint of the hand-over at record {seq} (it covers {cp.Size} records of origin '{cp.Origin}')");
                break;
            }
            if (!MerkleTree.Root([.. leaves.Take((int)cp.Size)]).AsSpan().SequenceEqual(cp.Root))
            {
                problems.Add($"the log's first {cp.Size} records do not hash to the root of the co-signed hand-over checkpoint {name}: the log before the hand-over was changed");
                break;
            }
            var byOld = SignedNote.SignedBy(note, oldKey);
            var byNew = SignedNote.SignedBy(note, newKey);
            if (!byOld)
            {
                problems.Add(byNew
                    ? $"the hand-over at record {seq} is signed by the new key {Id(newKey)} alone: the old key {Id(oldKey)} did not co-sign it, so it proves nothing about who held the old key (a forged hand-over)"
                    : $"the hand-over at record {seq} carries neither the old key's ({Id(oldKey)}) nor the new key's signature");
                break;
            }
            if (!byNew)
            {
                problems.Add($"the hand-over at record {seq} is not signed by the new key {Id(newKey)} it names: the new key's holder never accepted the log");
                break;
            }
            result.Add(new KeyHandover(seq, oldKey, newKey));
        }
        return result;
    }

    /// <summary>The signed text of a note (up to the blank line before its signatures).</summary>
    internal static string Body(string note) => note[..Math.Max(0, note.LastIndexOf("\n\n", StringComparison.Ordinal) + 1)];

    private static System.Text.Json.Nodes.JsonObject? ParseKept(string? line)
    {
        try
        {
            return line is null ? null : System.Text.Json.Nodes.JsonNode.Parse(line) as System.Text.Json.Nodes.JsonObject;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The exact line of the hand-over record <paramref name="e"/>: the log's, or when pruned the body kept beside its checkpoint (checked against the leaf).</summary>
    public static string? HandoverRecordLine(EvidenceLog log, LogEntry e)
    {
        ArgumentNullException.ThrowIfNull(log);
        ArgumentNullException.ThrowIfNull(e);
        return e.Line ?? ReadKeptRecord(log, e.Seq, e.LeafHash);
    }

    /// <summary>The old and new verifier keys a hand-over record names (<c>details.old_key</c>, <c>details.new_key</c>).</summary>
    public static (NoteKey Old, NoteKey New) HandoverKeys(string recordLine)
    {
        var record = ParseKept(recordLine) ?? throw new FormatException("the hand-over record is not a JSON object");
        return (NoteKey.ParseVerifier(Text(record, "old_key")), NoteKey.ParseVerifier(Text(record, "new_key")));
    }

    /// <summary>The body of a pruned hand-over record, kept beside its checkpoint, when it hashes to the record's leaf.</summary>
    private static string? ReadKeptRecord(EvidenceLog log, long seq, byte[] leaf)
    {
        var path = Path.ChangeExtension(log.HandoverCheckpointPath(seq), ".record");
        if (!File.Exists(path))
        {
            return null;
        }
        var line = File.ReadAllText(path, Encoding.UTF8).TrimEnd('\n');
        return MerkleTree.LeafHash(Encoding.UTF8.GetBytes(line)).AsSpan().SequenceEqual(leaf) ? line : null;
    }

    private static string Text(System.Text.Json.Nodes.JsonObject record, string field)
        => record["details"]?[field] is { } v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : throw new FormatException($"details.{field} is missing");
}
