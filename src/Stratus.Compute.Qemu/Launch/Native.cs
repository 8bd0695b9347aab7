using System.Runtime.InteropServices;

namespace Stratus.Compute.Qemu.Launch;

/// <summary>
/// The few libc calls the launcher needs. .NET cannot hand a child process chosen file descriptors (every descriptor it
/// opens is close-on-exec and <see cref="System.Diagnostics.Process"/> has no way to keep one open), so QEMU is started
/// with <c>posix_spawn</c>, whose file actions <c>dup2</c> exactly the descriptors it should get into place in the child.
/// glibc on x86-64 (Debian) only.
/// </summary>
internal static partial class Native
{
    private const string Libc = "libc";

    public const int OReadOnly = 0x0;
    public const int OWriteOnly = 0x1;
    public const int OReadWrite = 0x2;
    public const int OCreate = 0x40;
    public const int OAppend = 0x400;
    public const int OCloseOnExec = 0x80000;
    public const int FDupFdCloseOnExec = 1030;
    public const int AfUnix = 1;
    public const int SockStream = 1;
    public const int SockCloseOnExec = 0x80000;
    public const int WNoHang = 1;
    public const int ModeOwnerReadWrite = 0b_110_000_000; // 0600
    public const int SigKill = 9;
    public const short PosixSpawnSetSigDef = 0x04;
    public const short PosixSpawnSetSigMask = 0x08;

    /// <summary>Bytes reserved for <c>posix_spawn_file_actions_t</c> (80 on glibc x86-64) and <c>posix_spawnattr_t</c>
    /// (336); generously rounded up, never read by managed code.</summary>
    public const int SpawnStructBytes = 1024;

    /// <summary>Bytes of a glibc <c>sigset_t</c> (1024 bits).</summary>
    public const int SigSetBytes = 128;

    [LibraryImport(Libc, EntryPoint = "sendmsg", SetLastError = true)]
    private static unsafe partial nint SendMsg(nint socket, void* message, int flags);

    /// <summary>
    /// Writes all of <paramref name="bytes"/> to a connected unix socket, the first chunk carrying <paramref name="fd"/> as
    /// SCM_RIGHTS (glibc x86-64 <c>struct msghdr</c> / <c>cmsghdr</c> layouts).
    /// </summary>
    public static unsafe void SendWithFd(nint socket, byte[] bytes, int fd)
    {
        const int solSocket = 1, scmRights = 1, msgNoSignal = 0x4000;
        var control = stackalloc byte[24]; // CMSG_SPACE(sizeof(int))
        new Span<byte>(control, 24).Clear();
        *(ulong*)control = 20;               // cmsg_len = CMSG_LEN(sizeof(int))
        *(int*)(control + 8) = solSocket;    // cmsg_level
        *(int*)(control + 12) = scmRights;   // cmsg_type
        *(int*)(control + 16) = fd;
        var sent = 0;
        var iov = stackalloc nint[2];
        var msg = stackalloc byte[56];
        fixed (byte* data = bytes)
        {
            while (sent < bytes.Length)
            {
                iov[0] = (nint)(data + sent);
                iov[1] = bytes.Length - sent;
                new Span<byte>(msg, 56).Clear();
                *(nint*)(msg + 16) = (nint)iov;       // msg_iov
                *(nuint*)(msg + 24) = 1;              // msg_iovlen
                if (sent == 0)
                {
                    *(nint*)(msg + 32) = (nint)control; // msg_control
                    *(nuint*)(msg + 40) = 24;         // msg_controllen
                }
                var n = SendMsg(socket, msg, msgNoSignal);
                if (n < 0)
                {
                    var errno = Marshal.GetLastPInvokeError();
                    if (errno == 4)
                    {
                        continue; // EINTR
                    }
                    throw new IOException($"sendmsg with a file descriptor failed (errno {errno})");
                }
                sent += (int)n;
            }
        }
    }

    [LibraryImport(Libc, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport(Libc, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Libc, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport(Libc, EntryPoint = "socket", SetLastError = true)]
    public static partial int Socket(int domain, int type, int protocol);

    [LibraryImport(Libc, EntryPoint = "bind", SetLastError = true)]
    public static partial int Bind(int fd, byte[] address, int length);

    [LibraryImport(Libc, EntryPoint = "listen", SetLastError = true)]
    public static partial int Listen(int fd, int backlog);

    [LibraryImport(Libc, EntryPoint = "geteuid")]
    public static partial uint GetEffectiveUid();

    [LibraryImport(Libc, EntryPoint = "getegid")]
    public static partial uint GetEffectiveGid();

    [LibraryImport(Libc, EntryPoint = "waitpid", SetLastError = true)]
    public static partial int WaitPid(int pid, out int status, int options);

    [LibraryImport(Libc, EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    [LibraryImport(Libc, EntryPoint = "posix_spawnp", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int PosixSpawnp(out int pid, string file, IntPtr fileActions, IntPtr attributes, IntPtr[] argv, IntPtr[] envp);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_init")]
    public static partial int FileActionsInit(IntPtr fileActions);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_adddup2")]
    public static partial int FileActionsAddDup2(IntPtr fileActions, int fd, int newFd);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_addchdir_np", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int FileActionsAddChdir(IntPtr fileActions, string path);

    [LibraryImport(Libc, EntryPoint = "posix_spawn_file_actions_destroy")]
    public static partial int FileActionsDestroy(IntPtr fileActions);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_init")]
    public static partial int AttrInit(IntPtr attributes);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setflags")]
    public static partial int AttrSetFlags(IntPtr attributes, short flags);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigmask")]
    public static partial int AttrSetSigMask(IntPtr attributes, IntPtr sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_setsigdefault")]
    public static partial int AttrSetSigDefault(IntPtr attributes, IntPtr sigset);

    [LibraryImport(Libc, EntryPoint = "posix_spawnattr_destroy")]
    public static partial int AttrDestroy(IntPtr attributes);

    [LibraryImport(Libc, EntryPoint = "sigemptyset")]
    public static partial int SigEmptySet(IntPtr sigset);

    [LibraryImport(Libc, EntryPoint = "sigfillset")]
    public static partial int SigFillSet(IntPtr sigset);

    /// <summary>The error text of errno <paramref name="errno"/> (e.g. "Permission denied").</summary>
    public static string Describe(int errno) => Marshal.GetPInvokeErrorMessage(errno);
}
