import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { resolveExits } from "../../src/config/exits.js";
import { parseConfig } from "../../src/config/load.js";
import {
  type GatewayState,
  NOTHING,
  type RuleEntry,
  type Step,
  type UpSpec,
  upSpecOf,
} from "../../src/gateway/model.js";
import { expectedChains, parseNftTable, renderRuleset, rulesetHash } from "../../src/gateway/nft.js";
import {
  describeStep,
  killSwitchArmed,
  killSwitchMissing,
  planDown,
  planEndpoint,
  planKillSwitch,
  planRoam,
  planUp,
  srcValidMarkOnPurge,
  stepCommand,
} from "../../src/gateway/plan.js";
import { resolveProxyUid } from "../../src/gateway/proxy-user.js";
import { ourRules, UNREACHABLE_METRIC } from "../../src/gateway/routes.js";
import { summarize } from "../../src/gateway/status.js";
import { UserError } from "../../src/util/errors.js";
import { tempDir } from "../support/tmp.js";

const PEER = "n9ucXH8cmCisIMfbNGc1ztq2iLO7vcRl/MJX2j2PUWE=";
const OURS = "ZwTf6iQMwlGoSQNdr5Kwm6qmqhFM49kteziBXVxfih4=";
const LAN = { v4: ["10.1.0.0/24"], v6: ["fd00:1::/64"] };

function spec(gateway: Record<string, unknown> = {}, clients = LAN): UpSpec {
  const c = parseConfig({
    gateway: { peer: { publicKey: PEER, endpoint: "203.0.113.10:51820" }, ...gateway },
  });
  const exits = resolveExits(c.gateway, c.exits);
  return upSpecOf(exits[0], exits, c.gateway.implementation, 400, OURS, clients);
}

/** An `ip -j rule show` entry for one of our rules, as iproute2 prints it. */
function ruleEntry(args: string[]): RuleEntry {
  const at = (k: string) => args[args.indexOf(k) + 1];
  const e: RuleEntry = { priority: Number(at("priority")), table: at("lookup") };
  if (args.includes("fwmark")) e.fwmark = at("fwmark");
  if (args.includes("uidrange")) [e.uid_start, e.uid_end] = at("uidrange").split("-").map(Number);
  if (args.includes("to")) {
    const [dst, len] = at("to").split("/");
    e.dst = dst;
    e.dstlen = Number(len);
  }
  return e;
}

/** The state `gateway up` leaves behind, as status.ts reads it. */
function upState(s: UpSpec): GatewayState {
  const rules = (fam: string) =>
    ourRules(s)
      .filter((r) => r.fam === fam)
      .map((r) => ruleEntry(r.args));
  const unreachable = { dst: "default", type: "unreachable", metric: UNREACHABLE_METRIC };
  return {
    link: { kind: "userspace", up: true, mtu: 1420, addresses: ["10.100.0.2/24", "fe80::1/64"] },
    userspacePid: 1234,
    wg: {
      name: s.ifname,
      publicKey: OURS,
      listenPort: 40000,
      fwmark: null,
      peers: [
        {
          interface: s.ifname,
          publicKey: PEER,
          endpoint: "203.0.113.10:51820",
          allowedIps: ["0.0.0.0/0", "::/0"],
          latestHandshake: 1000,
          rxBytes: 1,
          txBytes: 2,
          persistentKeepalive: 25,
        },
      ],
    },
    rules4: rules("-4"),
    rules6: rules("-6"),
    routes4: [{ dst: "default", dev: s.ifname }, unreachable],
    routes6: [{ ...unreachable, dev: "lo" }],
    // What `nft list table` prints is parsed by the same parser as what we render.
    nft: { ...parseNftTable(renderRuleset(s)), rejected: 0 },
    srcValidMark: "1",
  };
}

const text = (steps: Step[]) => steps.map(describeStep).join("\n");
/** "ip -4 route", "ip link", "nft -f -", or the step kind. */
const kinds = (steps: Step[]) =>
  steps.map((s) => (s.kind === "run" ? `${s.cmd} ${s.args.slice(0, 2).join(" ")}` : s.kind));

test("from nothing: firewall first, then routes and rules, then the interface, then the tunnel route", () => {
  const steps = planUp(spec(), NOTHING);
  const k = kinds(steps);
  assert.deepEqual(k.slice(0, 4), ["sysctl", "nft -f -", "ip -4 route", "ip -6 route"]);
  // fwmark, client subnet, uid: per family
  assert.equal(k.filter((x) => x.endsWith(" rule")).length, 6);
  const nft = k.indexOf("nft -f -");
  assert.ok(nft < k.indexOf("create-link") && k.indexOf("create-link") < k.indexOf("wg-config"));
  assert.ok(k.lastIndexOf("ip -4 rule") < k.indexOf("create-link"), "every rule before the interface");
  assert.equal(k.at(-1), "ip -4 route");
  assert.match(text(steps), /ip -4 route replace default dev wg-egress src 10\.100\.0\.2 table 51820/);
  assert.match(text(steps), /ip -4 rule add priority 5182 fwmark 0xca6c lookup 51820/);
  assert.match(text(steps), /ip -4 rule add priority 5183 uidrange 400-400 to 10\.1\.0\.0\/24 lookup main/);
  assert.match(text(steps), /ip -6 rule add priority 5183 uidrange 400-400 to fd00:1::\/64 lookup main/);
  assert.match(text(steps), /ip -4 rule add priority 5184 uidrange 400-400 lookup 51820/);
  assert.doesNotMatch(text(steps), /suppress_prefixlength/, "never every connected route through main");
  assert.match(text(steps), /unreachable default metric 4294967295 table 51820/);
  const sysctl = steps[0];
  assert.ok(sysctl.kind === "sysctl" && sysctl.record === undefined, "nothing to record from an unread host");
});

test("the ruleset marks what the proxy originates, except to its client subnets, and has the kill switch", () => {
  const r = renderRuleset(spec());
  assert.match(r, /^table inet wg-egress\ndelete table inet wg-egress\ntable inet wg-egress \{/);
  assert.match(
    r,
    /meta skuid 400 oifname != "lo" ct direction original ip daddr != \{ 10\.1\.0\.0\/24 \} meta mark set 0xca6c/,
  );
  assert.match(
    r,
    /meta skuid 400 oifname != "lo" ct direction original ip6 daddr != \{ fd00:1::\/64 \} meta mark set 0xca6c/,
  );
  // Without client subnets every originated packet is marked.
  assert.match(
    renderRuleset(spec({}, { v4: [], v6: [] })),
    /ct direction original meta nfproto ipv4 meta mark set 0xca6c\n.*ct direction original meta nfproto ipv6 meta mark set/,
  );
  assert.match(r, /iifname "wg-egress" ct mark 0xca6c meta mark set ct mark/);
  assert.match(
    r,
    /meta mark 0xca6c oifname != "wg-egress" counter name killswitch_rejects reject with icmpx type admin-prohibited/,
  );
  assert.match(
    r,
    /hook postrouting priority filter;[^}]*meta mark 0xca6c oifname != "wg-egress" counter name killswitch_rejects drop/,
  );
  assert.match(r, /oifname "wg-egress" meta mark 0xca6c masquerade/);
  // IPv6: refused without a tunnel address, routed with one.
  assert.match(r, /meta nfproto ipv6 counter name killswitch_rejects reject/);
  const v6 = spec({ address6: "fd00:100::2/64" });
  assert.doesNotMatch(renderRuleset(v6), /meta mark 0xca6c meta nfproto ipv6/);
  assert.match(
    text(planUp(v6, NOTHING)),
    /ip -6 route replace default dev wg-egress src fd00:100::2 table 51820/,
  );
  assert.notEqual(rulesetHash(v6), rulesetHash(spec()));
  assert.notEqual(rulesetHash(spec({}, { v4: ["10.2.0.0/24"], v6: [] })), rulesetHash(spec()));
});

test("the WireGuard config never carries the private key or the egress mark", () => {
  const wgStep = planUp(spec({ privateKeyFile: "/etc/wg-egress/gw.key" }), NOTHING).find(
    (s) => s.kind === "wg-config",
  );
  assert.ok(wgStep && wgStep.kind === "wg-config");
  assert.doesNotMatch(wgStep.conf, /PrivateKey/);
  assert.match(wgStep.conf, /FwMark = off/);
  assert.match(describeStep(wgStep), /PrivateKey = <contents of \/etc\/wg-egress\/gw\.key>/);
  assert.equal(stepCommand(wgStep), "wg syncconf wg-egress <(0600 file)");
});

test("up on an up gateway plans nothing (idempotent)", () => {
  const s = spec();
  assert.deepEqual(planUp(s, upState(s)), []);
  assert.ok(killSwitchArmed(s, upState(s)));
  assert.deepEqual(killSwitchMissing(s, upState(s)), []);
});

test("after link down/up the tunnel route is re-added (finding 4); nothing else changes", () => {
  const s = spec();
  const state = upState(s);
  const down = {
    ...state,
    link: { ...state.link!, up: false },
    routes4: state.routes4.filter((r) => r.type === "unreachable"),
  };
  assert.deepEqual(kinds(planUp(s, down)), ["ip link set", "ip -4 route"]);
  const cameBack = { ...down, link: { ...state.link!, up: true } };
  assert.deepEqual(kinds(planUp(s, cameBack)), ["ip -4 route"]);
});

test("drift is repaired: egress fwmark on the wg socket (finding 3), a changed ruleset, a lost rule", () => {
  const s = spec();
  const state = upState(s);
  assert.deepEqual(kinds(planUp(s, { ...state, wg: { ...state.wg!, fwmark: 0xca6c } })), ["wg-config"]);
  assert.deepEqual(kinds(planUp(s, { ...state, nft: { ...state.nft!, hash: "old" } })), ["nft -f -"]);
  assert.deepEqual(kinds(planUp(s, { ...state, rules6: state.rules6.slice(1) })), ["ip -6 rule"]);
  assert.ok(!killSwitchArmed(s, { ...state, rules6: state.rules6.slice(1) }));
  const moved = {
    ...state,
    wg: { ...state.wg!, peers: [{ ...state.wg!.peers[0], endpoint: "203.0.113.99:51820" }] },
  };
  assert.deepEqual(kinds(planUp(s, moved)), ["wg-config"]);
});

test("each chain of the rendered table, deleted or emptied, is 'not armed' and reloaded", () => {
  const s = spec();
  const state = upState(s);
  const chains = expectedChains(s).map((c) => c.name);
  // The list comes from the rendered text: all seven, leak_guard included.
  assert.deepEqual(chains.sort(), [
    "kill_switch",
    "leak_guard",
    "mark_proxy",
    "restore_mark",
    "snat_tunnel",
    "tunnel_fwd",
    "tunnel_in",
  ]);
  for (const name of chains) {
    for (const nft of [
      { ...state.nft!, chains: state.nft!.chains.filter((c) => c.name !== name) },
      { ...state.nft!, chains: state.nft!.chains.map((c) => (c.name === name ? { name, rules: [] } : c)) },
    ]) {
      const broken = { ...state, nft };
      assert.ok(!killSwitchArmed(s, broken), name);
      assert.match(killSwitchMissing(s, broken).join(), new RegExp(`chain ${name}`));
      assert.equal(summarize(s, broken, 1100).killSwitchArmed, false);
      assert.deepEqual(kinds(planUp(s, broken)), ["nft -f -"], name);
    }
  }
  assert.deepEqual(killSwitchMissing(s, { ...state, nft: null }), ["nft table inet wg-egress"]);
});

test("rules of ours that are no longer wanted go, after the new ones are in; others' stay", () => {
  const s = spec();
  const state = upState(s);
  // The old design's rule (every connected route via main) and a removed client subnet.
  const suppress: RuleEntry = {
    priority: 5183,
    uid_start: 400,
    uid_end: 400,
    table: "main",
    suppress_prefixlen: 0,
  };
  const removed: RuleEntry = {
    priority: 5183,
    uid_start: 400,
    uid_end: 400,
    table: "main",
    dst: "10.9.0.0",
    dstlen: 16,
  };
  const decoys: RuleEntry[] = [
    { priority: 5182, fwmark: "0x1", table: "100" },
    { priority: 5184, uid_start: 401, uid_end: 401, table: "51820" },
  ];
  const steps = planUp(s, { ...state, rules4: [...state.rules4, suppress, removed, ...decoys] });
  assert.equal(
    text(steps),
    [
      "# remove a rule of ours that is no longer wanted",
      "ip -4 rule del priority 5183 uidrange 400-400 lookup main suppress_prefixlength 0",
      "# remove a rule of ours that is no longer wanted",
      "ip -4 rule del priority 5183 uidrange 400-400 to 10.9.0.0/16 lookup main",
    ].join("\n"),
  );
  const fresh = planKillSwitch(s, { ...state, rules4: [suppress] });
  const k = kinds(fresh);
  assert.ok(k.lastIndexOf("ip -4 rule") > 0 && fresh.at(-1)!.kind === "run");
  assert.match(describeStep(fresh.at(-1)!), /rule del .*suppress_prefixlength 0/, "the old rule goes last");
});

test("a foreign interface with our name is an error, not something we take over", () => {
  const s = spec();
  assert.throws(
    () => planUp(s, { ...NOTHING, link: { kind: "other", up: true, mtu: 1500, addresses: [] } }),
    UserError,
  );
});

test("down keeps the kill switch; --purge removes exactly our objects and restores src_valid_mark", () => {
  const s = spec();
  const state = upState(s);
  assert.deepEqual(kinds(planDown(s, state)), ["stop-userspace"]);
  assert.deepEqual(planDown(s, NOTHING), []);
  const decoy = { priority: 5182, fwmark: "0x1", table: "100" };
  const old: RuleEntry = {
    priority: 5183,
    uid_start: 400,
    uid_end: 400,
    table: "main",
    suppress_prefixlen: 0,
  };
  const purge = planDown(
    s,
    { ...state, rules4: [...state.rules4, decoy, old] },
    { purge: true, srcValidMarkWas: "0" },
  );
  const t = text(purge);
  assert.match(t, /kill 1234/);
  assert.equal((t.match(/ rule del /g) ?? []).length, 7, "our 6 and the old version's");
  assert.doesNotMatch(t, /fwmark 0x1 /);
  assert.match(t, /ip -4 route del unreachable default metric 4294967295 table 51820/);
  assert.match(t, /nft delete table inet wg-egress/);
  assert.match(t, /sysctl -w net\.ipv4\.conf\.all\.src_valid_mark=0$/);
  // Nothing recorded (it was 1 before us, or we never ran): left alone.
  assert.doesNotMatch(text(planDown(s, state, { purge: true, srcValidMarkWas: null })), /sysctl/);
  assert.deepEqual(planDown(s, NOTHING, { purge: true }), []);
});

test("src_valid_mark: the value before our change is recorded with the step", () => {
  const s = spec();
  const [step] = planKillSwitch(s, { ...upState(s), srcValidMark: "0" });
  assert.deepEqual(step.kind === "sysctl" && step.record, { ifname: "wg-egress", was: "0" });
});

test("a DNS-name endpoint is pointed at its current address; the home address change resets the source", () => {
  const s = spec({ peer: { publicKey: PEER, endpoint: "exit.example.net:51820" } });
  const wg = upState(s).wg;
  assert.deepEqual(planEndpoint(s, wg, ["203.0.113.10", "2001:db8::1"]), [], "still one of its addresses");
  assert.equal(
    stepCommand(planEndpoint(s, wg, ["203.0.113.77"])[0]),
    `wg set wg-egress peer ${PEER} endpoint 203.0.113.77:51820`,
  );
  assert.deepEqual(planEndpoint(spec(), wg, ["203.0.113.77"]), [], "an IP endpoint is never re-resolved");
  assert.deepEqual(planEndpoint(s, wg, []), []);
  assert.deepEqual(planRoam(s, wg, "198.51.100.2", "198.51.100.2"), []);
  assert.deepEqual(planRoam(s, wg, null, "198.51.100.2"), []);
  assert.equal(
    stepCommand(planRoam(s, wg, "198.51.100.2", "198.51.100.3")[0]),
    `wg set wg-egress peer ${PEER} endpoint 203.0.113.10:51820`,
  );
  // An address removed from the host: told even when the source looks unchanged or was not known yet.
  assert.match(
    planRoam(s, wg, null, "198.51.100.3", true)[0].why,
    /an address was removed: send from 198\.51\.100\.3/,
  );
  assert.deepEqual(planRoam(s, wg, "198.51.100.2", null, true), [], "no route yet: later");
});

test("missing peer settings and unknown users are one-line errors", () => {
  const c = parseConfig({});
  const exits = resolveExits(c.gateway, c.exits);
  assert.throws(() => upSpecOf(exits[0], exits, "auto", 400, OURS), /gateway\.peer\.publicKey is missing/);
  const passwd = join(tempDir("wgetest-pw-"), "passwd");
  writeFileSync(passwd, "root:x:0:0::/root:/bin/sh\nsocks:x:412:412::/:/usr/sbin/nologin\n");
  assert.equal(resolveProxyUid(parseConfig({ gateway: { proxyUser: "socks" } }).gateway, passwd), 412);
  assert.equal(resolveProxyUid(c.gateway, passwd), 400);
  assert.throws(
    () => resolveProxyUid(parseConfig({ gateway: { proxyUser: "nobody2" } }).gateway, passwd),
    /unknown user "nobody2"/,
  );
});

test("status: verdict from the handshake age, the kill switch from the shared checks", () => {
  const s = spec();
  const state = upState(s);
  assert.equal(summarize(s, state, 1100).verdict, "up");
  assert.equal(summarize(s, state, 1200).verdict, "stale");
  assert.equal(summarize(s, state, 1400).verdict, "down");
  assert.equal(summarize(s, { ...state, link: { ...state.link!, up: false } }, 1100).verdict, "down");
  const st = summarize(s, state, 1100);
  assert.equal(st.peer?.handshakeAgeSeconds, 100);
  assert.equal(st.implementation, "userspace");
  assert.ok(st.killSwitchArmed && st.rule.ipv4 && st.rule.ipv6 && st.route.tunnel4 && !st.route.tunnel6);
  const noRule = summarize(s, { ...state, rules4: state.rules4.slice(1) }, 1100);
  assert.equal(noRule.rule.ipv4, false);
  assert.deepEqual(noRule.killSwitchMissing, ["IPv4 rule: marked packets use table 51820"]);
});

test("purge: src_valid_mark goes back to the host's value only with the last exit, whichever was up first", () => {
  // one exit, host had 0
  assert.deepEqual(srcValidMarkOnPurge(["0"], []), { restore: "0", handOver: null });
  // exit one (saw 0) purged while exit two (saw our 1) stays: keep 1, exit two inherits the 0
  assert.deepEqual(srcValidMarkOnPurge(["0"], ["1"]), { restore: null, handOver: "0" });
  // both at once, in any order: the host's 0, not the 1 the second exit saw
  assert.deepEqual(srcValidMarkOnPurge(["1", "0"], []), { restore: "0", handOver: null });
  // the host had 1 itself; an exit never brought up has no record
  assert.deepEqual(srcValidMarkOnPurge(["1", "1"], [undefined]), { restore: "1", handOver: null });
  assert.deepEqual(srcValidMarkOnPurge([undefined], []), { restore: null, handOver: null });
});
