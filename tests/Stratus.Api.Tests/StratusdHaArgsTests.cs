namespace Stratus.Api.Tests;

/// <summary>stratusd's HA admission and fence options: parsed, and refused with every reason at once when they cannot work.</summary>
public sealed class StratusdHaArgsTests
{
    [Fact]
    public void Parse_ToleranceAndFence_Kept()
    {
        var o = StratusdArgs.Parse(["--shared-pool", "/tmp/pool", "--ha-tolerate", "1", "--fence-command", "ipmi-off --bmc \"bmc of\"", "--fence-timeout", "12", "--fence-retry", "5"], out var errors);
        Assert.Empty(errors);
        Assert.Equal(1, o.HaTolerate);
        Assert.Equal("ipmi-off --bmc \"bmc of\"", o.FenceCommand);
        Assert.Equal(TimeSpan.FromSeconds(12), o.FenceTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), o.FenceRetry);
    }

    [Fact]
    public void Parse_WithoutSharedPoolOrOutOfRange_EveryErrorReported()
    {
        StratusdArgs.Parse(["--ha-tolerate", "2", "--fence-command", "off", "--fence-timeout", "0.5"], out var errors);
        Assert.Contains("--ha-tolerate needs --shared-pool (HA servers keep their disks there)", errors);
        Assert.Contains("--fence-command needs --shared-pool (HA is off without one)", errors);
        Assert.Contains(errors, e => e.StartsWith("--fence-timeout must be between 1 and 600 seconds", StringComparison.Ordinal));
        StratusdArgs.Parse(["--shared-pool", "/tmp/pool", "--ha-tolerate", "101", "--fence-command", " "], out var more);
        Assert.Contains("--ha-tolerate must be between 0 and 100 (got 101)", more);
        Assert.Contains("--fence-command must be a command line", more);
    }
}
