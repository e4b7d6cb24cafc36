using System.Text.RegularExpressions;
using Cairn.Operations.Scheduling;
using Cairn.Storage.S3;
using YamlDotNet.RepresentationModel;

namespace Cairn.Operations.Configuration;

/// <summary>
/// One entry of <c>copies:</c>: a second repository that <c>cairn copy</c> keeps up to date (3-2-1). <see cref="S3"/>: this
/// copy's own S3 settings and credentials file (a bucket in another account or region); null uses the top-level
/// <c>s3:</c> block. <see cref="Job"/>: the daemon's <c>copy</c> job when a schedule is given. <see cref="MaxAge"/>:
/// <c>check</c> is CRITICAL when the last good copy is older.
/// </summary>
/// <remarks>
/// <see cref="Databases"/> and <see cref="Since"/> narrow the copy (docs/repository-format.md, "Filtered copies");
/// <see cref="PassphraseFile"/> names the file holding the passphrase of a copy that is a repository of its own (other
/// keys: the copy re-encrypts).
/// </remarks>
public sealed record CopyConfig(string Repository, S3Options? S3, ScheduledJob? Job, TimeSpan MaxAge, bool ReadData)
{
    public IReadOnlyList<string> Databases { get; init; } = [];

    public string? Since { get; init; }

    public string? PassphraseFile { get; init; }

    public static readonly TimeSpan DefaultMaxAge = TimeSpan.FromDays(2);
}

/// <summary>Parses <c>copies: [ { repository, schedule, max_age, read_data, s3: { … } } ]</c> at config load; errors name the file, line and key.</summary>
public static class CopiesConfigSection
{
    private static readonly HashSet<string> Keys = ["repository", "schedule", "max_age", "read_data", "s3", "databases", "since", "passphrase_file"];

    internal static List<CopyConfig> Parse(YamlNode? node, string file, string baseDirectory, string? primary, RetentionLock? retentionLock = null, IReadOnlyCollection<string>? databases = null)
    {
        if (node is null)
        {
            return [];
        }
        var ctx = new CairnConfig.Ctx(file);
        if (node is not YamlSequenceNode list)
        {
            throw new ConfigException($"{file}:{node.Start.Line}: 'copies' must be a list, e.g. copies: [ {{ repository: s3://other-region/cairn, schedule: \"30 1 * * *\" }} ]");
        }
        var result = new List<CopyConfig>();
        var i = 0;
        foreach (var item in list.Children)
        {
            var where = $"copies[{i++}]";
            var m = ctx.Mapping(item, where);
            ctx.CheckKeys(m, Keys, where + ".");
            var text = ctx.OptString(m, "repository", where) ?? throw new ConfigException($"{file}:{item.Start.Line}: {where}: 'repository' is required (a folder or s3://BUCKET/PREFIX)");
            var repository = Regex.IsMatch(text, "^[A-Za-z][A-Za-z0-9+.-]*://") ? text : Path.GetFullPath(text, baseDirectory);
            try
            {
                _ = Repository.Storage.RepositoryLocation.Parse(repository);
            }
            catch (Repository.RepositoryException e)
            {
                throw new ConfigException($"{file}:{ctx.Get(m, "repository")!.Start.Line}: {where}.repository: {e.Message}");
            }
            if (repository == primary)
            {
                throw new ConfigException($"{file}:{ctx.Get(m, "repository")!.Start.Line}: {where}.repository is the primary repository itself; a copy goes to another place (another bucket, region or disk)");
            }
            if (result.Any(c => c.Repository == repository))
            {
                throw new ConfigException($"{file}:{ctx.Get(m, "repository")!.Start.Line}: {where}.repository {repository} is listed twice");
            }
            ScheduledJob? job = null;
            if (ctx.Get(m, "schedule") is { } sn)
            {
                var expr = ctx.Scalar(sn, where + ".schedule");
                job = new ScheduledJob("-", ScheduledJob.CopyJob, expr, ScheduledJob.ParseCron(expr, $"{file}:{sn.Start.Line}: {where}.schedule")) { CopyTarget = repository };
            }
            var maxAge = ctx.Get(m, "max_age") is { } an ? ctx.Duration(an, where + ".max_age") : CopyConfig.DefaultMaxAge;
            if (maxAge <= TimeSpan.Zero)
            {
                throw new ConfigException($"{file}:{ctx.Get(m, "max_age")!.Start.Line}: {where}.max_age must be above zero, e.g. 2d");
            }
            var s3 = ctx.Get(m, "s3") is { } s3n ? S3ConfigSection.Parse(s3n, file, baseDirectory, where + ".s3", retentionLock) : null;
            var names = ctx.Get(m, "databases") switch
            {
                null => [],
                YamlSequenceNode seq when seq.Children.Count > 0 => seq.Children.Select(c => ctx.Scalar(c, where + ".databases")).ToList(),
                var other => throw new ConfigException($"{file}:{other.Start.Line}: {where}.databases must be a non-empty list of databases named under databases:, e.g. databases: [app]"),
            };
            foreach (var name in names)
            {
                if (databases is not null && !databases.Contains(name))
                {
                    throw new ConfigException($"{file}:{ctx.Get(m, "databases")!.Start.Line}: {where}.databases: '{name}' is not a database of this file (databases: {(databases.Count == 0 ? "none" : string.Join(", ", databases.Order(StringComparer.Ordinal)))}); name one of them or remove it");
                }
            }
            if (names.Distinct(StringComparer.Ordinal).Count() != names.Count)
            {
                throw new ConfigException($"{file}:{ctx.Get(m, "databases")!.Start.Line}: {where}.databases names a database twice");
            }
            var since = ctx.OptString(m, "since", where);
            if (since is not null)
            {
                try
                {
                    _ = Copying.CopyFilter.SinceTime(since, DateTimeOffset.UnixEpoch.AddYears(100));
                }
                catch (Repository.RepositoryException e)
                {
                    throw new ConfigException($"{file}:{ctx.Get(m, "since")!.Start.Line}: {where}.since: {e.Message}");
                }
            }
            var passphraseFile = ctx.OptString(m, "passphrase_file", where) is { } pf ? Path.GetFullPath(pf, baseDirectory) : null;
            result.Add(new CopyConfig(repository, s3, job, maxAge, ctx.OptBool(m, "read_data", where) ?? false) { Databases = names, Since = since, PassphraseFile = passphraseFile });
        }
        return result;
    }
}
