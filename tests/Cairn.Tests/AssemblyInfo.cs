// Scratch servers, temp folders and processes are machine-wide: tests that count them must not race
// tests in other collections, so the suite runs one test class at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
