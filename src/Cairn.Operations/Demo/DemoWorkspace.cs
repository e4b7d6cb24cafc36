using System.Security.Cryptography;

namespace Cairn.Operations.Demo;

/// <summary>
/// The demo's private folder: the repository, a random passphrase in a file only the owner reads (the archiver
/// reads it too, through the file), the config the demo writes, and the folder a point-in-time restore goes to.
/// </summary>
public sealed record DemoWorkspace(string Folder)
{
    public string Repository => Path.Combine(Folder, "repo");

    public string PassphraseFile => Path.Combine(Folder, "passphrase");

    /// <summary>
    /// The archiver's passphrase: archive_command and restore_command run as the server's user, which gets a key of its
    /// own (a random passphrase, cheap KDF) and, with 'cairn archiver allow', the WAL area and that key file only.
    /// </summary>
    public string ArchiverPassphraseFile => Path.Combine(Folder, "archiver.pass");

    public string ConfigFile => Path.Combine(Folder, "cairn.yaml");

    public string PitrDirectory => Path.Combine(Folder, "pitr");

    public static async Task<DemoWorkspace> CreateAsync(CancellationToken cancellationToken)
    {
        var w = new DemoWorkspace(Path.Combine(Path.GetTempPath(), $"cairn-demo-{Guid.NewGuid():N}"[..22]));
        Directory.CreateDirectory(w.Folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        await File.WriteAllTextAsync(w.PassphraseFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(24)) + "\n", cancellationToken).ConfigureAwait(false);
        File.SetUnixFileMode(w.PassphraseFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        await File.WriteAllTextAsync(w.ArchiverPassphraseFile, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) + "\n", cancellationToken).ConfigureAwait(false);
        return w;
    }

    /// <summary>The demo's cairn.yaml: the production database with the runbook's checklist as checks. Evidence stays in the log 'cairn init' made.</summary>
    public Task WriteConfigAsync(DemoProduction production, CancellationToken cancellationToken) => File.WriteAllTextAsync(ConfigFile, $"""
        # Written by 'cairn demo'; the evidence log is the one 'cairn init' created beside the repository ({Repository}-evidence)
        repository: {Repository}
        databases:
          app:
            connection: "{production.Server.Url(DemoProduction.Database)}"
            data_directory: {production.Server.DataDirectory}
            retention: {"{"} keep_last: 7, keep_daily: 30, keep_within: 30d {"}"}
            checks:   # the runbook's verification checklist and its four daily tests
              - tables_present: [public.profiles, public.orders, public.audit_log, public.wa_messages]
              - row_counts: {"{"} equal_to: fingerprint, optional: true {"}"}   # optional: the live verification cannot compare with a fingerprint (a drill can)
              - rls_enabled: {"{"} schema: public {"}"}
              - foreign_keys: {"{"}{"}"}
              - audit_continuity: {"{"} table: public.audit_log, time_column: created_at, max_gap: 6h {"}"}
              - sql: {"{"} name: critical_table_rows, query: "SELECT (SELECT count(*) FROM profiles) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM audit_log) + (SELECT count(*) FROM wa_messages)", expect: "= fingerprint", optional: true {"}"}
              - sql: {"{"} name: rls_enabled_tables, query: "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON c.relnamespace = n.oid WHERE c.relrowsecurity AND n.nspname = 'public' AND NOT c.relispartition", expect: ">= 7" {"}"}
              - sql: {"{"} name: recent_activity, query: "SELECT count(*) FROM audit_log WHERE created_at > :backup_time - interval '24 hours'", expect: "> 0" {"}"}
              - sql: {"{"} name: verified_emails, query: "SELECT count(*) FROM profiles WHERE email_verified", expect: ">= 1" {"}"}
              - amcheck: {"{"} heapallindexed: true {"}"}
            cleanup:   # the runbook's "Automated Cleanup" (the audit log's rule shortened so the demo has rows to delete)
              - {"{"} table: public.audit_log, time_column: created_at, older_than: 30m {"}"}
              - {"{"} table: public.wa_media_signatures, time_column: expires_at, older_than: 1d {"}"}
              - {"{"} table: public.wa_automation_flows, time_column: updated_at, older_than: 30d, where: "status = 'completed'" {"}"}
              - {"{"} table: public.siren_events, time_column: created_at, older_than: 90d, where: "status IN ('sent','failed','cancelled')" {"}"}
            erasure:   # the runbook's "Legal Compliance"
              subject: {"{"} table: public.profiles, key: id {"}"}
              delete: [ {"{"} table: public.wa_messages, column: profile_id {"}"} ]
              anonymize: [ {"{"} table: public.audit_log, match_column: actor, set: {"{"} actor: deleted_user {"}"}, remove_json_keys: {"{"} meta: [email, phone, name] {"}"} {"}"} ]
            audit: {"{"} table: public.audit_log, time_column: created_at, entity_column: entity, id_column: entity_id, event_column: event, old_image: "meta->'old'", new_image: "meta->'new'" {"}"}
            schedule: {"{"} cleanup: "15 0 * * *" {"}"}
        """, cancellationToken);

    /// <summary>Lets the server's group read the archiver's passphrase file and enter the folder (never through a link).</summary>
    public void ShareWithServerUser(string group)
    {
        Physical.ArchiverAccess.ShareForReading(ArchiverPassphraseFile, group);
        Physical.ArchiverAccess.ShareForReading(Folder, group);
    }

    /// <summary>Removes the folder (best effort: a kept server's files stay when asked).</summary>
    public void Remove()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
