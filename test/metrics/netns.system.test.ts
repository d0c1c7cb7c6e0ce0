import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { stringify } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { renderAlerts } from "../../src/render/alerts.js";
import { run } from "../../src/util/run.js";
import { parseWgDump } from "../../src/wireguard/dump.js";
import { generatePrivateKey, publicKeyOf } from "../../src/wireguard/keys.js";
import { MAIN } from "../support/cli.js";
import { curlIn, type Daemon, inNs, startIn, stop } from "../support/netns.js";
import { waitFor } from "../support/poll.js";
import { tempDir } from "../support/tmp.js";
import { requireTools } from "../support/tools.js";

before(() => requireTools("wg", "wireguard-go", "ping", "prometheus", "promtool", "curl"));

/**
 * A real wireguard-go tunnel between two throwaway namespaces (veth 10.213.0.0/30, tunnel 10.214.0.0/24,
 * both only inside them), `wg-egress metrics` in the first, `promtool check metrics` on what it
 * serves, and a real Prometheus (also inside the namespace) scraping it.
 */

const NS_A = "wgetest-metrics-a";
const NS_B = "wgetest-metrics-b";
// wireguard-go's sockets are shared by all namespaces: names unique to this test.
const IF_A = "wgtm0";
const IF_B = "wgtm1";
const EXPORTER = "127.0.0.1:19586";
const PROM = "127.0.0.1:19090";

const dir = tempDir("wgetest-metrics-");
const daemons: Daemon[] = [];
const keys = { a: generatePrivateKey(), b: generatePrivateKey() };
let scraped = "";

async function must(ns: string, cmd: string, args: string[]) {
  const r = await inNs(ns, cmd, args);
  assert.equal(r.code, 0, `${cmd} ${args.join(" ")} in ${ns}: ${r.stderr}`);
}

async function cleanup() {
  for (const d of daemons.splice(0)) await stop(d);
  for (const ns of [NS_A, NS_B]) await run("ip", ["netns", "del", ns], { allowFail: true });
}

interface Side {
  ns: string;
  ifname: string;
  key: string;
  port: number;
  veth: string;
  tunnel: string;
}

async function wgPeer(me: Side, peer: Side) {
  const { ns, ifname } = me;
  const keyFile = join(dir, `${ifname}.key`);
  writeFileSync(keyFile, `${me.key}\n`, { mode: 0o600 });
  const d = startIn(ns, ["wireguard-go", "-f", ifname], {
    WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1",
  });
  daemons.push(d);
  await waitFor(`${ifname} created`, 10_000, async () =>
    (await inNs(ns, "wg", ["show", ifname])).code === 0 ? true : null,
  );
  await must(ns, "wg", [
    "set",
    ifname,
    "private-key",
    keyFile,
    "listen-port",
    String(me.port),
    "peer",
    publicKeyOf(peer.key),
    "allowed-ips",
    `${peer.tunnel}/32`,
    "endpoint",
    `${peer.veth}:${peer.port}`,
  ]);
  await must(ns, "ip", ["address", "add", `${me.tunnel}/24`, "dev", ifname]);
  await must(ns, "ip", ["link", "set", ifname, "up"]);
}

before(async () => {
  await cleanup();
  for (const ns of [NS_A, NS_B]) {
    await run("ip", ["netns", "add", ns]);
    await must(ns, "ip", ["link", "set", "lo", "up"]);
  }
  await run("ip", [
    "link",
    "add",
    "wgtm-va",
    "netns",
    NS_A,
    "type",
    "veth",
    "peer",
    "name",
    "wgtm-vb",
    "netns",
    NS_B,
  ]);
  await must(NS_A, "ip", ["address", "add", "10.213.0.1/30", "dev", "wgtm-va"]);
  await must(NS_B, "ip", ["address", "add", "10.213.0.2/30", "dev", "wgtm-vb"]);
  await must(NS_A, "ip", ["link", "set", "wgtm-va", "up"]);
  await must(NS_B, "ip", ["link", "set", "wgtm-vb", "up"]);
  const a: Side = {
    ns: NS_A,
    ifname: IF_A,
    key: keys.a,
    port: 51901,
    veth: "10.213.0.1",
    tunnel: "10.214.0.1",
  };
  const b: Side = {
    ns: NS_B,
    ifname: IF_B,
    key: keys.b,
    port: 51902,
    veth: "10.213.0.2",
    tunnel: "10.214.0.2",
  };
  await wgPeer(a, b);
  await wgPeer(b, a);
  // Traffic through the tunnel makes the handshake happen.
  await waitFor("a handshake", 15_000, async () => {
    await inNs(NS_A, "ping", ["-c", "1", "-W", "1", "10.214.0.2"]);
    const dump = await inNs(NS_A, "wg", ["show", IF_A, "dump"]);
    return parseWgDump(dump.stdout, IF_A)[0]?.peers[0]?.latestHandshake || null;
  });
  writeFileSync(
    join(dir, "config.yaml"),
    stringify({
      gateway: {
        interface: IF_A,
        peer: { publicKey: publicKeyOf(keys.b), endpoint: "10.213.0.2:51902" },
        metrics: EXPORTER,
      },
    }),
  );
  const exporter = startIn(NS_A, [
    process.execPath,
    MAIN,
    "metrics",
    "--config",
    join(dir, "config.yaml"),
    "--friendly-name",
    "exit-b",
  ]);
  daemons.push(exporter);
  scraped = await waitFor("the exporter", 10_000, () => curlIn(NS_A, `http://${EXPORTER}/metrics`));
});

after(async () => {
  await cleanup();
});

const sample = (text: string, name: string) => {
  const m = new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, "m").exec(text);
  return m ? { labels: m[1], value: Number(m[2]) } : null;
};

test("the exporter serves the real tunnel's counters with the upstream labels", async () => {
  const dump = parseWgDump((await inNs(NS_A, "wg", ["show", IF_A, "dump"])).stdout, IF_A)[0].peers[0];
  const labels = `interface="${IF_A}",public_key="${publicKeyOf(keys.b)}",allowed_ips="10.214.0.2/32",friendly_name="exit-b"`;
  const sent = sample(scraped, "wireguard_sent_bytes_total");
  const received = sample(scraped, "wireguard_received_bytes_total");
  const hs = sample(scraped, "wireguard_latest_handshake_seconds");
  const delay = sample(scraped, "wireguard_latest_handshake_delay_seconds");
  assert.equal(sent?.labels, labels);
  // The counters only grow: what was scraped is > 0 and at most what the dump shows now.
  assert.ok(sent!.value > 0 && sent!.value <= dump.txBytes, `sent ${sent!.value}, dump tx ${dump.txBytes}`);
  assert.ok(received!.value > 0 && received!.value <= dump.rxBytes);
  assert.equal(hs!.value, dump.latestHandshake);
  assert.ok(delay!.value >= 0 && delay!.value < 60, `delay ${delay!.value}`);
  // No `gateway up` here: no tunnel route, no kill switch — and the exporter says so.
  assert.match(scraped, new RegExp(`^wg_egress_tunnel_state\\{interface="${IF_A}",state="down"\\} 1$`, "m"));
  assert.match(scraped, new RegExp(`^wg_egress_killswitch_armed\\{interface="${IF_A}"\\} 0$`, "m"));
});

test("promtool check metrics accepts the output", async () => {
  const r = await run("promtool", ["check", "metrics"], { input: scraped, allowFail: true });
  assert.equal(r.code, 0, r.stdout + r.stderr);
});

const query = async (promql: string) => {
  const body = await curlIn(NS_A, `http://${PROM}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const r = body ? JSON.parse(body).data.result : [];
  return r.length ? r : null;
};

test("a real Prometheus scrapes it, and the rendered alerts evaluate on its data", async () => {
  writeFileSync(join(dir, "alerts.yml"), renderAlerts(parseConfig({ gateway: { interface: IF_A } })));
  writeFileSync(
    join(dir, "prometheus.yml"),
    stringify({
      global: { scrape_interval: "1s", evaluation_interval: "1s" },
      rule_files: [join(dir, "alerts.yml")],
      scrape_configs: [{ job_name: "wg-egress-gateway", static_configs: [{ targets: [EXPORTER] }] }],
    }),
  );
  daemons.push(
    startIn(NS_A, [
      "prometheus",
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "tsdb")}`,
      `--web.listen-address=${PROM}`,
    ]),
  );
  const result = await waitFor("Prometheus to have a sample", 30_000, () =>
    query(`wireguard_sent_bytes_total{interface="${IF_A}"}`),
  );
  assert.equal(result[0].metric.job, "wg-egress-gateway");
  assert.equal(result[0].metric.public_key, publicKeyOf(keys.b));
  assert.ok(Number(result[0].value[1]) > 0);
  // No kill switch in this namespace: that alert is pending (for: 1m). No tunnel route either, so the
  // exporter says down and the tunnel-down alert is pending too, although the handshake is fresh.
  for (const alert of ["WgEgressKillSwitchNotArmed", "WgEgressTunnelDown"]) {
    const pending = await waitFor(alert, 15_000, () => query(`ALERTS{alertname="${alert}"}`));
    assert.equal(pending.length, 1, alert);
    assert.equal(pending[0].metric.alertstate, "pending", alert);
    assert.equal(pending[0].metric.interface, IF_A, alert);
  }
  assert.equal(await query('ALERTS{alertname=~"WgEgressTunnelStale|WgEgressExporterAbsent"}'), null);
});
