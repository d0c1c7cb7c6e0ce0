import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../../src/config/load.js";
import { NOTHING } from "../../src/gateway/apply.js";
import {
  describeStep,
  type GatewayState,
  killSwitchArmed,
  ourRules,
  planDown,
  planUp,
  renderRuleset,
  rulesetHash,
  type Step,
  UNREACHABLE_METRIC,
  type UpSpec,
  upSpecOf,
} from "../../src/gateway/plan.js";
import { resolveProxyUid } from "../../src/gateway/proxy-user.js";
import { parseNftTable, summarize } from "../../src/gateway/status.js";
import { UserError } from "../../src/util/errors.js";
import { tempDir } from "../support/tmp.js";

const PEER = "n9ucXH8cmCisIMfbNGc1ztq2iLO7vcRl/MJX2j2PUWE=";
const OURS = "ZwTf6iQMwlGoSQNdr5Kwm6qmqhFM49kteziBXVxfih4=";

function spec(gateway: Record<string, unknown> = {}): UpSpec {
  const gw = parseConfig({
    gateway: { peer: { publicKey: PEER, endpoint: "203.0.113.10:51820" }, ...gateway },
  }).gateway;
  return upSpecOf(gw, 400, OURS);
}

/** The state `gateway up` leaves behind, as status.ts reads it. */
function upState(s: UpSpec): GatewayState {
  const rules = ourRules(s).map((r) => {
    const [, prio, sel] = r.args;
    const base = { priority: Number(prio), table: r.args[r.args.indexOf("lookup") + 1] };
    return sel === "fwmark"
      ? { ...base, fwmark: `0x${s.fwmark.toString(16)}` }
      : {
          ...base,
          uid_start: s.uid,
          uid_end: s.uid,
          ...(r.args.includes("suppress_prefixlength") ? { suppress_prefixlen: 0 } : {}),
        };
  });
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
    rules4: rules,
    rules6: rules,
    routes4: [{ dst: "default", dev: s.ifname }, unreachable],
    routes6: [{ ...unreachable, dev: "lo" }],
    nft: {
      hash: rulesetHash(s),
      chains: [
        "mark_proxy",
        "restore_mark",
        "kill_switch",
        "leak_guard",
        "snat_tunnel",
        "tunnel_in",
        "tunnel_fwd",
      ],
      rejected: 0,
    },
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
  assert.equal(k.filter((x) => x.endsWith(" rule")).length, 6);
  const nft = k.indexOf("nft -f -");
  assert.ok(nft < k.indexOf("create-link") && k.indexOf("create-link") < k.indexOf("wg-config"));
  assert.equal(k.at(-1), "ip -4 route");
  assert.match(text(steps), /ip -4 route replace default dev wg-egress src 10\.100\.0\.2 table 51820/);
  assert.match(text(steps), /ip -4 rule add priority 5182 fwmark 0xca6c lookup 51820/);
  assert.match(text(steps), /unreachable default metric 4294967295 table 51820/);
});

test("the ruleset marks only connections the proxy originates and has the kill switch", () => {
  const r = renderRuleset(spec());
  assert.match(r, /^table inet wg-egress\ndelete table inet wg-egress\ntable inet wg-egress \{/);
  assert.match(r, /meta skuid 400 oifname != "lo" ct direction original meta mark set 0xca6c/);
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
  assert.doesNotMatch(renderRuleset(v6), /nfproto ipv6/);
  assert.match(
    text(planUp(v6, NOTHING)),
    /ip -6 route replace default dev wg-egress src fd00:100::2 table 51820/,
  );
  assert.notEqual(rulesetHash(v6), rulesetHash(spec()));
});

test("the WireGuard config never carries the private key or the egress mark", () => {
  const wgStep = planUp(spec({ privateKeyFile: "/etc/wg-egress/gw.key" }), NOTHING).find(
    (s) => s.kind === "wg-config",
  );
  assert.ok(wgStep && wgStep.kind === "wg-config");
  assert.doesNotMatch(wgStep.conf, /PrivateKey/);
  assert.match(wgStep.conf, /FwMark = off/);
  assert.match(describeStep(wgStep), /PrivateKey = <contents of \/etc\/wg-egress\/gw\.key>/);
});

test("up on an up gateway plans nothing (idempotent)", () => {
  const s = spec();
  assert.deepEqual(planUp(s, upState(s)), []);
  assert.ok(killSwitchArmed(s, upState(s)));
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

test("a foreign interface with our name is an error, not something we take over", () => {
  const s = spec();
  assert.throws(
    () => planUp(s, { ...NOTHING, link: { kind: "other", up: true, mtu: 1500, addresses: [] } }),
    UserError,
  );
});

test("down removes exactly our objects; --keep-killswitch removes only the interface", () => {
  const s = spec();
  const state = upState(s);
  const decoy = { priority: 5182, fwmark: "0x1", table: "100" };
  const steps = planDown(s, { ...state, rules4: [...state.rules4, decoy] });
  const t = text(steps);
  assert.match(t, /kill 1234/);
  assert.equal((t.match(/ rule del /g) ?? []).length, 6);
  assert.doesNotMatch(t, /fwmark 0x1 /);
  assert.match(t, /ip -4 route del unreachable default metric 4294967295 table 51820/);
  assert.match(t, /nft delete table inet wg-egress/);
  assert.deepEqual(kinds(planDown(s, state, true)), ["stop-userspace"]);
  assert.deepEqual(planDown(s, NOTHING), []);
});

test("missing peer settings and unknown users are one-line errors", () => {
  const gw = parseConfig({}).gateway;
  assert.throws(() => upSpecOf(gw, 400, OURS), /gateway\.peer\.publicKey is missing/);
  const passwd = join(tempDir("wgetest-pw-"), "passwd");
  writeFileSync(passwd, "root:x:0:0::/root:/bin/sh\nsocks:x:412:412::/:/usr/sbin/nologin\n");
  assert.equal(resolveProxyUid(parseConfig({ gateway: { proxyUser: "socks" } }).gateway, passwd), 412);
  assert.equal(resolveProxyUid(gw, passwd), 400);
  assert.throws(
    () => resolveProxyUid(parseConfig({ gateway: { proxyUser: "nobody2" } }).gateway, passwd),
    /unknown user "nobody2"/,
  );
});

test("status: nft listing parsed, verdict from the handshake age", () => {
  const listing = `table inet wg-egress {\n\tcomment "managed by wg-egress; sha256:abc123"\n\tcounter killswitch_rejects {\n\t\tpackets 7 bytes 420\n\t}\n\tchain mark_proxy {\n\t}\n\tchain kill_switch {\n\t}\n}\n`;
  assert.deepEqual(parseNftTable(listing), {
    hash: "abc123",
    chains: ["mark_proxy", "kill_switch"],
    rejected: 7,
  });
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
});
