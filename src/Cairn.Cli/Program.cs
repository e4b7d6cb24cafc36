using Cairn.Cli;

return await CairnCli.RunAsync(args, CliContext.System()).ConfigureAwait(false);
