using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Cairn.Cli.Terminal;
using Cairn.Operations.Demo;
using Cairn.Operations.Drills;
using Cairn.Operations.Keys;
using Cairn.Operations.Logical;
using Cairn.Operations.Physical;
using Cairn.Operations.Reports;
using Cairn.Operations.Recording;
using Cairn.Operations.Retention;
using Cairn.Operations.Setup;
using Cairn.Operations.Snapshots;
using Cairn.Operations.Verification;
using Cairn.PostgreSql.Physical;
using Cairn.PostgreSql.Programs;
using Cairn.PostgreSql.Servers;
using Cairn.Repository;
using Cairn.Repository.Crypto;
using Cairn.Repository.Storage;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>
/// <c>cairn demo</c>: the main job end to end on an embedded default. Starts a scratch "production" server with the
/// runbook's schema and realistic rows, and runs the real operations against it with a local repository (rendered
/// as their commands render them): back up, change data, back up again, restore, restore one table with its diff and
/// merge, drill, a physical backup with WAL archived through cairn and a point-in-time restore between two known
/// transactions, verify the repository and the evidence. Leaves nothing running.
/// </summary>
internal static class DemoCommand
{
    public static Command Build(CliContext ctx)
    {
        var keep = new Option<bool>("--keep") { Description = "Keep the scratch server and folder afterwards (prints how to connect)" };
        var profiles = new Option<int>("--profiles") { Description = "Demo size: profiles to generate (orders, messages and audit rows scale with it)", DefaultValueFactory = _ => 5000 };
        var report = new Option<string>("--report") { Description = "Where to write the compliance report of the demo's own run (HTML)", DefaultValueFactory = _ => "cairn-demo-report.html" };
        var cmd = new Command("demo", "Run Cairn end to end on a scratch PostgreSQL server with a demo database (nothing is left behind but the report of the run)") { keep, profiles, report };
        cmd.SetAction(ctx, (inv, p, ct) => RunAsync(ctx, p.GetValue(keep), p.GetValue(profiles), Path.GetFullPath(p.GetValue(report)!), ct));
        return cmd;
    }

    private static async Task<int> RunAsync(CliContext ctx, bool keep, int profiles, string reportPath, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var started = ctx.Time.GetUtcNow();
        var console = ctx.Console;
        var workspace = await DemoWorkspace.CreateAsync(ct).ConfigureAwait(false);
        DemoProduction? production = null;
        try
        {
            var env = new Dictionary<string, string>
            {
                ["CAIRN_PASSPHRASE_FILE"] = workspace.PassphraseFile,
                ["CAIRN_REPOSITORY"] = workspace.Repository,
            };
            // Each step is one command's operation with its rendering, on a fresh invocation (so it reads the config as written by then).
            Invocation Step() => new(new CliContext(new CliConsole(new Indent(console.Out), new Indent(console.Error), false, console.OutputIsTerminal), ctx.Time, k => env.GetValueOrDefault(k) ?? ctx.Env(k)), new GlobalOptions());
            async Task Run(string shown, string? evidenceKind, Func<Invocation, Task<int>> step)
            {
                console.Out.WriteLine($"   $ cairn {shown}");
                var inv = Step();
                var code = await CommandRunner.ExecuteAsync(inv, () => step(inv), evidenceKind, ct).ConfigureAwait(false);
                if (code != 0)
                {
                    throw new RepositoryException(ErrorKind.General, $"the demo step 'cairn {shown}' failed with exit code {code}");
                }
            }

            Title(console, "1. Create the encrypted repository; give the server's user a key of its own and the WAL area only; start a scratch \"production\" server that archives its WAL through cairn wal-push; load the runbook's schema");
            await Run("init --kdf-memory-mib 16 --kdf-iterations 2", null, inv => RepositoryCommands.InitAsync(inv, new InitRequest(new KdfParameters(16 * 1024, 2, KdfParameters.Default.Parallelism)), ct)).ConfigureAwait(false);
            // archive_command and restore_command run as the server's user: its own key, and the WAL area only (docs/security.md).
            env["CAIRN_NEW_PASSPHRASE_FILE"] = workspace.ArchiverPassphraseFile;
            await Run("key add --label archiver --kdf-memory-mib 1 --kdf-iterations 1", "key-change", inv => RepositoryCommands.KeyAddAsync(inv, new KeyAddRequest(new KdfParameters(1024, 1, KdfParameters.Default.Parallelism), "archiver"), ct)).ConfigureAwait(false);
            env["CAIRN_RESTORE_PASSPHRASE_FILE"] = workspace.ArchiverPassphraseFile;
            if (PgProcess.IsRoot)
            {
                env["CAIRN_PASSPHRASE_FILE"] = workspace.ArchiverPassphraseFile;
                await Run("archiver allow --group postgres", "key-change", inv => ArchiverCommand.AllowAsync(inv, new ArchiverAllowRequest("postgres", null), ct)).ConfigureAwait(false);
                env["CAIRN_PASSPHRASE_FILE"] = workspace.PassphraseFile;
                workspace.ShareWithServerUser("postgres");
            }
            var archive = WalCommands.ArchiveCommand(Step().Operations, workspace.Repository, workspace.ArchiverPassphraseFile, DemoProduction.Database);
            (production, var rows) = await DemoProduction.StartAsync(archive, profiles, ct).ConfigureAwait(false);
            var server = production.Server;
            console.Out.WriteLine($"   archive_command = {ConfValue.Quote(archive)}");
            console.Out.WriteLine($"   PostgreSQL {server.Binaries.Major} on port {server.Port} (socket {server.SocketDirectory}), database app: {rows:N0} rows in profiles, orders, audit_log, wa_messages, …");
            await workspace.WriteConfigAsync(production, ct).ConfigureAwait(false);
            env["CAIRN_CONFIG"] = workspace.ConfigFile;
            Task Backup() => Run("backup app", "backup", inv => DatabaseCommands.BackupAsync(inv, new LogicalBackupRequest(inv.ResolveDatabase("app")), ct));

            Title(console, "2. Take the first backup (pg_dump in one snapshot, with its roles and a fingerprint of every table)");
            await Backup().ConfigureAwait(false);

            Title(console, "3. A day of changes: new orders and messages, updates, a few deletes; back up again");
            await production.DayOfChangesAsync(ct).ConfigureAwait(false);
            await Backup().ConfigureAwait(false);
            await Run("snapshots app", null, inv => DatabaseCommands.SnapshotsAsync(inv, new SnapshotListRequest(BackupsOnly: true, "app", WithRecoveryWindows: true), ct)).ConfigureAwait(false);

            Title(console, "4. Restore the latest backup into a new database; every table is checked against the fingerprint");
            await Run("restore app --to-database app_restored", "restore", inv => DatabaseCommands.DatabaseRestoreAsync(inv, new DatabaseRestoreRequest(inv.ResolveDatabase("app"), null, "app_restored"), ct)).ConfigureAwait(false);

            Title(console, "5. Someone deletes 25 orders by mistake: restore that one table beside the live data, see the diff, merge the missing rows back");
            await production.DeleteOrdersByMistakeAsync(ct).ConfigureAwait(false);
            await Run("restore app --table public.orders --into-schema cairn_restore", "restore", inv => DatabaseCommands.TableRestoreAsync(inv, new TableRestoreRequest(inv.ResolveDatabase("app"), null, ["public.orders"], "cairn_restore", MergeMissing: false), ct)).ConfigureAwait(false);
            await Run("restore app --table public.orders --into-schema cairn_restore --merge missing", "restore", inv => DatabaseCommands.TableRestoreAsync(inv, new TableRestoreRequest(inv.ResolveDatabase("app"), null, ["public.orders"], "cairn_restore", MergeMissing: true), ct)).ConfigureAwait(false);

            Title(console, "6. The restore drill: restore the latest backup into a throwaway server, run the checklist, measure RTO and data age, tear down");
            await Run("drill app", "drill", inv => DrillCommands.DrillAsync(inv, new DrillRequest(inv.ResolveDatabase("app")), ct)).ConfigureAwait(false);
            await Run("verify app --live", "verify", inv => DrillCommands.VerifyLiveAsync(inv, new LiveVerifyRequest(inv.ResolveDatabase("app")), ct)).ConfigureAwait(false);

            Title(console, "7. Point-in-time recovery: a physical backup, two known transactions, a restore to the moment between them");
            await Run("backup app --physical", "backup", inv => DatabaseCommands.PhysicalBackupAsync(inv, new PhysicalBackupRequest(inv.ResolveDatabase("app"), new FileBackupOptions(Environment.ProcessorCount, TimeSpan.FromMinutes(5))), ct)).ConfigureAwait(false);
            var target = await production.TwoTransactionsAsync(ct).ConfigureAwait(false);
            console.Out.WriteLine($"   transaction A committed before {target}, transaction B about a second after it");
            var pitrDir = workspace.PitrDirectory;
            var pitrPort = ScratchServer.FreePort();
            await Run($"restore app --physical --to {pitrDir} --target-time {target} --start --port {pitrPort.ToString(CultureInfo.InvariantCulture)}", "restore", inv => DatabaseCommands.PhysicalRestoreAsync(inv,
                new PhysicalRestoreRequest(inv.ResolveDatabase("app"), null, pitrDir, new RecoveryTarget(Time: target), new FileRestoreOptions(false, false, Environment.ProcessorCount * 2), Start: true, Port: pitrPort), ct)).ConfigureAwait(false);
            try
            {
                var events = await DemoProduction.StoppedBetweenAsync(pitrDir + ".sock", pitrPort, ct).ConfigureAwait(false);
                console.Out.WriteLine($"   the restored copy holds: {string.Join("; ", events)}");
                console.Out.WriteLine("   transaction B is not there: recovery stopped at the target, as asked");
            }
            finally
            {
                await production.StopRestoredAsync(pitrDir).ConfigureAwait(false);
            }

            Title(console, "8. The data lifecycle: retention cleanup, an erasure that survives a restore, rows brought back from the audit trail");
            await Run("cleanup app --dry-run", null, inv => LifecycleCommands.CleanupAsync(inv, new Operations.Lifecycle.Cleanup.CleanupRequest(inv.ResolveDatabase("app"), DryRun: true), ct)).ConfigureAwait(false);
            await Run("cleanup app", null, inv => LifecycleCommands.CleanupAsync(inv, new Operations.Lifecycle.Cleanup.CleanupRequest(inv.ResolveDatabase("app")), ct)).ConfigureAwait(false);
            var subject = await production.OldestProfileAsync(ct).ConfigureAwait(false);
            await Run($"erase app {subject} --reference DSR-0001", "erasure", inv => LifecycleCommands.EraseAsync(inv, new Operations.Lifecycle.Erasure.EraseRequest(inv.ResolveDatabase("app"), subject, Reference: "DSR-0001"), ct)).ConfigureAwait(false);
            await Run("restore app --to-database app_after_erasure   # the latest logical backup still holds the subject", "restore", inv => DatabaseCommands.DatabaseRestoreAsync(inv,
                new DatabaseRestoreRequest(inv.ResolveDatabase("app"), null, "app_after_erasure"), ct)).ConfigureAwait(false);
            var back = await production.ProfileRowsAsync("app_after_erasure", subject, ct).ConfigureAwait(false);
            console.Out.WriteLine($"   the erased subject in the restored copy: {back} row(s) — the ledger was applied before the restore reported success");
            var (window, before) = await production.DeleteNewestOrdersByMistakeAsync(ct).ConfigureAwait(false);
            console.Out.WriteLine("   someone deletes the 5 newest orders; the audit trigger kept their old images in audit_log.meta");
            var asOf = Stopwatch.StartNew();
            await Run($"recover app --table public.orders --at '{before}' --from logical --dry-run   # the table just before, from the logical backup and the audit trail", "recover",
                inv => LifecycleCommands.RecoverTableAsync(inv, new Operations.Lifecycle.Recovery.RecoverTableRequest(inv.ResolveDatabase("app"), "public.orders",
                    DateTimeOffset.Parse(before, CultureInfo.InvariantCulture), DryRun: true, From: Operations.Lifecycle.Recovery.RecoverSource.Logical), ct)).ConfigureAwait(false);
            // The audit window still has to reach back to the accident, however long the step above took.
            window += TimeSpan.FromSeconds(Math.Ceiling(asOf.Elapsed.TotalSeconds));
            await Run($"recover app --from-audit --since {(long)window.TotalSeconds}s", "recover", inv => LifecycleCommands.RecoverAsync(inv, new Operations.Lifecycle.Recovery.RecoverRequest(inv.ResolveDatabase("app"),
                window), ct)).ConfigureAwait(false);

            Title(console, "9. Prove it: verify every byte of the repository, apply retention, check the evidence log");
            await Run("verify --read-data", "verify", inv => RepositoryCommands.VerifyAsync(inv, new VerifyRequest(ReadData: true), ct)).ConfigureAwait(false);
            await Run("prune --dry-run", "prune", inv => RepositoryCommands.PruneAsync(inv, new PruneRequest(DryRun: true), ct)).ConfigureAwait(false);
            await Run("evidence list", null, inv => Task.FromResult(EvidenceCommands.ListEntries(inv, new EvidenceListRequest()))).ConfigureAwait(false);
            await Run("evidence verify", null, inv => EvidenceCommands.VerifyLogAsync(inv, new EvidenceVerifyRequest(null, null), CancellationToken.None)).ConfigureAwait(false);
            var from = started.AddTicks(-(started.Ticks % TimeSpan.TicksPerSecond));
            var until = ctx.Time.GetUtcNow().AddSeconds(1);
            await Run($"report --from {from.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture)} --format html --out {reportPath}", "report",
                inv => Task.FromResult(ReportCommands.Write(inv, new ReportRequest(from, until, null, ReportFormat.Html, reportPath)))).ConfigureAwait(false);

            Title(console, "Summary");
            var repoBytes = await Step().Operations.OpenStorage().TotalBytesAsync(ct).ConfigureAwait(false);
            console.Out.WriteLine($"   repository on disk: {Format.Bytes(repoBytes)} for three backups (two logical: the second added only what changed; one physical) and the archived WAL");
            console.Out.WriteLine($"   the compliance report of this run: {reportPath} (check it with: cairn report verify, while the demo's evidence log exists: --keep)");
            console.Out.WriteLine($"   demo finished in {Format.Duration(sw.Elapsed)}");
            if (keep)
            {
                var kept = production.Keep();
                console.Out.WriteLine($"   kept: psql \"{kept.Url(DemoProduction.Database)}\"; config {workspace.ConfigFile}; stop with: pg_ctl -D {kept.DataDirectory} stop");
                production = null;
            }
            return ExitCodes.Ok;
        }
        finally
        {
            if (production is not null)
            {
                await production.DisposeAsync().ConfigureAwait(false);
                workspace.Remove();
            }
        }
    }

    private static void Title(CliConsole console, string title)
    {
        console.Out.WriteLine();
        if (console.OutputIsTerminal)
        {
            console.Ansi.MarkupLine($"[bold]{Markup.Escape(title)}[/]");
        }
        else
        {
            console.Out.WriteLine(title);
        }
    }

    /// <summary>Indents the output of the steps the demo runs.</summary>
    private sealed class Indent(TextWriter inner) : TextWriter
    {
        private bool _lineStart = true;

        public override System.Text.Encoding Encoding => inner.Encoding;

        public override void Write(char value)
        {
            if (_lineStart && value != '\n')
            {
                inner.Write("     ");
            }
            inner.Write(value);
            _lineStart = value == '\n';
        }

        public override void Write(string? value)
        {
            foreach (var c in value ?? "")
            {
                Write(c);
            }
        }
    }
}
