namespace Cairn.Repository.Storage;

/// <summary>How one check of a repository location came out (<c>cairn doctor</c>).</summary>
public enum StorageCheckState
{
    Ok,
    Warning,
    Fail,
}

/// <summary>One check of a repository location: what was checked, how it came out, and (when not ok) what to do.</summary>
public sealed record StorageCheck(string Name, StorageCheckState State, string Detail);

/// <summary>A backend that can check its location before first use (reachable, credentials, a write-read-delete probe, …).</summary>
public interface IDiagnosableStorage
{
    /// <summary>The checks, in order; a failed check that makes the rest meaningless ends the list.</summary>
    Task<IReadOnlyList<StorageCheck>> DiagnoseAsync(bool appendOnly, CancellationToken cancellationToken);
}
