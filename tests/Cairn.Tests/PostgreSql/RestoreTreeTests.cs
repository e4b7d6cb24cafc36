using Cairn.PostgreSql.Files;
using Cairn.Tests.Support;

namespace Cairn.Tests.PostgreSql;

/// <summary>How a restore writes a file into an empty target (<see cref="RestoreTree.Fresh"/>) and into one that is not.</summary>
public class RestoreTreeTests
{
    private static Func<Stream, CancellationToken, Task> Content(string text) => async (s, c) =>
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        await s.WriteAsync(bytes.AsMemory(0, 3), c);
        await s.WriteAsync(bytes.AsMemory(3), c); // written at the stream's position, piece after piece
    };

    [Fact]
    public async Task A_fresh_tree_writes_files_under_their_own_names_and_replaces_a_link_planted_there_without_writing_through_it()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("target"));
        var outside = dir.File("outside");
        File.WriteAllText(outside, "not to be touched");
        using var tree = new RestoreTree(SafeDirectory.Open(dir.File("target"), create: false), owner: null) { Fresh = true };
        tree.Directory("base", UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        await tree.WriteFileAsync("base/1", 11, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, Content("relation 1\n"), default);
        Assert.Equal("relation 1\n", File.ReadAllText(dir.File("target/base/1")));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead, File.GetUnixFileMode(dir.File("target/base/1")));

        // Something of that name appears meanwhile (the server's user owns the folders): it is replaced, never written through.
        File.CreateSymbolicLink(dir.File("target/base/2"), outside);
        await tree.WriteFileAsync("base/2", 11, UnixFileMode.UserRead | UnixFileMode.UserWrite, Content("relation 2\n"), default);
        Assert.Equal("not to be touched", File.ReadAllText(outside));
        Assert.Null(new FileInfo(dir.File("target/base/2")).LinkTarget);
        Assert.Equal("relation 2\n", File.ReadAllText(dir.File("target/base/2")));

        // A fill that fails leaves nothing behind under the name.
        await Assert.ThrowsAsync<InvalidDataException>(() => tree.WriteFileAsync("base/3", 11, UnixFileMode.UserRead | UnixFileMode.UserWrite, (_, _) => throw new InvalidDataException("damaged blob"), default));
        Assert.Equal(["1", "2"], Directory.EnumerateFileSystemEntries(dir.File("target/base")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }
}
