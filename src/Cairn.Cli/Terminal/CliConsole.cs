using Spectre.Console;

namespace Cairn.Cli.Terminal;

/// <summary>
/// The one owner of console output. Results go to <see cref="Out"/> (stdout), progress and
/// messages to <see cref="Error"/> (stderr). Progress renders only when stderr is a terminal.
/// Tests pass <see cref="StringWriter"/>s.
/// </summary>
public sealed class CliConsole
{
    public CliConsole(TextWriter output, TextWriter error, bool errorIsTerminal, bool outputIsTerminal, TextReader? input = null, bool inputIsTerminal = false)
    {
        Out = output;
        Error = error;
        ErrorIsTerminal = errorIsTerminal;
        OutputIsTerminal = outputIsTerminal;
        In = input ?? TextReader.Null;
        InputIsTerminal = inputIsTerminal;
        // Created on first use: most commands print plain lines, and wal-push (run once per WAL segment) never draws a
        // table or a progress bar, so it does not pay for Spectre's terminal detection at every start.
        _ansi = new Lazy<IAnsiConsole>(() =>
        {
            var ansi = AnsiConsole.Create(new AnsiConsoleSettings
            {
                Out = new AnsiConsoleOutput(output),
                Ansi = outputIsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
                ColorSystem = outputIsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
                Interactive = InteractionSupport.No,
            });
            if (!outputIsTerminal)
            {
                ansi.Profile.Width = 160;
            }
            return ansi;
        });
        _ansiError = new Lazy<IAnsiConsole>(() => AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(error),
            Ansi = errorIsTerminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = errorIsTerminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = errorIsTerminal ? InteractionSupport.Yes : InteractionSupport.No,
        }));
    }

    private readonly Lazy<IAnsiConsole> _ansi;
    private readonly Lazy<IAnsiConsole> _ansiError;

    public static CliConsole System() => new(
        Console.Out, Console.Error, !Console.IsErrorRedirected, !Console.IsOutputRedirected, Console.In, !Console.IsInputRedirected);

    public TextWriter Out { get; }

    public TextWriter Error { get; }

    public TextReader In { get; }

    public bool ErrorIsTerminal { get; }

    public bool OutputIsTerminal { get; }

    public bool InputIsTerminal { get; }

    /// <summary>For tables on stdout.</summary>
    public IAnsiConsole Ansi => _ansi.Value;

    /// <summary>For progress on stderr.</summary>
    public IAnsiConsole AnsiError => _ansiError.Value;

    public void Info(string message) => Error.WriteLine(message);

    /// <summary>Runs <paramref name="work"/> with a progress bar on stderr when it is a terminal, plain otherwise.</summary>
    public async Task<T> WithProgressAsync<T>(string description, long? total, Func<IProgressSink, Task<T>> work)
    {
        if (!ErrorIsTerminal)
        {
            return await work(NullSink.Instance).ConfigureAwait(false);
        }
        T result = default!;
        await AnsiError.Progress()
            .AutoClear(true)
            .HideCompleted(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(description, maxValue: total is > 0 ? total.Value : 1);
                if (total is null or <= 0)
                {
                    task.IsIndeterminate = true;
                }
                result = await work(new TaskSink(task)).ConfigureAwait(false);
                task.StopTask();
            }).ConfigureAwait(false);
        return result;
    }

    private sealed class TaskSink(ProgressTask task) : IProgressSink
    {
        public void Report(long value) => task.Value = task.IsIndeterminate ? 0 : value;

        public void Describe(string text) => task.Description = Markup.Escape(text);

        public void SetTotal(long total)
        {
            if (total > 0)
            {
                task.MaxValue = total;
                task.IsIndeterminate = false;
            }
        }
    }

    private sealed class NullSink : IProgressSink
    {
        public static readonly NullSink Instance = new();

        public void Report(long value)
        {
        }

        public void SetTotal(long total)
        {
        }

        public void Describe(string text)
        {
        }
    }
}

/// <summary>Where long operations report how far they got, and what they are doing.</summary>
public interface IProgressSink : Cairn.Operations.IByteProgress
{
    void Describe(string text);
}
