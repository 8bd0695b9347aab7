using System.Diagnostics;
using Stratus.Compute;
using Stratus.Core.Compute;
using Stratus.Core.Ids;

namespace Stratus.Compute.Qemu.Tests;

/// <summary>One booted tiny guest shared by every test in the "tiny guest" collection (boots cost seconds under TCG).
/// Its user-data counts boots in /data/boots (on the VM's own disk) and prints a marker with the count.</summary>
public sealed class TinyGuestFixture : IAsyncLifetime
{
    public const string UserData = """
        #!/bin/sh
        n=$(( $(cat /data/boots 2>/dev/null || echo 0) + 1 ))
        echo "$n" > /data/boots
        sync
        echo "STRATUS-TEST-MARKER id=$STRATUS_INSTANCE_ID boots=$n"
        """;

    /// <summary>A well-formed public key (its private half is not kept: the guest only has to receive it).</summary>
    public const string PublicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHSXHsdq2/zWr4I8P9ZuT/4WeXc07mdJlyaQ1RIf6IAZ stratus-test";

    public string DataDirectory { get; } = TestEnvironment.NewDataDirectory();

    public InstanceId Id { get; } = InstanceId.New();

    /// <summary>The driver currently attached (the adoption test replaces it).</summary>
    public QemuDriver Driver { get; set; } = null!;

    public int HostPort { get; private set; }

    public TimeSpan CreateToRunning { get; private set; }

    public TimeSpan CreateToHttp { get; private set; }

    public async Task InitializeAsync()
    {
        TestEnvironment.RequireQemu();
        Driver = new QemuDriver(TestEnvironment.Options(DataDirectory));
        var spec = await TestEnvironment.TinySpecAsync(Id, UserData.Replace("\r", "", StringComparison.Ordinal) + "\n") with { PublicKeys = [PublicKey] };
        var clock = Stopwatch.StartNew();
        var status = await Driver.CreateAsync(spec, CancellationToken.None);
        CreateToRunning = clock.Elapsed;
        HostPort = status.Forwards.Single().HostPort;
        await TestEnvironment.WaitForHttpAsync(HostPort, TimeSpan.FromSeconds(60));
        CreateToHttp = clock.Elapsed;
    }

    /// <summary>Makes sure the shared VM runs and answers before a test uses it.</summary>
    public async Task EnsureServingAsync()
    {
        var status = await Driver.GetStatusAsync(Id, CancellationToken.None);
        if (status?.Power == PowerState.Paused)
        {
            await Driver.ResumeAsync(Id, CancellationToken.None);
        }
        else if (status?.Power != PowerState.Running)
        {
            await Driver.StartAsync(Id, CancellationToken.None);
        }

        await TestEnvironment.WaitForHttpAsync(HostPort, TimeSpan.FromSeconds(60));
    }

    public async Task DisposeAsync()
    {
        if (Driver is not null)
        {
            await Driver.DestroyAsync(Id, CancellationToken.None);
            await Driver.DisposeAsync();
        }

        TestEnvironment.DeleteDirectory(DataDirectory);
    }
}

[CollectionDefinition("tiny guest")]
public sealed class TinyGuestCollection : ICollectionFixture<TinyGuestFixture>;
