using System.Diagnostics;
using System.Security.Cryptography;

namespace Cairn.Fuzz;

/// <summary>One input that broke the rule, and why.</summary>
public sealed record FuzzCrash(byte[] Input, string Message, string? SavedAs);

/// <summary>What a run did: executions, how many inputs were accepted or refused with a typed error, what broke.</summary>
public sealed record FuzzReport(string Target, long Executions, TimeSpan Elapsed, long Accepted, long Refused, IReadOnlyList<FuzzCrash> Crashes)
{
    public double PerSecond => Elapsed.TotalSeconds > 0 ? Executions / Elapsed.TotalSeconds : 0;

    public override string ToString()
        => $"{Target}: {Executions} executions in {Elapsed.TotalSeconds:F1} s ({PerSecond:F0}/s), {Accepted} accepted, {Refused} refused with a typed error, {Crashes.Count} crash(es)";
}

/// <summary>
/// The fuzzer that needs no external tool (CI and machines without AFL++): seeds first, then random
/// mutations of them (<see cref="Mutator"/>), each input on a worker thread with the target's timeout.
/// Not coverage-guided; scripts/fuzz uses AFL++ through SharpFuzz for that.
/// </summary>
public static class MutationFuzzer
{
    public static FuzzReport Run(FuzzTarget target, IReadOnlyList<byte[]> seeds, TimeSpan duration, int seed, string? crashFolder, int maxCrashes = 1)
    {
        var random = new Random(seed);
        var mutator = new Mutator(random, target.Dictionary);
        var corpus = seeds.Count > 0 ? seeds : [[]];
        var crashes = new List<FuzzCrash>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        long executions = 0, accepted = 0, refused = 0;
        using var worker = new Worker(target);
        var clock = Stopwatch.StartNew();
        var i = 0;
        while (crashes.Count < maxCrashes && (clock.Elapsed < duration || i < corpus.Count))
        {
            var input = i < corpus.Count ? corpus[i] : mutator.Mutate(corpus[random.Next(corpus.Count)], corpus);
            i++;
            // The first input also builds the target's fixture (a real repository, an evidence log): not a hang.
            var outcome = worker.Run(input, i == 1 ? FirstInputTimeout(target) : target.Timeout);
            executions++;
            switch (outcome.Kind)
            {
                case OutcomeKind.Accepted:
                    accepted++;
                    break;
                case OutcomeKind.Refused:
                    refused++;
                    break;
                case OutcomeKind.Crashed:
                    // One report per distinct place: the exception's type and the first frame in Cairn's code.
                    if (seen.Add(outcome.Key!))
                    {
                        crashes.Add(new FuzzCrash(input, outcome.Message!, Save(crashFolder, target.Name, input)));
                    }
                    break;
                case OutcomeKind.Hung:
                    crashes.Add(new FuzzCrash(input, $"{target.Name}: one input ran longer than {(i == 1 ? FirstInputTimeout(target) : target.Timeout).TotalSeconds:F0} s (hang)", Save(crashFolder, target.Name, input)));
                    return new FuzzReport(target.Name, executions, clock.Elapsed, accepted, refused, crashes);
            }
        }
        return new FuzzReport(target.Name, executions, clock.Elapsed, accepted, refused, crashes);
    }

    /// <summary>The first input's limit: it pays for the fixture, which takes seconds on a loaded machine.</summary>
    private static TimeSpan FirstInputTimeout(FuzzTarget target) => target.Timeout + TimeSpan.FromMinutes(2);

    /// <summary>The exception's type and the first frame of Cairn's own code (not the fuzz harness): one bug, one key.</summary>
    internal static string KeyOf(Exception e)
    {
        var frame = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim()).FirstOrDefault(l => l.StartsWith("at Cairn.", StringComparison.Ordinal) && !l.StartsWith("at Cairn.Fuzz", StringComparison.Ordinal));
        return $"{e.GetType().FullName} {frame?.Split(" in ")[0] ?? e.Message}";
    }

    private static string? Save(string? folder, string target, byte[] input)
    {
        if (folder is null)
        {
            return null;
        }
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, $"{target}-{Convert.ToHexStringLower(SHA256.HashData(input))[..12]}.bin");
        File.WriteAllBytes(path, input);
        return path;
    }

    private enum OutcomeKind
    {
        Accepted,
        Refused,
        Crashed,
        Hung,
    }

    private readonly record struct Outcome(OutcomeKind Kind, string? Message = null, string? Key = null)
    {
        public static readonly Outcome Accepted = new(OutcomeKind.Accepted);
        public static readonly Outcome Refused = new(OutcomeKind.Refused);
        public static readonly Outcome Hung = new(OutcomeKind.Hung);

        public static Outcome Crashed(string message, string key) => new(OutcomeKind.Crashed, message, key);
    }

    /// <summary>
    /// One background thread that runs inputs, so a hang is seen after the timeout instead of stopping the
    /// fuzzer. A hung thread cannot be aborted in .NET: the run ends and reports the input.
    /// </summary>
    private sealed class Worker : IDisposable
    {
        private readonly FuzzTarget _target;
        private readonly SemaphoreSlim _start = new(0);
        private readonly SemaphoreSlim _done = new(0);
        private readonly Thread _thread;
        private byte[] _input = [];
        private Outcome _outcome = Outcome.Accepted;
        private volatile bool _stop;

        public Worker(FuzzTarget target)
        {
            _target = target;
            _thread = new Thread(Loop, 64 * 1024 * 1024) { IsBackground = true, Name = $"fuzz {target.Name}" };
            _thread.Start();
        }

        public Outcome Run(byte[] input, TimeSpan timeout)
        {
            _input = input;
            _start.Release();
            return _done.Wait(timeout) ? _outcome : Outcome.Hung;
        }

        private void Loop()
        {
            while (true)
            {
                _start.Wait();
                if (_stop)
                {
                    return;
                }
                try
                {
                    _outcome = _target.Execute(_input) is null ? Outcome.Accepted : Outcome.Refused;
                }
                catch (FuzzCrashException e)
                {
                    _outcome = Outcome.Crashed(e.InnerException is { } inner ? $"{e.Message}\n{inner}" : e.Message, KeyOf(e.InnerException ?? e));
                }
                catch (Exception e)
                {
                    _outcome = Outcome.Crashed($"{_target.Name}: {e}", KeyOf(e));
                }
                _done.Release();
            }
        }

        public void Dispose()
        {
            _stop = true;
            _start.Release();
        }
    }
}
