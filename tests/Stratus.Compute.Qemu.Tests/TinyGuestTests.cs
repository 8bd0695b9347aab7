using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Stratus.Compute;
using Stratus.Core.Compute;
using Xunit.Abstractions;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>Behaviour that needs a real booted guest; all tests share one VM (see <see cref="TinyGuestFixture"/>).</summary>
[Collection("tiny guest")]
public sealed partial class TinyGuestTests(TinyGuestFixture guest, ITestOutputHelper output)
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(60);

    [GeneratedRegex(@"STRATUS-TEST-MARKER id=\S+ boots=(\d+)")]
    private static partial Regex BootsPattern();

    private async Task<int> BootsSoFarAsync()
    {
        var console = await guest.Driver.ReadConsoleAsync(guest.Id, 1024 * 1024, CancellationToken.None);
        return BootsPattern().Matches(console).Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).DefaultIfEmpty(0).Max();
    }

    [Fact]
    public async Task Http_ForwardedPort_ServesPageWithInstanceId()
    {
        await guest.EnsureServingAsync();
        var page = await TestEnvironment.WaitForHttpAsync(guest.HostPort, Boot);
        Assert.Contains($"id={guest.Id}\n", page, StringComparison.Ordinal);
        Assert.Contains("cpus=1\n", page, StringComparison.Ordinal);
        Assert.Matches(@"mem_kib=\d+", page);
        Assert.Matches(@"uptime_s=\d+", page);
        output.WriteLine($"create→running {guest.CreateToRunning.TotalMilliseconds:0} ms, create→HTTP {guest.CreateToHttp.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task Console_UserDataAndKey_ReachTheGuest()
    {
        await guest.EnsureServingAsync();
        var console = await TestEnvironment.WaitForConsoleAsync(guest.Driver, guest.Id, $"STRATUS-TEST-MARKER id={guest.Id}", Boot);
        Assert.Contains($"STRATUS-GUEST-READY id={guest.Id}", console, StringComparison.Ordinal);
        // The config drive's public key reached the guest (it counts authorized keys at boot).
        Assert.Contains("keys=1", console, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PauseResume_Guest_StopsAnsweringThenAnswersAgain()
    {
        await guest.EnsureServingAsync();
        var paused = await guest.Driver.PauseAsync(guest.Id, CancellationToken.None);
        Assert.Equal(PowerState.Paused, paused.Power);
        Assert.Null(await TestEnvironment.TryGetAsync(guest.HostPort, TimeSpan.FromSeconds(2)));

        var resumed = await guest.Driver.ResumeAsync(guest.Id, CancellationToken.None);
        Assert.Equal(PowerState.Running, resumed.Power);
        Assert.Contains($"id={guest.Id}", await TestEnvironment.WaitForHttpAsync(guest.HostPort, TimeSpan.FromSeconds(20)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task StopStart_DataFile_SurvivesAndPortIsKept()
    {
        await guest.EnsureServingAsync();
        var before = await BootsSoFarAsync();
        Assert.True(before >= 1, "user-data should have run at least once");

        var clock = Stopwatch.StartNew();
        var stopped = await guest.Driver.StopAsync(guest.Id, TimeSpan.FromSeconds(20), CancellationToken.None);
        var stopTime = clock.Elapsed;
        Assert.Equal(PowerState.Shutdown, stopped.Power);
        Assert.Null(stopped.Pid);
        // The guest powered off on the ACPI button (it printed so), well before the 20 s force-off.
        await TestEnvironment.WaitForConsoleAsync(guest.Driver, guest.Id, "STRATUS-GUEST-POWEROFF", TimeSpan.FromSeconds(1));
        Assert.True(stopTime < TimeSpan.FromSeconds(15), $"graceful stop took {stopTime}");

        var started = await guest.Driver.StartAsync(guest.Id, CancellationToken.None);
        Assert.Equal(guest.HostPort, started.Forwards.Single().HostPort);
        await TestEnvironment.WaitForConsoleAsync(guest.Driver, guest.Id, $"boots={before + 1}", Boot);
        await TestEnvironment.WaitForHttpAsync(guest.HostPort, Boot);
        output.WriteLine($"graceful ACPI stop took {stopTime.TotalMilliseconds:0} ms");
    }

    [Fact]
    public async Task RebootHard_Guest_BootsAgainInSameProcess()
    {
        await guest.EnsureServingAsync();
        var before = await BootsSoFarAsync();
        var pid = (await guest.Driver.GetStatusAsync(guest.Id, CancellationToken.None))!.Pid;
        var after = await guest.Driver.RebootAsync(guest.Id, hard: true, CancellationToken.None);
        Assert.Equal(pid, after.Pid);
        await TestEnvironment.WaitForConsoleAsync(guest.Driver, guest.Id, $"boots={before + 1}", Boot);
        await TestEnvironment.WaitForHttpAsync(guest.HostPort, Boot);
    }

    [Fact]
    public async Task RebootSoft_Guest_PowersOffAndBootsAgain()
    {
        await guest.EnsureServingAsync();
        var before = await BootsSoFarAsync();
        var after = await guest.Driver.RebootAsync(guest.Id, hard: false, CancellationToken.None);
        Assert.Equal(PowerState.Running, after.Power);
        await TestEnvironment.WaitForConsoleAsync(guest.Driver, guest.Id, $"boots={before + 1}", Boot);
        await TestEnvironment.WaitForHttpAsync(guest.HostPort, Boot);
    }

    [Fact]
    public async Task GuestPowersOff_ByItself_RaisesShutdownEventNotCrash()
    {
        var id = Stratus.Core.Ids.InstanceId.New();
        var spec = await TestEnvironment.TinySpecAsync(id, "#!/bin/sh\necho STRATUS-TEST-POWEROFF\npoweroff\n", forwards: []);
        var seen = new TaskCompletionSource<VmEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(VmEvent e)
        {
            if (e.Id == id)
            {
                seen.TrySetResult(e);
            }
        }

        guest.Driver.VmChanged += OnChanged;
        try
        {
            await guest.Driver.CreateAsync(spec, CancellationToken.None);
            var ev = await seen.Task.WaitAsync(Boot);
            Assert.Equal(PowerState.Shutdown, ev.Power);
            Assert.Equal("guest powered off", ev.Reason);
            var status = await guest.Driver.GetStatusAsync(id, CancellationToken.None);
            Assert.Equal(PowerState.Shutdown, status!.Power);
            Assert.Null(status.Pid);
        }
        finally
        {
            guest.Driver.VmChanged -= OnChanged;
            await guest.Driver.DestroyAsync(id, CancellationToken.None);
        }
    }

    [Fact]
    public async Task Adoption_NewDriverOverSameDataDirectory_AdoptsSameProcess()
    {
        await guest.EnsureServingAsync();
        var pid = (await guest.Driver.GetStatusAsync(guest.Id, CancellationToken.None))!.Pid;
        Assert.NotNull(pid);

        // Driver A goes away without stopping its VMs (an agent restart); driver B finds the same process.
        await guest.Driver.DisposeAsync();
        guest.Driver = new QemuDriver(TestEnvironment.Options(guest.DataDirectory));
        var listed = Assert.Single(await guest.Driver.ListAsync(CancellationToken.None));
        Assert.Equal(guest.Id, listed.Id);
        Assert.Equal(pid, listed.Pid);
        Assert.Equal(PowerState.Running, listed.Power);
        Assert.Equal(guest.HostPort, listed.Forwards.Single().HostPort);
        Assert.Equal([pid.Value], TestEnvironment.QemuPidsOf(guest.Id));
        Assert.Contains($"id={guest.Id}", await TestEnvironment.WaitForHttpAsync(guest.HostPort, TimeSpan.FromSeconds(10)), StringComparison.Ordinal);

        // The adopted VM is fully driven over its re-attached QMP socket.
        Assert.Equal(PowerState.Paused, (await guest.Driver.PauseAsync(guest.Id, CancellationToken.None)).Power);
        Assert.Equal(PowerState.Running, (await guest.Driver.ResumeAsync(guest.Id, CancellationToken.None)).Power);
    }
}
