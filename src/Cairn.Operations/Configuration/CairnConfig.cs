using System.Globalization;
using System.Text.RegularExpressions;
using Cairn.Operations.Checks;
using Cairn.Operations.Monitoring;
using Cairn.Operations.Scheduling;
using Cairn.Repository.Compression;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Configuration;

/// <summary>A config problem, always naming the file, line and key.</summary>
public sealed class ConfigException(string message) : Exception(message);

public sealed record RetentionPolicy
{
    public int? KeepLast { get; init; }
    public int? KeepDaily { get; init; }
    public int? KeepWeekly { get; init; }
    public int? KeepMonthly { get; init; }
    public TimeSpan? KeepWithin { get; init; }

    /// <summary>Backups carrying any of these tags (<c>backup --tag</c>) are kept.</summary>
    public IReadOnlyList<string> KeepTag { get; init; } = [];

    public bool IsEmpty => KeepLast is null && KeepDaily is null && KeepWeekly is null && KeepMonthly is null && KeepWithin is null && KeepTag.Count == 0;

    /// <summary>
    /// How long the calendar rules keep a backup at least, when backups keep coming on schedule: the longest of keep_within,
    /// keep_daily days, keep_weekly weeks and keep_monthly months (31 days each). Null when no calendar rule is set (keep_last
    /// and keep_tag say nothing about time).
    /// </summary>
    public double? HorizonDays
    {
        get
        {
            // In days as a double: keep_daily: 2000000000 is a number the config accepts, but not a TimeSpan.
            double?[] days = [KeepWithin?.TotalDays, KeepDaily, KeepWeekly * 7.0, KeepMonthly * 31.0];
            return days.Max();
        }
    }
}

/// <summary>
/// The S3 Object Lock period that follows from the retention policies (<c>object_lock: { days: retention }</c>): every
/// database's <see cref="RetentionPolicy.HorizonDays"/>, the longest one, rounded up to whole days, plus one day so prune never
/// meets an object whose lock ends the moment its backup may go. <see cref="Days"/> is null and <see cref="Why"/> says why when
/// a database has no calendar rule.
/// </summary>
public sealed record RetentionLock(double? Days, string Why)
{
    public static RetentionLock Of(IReadOnlyDictionary<string, DatabaseConfig> databases)
    {
        if (databases.Count == 0)
        {
            return new RetentionLock(null, "no database is configured, so no retention policy gives a period");
        }
        if (databases.Values.FirstOrDefault(d => d.Retention.HorizonDays is null) is { } bare)
        {
            return new RetentionLock(null, $"databases.{bare.Name}.retention has no calendar rule (keep_within, keep_daily, keep_weekly or keep_monthly), so no period follows from it");
        }
        var longest = databases.Values.MaxBy(d => d.Retention.HorizonDays!.Value)!;
        var days = Math.Ceiling(longest.Retention.HorizonDays!.Value) + 1;
        return new RetentionLock(days, $"databases.{longest.Name}.retention keeps a backup {(days - 1).ToString(CultureInfo.InvariantCulture)} day(s) at least, plus one day");
    }
}

public sealed record DatabaseConfig
{
    public string Name { get; init; } = "";
    public string Connection { get; init; } = "";
    public string? PasswordFile { get; init; }
    public string? DataDirectory { get; init; }
    public RetentionPolicy Retention { get; init; } = new();

    /// <summary>The checks drills and live verifications run (<c>checks:</c>), in the order written.</summary>
    public IReadOnlyList<CheckSpec> Checks { get; init; } = [];

    /// <summary>The scheduled jobs (<c>schedule:</c>), cron in UTC.</summary>
    public IReadOnlyList<ScheduledJob> Schedule { get; init; } = [];

    /// <summary>Freshness thresholds (<c>monitoring:</c>); the defaults when the section is absent.</summary>
    public Thresholds Monitoring { get; init; } = Thresholds.Default;

    /// <summary>The recovery time objective drills are judged against in reports (<c>rto_target:</c>); none when not set.</summary>
    public TimeSpan? RtoTarget { get; init; }

    /// <summary>The recovery point objective (the data age a restore may have) drills are judged against (<c>rpo_target:</c>).</summary>
    public TimeSpan? RpoTarget { get; init; }

    /// <summary>The retention cleanup rules (<c>cleanup:</c>), numbered from 1 in the order written.</summary>
    public IReadOnlyList<Lifecycle.CleanupRule> Cleanup { get; init; } = [];

    /// <summary>Where logical drills restore (<c>drill: { on: URL }</c>), or null: a scratch server Cairn starts.</summary>
    public DrillTargetConfig? Drill { get; init; }

    /// <summary>Who a data subject is and how to erase one (<c>erasure:</c>), or null.</summary>
    public Lifecycle.ErasureConfig? Erasure { get; init; }

    /// <summary>Where the audit trail is and what its rows mean (<c>audit:</c>), or null.</summary>
    public Lifecycle.AuditConfig? Audit { get; init; }

    /// <summary>A managed platform's choices (<c>preset: supabase</c>): schemas in full, data only or skipped, and its managed roles; or null.</summary>
    public Logical.BackupPreset? Preset { get; init; }

    /// <summary>Schemas backed up in full whatever the preset says (<c>include_schemas:</c>).</summary>
    public IReadOnlyList<string> IncludeSchemas { get; init; } = [];

    /// <summary>Schemas never backed up (<c>exclude_schemas:</c>).</summary>
    public IReadOnlyList<string> ExcludeSchemas { get; init; } = [];

    /// <summary>Which roles a backup stores (<c>roles: referenced | all | [list]</c>).</summary>
    public Logical.RoleSelection Roles { get; init; } = Logical.RoleSelection.Referenced;

    /// <summary>The application's Storage buckets whose files a backup also holds (<c>storage_buckets:</c>), or null.</summary>
    public StorageBucketsConfig? StorageBuckets { get; init; }

    /// <summary>How wal-push and wal-fetch work for this database (<c>wal:</c>); synchronous, no prefetch when absent.</summary>
    public WalConfig Wal { get; init; } = WalConfig.Synchronous;

    /// <summary>How the incident runbooks isolate this database, and the hooks and human steps they add (<c>incident:</c>).</summary>
    public Incidents.IncidentConfig Incident { get; init; } = Incidents.IncidentConfig.Default;

    /// <summary>How this database's backups are compressed (<c>compression: zstd:N | zstd:auto</c>); null: the top-level setting.</summary>
    public CompressionSetting? Compression { get; init; }
}

/// <summary>
/// <c>wal: { async: true, spool: DIR, push_ahead: N, fetch_ahead: N, compression: zstd:N }</c>. With <see cref="Async"/>, wal-push starts
/// a background pusher that stores the following <c>.ready</c> segments (at most <see cref="PushAhead"/> ahead of
/// PostgreSQL, in parallel) and acknowledges a segment at once when the pusher already stored it. With
/// <see cref="FetchAhead"/> above 0, wal-fetch has the next N segments fetched in parallel into the spool.
/// The spool is a folder the server's user owns (0700); it never holds the only copy of anything.
/// <see cref="CompressionLevel"/> is the zstd level wal-push stores segments at, synchronous or not.
/// </summary>
public sealed record WalConfig(bool Async, string? Spool, int PushAhead, int FetchAhead)
{
    public const int DefaultPushAhead = 4;

    /// <summary>zstd level 1: on real WAL level 3 stores 7 % fewer bytes for 4-6 ms more CPU per 16 MiB segment (docs/benchmarks.md, "WAL compression levels").</summary>
    public const int DefaultCompressionLevel = Cairn.Repository.NamedFiles.DefaultLevel;

    public int CompressionLevel { get; init; } = DefaultCompressionLevel;
    public const int MaxAhead = 64;

    public static WalConfig Synchronous { get; } = new(false, null, DefaultPushAhead, 0);

    public bool Prefetch => FetchAhead > 0;
}

/// <summary>
/// <c>drill: { on: URL, password_file: FILE }</c>: logical drills restore into a new, uniquely named database on the
/// server of <see cref="On"/> (its database part is where Cairn connects to create and drop it) instead of a scratch server.
/// </summary>
public sealed record DrillTargetConfig(string On, string? PasswordFile);

/// <summary><c>daemon: { listen: "127.0.0.1:9187", tick: 5s }</c>: where /metrics and /healthz are served and how often due jobs are looked for.</summary>
public sealed record DaemonConfig(string Listen = "127.0.0.1:9187", TimeSpan? Tick = null)
{
    public TimeSpan TickOrDefault => Tick ?? TimeSpan.FromSeconds(5);
}

/// <summary>The <c>reports:</c> section: where the daemon's <c>report</c> job writes monthly reports, and in which format.</summary>
public sealed record ReportsConfig(string? Directory, string Format)
{
    public static readonly string[] Formats = ["html", "md", "json"];
}

/// <summary>The evidence section. <see cref="PublicKey"/> pins the verifier key file monitoring checks the log with;
/// <see cref="MirrorSchema"/> is the schema of the runbook's table (default <c>cairn</c>).</summary>
public sealed record EvidenceConfig(string? Path, string? SigningKey, bool MirrorTable, string? PublicKey = null, string? MirrorSchema = null);

/// <summary>
/// cairn.yaml: the path comes from --config, CAIRN_CONFIG, else ./cairn.yaml. Secrets are never in
/// it: password_file, url_file and the like name files that hold them.
/// </summary>
public sealed record CairnConfig
{
    public string? File { get; init; }
    public string? Repository { get; init; }

    /// <summary>
    /// <c>append_only: true</c>: this host's client creates objects and never deletes or replaces one (a database
    /// host whose S3 credentials have no s3:DeleteObject); prune and unlock run elsewhere. See docs/security.md.
    /// </summary>
    public bool AppendOnly { get; init; }
    public EvidenceConfig Evidence { get; init; } = new(null, null, false);
    public string? PostgresBin { get; init; }
    public string? WorkDirectory { get; init; }
    public Dictionary<string, DatabaseConfig> Databases { get; init; } = new(StringComparer.Ordinal);

    /// <summary>The alert receivers (<c>alerts:</c>).</summary>
    public IReadOnlyList<AlertSink> Alerts { get; init; } = [];

    /// <summary>The <c>reports:</c> section (the daemon's monthly reports).</summary>
    public ReportsConfig Reports { get; init; } = new(null, "html");

    /// <summary>Every database's scheduled jobs, in the order of the file.</summary>
    public IReadOnlyList<ScheduledJob> Schedules => [.. Databases.Values.SelectMany(d => d.Schedule), .. Copies.Select(c => c.Job).OfType<ScheduledJob>()];

    /// <summary>The thresholds of <paramref name="database"/>: its monitoring section, or the defaults when it is not configured.</summary>
    public Thresholds ThresholdsOf(string database) => Databases.TryGetValue(database, out var d) ? d.Monitoring : Thresholds.Default;

    /// <summary>The <c>s3:</c> block, or null when absent (the environment alone can configure S3).</summary>
    public Cairn.Storage.S3.S3Options? S3 { get; init; }

    /// <summary>The <c>daemon:</c> block: its HTTP address and loop interval (command-line options win).</summary>
    public DaemonConfig Daemon { get; init; } = new();

    /// <summary>The second repositories <c>cairn copy</c> keeps up to date (<c>copies:</c>), in the order written.</summary>
    public IReadOnlyList<CopyConfig> Copies { get; init; } = [];

    /// <summary>
    /// How what this host writes into the repository is compressed (<c>compression:</c> at the top level): backups of
    /// databases without a <c>compression:</c> of their own, and <c>repo put</c>. <c>zstd:auto</c> when absent.
    /// </summary>
    public CompressionSetting Compression { get; init; } = CompressionSetting.Auto;

    /// <summary>The compression of <paramref name="database"/>'s backups: its own setting, else the top-level one.</summary>
    public CompressionSetting CompressionOf(string? database)
        => database is not null && Databases.TryGetValue(database, out var d) && d.Compression is { } own ? own : Compression;

    public static CairnConfig Empty { get; } = new();

    private static readonly HashSet<string> TopKeys = ["repository", "evidence", "postgres_bin", "work_dir", "databases", "alerts", "s3", "append_only", "daemon", "reports", "copies", "compression"];
    private static readonly HashSet<string> DbKeys = ["connection", "password_file", "data_directory", "retention", "checks", "schedule", "monitoring", "cleanup", "cleanup_timeouts", "erasure", "audit", "rto_target", "rpo_target", "preset", "include_schemas", "exclude_schemas", "roles", "drill", "wal", "storage_buckets", "incident", "compression"];
    private static readonly HashSet<string> DrillKeys = ["on", "password_file"];

    // Keys that were once accepted and silently ignored: refused with what to use instead.
    private static readonly Dictionary<string, string> RefusedTopKeys = new(StringComparer.Ordinal);

    private static readonly Dictionary<string, string> RefusedDbKeys = new(StringComparer.Ordinal)
    {
        ["physical"] = "physical backups need no section: set data_directory for file-level backups, schedule them with 'backup_physical: \"CRON\"' (and 'drill_physical') under databases.NAME.schedule, and archive WAL with archive_command = 'cairn wal-push %p --database NAME'",
    };
    private static readonly HashSet<string> DaemonKeys = ["listen", "tick"];
    private static readonly HashSet<string> RetentionKeys = ["keep_last", "keep_daily", "keep_weekly", "keep_monthly", "keep_within", "keep_tag"];
    private static readonly HashSet<string> EvidenceKeys = ["path", "signing_key", "mirror_table", "public_key", "mirror_schema"];

    public static CairnConfig Load(string path)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText(path);
        }
        catch (FileNotFoundException)
        {
            throw new ConfigException($"config file {path} does not exist");
        }
        catch (IOException e)
        {
            throw new ConfigException($"cannot read config file {path}: {e.Message}");
        }
        return Parse(text, path);
    }

    public static CairnConfig Parse(string text, string file)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlException e)
        {
            throw new ConfigException($"{file}:{e.Start.Line}: invalid YAML: {e.InnerException?.Message ?? e.Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet's scanner and loader throw these for some malformed documents (found by fuzzing) instead of a YamlException.
            throw new ConfigException($"{file}: invalid YAML ({e.Message}); check the indentation and quoting");
        }
        if (stream.Documents.Count == 0)
        {
            return new CairnConfig { File = file };
        }
        if (stream.Documents[0].RootNode is not YamlMappingNode root)
        {
            throw new ConfigException($"{file}:1: the config must be a mapping of keys (repository:, databases:, …)");
        }
        var ctx = new Ctx(file);
        ctx.Refuse(root, RefusedTopKeys, "");
        ctx.CheckKeys(root, TopKeys, "");
        var baseDir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(file))!;
        string? Resolve(string? p) => p is null ? null : System.IO.Path.GetFullPath(p, baseDir);
        // A location with a scheme (s3://…) stays as written: RepositoryLocation parses it, and refuses schemes it does not know.
        string? ResolveLocation(string? p) => p is null ? null : Regex.IsMatch(p, "^[A-Za-z][A-Za-z0-9+.-]*://") ? p : System.IO.Path.GetFullPath(p, baseDir);

        var dbs = new Dictionary<string, DatabaseConfig>(StringComparer.Ordinal);
        if (ctx.Get(root, "databases") is { } dbNode)
        {
            var map = ctx.Mapping(dbNode, "databases");
            foreach (var (k, v) in map.Children)
            {
                var name = ctx.Scalar(k, "databases");
                if (!Regex.IsMatch(name, "^[A-Za-z0-9_.-]+$"))
                {
                    throw new ConfigException($"{file}:{k.Start.Line}: database name '{name}' may only hold letters, digits, '_', '.', '-'");
                }
                var d = ctx.Mapping(v, $"databases.{name}");
                ctx.Refuse(d, RefusedDbKeys, $"databases.{name}.");
                ctx.CheckKeys(d, DbKeys, $"databases.{name}.");
                var connection = ctx.Get(d, "connection") is { } cn ? ctx.Scalar(cn, $"databases.{name}.connection") : throw new ConfigException($"{file}:{v.Start.Line}: databases.{name}: 'connection' is required (a libpq URI or key=value string)");
                if (connection.Contains("password=", StringComparison.OrdinalIgnoreCase) || Regex.IsMatch(connection, "^postgres(ql)?://[^/@]*:[^/@]*@"))
                {
                    throw new ConfigException($"{file}:{cn.Start.Line}: databases.{name}.connection holds a password; put it in a file and name it with password_file (or use PGPASSFILE/.pgpass)");
                }
                var retention = new RetentionPolicy();
                if (ctx.Get(d, "retention") is { } rn)
                {
                    var rm = ctx.Mapping(rn, $"databases.{name}.retention");
                    ctx.CheckKeys(rm, RetentionKeys, $"databases.{name}.retention.");
                    retention = new RetentionPolicy
                    {
                        KeepLast = ctx.OptInt(rm, "keep_last", $"databases.{name}.retention"),
                        KeepDaily = ctx.OptInt(rm, "keep_daily", $"databases.{name}.retention"),
                        KeepWeekly = ctx.OptInt(rm, "keep_weekly", $"databases.{name}.retention"),
                        KeepMonthly = ctx.OptInt(rm, "keep_monthly", $"databases.{name}.retention"),
                        KeepWithin = ctx.Get(rm, "keep_within") is { } kw ? ctx.Duration(kw, $"databases.{name}.retention.keep_within") : null,
                        KeepTag = ctx.Get(rm, "keep_tag") switch
                        {
                            null => [],
                            YamlScalarNode one => [ctx.Scalar(one, $"databases.{name}.retention.keep_tag")],
                            YamlSequenceNode many => [.. many.Children.Select(c => ctx.Scalar(c, $"databases.{name}.retention.keep_tag"))],
                            var other => throw new ConfigException($"{file}:{other.Start.Line}: databases.{name}.retention.keep_tag must be a tag or a list of tags, e.g. keep_tag: [pre-migration]"),
                        },
                    };
                }
                DrillTargetConfig? drill = null;
                if (ctx.Get(d, "drill") is { } drn)
                {
                    var dm = ctx.Mapping(drn, $"databases.{name}.drill");
                    ctx.CheckKeys(dm, DrillKeys, $"databases.{name}.drill.");
                    var on = ctx.OptString(dm, "on", $"databases.{name}.drill") ?? throw new ConfigException($"{file}:{drn.Start.Line}: databases.{name}.drill: 'on' is required (the URL of the server drills restore into, e.g. postgresql://drill@restore-host:5432/postgres)");
                    if (on.Contains("password=", StringComparison.OrdinalIgnoreCase) || Regex.IsMatch(on, "^postgres(ql)?://[^/@]*:[^/@]*@"))
                    {
                        throw new ConfigException($"{file}:{drn.Start.Line}: databases.{name}.drill.on holds a password; put it in a file and name it with drill.password_file");
                    }
                    drill = new DrillTargetConfig(on, Resolve(ctx.OptString(dm, "password_file", $"databases.{name}.drill")));
                }
                dbs[name] = new DatabaseConfig
                {
                    Drill = drill,
                    Name = name,
                    Connection = connection,
                    PasswordFile = Resolve(ctx.OptString(d, "password_file", $"databases.{name}")),
                    DataDirectory = Resolve(ctx.OptString(d, "data_directory", $"databases.{name}")),
                    Retention = retention,
                    Checks = CheckParser.Parse(ctx.Get(d, "checks") is { } ch ? ch as YamlSequenceNode ?? throw new ConfigException($"{file}:{ch.Start.Line}: databases.{name}.checks must be a list") : null, file, name),
                    Schedule = ctx.Get(d, "schedule") is { } sc ? ScheduledJob.Parse(ctx.Mapping(sc, $"databases.{name}.schedule"), file, name) : [],
                    Monitoring = Thresholds.Parse(ctx.Get(d, "monitoring") is { } mo ? ctx.Mapping(mo, $"databases.{name}.monitoring") : null, file, name),
                    Cleanup = Lifecycle.LifecycleConfigParser.Cleanup(ctx.Get(d, "cleanup"), ctx.Get(d, "cleanup_timeouts"), file, name, ctx),
                    Erasure = Lifecycle.LifecycleConfigParser.Erasure(ctx.Get(d, "erasure"), file, name, ctx),
                    Audit = Lifecycle.LifecycleConfigParser.Audit(ctx.Get(d, "audit"), file, name, ctx),
                    RtoTarget = ctx.Get(d, "rto_target") is { } rto ? ctx.Duration(rto, $"databases.{name}.rto_target") : null,
                    RpoTarget = ctx.Get(d, "rpo_target") is { } rpo ? ctx.Duration(rpo, $"databases.{name}.rpo_target") : null,
                    Preset = ctx.OptString(d, "preset", $"databases.{name}") is { } preset
                        ? Logical.BackupPreset.Find(preset) ?? throw new ConfigException($"{file}:{ctx.Get(d, "preset")!.Start.Line}: databases.{name}.preset '{preset}' is not known; presets: {string.Join(", ", Logical.BackupPreset.Names)}")
                        : null,
                    IncludeSchemas = SchemaList(ctx, d, "include_schemas", file, name),
                    ExcludeSchemas = SchemaList(ctx, d, "exclude_schemas", file, name),
                    Roles = ParseRoles(ctx, d, file, name),
                    StorageBuckets = ctx.Get(d, "storage_buckets") is { } sbn ? StorageBucketsConfigSection.Parse(sbn, file, baseDir, name, ctx) : null,
                    Incident = Incidents.IncidentConfig.Parse(ctx.Get(d, "incident"), file, name, ctx),
                    Compression = ctx.Get(d, "compression") is { } cmp ? ParseCompression(ctx, cmp, file, $"databases.{name}.compression") : null,
                    Wal = ctx.Get(d, "wal") is { } wn ? ParseWal(ctx, ctx.Mapping(wn, $"databases.{name}.wal"), file, name, Resolve) : WalConfig.Synchronous,
                };
            }
        }
        var evidence = new EvidenceConfig(null, null, false);
        if (ctx.Get(root, "evidence") is { } en)
        {
            var em = ctx.Mapping(en, "evidence");
            ctx.CheckKeys(em, EvidenceKeys, "evidence.");
            evidence = new EvidenceConfig(Resolve(ctx.OptString(em, "path", "evidence")), Resolve(ctx.OptString(em, "signing_key", "evidence")), ctx.OptBool(em, "mirror_table", "evidence") ?? false, Resolve(ctx.OptString(em, "public_key", "evidence")),
                ctx.OptString(em, "mirror_schema", "evidence"));
            if (evidence.MirrorSchema is { } ms && !Regex.IsMatch(ms, "^[a-z_][a-z0-9_]{0,62}$"))
            {
                throw new ConfigException($"{file}:{en.Start.Line}: evidence.mirror_schema '{ms}' must be a lower-case SQL name (letters, digits, '_'), e.g. cairn");
            }
        }
        var reports = new ReportsConfig(null, "html");
        if (ctx.Get(root, "reports") is { } rn2)
        {
            var rm2 = ctx.Mapping(rn2, "reports");
            ctx.CheckKeys(rm2, ["dir", "format"], "reports.");
            var format = ctx.OptString(rm2, "format", "reports") ?? "html";
            if (!ReportsConfig.Formats.Contains(format))
            {
                throw new ConfigException($"{file}:{rn2.Start.Line}: reports.format must be one of {string.Join(", ", ReportsConfig.Formats)}, not '{format}'");
            }
            reports = new ReportsConfig(Resolve(ctx.OptString(rm2, "dir", "reports")), format);
        }
        if (reports.Directory is null && dbs.Values.SelectMany(d => d.Schedule).FirstOrDefault(j => j.Job == "report") is { } reportJob)
        {
            throw new ConfigException($"{file}: databases.{reportJob.Database}.schedule.report needs reports.dir, the folder the monthly reports are written into (reports: {{ dir: /var/lib/cairn/reports, format: html }})");
        }
        var repository = ResolveLocation(ctx.OptString(root, "repository", ""));
        var retentionLock = RetentionLock.Of(dbs);
        return new CairnConfig
        {
            File = file,
            Copies = CopiesConfigSection.Parse(ctx.Get(root, "copies"), file, baseDir, repository, retentionLock, dbs.Keys),
            Reports = reports,
            Repository = repository,
            Evidence = evidence,
            PostgresBin = Resolve(ctx.OptString(root, "postgres_bin", "")),
            WorkDirectory = Resolve(ctx.OptString(root, "work_dir", "")),
            Databases = dbs,
            Alerts = AlertSink.Parse(ctx.Get(root, "alerts") switch
            {
                null => null,
                YamlSequenceNode list => list,
                var other => throw new ConfigException($"{file}:{other.Start.Line}: 'alerts' must be a list of receivers, e.g. - {{ type: slack, url_file: /etc/cairn/slack.url }}"),
            }, file),
            S3 = ctx.Get(root, "s3") is { } s3 ? S3ConfigSection.Parse(s3, file, baseDir, retentionLock: retentionLock) : null,
            AppendOnly = ctx.OptBool(root, "append_only", "") ?? false,
            Compression = ctx.Get(root, "compression") is { } topCompression ? ParseCompression(ctx, topCompression, file, "compression") : CompressionSetting.Auto,
            Daemon = ctx.Get(root, "daemon") is { } dn ? ParseDaemon(ctx, ctx.Mapping(dn, "daemon"), file) : new DaemonConfig(),
        };
    }

    private static List<string> SchemaList(Ctx ctx, YamlMappingNode d, string key, string file, string db)
    {
        var names = ctx.Get(d, key) switch
        {
            null => [],
            YamlSequenceNode seq => seq.Children.Select(c => ctx.Scalar(c, $"databases.{db}.{key}")).ToList(),
            var other => throw new ConfigException($"{file}:{other.Start.Line}: databases.{db}.{key} must be a list of schema names, e.g. {key}: [billing]"),
        };
        if (names.FirstOrDefault(n => n.Length is 0 or > 63 || n.Contains('\0', StringComparison.Ordinal)) is { } bad)
        {
            throw new ConfigException($"{file}:{ctx.Get(d, key)!.Start.Line}: databases.{db}.{key}: '{bad}' is not a schema name (1 to 63 characters)");
        }
        return names;
    }

    private static Logical.RoleSelection ParseRoles(Ctx ctx, YamlMappingNode d, string file, string db) => ctx.Get(d, "roles") switch
    {
        null => Logical.RoleSelection.Referenced,
        YamlScalarNode { Value: "referenced" } => Logical.RoleSelection.Referenced,
        YamlScalarNode { Value: "all" } => Logical.RoleSelection.Everyone,
        YamlSequenceNode seq => new Logical.RoleSelection(false, [.. seq.Children.Select(c => ctx.Scalar(c, $"databases.{db}.roles"))]),
        var other => throw new ConfigException($"{file}:{other.Start.Line}: databases.{db}.roles must be referenced, all, or a list of role names stored besides the referenced ones, e.g. roles: [authenticator]"),
    };

    private static CompressionSetting ParseCompression(Ctx ctx, YamlNode node, string file, string key)
    {
        var text = ctx.Scalar(node, key);
        return CompressionSetting.Parse(text)
            ?? throw new ConfigException($"{file}:{node.Start.Line}: {key} must be zstd:auto (the default: the level chosen per file by measured gain), zstd:N with a level N from 1 to {CompressionSetting.MaxLevel} (smallest), or one of zstd's fast levels zstd:-1 to zstd:{CompressionSetting.MinLevel} (faster, larger), e.g. compression: zstd:3; not '{Shown(text)}'");
    }

    /// <summary>A value as it can be shown in an error: control characters escaped, at most 40 characters.</summary>
    private static string Shown(string text)
    {
        var s = string.Concat(text.Take(40).Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
        return text.Length > 40 ? s + "…" : s;
    }

    private static readonly HashSet<string> WalKeys = ["async", "spool", "push_ahead", "fetch_ahead", "compression"];

    private static WalConfig ParseWal(Ctx ctx, YamlMappingNode m, string file, string database, Func<string?, string?> resolve)
    {
        var prefix = $"databases.{database}.wal";
        ctx.CheckKeys(m, WalKeys, prefix + ".");
        var isAsync = ctx.OptBool(m, "async", prefix) ?? false;
        var pushAhead = ctx.OptInt(m, "push_ahead", prefix) ?? WalConfig.DefaultPushAhead;
        var fetchAhead = ctx.OptInt(m, "fetch_ahead", prefix) ?? 0;
        foreach (var (key, value) in new[] { ("push_ahead", pushAhead), ("fetch_ahead", fetchAhead) })
        {
            if (value > WalConfig.MaxAhead || (key == "push_ahead" && value < 1))
            {
                throw new ConfigException($"{file}:{ctx.Get(m, key)!.Start.Line}: {prefix}.{key} must be between {(key == "push_ahead" ? 1 : 0)} and {WalConfig.MaxAhead} segments, not {value}");
            }
        }
        var spool = resolve(ctx.OptString(m, "spool", prefix));
        if (spool is null && (isAsync || fetchAhead > 0))
        {
            throw new ConfigException($"{file}:{m.Start.Line}: {prefix} needs spool: a folder the PostgreSQL server's user owns (e.g. spool: /var/spool/cairn), where the background pusher and prefetcher keep their state");
        }
        var compression = WalConfig.DefaultCompressionLevel;
        if (ctx.OptString(m, "compression", prefix) is { } c)
        {
            compression = WalCompression.TryParseLevel(c)
                ?? throw new ConfigException($"{file}:{ctx.Get(m, "compression")!.Start.Line}: {prefix}.compression must be zstd:N with a level N from 1 to {WalCompression.MaxLevel} (smallest), one of zstd's fast levels zstd:-1 to zstd:{WalCompression.MinLevel} (faster, larger), or zstd:auto (the default for WAL, zstd:{WalConfig.DefaultCompressionLevel}), e.g. compression: zstd:3; not '{Shown(c)}'");
        }
        return new WalConfig(isAsync, spool, pushAhead, fetchAhead) { CompressionLevel = compression };
    }

    private static DaemonConfig ParseDaemon(Ctx ctx, YamlMappingNode m, string file)
    {
        ctx.CheckKeys(m, DaemonKeys, "daemon.");
        var listen = ctx.OptString(m, "listen", "daemon") ?? "127.0.0.1:9187";
        var colon = listen.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(listen[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 1 or > 65535)
        {
            throw new ConfigException($"{file}:{ctx.Get(m, "listen")!.Start.Line}: daemon.listen must be HOST:PORT, e.g. 127.0.0.1:9187; got '{listen}'");
        }
        TimeSpan? tick = ctx.Get(m, "tick") is { } t ? ctx.Duration(t, "daemon.tick") : null;
        if (tick is { } tv && (tv < TimeSpan.FromSeconds(1) || tv > TimeSpan.FromMinutes(10)))
        {
            throw new ConfigException($"{file}:{ctx.Get(m, "tick")!.Start.Line}: daemon.tick must be between 1s and 10m, e.g. 5s");
        }
        return new DaemonConfig(listen, tick);
    }

    /// <summary>Parses durations such as 90s, 15m, 6h, 30d, 2w, 1y.</summary>
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = default;
        var m = Regex.Match(text.Trim(), @"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w|y)$");
        if (!m.Success)
        {
            return false;
        }
        var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var days = m.Groups[2].Value switch
        {
            "s" => n / 86400,
            "m" => n / 1440,
            "h" => n / 24,
            "d" => n,
            "w" => 7 * n,
            _ => 365 * n,
        };
        // Beyond a thousand years a duration is a typo, and beyond TimeSpan.MaxValue it would overflow.
        if (days > 366_000)
        {
            return false;
        }
        value = m.Groups[2].Value switch
        {
            "s" => TimeSpan.FromSeconds(n),
            "m" => TimeSpan.FromMinutes(n),
            "h" => TimeSpan.FromHours(n),
            "d" => TimeSpan.FromDays(n),
            "w" => TimeSpan.FromDays(7 * n),
            _ => TimeSpan.FromDays(365 * n),
        };
        return true;
    }

    internal sealed class Ctx(string file)
    {
        public YamlNode? Get(YamlMappingNode m, string key) => m.Children.TryGetValue(new YamlScalarNode(key), out var v) ? v : null;

        public void CheckKeys(YamlMappingNode m, HashSet<string> known, string prefix)
        {
            foreach (var k in m.Children.Keys)
            {
                var name = (k as YamlScalarNode)?.Value ?? "?";
                if (!known.Contains(name))
                {
                    throw new ConfigException($"{file}:{k.Start.Line}: unknown key '{prefix}{name}' (known here: {string.Join(", ", known.Order(StringComparer.Ordinal))})");
                }
            }
        }

        public void Refuse(YamlMappingNode m, Dictionary<string, string> refused, string prefix)
        {
            foreach (var k in m.Children.Keys)
            {
                if ((k as YamlScalarNode)?.Value is { } name && refused.TryGetValue(name, out var instead))
                {
                    throw new ConfigException($"{file}:{k.Start.Line}: '{prefix}{name}' is not supported; {instead}");
                }
            }
        }

        public YamlMappingNode Mapping(YamlNode n, string key) => n as YamlMappingNode
            ?? throw new ConfigException($"{file}:{n.Start.Line}: '{key}' must be a mapping (key: value lines)");

        public string Scalar(YamlNode n, string key) => n is YamlScalarNode s && s.Value is not null
            ? s.Value
            : throw new ConfigException($"{file}:{n.Start.Line}: '{key}' must be a single value");

        public string? OptString(YamlMappingNode m, string key, string prefix) => Get(m, key) is { } n ? Scalar(n, Join(prefix, key)) : null;

        public int? OptInt(YamlMappingNode m, string key, string prefix)
        {
            if (Get(m, key) is not { } n)
            {
                return null;
            }
            var s = Scalar(n, Join(prefix, key));
            return int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var v) && v >= 0
                ? v
                : throw new ConfigException($"{file}:{n.Start.Line}: '{Join(prefix, key)}' must be a whole number ≥ 0, not '{s}'");
        }

        public bool? OptBool(YamlMappingNode m, string key, string prefix)
        {
            if (Get(m, key) is not { } n)
            {
                return null;
            }
            var s = Scalar(n, Join(prefix, key));
            return s switch
            {
                "true" or "yes" or "on" => true,
                "false" or "no" or "off" => false,
                _ => throw new ConfigException($"{file}:{n.Start.Line}: '{Join(prefix, key)}' must be true or false, not '{s}'"),
            };
        }

        public TimeSpan Duration(YamlNode n, string key)
        {
            var s = Scalar(n, key);
            return TryParseDuration(s, out var d) ? d : throw new ConfigException($"{file}:{n.Start.Line}: '{key}' must be a duration like 30d, 24h or 15m, not '{s}'");
        }

        private static string Join(string prefix, string key) => prefix.Length == 0 ? key : $"{prefix}.{key}";
    }
}
