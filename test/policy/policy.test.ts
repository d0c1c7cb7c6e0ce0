import assert from "node:assert/strict";
import { test } from "node:test";
import { CidrSet, canonicalIp } from "../../src/policy/addresses.js";
import { ClientPolicy, defaultClientCidrs } from "../../src/policy/clients.js";
import { type DestinationConfig, DestinationPolicy } from "../../src/policy/destination.js";
import { KernelOwnAddresses, parseFibTrie, parseIpv6Route } from "../../src/policy/own-addresses.js";
import { DestinationResolver, DnsError } from "../../src/policy/resolve.js";
import { dnsStub } from "../socks/proxy-helpers.js";
import { writeTemp } from "../support/tmp.js";

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
  return new DestinationPolicy(cfg, new CidrSet(own));
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

test("addresses are made canonical before checks: IPv4-mapped IPv6 as IPv4, zone ids are no address", () => {
  assert.equal(canonicalIp("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalIp("::ffff:7f00:1"), "127.0.0.1");
  assert.equal(canonicalIp("0:0:0:0:0:ffff:a00:1"), "10.0.0.1");
  assert.equal(canonicalIp("2001:db8::ffff:1"), "2001:db8::ffff:1");
  assert.equal(canonicalIp("2001:DB8:0::1"), "2001:db8::1");
  assert.equal(canonicalIp("8.8.8.8"), "8.8.8.8");
  for (const bad of ["::ffff:1.2.3.4%a.b", "::1%ffff:", "fe80::1%eth0", "localhost", "", "1.2.3"])
    assert.equal(canonicalIp(bad), undefined, bad);
  const p = policy();
  assert.ok(p.checkAddress("::ffff:169.254.169.254"), "the mapped form is checked as IPv4");
  assert.match(p.checkAddress("fe80::1%eth0")!, /not an IP address/);
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
  assert.ok(one.allows(canonicalIp("::ffff:10.1.0.9")!));
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

test("IPv4-embedding IPv6 (NAT64, 6to4, Teredo, IPv4-translated) and the other special ranges are refused", () => {
  const p = policy();
  for (const ip of [
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::1",
    "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "2001:2::1",
    "::ffff:0:a9fe:a9fe",
    "3fff::1",
    "5f00::1",
    "100:0:0:1::1",
    "192.88.99.1",
  ])
    assert.ok(p.checkAddress(ip), `${ip} should be refused`);
  assert.match(p.checkAddress("64:ff9b::a9fe:a9fe")!, /NAT64/);
  assert.match(p.checkAddress("2001:0:4136:e378:8000:63bf:3fff:fdd2")!, /Teredo/);
  assert.equal(p.checkAddress("2001:4860:4860::8888"), undefined);
  assert.equal(p.checkAddress("2a00:1450::1"), undefined);
});

test("rules match per family: an IPv6 rule never matches an IPv4 destination, nor the other way round", () => {
  const all6 = policy({ allow: ["::/0"] });
  assert.ok(all6.checkAddress("10.0.0.1"), "allow ::/0 must not allow 10.0.0.1");
  assert.equal(all6.checkAddress("fd00::1"), undefined);
  const deny6 = policy({ deny: ["::/0"] });
  assert.equal(deny6.checkAddress("8.8.8.8"), undefined, "deny ::/0 must not deny IPv4");
  const all4 = policy({ allow: ["0.0.0.0/0"] });
  assert.equal(all4.checkAddress("10.0.0.1"), undefined);
  assert.ok(all4.checkAddress("fd00::1"));
  const set = new CidrSet(["10.0.0.0/8", "fd00::/8"]);
  assert.ok(set.has("10.1.2.3") && set.has("fd00::5"));
  assert.ok(!set.has("::ffff:a01:203"), "no IPv4 rule for the mapped IPv6 form either");
});

test("allowDomains: IP literals are refused unless an allow rule covers them", () => {
  const p = policy({ allowDomains: ["example.com"], allow: ["1.2.3.0/24"] });
  assert.match(p.checkLiteral("5.6.7.8")!, /only names under allowed domains/);
  assert.equal(p.checkLiteral("1.2.3.4"), undefined);
  assert.equal(policy().checkLiteral("5.6.7.8"), undefined, "without allowDomains literals are fine");
});

const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     |-- 10.1.0.0
        /24 link UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     |-- 10.1.0.1
        /32 host LOCAL
     |-- 10.9.0.0
        /16 host LOCAL
`;
const IPV6_ROUTE = [
  "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0",
  "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000004 00000000 80200001       lo",
  "fd000000000000000000000000000002 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 80200001     eth0",
  "fd000000000000000000000000000000 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000003 00000000 00100001     eth0",
  "ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000002 00000000 00000001     eth0",
].join("\n");

test("own addresses: the local table's LOCAL/BROADCAST (IPv4) and local/anycast (IPv6) entries", () => {
  assert.deepEqual(parseFibTrie(FIB_TRIE).sort(), [
    "10.1.0.1/32",
    "10.9.0.0/16",
    "127.0.0.0/8",
    "127.0.0.1/32",
    "127.255.255.255/32",
  ]);
  assert.deepEqual(parseIpv6Route(IPV6_ROUTE).sort(), [
    "0000:0000:0000:0000:0000:0000:0000:0001/128",
    "fd00:0000:0000:0000:0000:0000:0000:0000/128",
    "fd00:0000:0000:0000:0000:0000:0000:0002/128",
  ]);
});

test("own addresses: every address counts as own until the tables were read (fail closed); then re-read", async () => {
  const fib = writeTemp("fib_trie", FIB_TRIE);
  const v6 = writeTemp("ipv6_route", IPV6_ROUTE);
  const own = new KernelOwnAddresses({ fibTrie: fib, ipv6Route: v6 }, 50);
  assert.ok(own.has("8.8.8.8"), "not started: fail closed");
  await own.start();
  try {
    assert.ok(own.has("10.1.0.1") && own.has("10.9.200.1") && own.has("fd00::2") && own.has("::1"));
    assert.ok(!own.has("8.8.8.8") && !own.has("10.1.0.2") && !own.has("fd00::3"));
    const { writeFileSync } = await import("node:fs");
    writeFileSync(fib, FIB_TRIE.replace("10.1.0.1", "10.1.0.2"));
    const deadline = Date.now() + 5000;
    while (!own.has("10.1.0.2") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(own.has("10.1.0.2") && !own.has("10.1.0.1"), "re-read");
  } finally {
    own.stop();
  }
  await assert.rejects(
    new KernelOwnAddresses({ fibTrie: "/nonexistent", ipv6Route: v6 }).start(),
    /local routing table/,
  );
});
