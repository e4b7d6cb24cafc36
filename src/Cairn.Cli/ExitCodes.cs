using Cairn.Repository;

namespace Cairn.Cli;

/// <summary>
/// Every exit code Cairn uses, in one place (documented in docs/exit-codes.md).
/// <c>cairn check</c> uses the monitoring-plugin codes 0–3 instead.
/// </summary>
public static class ExitCodes
{
    public const int Ok = 0;
    public const int Failure = 1;
    public const int Usage = 2;
    public const int WrongPassphrase = 3;
    public const int Locked = 4;
    public const int Damaged = 5;
    public const int NotFound = 6;
    public const int NoSpace = 7;
    public const int AlreadyExists = 8;
    public const int Evidence = 9;
    public const int Database = 10;
    public const int RestoreCheckFailed = 11;
    public const int ChecksFailed = 12;
    /// <summary>An incident stopped for a human: a destructive step needs confirmation (--yes), was declined, or a manual step waits; resume it.</summary>
    public const int IncidentPaused = 13;
    /// <summary>An incident's step failed; the state is stored, fix the cause and resume.</summary>
    public const int IncidentStepFailed = 14;
    public const int Interrupted = 130;

    public static int For(ErrorKind kind) => kind switch
    {
        ErrorKind.WrongPassphrase => WrongPassphrase,
        ErrorKind.Locked => Locked,
        ErrorKind.Damaged => Damaged,
        ErrorKind.NotFound => NotFound,
        ErrorKind.NoSpace => NoSpace,
        ErrorKind.AlreadyExists => AlreadyExists,
        ErrorKind.InvalidInput => Usage,
        _ => Failure,
    };
}
