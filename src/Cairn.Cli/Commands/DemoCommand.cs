using System.CommandLine;
using System.Diagnostics;
using Cairn.Cli.Terminal;
using Cairn.Operations.Demo;
using Cairn.PostgreSql.Servers;
using Spectre.Console;

namespace Cairn.Cli.Commands;

/// <summary>
/// <c>cairn demo</c>: the main job end to end on an embedded default. Starts a scratch "production"
/// server with the runbook's schema and realistic rows, and runs the real commands against it with
/// a local repository: back up, change data, back up again, restore, restore one table with its
/// diff and merge, drill, a physical backup with WAL archived through cairn and a point-in-time
/// restore between two known transactions, verify the repository and the evidence. Leaves nothing running.
/// </summary>
internal static class DemoCommand
{
    public static Command Build(CliContext ctx)
    {
        var keep = new Option<bool>("--keep") { Description = "Keep the scratch server and folder afterwards (prints how to connect)" };
        var profiles = new Option<int>("--profiles") { Description = "Demo size: profiles to generate (orders, messages and audit rows scale with it)", DefaultValueFactory = _ => 5000 };
        var cmd = new Command("demo", "Run Cairn end to end on a scratch PostgreSQL server with a demo database (nothing is left behind)") { keep, profiles };
        cmd.SetAction(ctx, async (p, ct) =>
        {
            var sw = Stopwatch.StartNew();
            var console = ctx.Console;
            var folder = Path.Combine(Path.GetTempPath(), $"cairn-demo-{Guid.NewGuid():N}"[..22]);
            Directory.CreateDirectory(folder);
            ScratchServer? server = null;
            try
            {
                var config = Path.Combine(folder, "cairn.yaml");
                var passFile = Path.Combine(folder, "passphrase");
                await File.WriteAllTextAsync(passFile, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(24)) + "\n", ct).ConfigureAwait(false);
                File.SetUnixFileMode(passFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                var env = new Dictionary<string, string>
                {
                    ["CAIRN_PASSPHRASE_FILE"] = passFile,
                    ["CAIRN_REPOSITORY"] = Path.Combine(folder, "repo"),
                };
                async Task Run(params string[] args)
                {
                    console.Out.WriteLine($"   $ cairn {string.Join(' ', args)}");
                    var sub = new CliContext(new CliConsole(new Indent(console.Out), new Indent(console.Error), false, console.OutputIsTerminal), ctx.Time, k => env.GetValueOrDefault(k) ?? ctx.Env(k));
                    var code = await CairnCli.RunAsync(args, sub).ConfigureAwait(false);
                    if (code != 0)
                    {
                        throw new Cairn.Repository.RepositoryException(Cairn.Repository.ErrorKind.General, $"the demo step 'cairn {string.Join(' ', args)}' failed with exit code {code}");
                    }
                }

                Step(console, "1. Create the encrypted repository; give the server's user a key of its own and the WAL area only; start a scratch \"production\" server that archives its WAL through cairn wal-push; load the runbook's schema");
                await Run("init", "--kdf-memory-mib", "16", "--kdf-iterations", "2").ConfigureAwait(false);
                // archive_command and restore_command run as the server's user: it gets its own key (a random passphrase,
                // cheap KDF) and, with 'cairn archiver allow', the WAL area and that key file only (docs/security.md).
                var archiverPass = Path.Combine(folder, "archiver.pass");
                await File.WriteAllTextAsync(archiverPass, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)) + "\n", ct).ConfigureAwait(false);
                env["CAIRN_NEW_PASSPHRASE_FILE"] = archiverPass;
                await Run("key", "add", "--label", "archiver", "--kdf-memory-mib", "1", "--kdf-iterations", "1").ConfigureAwait(false);
                env["CAIRN_RESTORE_PASSPHRASE_FILE"] = archiverPass;
                if (Cairn.PostgreSql.Programs.PgProcess.IsRoot)
                {
                    env["CAIRN_PASSPHRASE_FILE"] = archiverPass;
                    await Run("archiver", "allow", "--group", "postgres").ConfigureAwait(false);
                    env["CAIRN_PASSPHRASE_FILE"] = passFile;
                    Cairn.Operations.Physical.ArchiverAccess.ShareForReading(archiverPass, "postgres");
                    Cairn.Operations.Physical.ArchiverAccess.ShareForReading(folder, "postgres");
                }
                var archive = PhysicalCommands.ArchiveCommand(ctx, Path.Combine(folder, "repo"), archiverPass, "app");
                server = await ScratchServer.StartAsync(settings: new Dictionary<string, string>
                {
                    ["wal_level"] = "replica",
                    ["archive_mode"] = "on",
                    ["archive_command"] = Cairn.PostgreSql.Physical.ConfValue.Quote(archive),
                }, cancellationToken: ct).ConfigureAwait(false);
                console.Out.WriteLine($"   archive_command = {Cairn.PostgreSql.Physical.ConfValue.Quote(archive)}");
                await server.ExecuteAsync("CREATE DATABASE app", cancellationToken: ct).ConfigureAwait(false);
                await server.ExecuteAsync(DemoSchema.Sql(p.GetValue(profiles)), "app", ct).ConfigureAwait(false);
                var rows = await server.ScalarAsync<long>("SELECT (SELECT count(*) FROM profiles) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM wa_messages)", "app", ct).ConfigureAwait(false);
                console.Out.WriteLine($"   PostgreSQL {server.Binaries.Major} on port {server.Port} (socket {server.SocketDirectory}), database app: {rows:N0} rows in profiles, orders, audit_log, wa_messages, …");
                await File.WriteAllTextAsync(config, $"""
                    # Written by 'cairn demo'
                    repository: {Path.Combine(folder, "repo")}
                    evidence:
                      path: {Path.Combine(folder, "evidence")}
                    databases:
                      app:
                        connection: "{server.Url("app")}"
                        data_directory: {server.DataDirectory}
                        retention: {"{"} keep_last: 7, keep_daily: 30, keep_within: 30d {"}"}
                        checks:   # the runbook's verification checklist and its four daily tests
                          - tables_present: [public.profiles, public.orders, public.audit_log, public.wa_messages]
                          - row_counts: {"{"} equal_to: fingerprint {"}"}
                          - rls_enabled: {"{"} schema: public {"}"}
                          - foreign_keys: {"{"}{"}"}
                          - audit_continuity: {"{"} table: public.audit_log, time_column: created_at, max_gap: 6h {"}"}
                          - sql: {"{"} name: critical_table_rows, query: "SELECT (SELECT count(*) FROM profiles) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM wa_messages)", expect: "= fingerprint" {"}"}
                          - sql: {"{"} name: rls_enabled_tables, query: "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON c.relnamespace = n.oid WHERE c.relrowsecurity AND n.nspname = 'public' AND NOT c.relispartition", expect: ">= 7" {"}"}
                          - sql: {"{"} name: recent_activity, query: "SELECT count(*) FROM audit_log WHERE created_at > :backup_time - interval '24 hours'", expect: "> 0" {"}"}
                          - sql: {"{"} name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" {"}"}
                          - amcheck: {"{"} heapallindexed: true {"}"}
                    """, ct).ConfigureAwait(false);
                env["CAIRN_CONFIG"] = config;

                Step(console, "2. Take the first backup (pg_dump in one snapshot, with its roles and a fingerprint of every table)");
                await Run("backup", "app").ConfigureAwait(false);

                Step(console, "3. A day of changes: new orders and messages, updates, a few deletes; back up again");
                await server.ExecuteAsync("""
                    INSERT INTO orders (profile_id, status, amount, created_at) SELECT id, 'paid', 42.00, now() FROM profiles WHERE random() < 0.05;
                    INSERT INTO wa_messages (profile_id, direction, body, created_at) SELECT id, 'out', 'Obrigado pela sua compra!', now() FROM profiles WHERE random() < 0.05;
                    UPDATE orders SET status = 'shipped' WHERE status = 'paid' AND id % 50 = 0;
                    DELETE FROM wa_automation_flows WHERE status = 'completed' AND id % 20 = 0;
                    """, "app", ct).ConfigureAwait(false);
                await Run("backup", "app").ConfigureAwait(false);
                await Run("snapshots", "app").ConfigureAwait(false);

                Step(console, "4. Restore the latest backup into a new database; every table is checked against the fingerprint");
                await Run("restore", "app", "--to-database", "app_restored").ConfigureAwait(false);

                Step(console, "5. Someone deletes 25 orders by mistake: restore that one table beside the live data, see the diff, merge the missing rows back");
                await server.ExecuteAsync("DELETE FROM orders WHERE id IN (SELECT id FROM orders ORDER BY id LIMIT 25)", "app", ct).ConfigureAwait(false);
                await Run("restore", "app", "--table", "public.orders", "--into-schema", "cairn_restore").ConfigureAwait(false);
                await Run("restore", "app", "--table", "public.orders", "--into-schema", "cairn_restore", "--merge", "missing").ConfigureAwait(false);

                Step(console, "6. The restore drill: restore the latest backup into a throwaway server, run the checklist, measure RTO and data age, tear down");
                await Run("drill", "app").ConfigureAwait(false);
                await Run("verify", "app", "--live").ConfigureAwait(false);

                Step(console, "7. Point-in-time recovery: a physical backup, two known transactions, a restore to the moment between them");
                await Run("backup", "app", "--physical").ConfigureAwait(false);
                await server.ExecuteAsync("INSERT INTO audit_log (actor, event, entity, created_at) VALUES ('demo', 'transaction A: refund approved', 'orders', now())", "app", ct).ConfigureAwait(false);
                var between = await server.ScalarAsync<DateTime>("SELECT clock_timestamp()", "app", ct).ConfigureAwait(false);
                await Task.Delay(1100, ct).ConfigureAwait(false);
                await server.ExecuteAsync("INSERT INTO audit_log (actor, event, entity, created_at) VALUES ('demo', 'transaction B: all orders deleted by mistake', 'orders', now())", "app", ct).ConfigureAwait(false);
                await ArchiveCurrentSegmentAsync(server, ct).ConfigureAwait(false);
                var target = between.ToUniversalTime().ToString("yyyy-MM-dd HH:mm:ss.ffffff", System.Globalization.CultureInfo.InvariantCulture) + "+00";
                console.Out.WriteLine($"   transaction A committed before {target}, transaction B about a second after it");
                var pitrDir = Path.Combine(folder, "pitr");
                var pitrPort = ScratchServer.FreePort();
                await Run("restore", "app", "--physical", "--to", pitrDir, "--target-time", target, "--start", "--port", pitrPort.ToString(System.Globalization.CultureInfo.InvariantCulture)).ConfigureAwait(false);
                try
                {
                    var restored = Cairn.PostgreSql.Connections.PgConnection.Parse($"postgresql://postgres@/app?host={Uri.EscapeDataString(pitrDir + ".sock")}&port={pitrPort}");
                    await using var session = await Cairn.PostgreSql.Sessions.CheckSession.OpenAsync(restored, TimeSpan.FromSeconds(30), ct).ConfigureAwait(false);
                    var events = (await session.QueryAsync("SELECT event FROM audit_log WHERE actor = 'demo' ORDER BY created_at", null, ct).ConfigureAwait(false)).Select(r => (string)r[0]!).ToList();
                    console.Out.WriteLine($"   the restored copy holds: {(events.Count == 0 ? "neither" : string.Join("; ", events))}");
                    if (events.Count != 1 || !events[0].StartsWith("transaction A", StringComparison.Ordinal))
                    {
                        throw new Cairn.Repository.RepositoryException(Cairn.Repository.ErrorKind.General, "point-in-time recovery did not stop between the two transactions");
                    }
                    console.Out.WriteLine("   transaction B is not there: recovery stopped at the target, as asked");
                }
                finally
                {
                    await Cairn.PostgreSql.Programs.PgProcess.RunAsync(server.Binaries["pg_ctl"], ["-D", pitrDir, "-m", "fast", "-w", "stop"], null, CancellationToken.None, asServerUser: true).ConfigureAwait(false);
                }

                Step(console, "8. Prove it: verify every byte of the repository, apply retention, check the evidence log");
                await Run("verify", "--read-data").ConfigureAwait(false);
                await Run("prune", "--dry-run").ConfigureAwait(false);
                await Run("evidence", "list").ConfigureAwait(false);
                await Run("evidence", "verify").ConfigureAwait(false);

                Step(console, "Summary");
                var repoBytes = Directory.EnumerateFiles(Path.Combine(folder, "repo"), "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                console.Out.WriteLine($"   repository on disk: {Format.Bytes(repoBytes)} for three backups (two logical: the second added only what changed; one physical) and the archived WAL");
                console.Out.WriteLine($"   demo finished in {Format.Duration(sw.Elapsed)}");
                if (p.GetValue(keep))
                {
                    console.Out.WriteLine($"   kept: psql \"{server.Url("app")}\"; config {config}; stop with: pg_ctl -D {server.DataDirectory} stop");
                    server = null;
                }
                return ExitCodes.Ok;
            }
            finally
            {
                if (server is not null)
                {
                    await server.DisposeAsync().ConfigureAwait(false);
                    try
                    {
                        Directory.Delete(folder, recursive: true);
                    }
                    catch (IOException)
                    {
                    }
                }
            }
        });
        return cmd;
    }

    /// <summary>Switches WAL segment and waits until the archiver has pushed everything written so far.</summary>
    private static async Task ArchiveCurrentSegmentAsync(ScratchServer server, CancellationToken ct)
    {
        var last = await server.ScalarAsync<string>("SELECT pg_walfile_name(pg_current_wal_insert_lsn())", cancellationToken: ct).ConfigureAwait(false);
        await server.ExecuteAsync("SELECT pg_switch_wal()", cancellationToken: ct).ConfigureAwait(false);
        for (var i = 0; i < 300; i++)
        {
            var archived = await server.ScalarAsync<string>("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver", cancellationToken: ct).ConfigureAwait(false);
            if (string.CompareOrdinal(archived, last) >= 0)
            {
                return;
            }
            await Task.Delay(100, ct).ConfigureAwait(false);
        }
        throw new Cairn.Repository.RepositoryException(Cairn.Repository.ErrorKind.General, $"the demo server did not archive {last} within 30 s; see {server.LogFile}");
    }

    private static void Step(CliConsole console, string title)
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

    /// <summary>Indents the output of the commands the demo runs.</summary>
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
