using System.Globalization;
using Cairn.Fuzz;

// cairn fuzz driver (tests/fuzz/README.md):
//   list                                   the targets and what each feeds its bytes to
//   run TARGET SECONDS [CORPUS] [CRASHES]   the built-in mutation fuzzer over the seeds in CORPUS
//   afl TARGET                             one input per AFL++ request, through SharpFuzz (scripts/fuzz)
//   repro TARGET FILE...                   runs saved inputs once and says what each did
//   corpus FOLDER                          writes the seed corpus (real objects made by Cairn) into FOLDER/<target>/
return args switch
{
    ["list"] => List(),
    ["run", var t, var s, .. var rest] => RunMutation(FuzzTargets.Get(t), double.Parse(s, CultureInfo.InvariantCulture), rest.Length > 0 ? rest[0] : Path.Combine(Corpus.DefaultRoot(), t), rest.Length > 1 ? rest[1] : null),
    ["afl", var t] => Afl(t),
    ["repro", var t, .. var files] => Repro(FuzzTargets.Get(t), files),
    ["corpus", var folder] => WriteCorpus(folder),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Cairn.Fuzz list | run TARGET SECONDS [CORPUS [CRASHES]] | afl TARGET | repro TARGET FILE... | corpus FOLDER");
    return 2;
}

static int List()
{
    foreach (var t in FuzzTargets.All)
    {
        Console.WriteLine($"{t.Name,-20} {t.Summary}");
    }
    return 0;
}

static int RunMutation(FuzzTarget target, double seconds, string corpus, string? crashes)
{
    var report = MutationFuzzer.Run(target, Corpus.Read(corpus), TimeSpan.FromSeconds(seconds), Environment.TickCount, crashes ?? Path.Combine("artifacts", "fuzz", "crashes"), maxCrashes: 20);
    Console.WriteLine(report);
    foreach (var c in report.Crashes)
    {
        Console.WriteLine($"CRASH {c.SavedAs}: {c.Message.Split('\n')[0]}");
    }
    // A hung worker thread cannot be stopped: leave at once rather than waiting on it.
    Environment.Exit(report.Crashes.Count == 0 ? 0 : 1);
    return 0;
}

static int Afl(string name)
{
    // Instrumented code may run only inside Fuzzer.Run (before it, the coverage map does not exist): the target,
    // whose static fields call into Cairn, is looked up on the first input.
    FuzzTarget? target = null;
    SharpFuzz.Fuzzer.Run(stream =>
    {
        target ??= FuzzTargets.Get(name);
        using var ms = new MemoryStream();
        stream.CopyTo(ms);
        // A crash must reach SharpFuzz as an exception it reports to AFL++; a typed error is a normal result.
        target.Execute(ms.ToArray());
    });
    return 0;
}

static int Repro(FuzzTarget target, string[] files)
{
    var failed = 0;
    foreach (var f in files)
    {
        try
        {
            var typed = target.Execute(File.ReadAllBytes(f));
            Console.WriteLine(typed is null ? $"{f}: accepted" : $"{f}: refused with {typed.GetType().Name}: {typed.Message}");
        }
        catch (FuzzCrashException e)
        {
            failed++;
            Console.WriteLine($"{f}: CRASH {e.Message}\n{e.InnerException}");
        }
    }
    return failed == 0 ? 0 : 1;
}

static int WriteCorpus(string folder)
{
    foreach (var (target, name, bytes) in Corpus.Generate())
    {
        var dir = Path.Combine(folder, target);
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, name), bytes);
        Console.WriteLine($"{target}/{name} ({bytes.Length} bytes)");
    }
    return 0;
}
