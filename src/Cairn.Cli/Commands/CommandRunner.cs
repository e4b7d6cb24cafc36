using System.CommandLine;
using System.Text.Json;
using Cairn.Evidence.Log;
using Cairn.Operations.Configuration;
using Cairn.Operations.Recording;
using Cairn.PostgreSql;
using Cairn.Repository;
using Cairn.Repository.Crypto;

namespace Cairn.Cli.Commands;

/// <summary>The one place that turns exceptions into messages and documented exit codes, and failures into evidence.</summary>
internal static class CommandRunner
{
    public static readonly Option<bool> Json = new("--json") { Description = "Print machine-readable JSON on stdout", Recursive = true };

    public static readonly Option<string?> Repo = new("--repo", "-r") { Description = "Repository: a folder or s3://BUCKET/PREFIX (default: $CAIRN_REPOSITORY, else repository: in cairn.yaml)", Recursive = true };

    public static readonly Option<string?> Config = new("--config", "-c") { Description = "Config file (default: $CAIRN_CONFIG, else ./cairn.yaml)", Recursive = true };

    public static readonly Option<string?> EvidenceDir = new("--evidence") { Description = "Evidence log folder (default: $CAIRN_EVIDENCE, else REPO-evidence beside the repository)", Recursive = true };

    /// <summary>The global options of a parsed command line.</summary>
    public static GlobalOptions Globals(ParseResult parse) => new(parse.GetValue(Repo), parse.GetValue(EvidenceDir), parse.GetValue(Config), parse.GetValue(Json));

    /// <summary>Sets the action; when <paramref name="evidenceKind"/> is given, a failure is recorded as evidence too.</summary>
    public static void SetAction(this Command command, CliContext ctx, Func<Invocation, ParseResult, CancellationToken, Task<int>> action, string? evidenceKind = null)
        => command.SetAction(async (ParseResult parse, CancellationToken ct) =>
        {
            // System.CommandLine registers its SIGINT/SIGTERM handlers only once the action has returned its task: yield
            // first, so a signal during synchronous start-up work (reading the evidence log, say) cancels instead of killing.
            await Task.Yield();
            var inv = new Invocation(ctx, Globals(parse));
            return await ExecuteAsync(inv, () => action(inv, parse, ct), evidenceKind, ct).ConfigureAwait(false);
        });

    /// <summary>
    /// Runs one command's work: errors become a message (or a JSON error on stderr) and an exit code; a failure of a
    /// command that records evidence is recorded too (results the work recorded itself — damage, failed checks — are not).
    /// </summary>
    public static async Task<int> ExecuteAsync(Invocation inv, Func<Task<int>> work, string? evidenceKind, CancellationToken ct)
    {
        var (code, error) = await RunAsync(inv, work, ct).ConfigureAwait(false);
        var recorded = code is ExitCodes.Damaged or ExitCodes.ChecksFailed or ExitCodes.RestoreCheckFailed or ExitCodes.IncidentPaused or ExitCodes.IncidentStepFailed;
        if (code != ExitCodes.Ok && code != ExitCodes.Usage && evidenceKind is not null && !recorded)
        {
            RecordFailure(inv, evidenceKind, code, error);
        }
        return code;
    }

    private static void RecordFailure(Invocation inv, string kind, int code, string? error)
    {
        try
        {
            var operations = inv.Operations;
            if (operations.RepositoryText is not { } repository)
            {
                return;
            }
            operations.Evidence.Record(new FailureEvent(kind, code, error ?? "") { Repository = repository, Result = "error", Database = inv.Database });
        }
        catch (Exception e) when (e is EvidenceException or IOException or UnauthorizedAccessException or RepositoryException or ConfigException)
        {
            inv.Console.Error.WriteLine($"cairn: warning: the failure could not be recorded as evidence: {e.Message}");
        }
    }

    private static async Task<(int Code, string? Error)> RunAsync(Invocation inv, Func<Task<int>> work, CancellationToken ct)
    {
        try
        {
            return (await work().ConfigureAwait(false), null);
        }
        catch (EvidenceException e)
        {
            return Fail(inv, ExitCodes.Evidence, "evidence", e.Message);
        }
        catch (ConfigException e)
        {
            return Fail(inv, ExitCodes.Usage, "config", e.Message);
        }
        catch (PgToolException e)
        {
            return Fail(inv, ExitCodes.Database, "postgres", e.Message);
        }
        catch (System.Data.Common.DbException e)
        {
            return Fail(inv, ExitCodes.Database, "postgres", $"the database reported: {e.Message.Split('\n')[0]}");
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Fail(inv, ExitCodes.Interrupted, "interrupted", "interrupted: nothing was committed; the repository is unchanged apart from garbage that 'cairn prune' removes");
        }
        catch (RepositoryException e)
        {
            return Fail(inv, ExitCodes.For(e.Kind), e.Kind.ToString().ToLowerInvariant(), e.Message);
        }
        catch (AuthenticationFailedException e)
        {
            return Fail(inv, ExitCodes.Damaged, "damaged", e.Message);
        }
        catch (Exception e) when (ErrorClassifier.IsNoSpace(e))
        {
            return Fail(inv, ExitCodes.NoSpace, "no_space", $"no space left on the device ({e.Message}); nothing was committed. Free space, then run 'cairn prune' to remove what the failed write left, and retry");
        }
        catch (UnauthorizedAccessException e)
        {
            return Fail(inv, ExitCodes.Failure, "permission", $"permission denied: {e.Message}");
        }
        catch (IOException e)
        {
            return Fail(inv, ExitCodes.Failure, "io", $"I/O error: {e.Message}");
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            var detail = inv.Cli.Env("CAIRN_DEBUG") is { Length: > 0 } ? e.ToString() : $"{e.GetType().Name}: {e.Message} (set CAIRN_DEBUG=1 for details)";
            return Fail(inv, ExitCodes.Failure, "internal", $"unexpected error: {detail}; please report it");
        }
    }

    private static (int, string) Fail(Invocation inv, int code, string kind, string message)
    {
        if (inv.Json)
        {
            inv.Console.Error.WriteLine(JsonSerializer.Serialize(new ErrorOutput("error", code, kind, message), CliJson.Default.ErrorOutput));
        }
        else
        {
            inv.Console.Error.WriteLine($"cairn: error: {message}");
        }
        return (code, message);
    }
}
