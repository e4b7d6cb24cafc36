using System.CommandLine;
using System.Text.Json;
using Cairn.Repository;
using Cairn.Repository.Crypto;

namespace Cairn.Cli.Commands;

/// <summary>The one place that turns exceptions into messages and documented exit codes.</summary>
internal static class CommandRunner
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print machine-readable JSON on stdout", Recursive = true };

    public static readonly Option<string?> Repo = new("--repo", "-r") { Description = "Repository folder (default: $CAIRN_REPOSITORY)", Recursive = true };

    public static void SetAction(this Command command, CliContext ctx, Func<ParseResult, CancellationToken, Task<int>> action)
    {
        command.SetAction(async (ParseResult parse, CancellationToken ct) =>
        {
            var json = parse.GetValue(Json);
            try
            {
                return await action(parse, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return Fail(ctx, json, ExitCodes.Interrupted, "interrupted", "interrupted: nothing was committed; the repository is unchanged apart from garbage that 'cairn prune' removes");
            }
            catch (RepositoryException e)
            {
                return Fail(ctx, json, ExitCodes.For(e.Kind), e.Kind.ToString().ToLowerInvariant(), e.Message);
            }
            catch (AuthenticationFailedException e)
            {
                return Fail(ctx, json, ExitCodes.Damaged, "damaged", e.Message);
            }
            catch (Exception e) when (ErrorClassifier.IsNoSpace(e))
            {
                return Fail(ctx, json, ExitCodes.NoSpace, "no_space", $"no space left on the device ({e.Message}); nothing was committed. Free space, then run 'cairn prune' to remove what the failed write left, and retry");
            }
            catch (UnauthorizedAccessException e)
            {
                return Fail(ctx, json, ExitCodes.Failure, "permission", $"permission denied: {e.Message}");
            }
            catch (IOException e)
            {
                return Fail(ctx, json, ExitCodes.Failure, "io", $"I/O error: {e.Message}");
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                var detail = ctx.Env("CAIRN_DEBUG") is { Length: > 0 } ? e.ToString() : $"{e.GetType().Name}: {e.Message} (set CAIRN_DEBUG=1 for details)";
                return Fail(ctx, json, ExitCodes.Failure, "internal", $"unexpected error: {detail}; please report it");
            }
        });
    }

    private static int Fail(CliContext ctx, bool json, int code, string kind, string message)
    {
        if (json)
        {
            ctx.Console.Error.WriteLine(JsonSerializer.Serialize(new ErrorOutput("error", code, kind, message), CliJson.Default.ErrorOutput));
        }
        else
        {
            ctx.Console.Error.WriteLine($"cairn: error: {message}");
        }
        return code;
    }
}
