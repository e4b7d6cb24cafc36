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
public sealed record CopyConfig(string Repository, S3Options? S3, ScheduledJob? Job, TimeSpan MaxAge, bool ReadData)
{
    public static readonly TimeSpan DefaultMaxAge = TimeSpan.FromDays(2);
}

/// <summary>Parses <c>copies: [ { repository, schedule, max_age, read_data, s3: { … } } ]</c> at config load; errors name the file, line and key.</summary>
public static class CopiesConfigSection
{
    private static readonly HashSet<string> Keys = ["repository", "schedule", "max_age", "read_data", "s3"];

    internal static List<CopyConfig> Parse(YamlNode? node, string file, string baseDirectory, string? primary, RetentionLock? retentionLock = null)
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
            result.Add(new CopyConfig(repository, s3, job, maxAge, ctx.OptBool(m, "read_data", where) ?? false));
        }
        return result;
    }
}
