import { strict as assert } from "node:assert";
import { AddressPolicy, embeddedIPv4, refusedReason } from "../../../src/net/address-guard.ts";

describe("net/address-guard", () => {
  const refused = {
    loopback: ["127.0.0.1", "127.255.0.9", "::1"],
    private: ["10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1"],
    "private (ULA)": ["fc00::1", "fd12:3456::1", "fd00:ec2::254"],
    "link-local": ["169.254.169.254", "169.254.0.1", "fe80::1"],
    multicast: ["224.0.0.1", "239.255.255.250", "ff02::1"],
    unspecified: ["0.0.0.0", "::"],
    reserved: ["240.0.0.1", "255.255.255.255"],
    "shared (CGNAT)": ["100.64.0.1", "100.127.255.254"],
  };

  it("names the kind of every refused range", () => {
    for (const [kind, addresses] of Object.entries(refused))
      for (const a of addresses) assert.equal(refusedReason(a), kind, a);
  });

  it("lets public addresses through", () => {
    for (const a of ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "2a00:1450::1"])
      assert.equal(refusedReason(a), null, a);
  });

  it("sees through IPv4 written as IPv6 (mapped, NAT64, compatible, hex)", () => {
    assert.equal(embeddedIPv4("::ffff:127.0.0.1"), "127.0.0.1");
    assert.equal(embeddedIPv4("::ffff:7f00:1"), "127.0.0.1");
    assert.equal(embeddedIPv4("64:ff9b::a9fe:a9fe"), "169.254.169.254");
    assert.equal(refusedReason("::ffff:10.0.0.1"), "private");
    assert.equal(refusedReason("::ffff:a9fe:a9fe"), "link-local");
    assert.equal(refusedReason("::127.0.0.1"), "loopback");
    assert.equal(refusedReason("::ffff:8.8.8.8"), null);
  });

  it("an operator's allow-list: true, CIDRs and single addresses; a bad entry is a clear error", () => {
    assert.match(new AddressPolicy("").check("127.0.0.1")!, /127\.0\.0\.1 is a loopback address/);
    assert.equal(new AddressPolicy("true").check("169.254.169.254"), null);
    const p = new AddressPolicy("10.0.0.0/8, ::1");
    assert.equal(p.check("10.9.9.9"), null);
    assert.equal(p.check("::ffff:10.9.9.9"), null);
    assert.equal(p.check("::1"), null);
    assert.match(p.check("192.168.0.1")!, /private/);
    assert.equal(p.check("8.8.8.8"), null);
    assert.throws(() => new AddressPolicy("intranet"), /WEBHOOK_ALLOW_PRIVATE: 'intranet'/);
    // A slip in the prefix must not become /0, which allows every address (metadata, loopback).
    for (const bad of [
      "10.0.0.0/",
      "::/",
      "10.0.0.0/abc",
      "10.0.0.0/33",
      "::1/129",
      "10.0.0.0/8/1",
      "10.0.0.0/-1",
    ])
      assert.throws(
        () => new AddressPolicy(bad),
        /WEBHOOK_ALLOW_PRIVATE: '.*' is not an address or CIDR/,
        bad,
      );
    assert.equal(new AddressPolicy("0.0.0.0/0").check("169.254.169.254"), null, "a /0 written out is meant");
  });

  it("gives a kept verdict the same as a fresh one, also after more addresses than it keeps", () => {
    const p = new AddressPolicy("10.0.0.0/16");
    // 10.0.x.x allowed, 10.1.x.x private, 8.8.x.x public: 3,000 addresses, checked three times over.
    const addresses = Array.from({ length: 1000 }, (_, i) => [
      `10.0.${i >> 8}.${i & 255}`,
      `10.1.${i >> 8}.${i & 255}`,
      `8.8.${i >> 8}.${i & 255}`,
    ]).flat();
    for (let round = 0; round < 3; round++)
      for (const a of addresses) {
        const verdict = p.check(a);
        if (a.startsWith("10.1.")) assert.equal(verdict, `${a} is a private address`, a);
        else assert.equal(verdict, null, a);
      }
  });
});
