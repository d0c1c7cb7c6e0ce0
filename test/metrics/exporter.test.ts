import assert from "node:assert/strict";
import { test } from "node:test";
import type { Registry } from "prom-client";
import type { GatewayStatus } from "../../src/gateway/status.js";
import {
  exitsFamilies,
  GATEWAY_FAMILIES,
  type GatewaySnapshot,
  gatewayFamilies,
  snapshotRegistry,
} from "../../src/metrics/gateway-metrics.js";
import { peerLabels, splitEndpoint, wireguardFamilies } from "../../src/metrics/wireguard-exporter.js";
import { parseWgDump } from "../../src/wireguard/dump.js";

// `wg show all dump` shape: interface line, then peers (endpoint, allowed ips, handshake, rx, tx, keepalive).
const KEY_A = "aGVsbG8td29ybGQtdGhpcy1pcy1hLWZha2Uta2V5IUE=";
const KEY_B = "Yi1wZWVyLWtleS1mb3ItdGVzdHMtb25seS0wMDAwMDA=";
const DUMP = [
  ["wg-egress", "cHJpdmF0ZQ==", "cHVibGlj", "51821", "off"],
  ["wg-egress", KEY_A, "(none)", "203.0.113.10:51820", "0.0.0.0/0,::/0", "1700000000", "2620", "5380", "25"],
  ["wg-egress", KEY_B, "(none)", "(none)", "(none)", "0", "0", "0", "off"],
  ["wg1", "cHJpdmF0ZQ==", "cHVibGlj", "51822", "off"],
  ["wg1", KEY_B, "(none)", "[fe80::1%eth0]:51820", "10.0.0.2/32,fd00::2/128", "1699999900", "7", "9", "off"],
]
  .map((c) => c.join("\t"))
  .join("\n");

const NOW = 1700000100;
const ifaces = parseWgDump(DUMP);

test("names, types and HELP texts are prometheus_wireguard_exporter's", () => {
  const fams = wireguardFamilies(ifaces, NOW);
  assert.deepEqual(
    fams.map((f) => [f.name, f.type, f.help]),
    [
      ["wireguard_sent_bytes_total", "counter", "Bytes sent to the peer"],
      ["wireguard_received_bytes_total", "counter", "Bytes received from the peer"],
      ["wireguard_latest_handshake_seconds", "gauge", "UNIX timestamp seconds of the last handshake"],
      ["wireguard_latest_handshake_delay_seconds", "gauge", "Seconds from the last handshake"],
    ],
  );
});

test("sent is the dump's tx, received its rx; handshake is a timestamp, delay its age", () => {
  const [sent, received, hs, delay] = wireguardFamilies(ifaces, NOW);
  const first = { interface: "wg-egress", public_key: KEY_A, allowed_ips: "0.0.0.0/0,::/0" };
  assert.deepEqual(sent.values[0], { labels: first, value: 5380 });
  assert.deepEqual(received.values[0], { labels: first, value: 2620 });
  assert.equal(hs.values[0].value, 1700000000);
  assert.equal(delay.values[0].value, 100);
  // never = 0 → the delay is the time since the epoch, as upstream: "> 300" alerts fire.
  assert.equal(hs.values[1].value, 0);
  assert.equal(delay.values[1].value, NOW);
  assert.equal(sent.values[1].labels.allowed_ips, "(none)");
  assert.equal(sent.values.length, 3);
});

test("friendly_name only for named peers; -s and -r label modes", () => {
  const peer = ifaces[1].peers[0];
  assert.deepEqual(peerLabels(peer, { friendlyNames: { [KEY_A]: "exit" } }), {
    interface: "wg1",
    public_key: KEY_B,
    allowed_ips: "10.0.0.2/32,fd00::2/128",
  });
  assert.equal(peerLabels(ifaces[0].peers[0], { friendlyNames: { [KEY_A]: "exit" } }).friendly_name, "exit");
  assert.deepEqual(peerLabels(peer, { separateAllowedIps: true, exportRemoteIpAndPort: true }), {
    interface: "wg1",
    public_key: KEY_B,
    remote_ip: "fe80::1",
    allowed_ip_0: "10.0.0.2",
    allowed_subnet_0: "32",
    allowed_ip_1: "fd00::2",
    allowed_subnet_1: "128",
    remote_port: "51820",
  });
  assert.deepEqual(splitEndpoint("203.0.113.10:51820"), { ip: "203.0.113.10", port: "51820" });
  assert.equal(splitEndpoint("garbage"), null);
});

const status = (verdict: GatewayStatus["verdict"], armed: boolean, rejects: number | null) =>
  ({
    interface: "wg-egress",
    verdict,
    killSwitchArmed: armed,
    nft: { present: rejects !== null, killSwitchRejects: rejects },
  }) as GatewayStatus;

test("own metrics: one state is 1, kill switch armed, rejects, IP check only after one ran", () => {
  const snap: GatewaySnapshot = {
    nowSeconds: NOW,
    wg: ifaces,
    status: status("stale", true, 7),
    ipCheck: null,
    agent: null,
  };
  const fams = gatewayFamilies(snap);
  const by = (n: string) => fams.find((f) => f.name === n)!;
  assert.deepEqual(
    by("wg_egress_tunnel_state").values.map((v) => [v.labels.state, v.value]),
    [
      ["up", 0],
      ["stale", 1],
      ["down", 0],
    ],
  );
  assert.equal(by("wg_egress_killswitch_armed").values[0].value, 1);
  assert.equal(by("wg_egress_killswitch_rejected_packets_total").values[0].value, 7);
  assert.deepEqual(by("wg_egress_exit_ip_check_ok").values, []);
  const later = gatewayFamilies({
    ...snap,
    status: status("down", false, null),
    ipCheck: { ok: false, at: 5 },
  });
  assert.equal(later.find((f) => f.name === "wg_egress_killswitch_armed")!.values[0].value, 0);
  assert.deepEqual(later.find((f) => f.name === "wg_egress_killswitch_rejected_packets_total")!.values, []);
  assert.equal(later.find((f) => f.name === "wg_egress_exit_ip_check_ok")!.values[0].value, 0);
  assert.deepEqual(
    fams.map((f) => f.name),
    GATEWAY_FAMILIES.map((f) => f.name),
  );
});

test("agent metrics: stopped when no agent runs; its state and repair counters when one does", () => {
  const base: GatewaySnapshot = {
    nowSeconds: NOW,
    wg: ifaces,
    status: status("up", true, 0),
    ipCheck: null,
    agent: null,
  };
  const by = (snap: GatewaySnapshot, n: string) => gatewayFamilies(snap).find((f) => f.name === n)!;
  const current = (snap: GatewaySnapshot) =>
    by(snap, "wg_egress_agent_state")
      .values.filter((v) => v.value === 1)
      .map((v) => v.labels.state);
  assert.deepEqual(current(base), ["stopped"]);
  assert.equal(by(base, "wg_egress_agent_state").values.length, 5);
  assert.deepEqual(by(base, "wg_egress_agent_repairs_total").values, []);
  const running = {
    ...base,
    agent: {
      pid: 9,
      state: "ok" as const,
      since: 1,
      repairs: { route: 3, nft: 1 },
      failures: 2,
      lastRepair: null,
    },
  };
  assert.deepEqual(current(running), ["ok"]);
  assert.deepEqual(by(running, "wg_egress_agent_repairs_total").values, [
    { labels: { interface: "wg-egress", what: "route" }, value: 3 },
    { labels: { interface: "wg-egress", what: "nft" }, value: 1 },
  ]);
  assert.equal(by(running, "wg_egress_agent_repair_failures_total").values[0].value, 2);
});

test("the registry takes one snapshot per scrape and renders the text format", async () => {
  let calls = 0;
  const registry: Registry = snapshotRegistry(GATEWAY_FAMILIES, async () => {
    calls++;
    return gatewayFamilies({
      nowSeconds: NOW,
      wg: ifaces,
      status: status("up", true, 0),
      ipCheck: null,
      agent: null,
    });
  });
  const text = await registry.metrics();
  assert.equal(calls, 1);
  assert.match(text, /^# TYPE wireguard_sent_bytes_total counter$/m);
  assert.match(
    text,
    new RegExp(
      `^wireguard_sent_bytes_total\\{interface="wg-egress",public_key="${KEY_A.replace(/[+/=]/g, "\\$&")}",allowed_ips="0.0.0.0/0,::/0"\\} 5380$`,
      "m",
    ),
  );
  assert.match(text, /^wg_egress_tunnel_state\{interface="wg-egress",state="up"\} 1$/m);
  await registry.metrics();
  assert.equal(calls, 2);
});

test("several exits: one sample set per exit, each with its interface; the IP check only where it ran", () => {
  const one: GatewaySnapshot = {
    nowSeconds: NOW,
    wg: [],
    status: status("up", true, 1),
    ipCheck: { ok: true, at: 5 },
    agent: null,
  };
  const two: GatewaySnapshot = {
    ...one,
    status: { ...status("down", true, 3), interface: "wge-hel" },
    ipCheck: null,
  };
  const fams = exitsFamilies([one, two]);
  const by = (n: string) => fams.find((f) => f.name === n)!;
  assert.deepEqual(
    fams.map((f) => f.name),
    GATEWAY_FAMILIES.map((f) => f.name),
  );
  assert.deepEqual(
    by("wg_egress_tunnel_state")
      .values.filter((v) => v.value === 1)
      .map((v) => [v.labels.interface, v.labels.state]),
    [
      ["wg-egress", "up"],
      ["wge-hel", "down"],
    ],
  );
  assert.deepEqual(
    by("wg_egress_killswitch_rejected_packets_total").values.map((v) => [v.labels.interface, v.value]),
    [
      ["wg-egress", 1],
      ["wge-hel", 3],
    ],
  );
  assert.equal(by("wg_egress_exit_ip_check_ok").values.length, 1);
  assert.deepEqual(exitsFamilies([one]), gatewayFamilies(one), "one exit: as before");
});
