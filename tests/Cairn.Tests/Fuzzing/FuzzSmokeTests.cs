using Cairn.Fuzz;

namespace Cairn.Tests.Fuzzing;

/// <summary>
/// The short fuzz run of CI (scripts/test): every target gets its committed seeds (tests/fuzz/corpus/TARGET) and
/// then random mutations of them for <see cref="Budget"/>, with a fixed seed per target, so a run is repeatable up
/// to timing. Any input that ends in something other than a result or the target's typed error — an unhandled
/// exception, a hang past the target's timeout, an allocation past its cap, a write beside the restore target —
/// fails the test with the input saved under artifacts/fuzz/smoke-crashes. The long runs are scripts/fuzz.
/// </summary>
// Alone, not beside the parallel classes: the allocation cap reads the process-wide allocation counter,
// which other tests' allocations would inflate (seen once: 256 MiB charged to a one-line parser).
[Collection(Cairn.Tests.Support.ProcessEnvironmentCollection.Name)]
public class FuzzSmokeTests
{
    /// <summary>About a minute across the 30 targets (the seeds always run in full, even past the budget).</summary>
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(1.5);

    public static TheoryData<string> Targets()
    {
        var data = new TheoryData<string>();
        foreach (var t in FuzzTargets.All)
        {
            data.Add(t.Name);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Targets))]
    public void Every_seed_and_its_mutations_end_in_a_result_or_a_typed_error(string target)
    {
        var t = FuzzTargets.Get(target);
        var seeds = Corpus.Read(Path.Combine(Corpus.DefaultRoot(), target));
        Assert.NotEmpty(seeds); // a target without seeds would fuzz nothing real

        var report = MutationFuzzer.Run(t, seeds, Budget, StableSeed(target), CrashFolder(), maxCrashes: 5);

        Assert.True(report.Executions >= seeds.Count, $"{report}");
        Assert.True(report.Crashes.Count == 0, $"{report}\n{string.Join("\n\n", report.Crashes.Select(c => $"{c.SavedAs}: {c.Message}"))}\nre-run one with: dotnet artifacts/fuzz/plain/Cairn.Fuzz.dll repro {target} FILE");
    }

    [Fact]
    public void Every_target_has_a_committed_seed_folder()
    {
        var root = Corpus.DefaultRoot();
        var missing = FuzzTargets.All.Where(t => Corpus.Read(Path.Combine(root, t.Name)).Count == 0).Select(t => t.Name).ToList();
        Assert.True(missing.Count == 0, $"no seeds in tests/fuzz/corpus for: {string.Join(", ", missing)} (write them with: dotnet Cairn.Fuzz.dll corpus tests/fuzz/corpus)");
    }

    /// <summary>A seed from the target's name (string.GetHashCode differs per process).</summary>
    private static int StableSeed(string name) => name.Aggregate(17, (h, c) => unchecked((h * 31) + c));

    private static string CrashFolder() => Path.Combine(Corpus.DefaultRoot(), "..", "..", "..", "artifacts", "fuzz", "smoke-crashes");
}
