using Cairn.Operations;
using Cairn.Repository;
using Spectre.Console;

namespace Cairn.Cli;

/// <summary>
/// Passphrases: from a file (CAIRN_PASSPHRASE_FILE), else the environment (CAIRN_PASSPHRASE), else a prompt on a
/// terminal. Never an argument. A second passphrase (key add) comes from the CAIRN_NEW_PASSPHRASE variables.
/// </summary>
internal sealed class CliSecrets(CliContext cli) : ISecretSource
{
    // Read once per run: 'copy' opens the primary and its copy (same keys), and a prompt must not ask three times.
    private string? _passphrase;

    public string Passphrase(bool confirm = false) => confirm ? Read("CAIRN_PASSPHRASE", "repository passphrase", confirm) : _passphrase ??= Read("CAIRN_PASSPHRASE", "repository passphrase", confirm);

    public string NewPassphrase() => Read("CAIRN_NEW_PASSPHRASE", "new passphrase", confirm: true);

    private string Read(string variable, string what, bool confirm)
    {
        var file = cli.Env(variable + "_FILE");
        if (!string.IsNullOrEmpty(file))
        {
            try
            {
                var text = File.ReadAllText(file);
                var secret = text.TrimEnd('\r', '\n');
                if (secret.Length == 0)
                {
                    throw new RepositoryException(ErrorKind.InvalidInput, $"{variable}_FILE names {file}, which is empty");
                }
                return secret;
            }
            catch (IOException e)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"cannot read the {what} from {variable}_FILE ({file}): {e.Message}");
            }
            catch (UnauthorizedAccessException)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, $"cannot read the {what} from {variable}_FILE ({file}): permission denied");
            }
        }
        var direct = cli.Env(variable);
        if (!string.IsNullOrEmpty(direct))
        {
            return direct;
        }
        var console = cli.Console;
        if (!console.InputIsTerminal || !console.ErrorIsTerminal)
        {
            throw new RepositoryException(ErrorKind.InvalidInput, $"no {what}: set {variable}_FILE to a file that holds it (or {variable}), or run on a terminal to be asked");
        }
        var first = console.AnsiError.Prompt(new TextPrompt<string>($"Enter {what}:").Secret());
        if (confirm)
        {
            var second = console.AnsiError.Prompt(new TextPrompt<string>($"Repeat {what}:").Secret());
            if (first != second)
            {
                throw new RepositoryException(ErrorKind.InvalidInput, "the two passphrases differ; nothing was changed");
            }
        }
        return first;
    }
}
