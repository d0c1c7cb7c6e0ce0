import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { failed } from "../../src/doctor/check.js";
import {
  agentCheck,
  exitReachableCheck,
  handshakeCheck,
  interfaceCheck,
  killSwitchCheck,
  markRuleCheck,
  parseSsListeners,
  proxyListenCheck,
  proxyUserCheck,
  routeCheck,
  ruleCheck,
} from "../../src/doctor/checks.js";
import { type DnsRoute, dnsCheck, dnsProbeName, dnsRoute, noDnsProbe } from "../../src/doctor/dns.js";
import { formatResults } from "../../src/doctor/format.js";
import { exitIpCheck, extractIp } from "../../src/doctor/ip-check.js";
import { parseNftTable } from "../../src/gateway/nft.js";
import type { GatewayStatus } from "../../src/gateway/status.js";
import { dataPath } from "../support/datapath.js";

const p = dataPath({ clients: { v4: ["10.1.0.0/24"], v6: [] } });

function status(
  over: Partial<GatewayStatus> = {},
  peer: Partial<NonNullable<GatewayStatus["peer"]>> | null = {},
): GatewayStatus {
  return {
    interface: "wg-egress",
    present: true,
    implementation: "userspace",
    linkUp: true,
    peer:
      peer === null
        ? null
        : {
            publicKey: "k",
            endpoint: "203.0.113.10:51820",
            latestHandshake: 1,
            handshakeAgeSeconds: 20,
            rxBytes: 100,
            txBytes: 200,
            ...peer,
          },
    rule: { ipv4: true, ipv6: true },
    route: { tunnel4: true, tunnel6: false, unreachable4: true, unreachable6: true },
    nft: { present: true, killSwitchRejects: 0 },
    killSwitchArmed: true,
    killSwitchMissing: [],
    verdict: "up",
    ...over,
  };
}

// Captured from `ss -Hltne` in the lab's gateway namespace (plus root-owned and wildcard lines).
const SS = `LISTEN 0      4096   10.1.0.1:1081 0.0.0.0:* uid:400 ino:19753 sk:3 cgroup:unreachable:1 <->
LISTEN 0      4096   10.1.0.1:1080 0.0.0.0:* uid:400 ino:20807 sk:4 cgroup:unreachable:1 <->
LISTEN 0      4096   127.0.0.1:9586 0.0.0.0:* ino:1 sk:5 cgroup:unreachable:1 <->
LISTEN 0      4096   [::1]:9587 [::]:* uid:400 ino:2 sk:6 cgroup:unreachable:1 <->
LISTEN 0      128    127.0.0.53%lo:53 0.0.0.0:* uid:101 ino:3 sk:7 cgroup:unreachable:1 <->`;
const WIDE = `LISTEN 0      4096   0.0.0.0:1080 0.0.0.0:* uid:1000 ino:9 sk:8 cgroup:unreachable:1 <->`;
const LAN = [{ host: "10.1.0.1", port: 1080 }];

test("ss listeners: address, port, uid (absent = root), IPv6 and scoped addresses", () => {
  assert.deepEqual(parseSsListeners(SS), [
    { host: "10.1.0.1", port: 1081, uid: 400 },
    { host: "10.1.0.1", port: 1080, uid: 400 },
    { host: "127.0.0.1", port: 9586, uid: 0 },
    { host: "::1", port: 9587, uid: 400 },
    { host: "127.0.0.53", port: 53, uid: 101 },
  ]);
});

test("proxy listening: on the LAN address passes; missing or also on 0.0.0.0 fails", () => {
  assert.equal(proxyListenCheck(parseSsListeners(SS), LAN).verdict, "pass");
  const missing = proxyListenCheck(parseSsListeners(SS), [{ host: "10.1.0.1", port: 1090 }]);
  assert.equal(missing.verdict, "fail");
  assert.match(missing.evidence, /nothing listens on 10\.1\.0\.1:1090/);
  const wide = proxyListenCheck(parseSsListeners(`${SS}\n${WIDE}`), LAN);
  assert.equal(wide.verdict, "fail");
  assert.match(wide.evidence, /0\.0\.0\.0:1080/);
  assert.equal(proxyListenCheck(parseSsListeners(WIDE), [{ host: "0.0.0.0", port: 1080 }]).verdict, "warn");
});

test("proxy user: the listening socket must belong to the marked uid", () => {
  const passwd = "root:x:0:0::/root:/bin/sh\nwg-egress-proxy:x:400:400::/:/usr/sbin/nologin\n";
  const ok = proxyUserCheck(parseSsListeners(SS), LAN, 400, passwd);
  assert.equal(ok.verdict, "pass");
  assert.match(ok.evidence, /wg-egress-proxy \(uid 400\)/);
  const wrong = proxyUserCheck(parseSsListeners(SS.replaceAll("uid:400", "uid:1000")), LAN, 400, passwd);
  assert.equal(wrong.verdict, "fail");
  assert.match(wrong.evidence, /uid 1000.*not marked/);
  assert.equal(proxyUserCheck(parseSsListeners(SS), LAN, 400, "root:x:0:0::/root:/bin/sh\n").verdict, "warn");
});

// Captured: `nft list table inet wg-egress` after `gateway up` (the mark_proxy chain), read by the shared parser.
const TABLE = `table inet wg-egress {
	chain mark_proxy {
		type route hook output priority mangle; policy accept;
		meta skuid 400 oifname != "lo" ct direction original ip daddr != 10.1.0.0/24 meta mark set 0x0000ca6c
		meta skuid 400 oifname != "lo" ct direction original meta nfproto ipv6 meta mark set 0x0000ca6c
		meta mark 0x0000ca6c ct mark set meta mark
	}
}`;
const markRules = (text: string) => parseNftTable(text).chains.find((c) => c.name === "mark_proxy")!.rules;

test("nft mark rule: the proxy's uid gets our mark", () => {
  assert.equal(markRuleCheck(markRules(TABLE), p).verdict, "pass");
  const other = markRuleCheck(markRules(TABLE), { ...p, uid: 401 });
  assert.equal(other.verdict, "fail");
  assert.match(other.evidence, /marks other traffic: meta skuid 400/);
  assert.equal(
    markRuleCheck(markRules(TABLE.replaceAll("set 0x0000ca6c\n", "set 0x00000001\n")), p).verdict,
    "fail",
  );
  assert.equal(markRuleCheck(null, p).verdict, "fail");
});

test("handshake age: up < 150 s, stale < 300 s, down above or never", () => {
  assert.equal(handshakeCheck(status()).verdict, "pass");
  assert.equal(handshakeCheck(status({}, { handshakeAgeSeconds: 200 })).verdict, "warn");
  assert.equal(handshakeCheck(status({}, { handshakeAgeSeconds: 301 })).verdict, "fail");
  assert.match(handshakeCheck(status({}, { handshakeAgeSeconds: null })).evidence, /no handshake ever/);
  assert.equal(handshakeCheck(status({}, null)).verdict, "fail");
});

test("exit reachable: a recent handshake proves UDP; sent-but-nothing-back hints at the firewall", () => {
  assert.equal(exitReachableCheck(status(), undefined).verdict, "pass");
  const blocked = exitReachableCheck(
    status({}, { handshakeAgeSeconds: null, rxBytes: 0, txBytes: 1480 }),
    undefined,
  );
  assert.equal(blocked.verdict, "fail");
  assert.match(blocked.evidence, /sent 1480 B to 203\.0\.113\.10:51820, received nothing/);
  assert.match(blocked.fix!, /UDP 51820/);
});

test("interface, route, rules and kill switch follow the gateway's status", () => {
  assert.equal(interfaceCheck(status()).verdict, "pass");
  assert.match(interfaceCheck(status({ linkUp: false })).evidence, /is down/);
  assert.match(interfaceCheck(status({ present: false })).evidence, /does not exist/);
  assert.equal(routeCheck(status(), p).verdict, "pass");
  assert.match(
    routeCheck(
      status({ route: { tunnel4: false, tunnel6: false, unreachable4: true, unreachable6: true } }),
      p,
    ).evidence,
    /no "default dev wg-egress" in table 51820/,
  );
  assert.equal(ruleCheck(status(), p).verdict, "pass");
  assert.match(ruleCheck(status({ rule: { ipv4: false, ipv6: true } }), p).evidence, /missing IPv4 rules/);
  assert.equal(killSwitchCheck(status()).verdict, "pass");
  const unarmed = killSwitchCheck(
    status({
      killSwitchArmed: false,
      killSwitchMissing: ["chain leak_guard", "IPv4 unreachable default route in table 51820"],
    }),
  );
  assert.equal(unarmed.verdict, "fail");
  assert.match(unarmed.evidence, /NOT armed, missing: chain leak_guard, IPv4 unreachable default route/);
});

test("gateway agent: running passes, absent or failing warns", () => {
  const report = {
    pid: 42,
    state: "ok" as const,
    since: 1,
    repairs: { route: 2, nft: 1 },
    failures: 0,
    lastRepair: null,
  };
  const ok = agentCheck(report);
  assert.equal(ok.verdict, "pass");
  assert.match(ok.evidence, /pid 42, ok; repairs: route 2, nft 1/);
  assert.equal(agentCheck({ ...report, state: "failing" }).verdict, "warn");
  assert.match(agentCheck(null).fix!, /systemctl enable --now wg-egress-gateway/);
});

const gatewayConfig = (proxy: Record<string, unknown> = {}) =>
  parseConfig({ gateway: { peer: { endpoint: "203.0.113.10:51820" } }, proxy });

test("DNS route: the exit's resolver by default, a LAN resolver in a client subnet, a local stub", () => {
  assert.deepEqual(dnsRoute(gatewayConfig(), p, null), {
    system: false,
    servers: [{ address: "10.100.0.1", via: "tunnel" }],
    exit: "10.100.0.1",
  });
  assert.deepEqual(dnsRoute(gatewayConfig({ dns: { servers: ["10.1.0.254:53"] } }), p, null).servers, [
    { address: "10.1.0.254", via: "lan" },
  ]);
  assert.deepEqual(
    dnsRoute(gatewayConfig({ dns: { servers: [] } }), p, "nameserver 127.0.0.53\nnameserver 9.9.9.9\n")
      .servers,
    [
      { address: "127.0.0.53", via: "local" },
      { address: "9.9.9.9", via: "tunnel" },
    ],
  );
});

test("DNS verdict: the real query decides; no answer fails whatever the route, a LAN resolver warns", () => {
  const atExit: DnsRoute = {
    system: false,
    servers: [{ address: "10.100.0.1", via: "tunnel" }],
    exit: "10.100.0.1",
  };
  const lan: DnsRoute = { ...atExit, servers: [{ address: "10.1.0.254", via: "lan" }] };
  const ok = { name: "example.com", answered: true };
  const pass = dnsCheck(atExit, ok);
  assert.equal(pass.verdict, "pass");
  assert.match(
    pass.evidence,
    /example\.com resolved by 10\.100\.0\.1 through the tunnel \(the exit's resolver\)/,
  );
  // No tunnel: the query goes nowhere.
  const noTunnel = dnsCheck(atExit, { name: "example.com", answered: false, error: "ECONNREFUSED" });
  assert.equal(noTunnel.verdict, "fail");
  assert.match(noTunnel.fix!, /tunnel checks above/);
  // A LAN resolver that rejects the proxy's queries.
  const rejected = dnsCheck(lan, { name: "example.com", answered: false, error: "EREFUSED" });
  assert.equal(rejected.verdict, "fail");
  assert.match(rejected.evidence, /10\.1\.0\.254 got no answer \(EREFUSED\)/);
  const lanOk = dnsCheck(lan, ok);
  assert.equal(lanOk.verdict, "warn");
  assert.match(lanOk.evidence, /sees every name/);
  assert.equal(
    dnsCheck({ ...atExit, system: true, servers: [{ address: "127.0.0.53", via: "local" }] }, ok).verdict,
    "warn",
  );
  assert.equal(dnsCheck({ ...atExit, servers: [] }, ok).verdict, "fail");
  assert.equal(dnsCheck(atExit, null).verdict, "skip");
  // Queried only with root and a tunnel: never from a host that has no gateway configured.
  assert.equal(noDnsProbe(gatewayConfig(), true), null);
  assert.match(noDnsProbe(gatewayConfig(), false)!, /needs root/);
  assert.match(noDnsProbe(parseConfig({}), true)!, /no tunnel configured/);
  assert.match(dnsCheck(atExit, null, noDnsProbe(parseConfig({}), true)!).evidence, /no tunnel configured/);
  assert.equal(dnsProbeName("https://api.ipify.org/"), "api.ipify.org");
  assert.equal(dnsProbeName("http://192.0.2.80/"), "example.com");
  assert.equal(dnsProbeName(null), "example.com");
});

test("exit IP: equal to the exit passes, equal to the direct IP is a leak, a failed request fails", () => {
  const base = { url: "http://192.0.2.80/", direct: { ip: "198.51.100.2" }, exit: "203.0.113.10" };
  assert.equal(exitIpCheck({ ...base, proxied: { ip: "203.0.113.10" } }).verdict, "pass");
  const leak = exitIpCheck({ ...base, proxied: { ip: "198.51.100.2" } });
  assert.equal(leak.verdict, "fail");
  assert.match(leak.evidence, /^LEAK/);
  assert.equal(exitIpCheck({ ...base, proxied: { ip: "203.0.113.99" } }).verdict, "warn");
  assert.equal(exitIpCheck({ ...base, proxied: { error: "SOCKS reply 2" } }).verdict, "fail");
  assert.equal(extractIp("<html>Your IP: 203.0.113.10</html>"), "203.0.113.10");
  assert.equal(extractIp('{"ip":"2001:db8::1"}'), "2001:db8::1");
  assert.equal(extractIp("nothing"), null);
});

test("human output: one line per check, fixes below failures, colours only when asked", () => {
  const results = [handshakeCheck(status()), handshakeCheck(status({}, { handshakeAgeSeconds: 400 }))];
  const plain = formatResults(results, false);
  assert.doesNotMatch(plain, /\x1b\[/);
  assert.match(plain, /^PASS {2}tunnel handshake {2}latest handshake 20 s ago$/m);
  assert.match(plain, /^FAIL {2}tunnel handshake .*\n\s+fix: /m);
  assert.match(formatResults(results, true), /\x1b\[31mFAIL/);
  assert.ok(failed(results));
  assert.ok(!failed(results.slice(0, 1)));
});
