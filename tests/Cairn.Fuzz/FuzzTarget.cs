namespace Cairn.Fuzz;

/// <summary>
/// One parser under fuzz: a function of arbitrary bytes and the exception types that count as the typed
/// error the CLI turns into a documented exit code (those naming the object). Anything else thrown is a
/// crash; so is running past <see cref="Timeout"/> or allocating more than <see cref="AllocationCap"/>.
/// </summary>
public sealed class FuzzTarget
{
    public FuzzTarget(string name, string summary, Action<byte[]> run, params Type[] typedErrors)
    {
        Name = name;
        Summary = summary;
        Body = run;
        TypedErrors = typedErrors;
    }

    public string Name { get; }

    /// <summary>What the target feeds the bytes to (the entry point), for the list and the docs.</summary>
    public string Summary { get; }

    public IReadOnlyList<Type> TypedErrors { get; }

    /// <summary>
    /// Longest one input may run (the fuzzer reports a hang beyond it). Generous: on the shared machine (load 30+)
    /// a repository target's input took over 5 s without hanging; a real hang (a loop) runs forever.
    /// </summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>
    /// Most bytes one input may allocate. A length field must be checked before it sizes an allocation:
    /// a stored object claiming 2 GB must be refused, not allocated and then found short.
    /// </summary>
    public long AllocationCap { get; init; } = 256L * 1024 * 1024;

    /// <summary>Tokens the mutator splices in: field names and values that reach deeper code paths.</summary>
    public IReadOnlyList<string> Dictionary { get; init; } = [];

    private Action<byte[]> Body { get; }

    /// <summary>
    /// Runs one input. Returns null when it was accepted, or the typed error it was refused with; throws
    /// <see cref="FuzzCrashException"/> for anything that breaks the rule.
    /// </summary>
    public Exception? Execute(byte[] input)
    {
        var before = GC.GetTotalAllocatedBytes(precise: false);
        Exception? typed = null;
        try
        {
            Body(input);
        }
        catch (Exception e) when (IsTyped(e))
        {
            typed = e;
        }
        catch (FuzzCrashException)
        {
            throw;
        }
        catch (Exception e)
        {
            throw new FuzzCrashException($"{Name}: unhandled {e.GetType().FullName}: {e.Message}", e);
        }
        var allocated = GC.GetTotalAllocatedBytes(precise: false) - before;
        if (allocated > AllocationCap)
        {
            throw new FuzzCrashException($"{Name}: one input allocated {allocated / (1024 * 1024)} MiB (cap {AllocationCap / (1024 * 1024)} MiB): a length read from the input sized an allocation");
        }
        return typed;
    }

    private bool IsTyped(Exception e)
    {
        if (e is AggregateException { InnerExceptions.Count: 1 } a)
        {
            return IsTyped(a.InnerExceptions[0]);
        }
        return TypedErrors.Any(t => t.IsInstanceOfType(e));
    }
}

/// <summary>An input broke the rule: an untyped exception, a hang, too much memory, or a write outside the target.</summary>
public sealed class FuzzCrashException(string message, Exception? inner = null) : Exception(message, inner);
