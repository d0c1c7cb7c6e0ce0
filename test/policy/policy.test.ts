import assert from "node:assert/strict";
import { test } from "node:test";
import { blockListOf, matches, unmapIPv4 } from "../../src/policy/addresses.js";
import { ClientPolicy, defaultClientCidrs } from "../../src/policy/clients.js";
import { type DestinationConfig, DestinationPolicy } from "../../src/policy/destination.js";
import { DestinationResolver, DnsError } from "../../src/policy/resolve.js";
import { dnsStub } from "../socks/proxy-helpers.js";

function policy(over: Partial<DestinationConfig> = {}, own: string[] = ["203.0.113.7"]): DestinationPolicy {
  const cfg: DestinationConfig = {
    allow: [],
    deny: [],
    allowPorts: [],
    denyPorts: [],
    allowDomains: [],
    denyDomains: [],
    ...over,
  };
  return new DestinationPolicy(cfg, () => own);
}

test("default deny list: loopback, link-local, private, CGNAT, multicast, reserved, own addresses", () => {
  const p = policy({}, ["198.100.1.5", "2a01:4f8::5"]);
  for (const ip of [
    "127.0.0.1",
    "169.254.169.254",
    "10.1.0.1",
    "172.20.1.1",
    "192.168.1.1",
    "100.64.0.1",
    "224.0.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "0.0.0.0",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "fc00::1",
    "ff02::1",
    "198.100.1.5",
    "2a01:4f8::5",
  ]) {
    assert.ok(p.checkAddress(ip), `${ip} should be refused`);
  }
  for (const ip of ["1.1.1.1", "8.8.8.8", "2606:4700::1111", "100.128.0.1", "172.32.0.1"]) {
    assert.equal(p.checkAddress(ip), undefined, `${ip} should be allowed`);
  }
  assert.match(p.checkAddress("169.254.169.254")!, /link-local/);
});

test("explicit allow overrides the default list; explicit deny overrides everything", () => {
  const p = policy({ allow: ["127.0.0.0/8", "10.0.0.0/8"], deny: ["10.9.0.0/16", "1.1.1.1"] });
  assert.equal(p.checkAddress("127.0.0.1"), undefined);
  assert.equal(p.checkAddress("10.1.2.3"), undefined);
  assert.ok(p.checkAddress("10.9.0.1"));
  assert.ok(p.checkAddress("1.1.1.1"));
  assert.equal(p.checkAddress("1.1.1.2"), undefined);
});

test("IPv4-mapped IPv6 is unwrapped before checks", () => {
  assert.equal(unmapIPv4("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(unmapIPv4("::ffff:7f00:1"), "127.0.0.1");
  assert.equal(unmapIPv4("0:0:0:0:0:ffff:a00:1"), "10.0.0.1");
  assert.equal(unmapIPv4("2001:db8::ffff:1"), "2001:db8::ffff:1");
  assert.equal(unmapIPv4("8.8.8.8"), "8.8.8.8");
  const p = policy();
  assert.ok(p.checkAddress(unmapIPv4("::ffff:169.254.169.254")));
  // even without unwrapping, an IPv4 rule matches the mapped form
  assert.ok(matches(blockListOf(["127.0.0.0/8"]), "::ffff:7f00:1"));
});

test("ports and domain suffixes", () => {
  const p = policy({ allowPorts: [80, 443], denyPorts: [443], denyDomains: [".internal"], allowDomains: [] });
  assert.equal(p.checkPort(80), undefined);
  assert.ok(p.checkPort(443));
  assert.ok(p.checkPort(22));
  assert.ok(p.checkName("db.internal"));
  assert.ok(p.checkName("INTERNAL."));
  assert.equal(p.checkName("notinternal"), undefined);
  const only = policy({ allowDomains: ["example.com"] });
  assert.equal(only.checkName("www.example.com"), undefined);
  assert.equal(only.checkName("example.com"), undefined);
  assert.ok(only.checkName("badexample.com"));
});

test("client allow-list default: loopback plus the listen address's subnet (all subnets for a wildcard)", () => {
  const ifaces = [
    { address: "127.0.0.1", cidr: "127.0.0.1/8" },
    { address: "10.1.0.1", cidr: "10.1.0.1/24" },
    { address: "192.168.5.2", cidr: "192.168.5.2/24" },
  ];
  const one = new ClientPolicy(defaultClientCidrs([{ host: "10.1.0.1", port: 1080 }], ifaces));
  assert.ok(one.allows("10.1.0.77"));
  assert.ok(one.allows("127.0.0.1"));
  assert.ok(one.allows("::1"));
  assert.ok(one.allows("::ffff:10.1.0.9"));
  assert.ok(!one.allows("10.1.1.1"));
  assert.ok(!one.allows("192.168.5.9"));
  const all = new ClientPolicy(defaultClientCidrs([{ host: "0.0.0.0", port: 1080 }], ifaces));
  assert.ok(all.allows("192.168.5.9"));
  assert.ok(!all.allows("8.8.8.8"));
});

test("resolver: configured server, NXDOMAIN as DnsError, family filters", async () => {
  const stub = await dnsStub({ "known.test": "127.0.0.5" });
  try {
    const r = new DestinationResolver({
      servers: [`127.0.0.1:${stub.port}`],
      family: "ipv4first",
      timeoutSeconds: 2,
    });
    assert.deepEqual(await r.resolve("known.test"), ["127.0.0.5"]);
    await assert.rejects(
      r.resolve("nonexistent.invalid"),
      (e) => e instanceof DnsError && e.code === "ENOTFOUND",
    );
    const v6 = new DestinationResolver({
      servers: [`127.0.0.1:${stub.port}`],
      family: "ipv6only",
      timeoutSeconds: 2,
    });
    await assert.rejects(v6.resolve("known.test"), DnsError);
    const sys = new DestinationResolver({ servers: [], family: "ipv4only", timeoutSeconds: 2 });
    assert.deepEqual(await sys.resolve("localhost"), ["127.0.0.1"]);
  } finally {
    stub.close();
  }
});

test("resolver: a silent server times out within the configured bound", async () => {
  const { createSocket } = await import("node:dgram");
  const silent = createSocket("udp4");
  await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
  try {
    const r = new DestinationResolver({
      servers: [`127.0.0.1:${silent.address().port}`],
      family: "ipv4first",
      timeoutSeconds: 0.3,
    });
    await assert.rejects(r.resolve("slow.test"), DnsError);
  } finally {
    silent.close();
  }
});
