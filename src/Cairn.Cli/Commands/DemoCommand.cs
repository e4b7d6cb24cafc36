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
/// diff and merge, verify the repository and the evidence. Leaves nothing running.
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
                Step(console, "1. Start a scratch \"production\" PostgreSQL server and load the runbook's schema");
                server = await ScratchServer.StartAsync(cancellationToken: ct).ConfigureAwait(false);
                await server.ExecuteAsync("CREATE DATABASE app", cancellationToken: ct).ConfigureAwait(false);
                await server.ExecuteAsync(DemoSchema.Sql(p.GetValue(profiles)), "app", ct).ConfigureAwait(false);
                var rows = await server.ScalarAsync<long>("SELECT (SELECT count(*) FROM profiles) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM wa_messages)", "app", ct).ConfigureAwait(false);
                console.Out.WriteLine($"   PostgreSQL {server.Binaries.Major} on port {server.Port} (socket {server.SocketDirectory}), database app: {rows:N0} rows in profiles, orders, audit_log, wa_messages, …");

                var config = Path.Combine(folder, "cairn.yaml");
                await File.WriteAllTextAsync(config, $"""
                    # Written by 'cairn demo'
                    repository: {Path.Combine(folder, "repo")}
                    evidence:
                      path: {Path.Combine(folder, "evidence")}
                    databases:
                      app:
                        connection: "{server.Url("app")}"
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
                var env = new Dictionary<string, string>
                {
                    ["CAIRN_CONFIG"] = config,
                    ["CAIRN_PASSPHRASE"] = "demo passphrase (use CAIRN_PASSPHRASE_FILE for real)",
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

                Step(console, "2. Create the encrypted repository and take the first backup");
                await Run("init", "--kdf-memory-mib", "16", "--kdf-iterations", "2").ConfigureAwait(false);
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

                Step(console, "7. Prove it: verify every byte of the repository, apply retention, check the evidence log");
                await Run("verify", "--read-data").ConfigureAwait(false);
                await Run("prune", "--dry-run").ConfigureAwait(false);
                await Run("evidence", "list").ConfigureAwait(false);
                await Run("evidence", "verify").ConfigureAwait(false);

                Step(console, "Summary");
                var repoBytes = Directory.EnumerateFiles(Path.Combine(folder, "repo"), "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
                console.Out.WriteLine($"   repository on disk: {Format.Bytes(repoBytes)} for two backups (see 'Size' and 'Added' above: the second added only what changed)");
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
