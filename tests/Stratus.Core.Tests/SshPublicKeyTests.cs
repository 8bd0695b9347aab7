using Stratus.Core.Compute;

namespace Stratus.Core.Tests;

public sealed class SshPublicKeyTests
{
    // Generated with `ssh-keygen -t ed25519 -C test`; `ssh-keygen -lf` printed the fingerprint below.
    private const string Valid = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJX9baGEfNikbGHnStwiWauljzPbfr0osdn3AI/h9W6N test";

    [Fact]
    public void Parse_OpenSshEd25519_FingerprintAsSshKeygenPrints()
    {
        var (key, fp, error) = SshPublicKey.Parse(Valid + "\n");
        Assert.Null(error);
        Assert.Equal(Valid, key);
        Assert.Equal("SHA256:t9Kg0qUNAJ+tSrtL/BsvAaTyM+IuAAkgwAe7TUGxkWg", fp);
    }

    [Theory]
    [InlineData("", "is empty")]
    [InlineData("ssh-dss AAAAB3NzaC1kc3M= x", "must start with a key type")]
    [InlineData("ssh-ed25519 not*base64", "not valid base64")]
    [InlineData("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIJX9baGEfNikbGHnStwiWauljzPbfr0osdn3AI/h9W6N", "does not match its type")]
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", "truncated")]
    [InlineData("-----BEGIN OPENSSH PRIVATE KEY-----", "private key")]
    [InlineData("ssh-ed25519 AAAA\nssh-ed25519 BBBB", "single line")]
    public void Parse_Malformed_ClearError(string text, string expected)
    {
        var (key, _, error) = SshPublicKey.Parse(text);
        Assert.Null(key);
        Assert.Contains(expected, error, StringComparison.Ordinal);
    }
}
