using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Stratus.Compute.Qemu.Launch;

/// <summary>A descriptor of this process (<paramref name="Source"/>) that the child gets as <paramref name="Target"/>.</summary>
internal readonly record struct InheritedFd(int Source, int Target);

/// <summary>
/// A process started with <c>posix_spawn</c> that inherits exactly the descriptors it is given (its 0, 1, 2 and every
/// <see cref="InheritedFd.Target"/>): every descriptor .NET opens is close-on-exec, and the sources are duplicated
/// close-on-exec above <see cref="TargetLimit"/> before the child's <c>dup2</c>s, so a process spawned concurrently by
/// another thread never inherits them and no source collides with a target.
/// <para>Reaping: such a child is not a <see cref="System.Diagnostics.Process"/>, so the runtime does not reap it. This
/// class does, for every child it started, on each SIGCHLD and once a second (a detached driver's children are reaped
/// all the same, so none lingers as a zombie).</para>
/// </summary>
internal sealed class ChildProcess
{
    /// <summary>Targets must be below this number (sources are duplicated at or above it).</summary>
    public const int TargetLimit = 64;

    private static readonly ConcurrentDictionary<int, TaskCompletionSource<int>> Children = new();
    private static readonly Lock ReaperGate = new();
    private static PosixSignalRegistration? _sigchld;
    private static Timer? _poll;

    private ChildProcess(int pid, Task<int> exited)
    {
        Pid = pid;
        Exited = exited;
    }

    public int Pid { get; }

    /// <summary>Completes with the raw wait status once the child has exited and been reaped (-1: reaped elsewhere).</summary>
    public Task<int> Exited { get; }

    /// <summary>Sends SIGKILL unless the child has already been reaped (its pid could be reused).</summary>
    public void Kill()
    {
        if (!Exited.IsCompleted)
        {
            Native.Kill(Pid, Native.SigKill);
        }
    }

    /// <summary>"exit code N" or "signal N" for a raw wait status.</summary>
    public static string DescribeStatus(int status) => status switch
    {
        -1 => "reaped elsewhere",
        _ when (status & 0x7f) == 0 => $"exit code {(status >> 8) & 0xff}",
        _ => $"signal {status & 0x7f}",
    };

    /// <summary>Starts <paramref name="file"/> (searched on PATH) with <paramref name="argv"/> (argv[0] included), the
    /// current environment, working directory <c>/</c>, no blocked signals and default signal dispositions. <paramref name="fds"/> must map 0, 1 and 2 as well. Throws <see cref="IOException"/> when the
    /// spawn fails (the binary missing, say).</summary>
    public static ChildProcess Start(string file, IReadOnlyList<string> argv, IReadOnlyList<InheritedFd> fds)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("the QEMU launcher needs Linux");
        }

        EnsureReaper();
        var high = new List<int>();
        var strings = new List<IntPtr>();
        var fileActions = Marshal.AllocHGlobal(Native.SpawnStructBytes);
        var attributes = Marshal.AllocHGlobal(Native.SpawnStructBytes);
        var empty = Marshal.AllocHGlobal(Native.SigSetBytes);
        var full = Marshal.AllocHGlobal(Native.SigSetBytes);
        try
        {
            Check(Native.FileActionsInit(fileActions), "posix_spawn_file_actions_init");
            Check(Native.AttrInit(attributes), "posix_spawnattr_init");
            foreach (var fd in fds)
            {
                if (fd.Target is < 0 or >= TargetLimit)
                {
                    throw new ArgumentOutOfRangeException(nameof(fds), $"descriptor target {fd.Target} must be 0–{TargetLimit - 1}");
                }

                var copy = Native.Fcntl(fd.Source, Native.FDupFdCloseOnExec, TargetLimit);
                if (copy < 0)
                {
                    throw new IOException($"cannot duplicate descriptor {fd.Source}: {Native.Describe(Marshal.GetLastPInvokeError())}");
                }

                high.Add(copy);
                Check(Native.FileActionsAddDup2(fileActions, copy, fd.Target), "posix_spawn_file_actions_adddup2");
            }

            // The child holds no directory of ours busy (it uses no relative path).
            Check(Native.FileActionsAddChdir(fileActions, "/"), "posix_spawn_file_actions_addchdir_np");

            // The runtime blocks and ignores signals of its own (SIGPIPE, say); QEMU starts from the defaults.
            Native.SigEmptySet(empty);
            Native.SigFillSet(full);
            Check(Native.AttrSetSigMask(attributes, empty), "posix_spawnattr_setsigmask");
            Check(Native.AttrSetSigDefault(attributes, full), "posix_spawnattr_setsigdefault");
            Check(Native.AttrSetFlags(attributes, Native.PosixSpawnSetSigMask | Native.PosixSpawnSetSigDef), "posix_spawnattr_setflags");

            var argvPtr = ToUtf8Array(argv, strings);
            var environment = Environment.GetEnvironmentVariables();
            var envp = ToUtf8Array(environment.Keys.Cast<string>().Select(k => $"{k}={environment[k]}").ToList(), strings);
            lock (ReaperGate)
            {
                // Under the reaper's lock: the child is registered before any reaper pass can see it exit.
                var error = Native.PosixSpawnp(out var pid, file, fileActions, attributes, argvPtr, envp);
                if (error != 0)
                {
                    throw new IOException($"cannot exec {file}: {Native.Describe(error)}");
                }

                var exited = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
                Children[pid] = exited;
                return new ChildProcess(pid, exited.Task);
            }
        }
        finally
        {
            foreach (var fd in high)
            {
                Native.Close(fd);
            }

            foreach (var s in strings)
            {
                Marshal.FreeHGlobal(s);
            }

            Native.FileActionsDestroy(fileActions);
            Native.AttrDestroy(attributes);
            Marshal.FreeHGlobal(fileActions);
            Marshal.FreeHGlobal(attributes);
            Marshal.FreeHGlobal(empty);
            Marshal.FreeHGlobal(full);
        }
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new IOException($"{call} failed: {Native.Describe(result)}");
        }
    }

    private static IntPtr[] ToUtf8Array(IReadOnlyList<string> values, List<IntPtr> allocated)
    {
        var result = new IntPtr[values.Count + 1];
        for (var i = 0; i < values.Count; i++)
        {
            result[i] = Marshal.StringToCoTaskMemUTF8(values[i]);
            allocated.Add(result[i]);
        }

        return result;
    }

    private static void EnsureReaper()
    {
        lock (ReaperGate)
        {
            if (_poll is not null || OperatingSystem.IsWindows())
            {
                return;
            }

            _sigchld = PosixSignalRegistration.Create(PosixSignal.SIGCHLD, _ => Reap());
            _poll = new Timer(_ => Reap(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>Reaps every child of ours that has exited (never anyone else's: the runtime reaps its own).</summary>
    private static void Reap()
    {
        lock (ReaperGate)
        {
            foreach (var (pid, exited) in Children)
            {
                var result = Native.WaitPid(pid, out var status, Native.WNoHang);
                if (result == pid || result < 0)
                {
                    Children.TryRemove(pid, out _);
                    exited.TrySetResult(result == pid ? status : -1);
                }
            }
        }
    }
}
