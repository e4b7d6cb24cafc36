// Test classes run in parallel (xunit.runner.json sets how many at once). Each test has its own folder
// (TempDir, under one folder per run) and each PostgreSQL test class its own scratch server; tests that
// change process-wide state run alone (ProcessEnvironmentCollection).
