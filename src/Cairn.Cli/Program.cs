using Cairn.Cli;

// Everything Cairn writes without an explicit mode starts private (restored data, exports, temp files).
Cairn.PostgreSql.Files.Accounts.RestrictUmask();

return await CairnCli.RunAsync(args, CliContext.System()).ConfigureAwait(false);
