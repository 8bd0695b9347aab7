using Stratus.Core.Billing;
using Stratus.Core.Compute;
using Stratus.Core.Ids;
using Stratus.Core.Resources;

namespace Stratus.Core.Tests.Billing;

public sealed class InvoiceCalculatorTests
{
    private static readonly DateTimeOffset T0 = new(2026, 5, 1, 0, 0, 0, TimeSpan.Zero);
    private static readonly Guid P = Metering.AdminProjectId;
    private static readonly InstanceId A = new(Guid.Parse("00000000-0000-4000-8000-00000000000a"));
    private static readonly FlavorId F = new(Guid.Parse("00000000-0000-4000-8000-0000000000f1"));

    private static PriceSheet Sheet(decimal vcpu, decimal mem, decimal disk, DateTimeOffset from, params (string, decimal)[] flavors) =>
        new("EUR", vcpu, mem, disk, flavors.ToDictionary(f => f.Item1, f => f.Item2), from);

    private static UsageInterval Run(DateTimeOffset start, DateTimeOffset? end, ResourceVector res, UsageState state = UsageState.Running, Guid? project = null, string flavor = "m1") =>
        new(0, A, "a", project ?? P, F, flavor, res, state, start, end);

    [Fact]
    public void Compute_LineAtHalfACent_RoundsAwayFromZero()
    {
        // 1 vCPU for 1 h at 0.125 = 0.125 → 0.13 (banker's rounding would give 0.12).
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(2), [Run(T0, T0.AddHours(1), ResourceVector.Of(1, 0, 0))], [Sheet(0.125m, 0, 0, DateTimeOffset.UnixEpoch)]);
        var line = Assert.Single(inv.Lines);
        Assert.Equal((BilledResource.Vcpu, 0.13m, 1m), (line.Resource, line.Amount, line.Quantity));
        Assert.Equal("0.13", inv.Total.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Compute_TotalIsTheSumOfRoundedLines()
    {
        // Three lines of 0.004 each round to 0.00: the total is 0.00, not round(0.012) = 0.01.
        var res = new ResourceVector(1000, 1024, 1);
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(2), [Run(T0, T0.AddHours(1), res)], [Sheet(0.004m, 0.004m, 0.004m, DateTimeOffset.UnixEpoch)]);
        Assert.Equal(new[] { 0.00m, 0.00m, 0.00m }, inv.Lines.Select(l => l.Amount));
        Assert.Equal(0.00m, inv.Total);
    }

    [Fact]
    public void Compute_PriceChangeInsideAnInterval_TwoLinesEachAtItsPrice()
    {
        var sheets = new[] { Sheet(1m, 0, 0, DateTimeOffset.UnixEpoch), Sheet(2m, 0, 0, T0.AddHours(3)) };
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(2), [Run(T0, T0.AddHours(5), ResourceVector.Of(1, 0, 0))], sheets);
        Assert.Equal(new[] { (1m, 3m, 3.00m), (2m, 2m, 4.00m) }, inv.Lines.Select(l => (l.UnitPrice, l.Quantity, l.Amount)));
        Assert.Equal(7.00m, inv.Total);
    }

    [Fact]
    public void Compute_IntervalsClippedToThePeriodAndOpenOnesToNow()
    {
        var intervals = new[]
        {
            Run(T0.AddHours(-5), T0.AddHours(1), ResourceVector.Of(1, 0, 0)),      // 1 h inside
            Run(T0.AddHours(20), null, ResourceVector.Of(1, 0, 0)),                 // open: counts until now (22:00)
        };
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddHours(22), intervals, [Sheet(1m, 0, 0, DateTimeOffset.UnixEpoch)]);
        Assert.Equal(3m * 3600, Assert.Single(inv.Lines).Seconds);
        Assert.False(inv.Final);
        Assert.Equal(T0.AddHours(22), inv.MeteredUntil);
        var later = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(3), intervals, [Sheet(1m, 0, 0, DateTimeOffset.UnixEpoch)]);
        Assert.Equal(5m * 3600, Assert.Single(later.Lines).Seconds); // the open one clipped at the period's end
        Assert.True(later.Final);
    }

    [Fact]
    public void Compute_StoppedBillsDiskOnlyAndFlavorPriceReplacesVcpuAndMemory()
    {
        var res = ResourceVector.Of(2, 2048, 10);
        var intervals = new[]
        {
            Run(T0, T0.AddHours(1), res, UsageState.Running, flavor: "priced"),
            Run(T0.AddHours(1), T0.AddHours(3), res, UsageState.Stopped, flavor: "priced"),
        };
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(2), intervals, [Sheet(1m, 1m, 0.01m, DateTimeOffset.UnixEpoch, ("priced", 0.5m))]);
        Assert.Equal(new[] { (BilledResource.Flavor, 1m, 0.50m), (BilledResource.Disk, 30m, 0.30m) }, inv.Lines.Select(l => (l.Resource, l.Quantity, l.Amount)));
    }

    [Fact]
    public void Compute_OtherProjectsAndFractionalSeconds_ExcludedAndExact()
    {
        var other = Run(T0, T0.AddHours(1), ResourceVector.Of(1, 0, 0), project: Guid.NewGuid());
        var mine = Run(T0, T0.AddTicks(15_000_000), new ResourceVector(500, 0, 0)); // 1.5 s of half a vCPU
        var inv = InvoiceCalculator.Compute(P, T0, T0.AddDays(1), T0.AddDays(2), [other, mine], [Sheet(3600m, 0, 0, DateTimeOffset.UnixEpoch)]);
        var line = Assert.Single(inv.Lines);
        Assert.Equal((1.5m, 0.75m, 0.75m), (line.Seconds, line.UnitSeconds, line.Amount)); // 0.75 vCPU-seconds at 1 per vCPU-second
    }

    [Fact]
    public void Metering_Rule_ActiveAndPausedRunStoppedIsDiskNothingElse()
    {
        var i = new Instance(A, "a", F, ImageId.New(), HostId.New(), VmState.Active, null, PowerState.Running, ResourceVector.Of(1, 1, 1), null, null, 0, 1, T0, T0, null);
        Assert.Equal(UsageState.Running, Metering.Expected(i, true));
        Assert.Equal(UsageState.Running, Metering.Expected(i with { VmState = VmState.Paused }, true));
        Assert.Equal(UsageState.Stopped, Metering.Expected(i with { VmState = VmState.Stopped }, true));
        Assert.Equal(UsageState.Running, Metering.Expected(i with { Task = InstanceTask.Stopping }, true));
        Assert.Null(Metering.Expected(i with { Task = InstanceTask.Deleting }, true));
        Assert.Null(Metering.Expected(i with { VmState = VmState.Error }, true));
        Assert.Null(Metering.Expected(i with { VmState = VmState.Building }, true));
        Assert.Null(Metering.Expected(i, false));
        Assert.Equal(Metering.AdminProjectId, Metering.ProjectOf(i));
        var p = Guid.NewGuid();
        Assert.Equal(p, Metering.ProjectOf(i with { ProjectId = p }));
    }

    [Fact]
    public void Budget_States_AtTheThresholdAndAtTheAmount()
    {
        var b = new Budget(P, 100m, 80, true, T0);
        Assert.Equal(BudgetState.Ok, b.StateFor(79.99m));
        Assert.Equal(BudgetState.Warning, b.StateFor(80m));
        Assert.Equal(BudgetState.Exceeded, b.StateFor(100m));
        Assert.True(new BudgetStatus(b, T0, T0.AddMonths(1), 100m, "EUR").Blocks);
        Assert.False(new BudgetStatus(b with { Block = false }, T0, T0.AddMonths(1), 150m, "EUR").Blocks);
        // Months are UTC: 23:30 on 28 February at UTC−2 is 01:30 UTC on 1 March.
        Assert.Equal((new DateTimeOffset(2026, 3, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2026, 4, 1, 0, 0, 0, TimeSpan.Zero)),
            BillingPeriod.MonthOf(new DateTimeOffset(2026, 2, 28, 23, 30, 0, TimeSpan.FromHours(-2))));
    }
}
