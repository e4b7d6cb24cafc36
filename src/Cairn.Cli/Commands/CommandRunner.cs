using System.CommandLine;
using System.Text.Json;
using Cairn.Repository;
using System.Globalization;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.PostgreSql;
using Cairn.Repository.Crypto;

namespace Cairn.Cli.Commands;

/// <summary>The one place that turns exceptions into messages and documented exit codes.</summary>
internal static class CommandRunner
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print machine-readable JSON on stdout", Recursive = true };

    public static readonly Option<string?> Repo = new("--repo", "-r") { Description = "Repository folder (default: $CAIRN_REPOSITORY)", Recursive = true };

    public static readonly Option<string?> Config = new("--config", "-c") { Description = "Config file (default: $CAIRN_CONFIG, else ./cairn.yaml)", Recursive = true };

    public static readonly Option<string?> EvidenceDir = new("--evidence") { Description = "Evidence log folder (default: $CAIRN_EVIDENCE, else REPO-evidence beside the repository)", Recursive = true };

    /// <summary>Sets the action; when <paramref name="evidenceKind"/> is given, a failure is recorded as evidence too.</summary>
    public static void SetAction(this Command command, CliContext ctx, Func<ParseResult, CancellationToken, Task<int>> action, string? evidenceKind = null)
    {
        command.SetAction(async (ParseResult parse, CancellationToken ct) =>
        {
            var json = parse.GetValue(Json);
            ctx.EvidenceOption = parse.GetValue(EvidenceDir);
            ctx.RepoOption = parse.GetValue(Repo);
            ctx.ConfigOption = parse.GetValue(Config);
            var code = await RunAsync(ctx, parse, action, json, ct).ConfigureAwait(false);
            // Results the action itself recorded (damage found, checks failed) are not errors to record again.
            var recorded = code is ExitCodes.Damaged or ExitCodes.ChecksFailed or ExitCodes.RestoreCheckFailed;
            if (code != ExitCodes.Ok && code != ExitCodes.Usage && evidenceKind is not null && !recorded)
            {
                RecordFailure(ctx, evidenceKind, code);
            }
            return code;
        });
    }

    private static void RecordFailure(CliContext ctx, string kind, int code)
    {
        try
        {
            var repo = ctx.RepositoryPathOrNull();
            if (repo is null)
            {
                return;
            }
            Evidence.RecordAsync(ctx, repo, kind, "error", new() { ["exit_code"] = code.ToString(CultureInfo.InvariantCulture), ["error"] = ctx.LastError ?? "" }, CancellationToken.None, database: ctx.LastDatabase).GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is EvidenceException or IOException or UnauthorizedAccessException)
        {
            ctx.Console.Error.WriteLine($"cairn: warning: the failure could not be recorded as evidence: {e.Message}");
        }
    }

    private static async Task<int> RunAsync(CliContext ctx, ParseResult parse, Func<ParseResult, CancellationToken, Task<int>> action, bool json, CancellationToken ct)
    {
        {
            try
            {
                return await action(parse, ct).ConfigureAwait(false);
            }
            catch (EvidenceException e)
            {
                return Fail(ctx, json, ExitCodes.Evidence, "evidence", e.Message);
            }
            catch (ConfigException e)
            {
                return Fail(ctx, json, ExitCodes.Usage, "config", e.Message);
            }
            catch (PgToolException e)
            {
                return Fail(ctx, json, ExitCodes.Database, "postgres", e.Message);
            }
            catch (System.Data.Common.DbException e)
            {
                return Fail(ctx, json, ExitCodes.Database, "postgres", $"the database reported: {e.Message.Split('\n')[0]}");
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
        }
    }

    private static int Fail(CliContext ctx, bool json, int code, string kind, string message)
    {
        ctx.LastError = message;
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
