using System.Runtime.InteropServices;
using System.Text;

namespace Stratus.Compute.Qemu.Launch;

/// <summary>
/// The files and sockets a child process gets as numbered descriptors, opened here (by the agent, root) with exactly the
/// access the child needs. Disposing closes this process's copies; the child keeps its own.
/// </summary>
internal sealed class DescriptorSet : IDisposable
{
    private readonly List<int> _opened = [];
    private readonly List<InheritedFd> _map = [];

    /// <summary>Source → target pairs for <see cref="ChildProcess.Start"/>.</summary>
    public IReadOnlyList<InheritedFd> Map => _map;

    /// <summary>Opens <paramref name="path"/> read-only as descriptor <paramref name="target"/>.</summary>
    public void OpenRead(string path, int target) => Open(path, Native.OReadOnly, target);

    /// <summary>Opens <paramref name="path"/> for reading and writing (it must exist) as descriptor <paramref name="target"/>.</summary>
    public void OpenReadWrite(string path, int target) => Open(path, Native.OReadWrite, target);

    /// <summary>Opens <paramref name="path"/> write-only, appending, created 0600 when missing, as descriptor <paramref name="target"/>.</summary>
    public void OpenAppend(string path, int target) => Open(path, Native.OWriteOnly | Native.OAppend | Native.OCreate, target);

    private void Open(string path, int flags, int target)
    {
        var fd = Native.Open(path, flags | Native.OCloseOnExec, Native.ModeOwnerReadWrite);
        if (fd < 0)
        {
            throw new IOException($"cannot open {path}: {Native.Describe(Marshal.GetLastPInvokeError())}");
        }

        Add(fd, target);
    }

    /// <summary>Binds and listens on a unix socket at <paramref name="path"/> (replacing a stale one) as descriptor
    /// <paramref name="target"/>. The socket file belongs to this process's user; the child only gets the listening
    /// descriptor, so it needs no access to the directory and cannot remove the socket.</summary>
    public void ListenUnix(string path, int target)
    {
        var name = Encoding.UTF8.GetBytes(path);
        if (name.Length > 107)
        {
            throw new IOException($"unix socket path {path} is longer than 107 bytes");
        }

        File.Delete(path);
        var fd = Native.Socket(Native.AfUnix, Native.SockStream | Native.SockCloseOnExec, 0);
        if (fd < 0)
        {
            throw new IOException($"cannot create a unix socket: {Native.Describe(Marshal.GetLastPInvokeError())}");
        }

        Add(fd, target);
        var address = new byte[2 + name.Length + 1];
        address[0] = Native.AfUnix;
        name.CopyTo(address, 2);
        if (Native.Bind(fd, address, address.Length) != 0 || Native.Listen(fd, 8) != 0)
        {
            throw new IOException($"cannot listen on {path}: {Native.Describe(Marshal.GetLastPInvokeError())}");
        }
    }

    /// <summary>Gives the child this process's descriptor <paramref name="fd"/> (not closed here) as <paramref name="target"/>.</summary>
    public void Pass(int fd, int target) => _map.Add(new InheritedFd(fd, target));

    private void Add(int fd, int target)
    {
        _opened.Add(fd);
        _map.Add(new InheritedFd(fd, target));
    }

    public void Dispose()
    {
        foreach (var fd in _opened)
        {
            Native.Close(fd);
        }

        _opened.Clear();
    }
}
