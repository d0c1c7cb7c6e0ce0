import type { Server } from "node:http";
import { type Metric, Registry } from "prom-client";
import type { Config } from "../config/schema.js";
import { ipCheckOk, observeIps } from "../doctor/ip-check.js";
import { dataPathsOfConfig } from "../gateway/apply.js";
import { AGENT_STATES, type AgentReport, readAgentReport } from "../gateway/runtime.js";
import { type GatewayStatus, observe, summarize } from "../gateway/status.js";
import type { HostPort } from "../util/hostport.js";
import { log } from "../util/log.js";
import type { WgInterface } from "../wireguard/dump.js";
import { serveMetrics } from "./http.js";
import { type ExporterOptions, type Family, type Sample, wireguardFamilies } from "./wireguard-exporter.js";

/** Result of the last "IP seen through the proxy" check (doctor's decisive check, repeated by the exporter). */
export interface IpCheckResult {
  ok: boolean;
  /** UNIX seconds. */
  at: number;
}

/** Everything one scrape reports; taken once per scrape. */
export interface GatewaySnapshot {
  nowSeconds: number;
  wg: WgInterface[];
  status: GatewayStatus;
  ipCheck: IpCheckResult | null;
  /** The running gateway agent's report; null = no agent runs. */
  agent: AgentReport | null;
}

const STATES = ["up", "stale", "down"] as const;

type Shape = Pick<Family, "name" | "help" | "type">;

/** Our own metrics next to the upstream-compatible ones. */
export const OWN_METRICS = {
  state: {
    name: "wg_egress_tunnel_state",
    help: "Tunnel state, 1 for the current one: up = handshake < 150 s ago, stale < 300 s, down = older, never, link down or no tunnel route.",
    type: "gauge",
  },
  armed: {
    name: "wg_egress_killswitch_armed",
    help: "1 when the kill switch is complete: nft table inet wg-egress with all chains, unreachable routes and ip rules for IPv4 and IPv6.",
    type: "gauge",
  },
  rejected: {
    name: "wg_egress_killswitch_rejected_packets_total",
    help: "Marked packets the kill switch refused or dropped (nft counter killswitch_rejects).",
    type: "counter",
  },
  ipOk: {
    name: "wg_egress_exit_ip_check_ok",
    help: "1 when the last check saw the exit's IP through the proxy (and not the gateway's own).",
    type: "gauge",
  },
  ipAt: {
    name: "wg_egress_exit_ip_check_timestamp_seconds",
    help: "UNIX timestamp of the last exit IP check.",
    type: "gauge",
  },
  agentState: {
    name: "wg_egress_agent_state",
    help: "Gateway agent (wg-egress gateway run) state, 1 for the current one: starting, ok, repairing, failing, or stopped (no agent runs: nothing repairs drift).",
    type: "gauge",
  },
  agentRepairs: {
    name: "wg_egress_agent_repairs_total",
    help: "Repairs the gateway agent applied since it started, by what it repaired (nft, rule, route, link, wireguard, address, sysctl, endpoint).",
    type: "counter",
  },
  agentFailures: {
    name: "wg_egress_agent_repair_failures_total",
    help: "Repairs that failed since the gateway agent started (it retries with backoff).",
    type: "counter",
  },
} as const satisfies Record<string, Shape>;

/** Every family the gateway serves (names, HELP, types), whatever the state. */
export const GATEWAY_FAMILIES: Shape[] = [
  ...wireguardFamilies([], 0).map(({ name, help, type }) => ({ name, help, type })),
  ...Object.values(OWN_METRICS),
];

/** PURE: the families one scrape serves. An empty family still has HELP/TYPE, which Prometheus accepts. */
export function gatewayFamilies(snap: GatewaySnapshot, opts: ExporterOptions = {}): Family[] {
  const st = snap.status;
  const iface = { interface: st.interface };
  const one = (value: number): Sample[] => [{ labels: iface, value }];
  const ip = snap.ipCheck;
  return [
    ...wireguardFamilies(snap.wg, snap.nowSeconds, opts),
    {
      ...OWN_METRICS.state,
      values: STATES.map((state) => ({ labels: { ...iface, state }, value: st.verdict === state ? 1 : 0 })),
    },
    { ...OWN_METRICS.armed, values: one(st.killSwitchArmed ? 1 : 0) },
    {
      ...OWN_METRICS.rejected,
      values: st.nft.killSwitchRejects === null ? [] : one(st.nft.killSwitchRejects),
    },
    { ...OWN_METRICS.ipOk, values: ip ? one(ip.ok ? 1 : 0) : [] },
    { ...OWN_METRICS.ipAt, values: ip ? one(ip.at) : [] },
    {
      ...OWN_METRICS.agentState,
      values: AGENT_STATES.map((state) => ({
        labels: { ...iface, state },
        value: (snap.agent?.state ?? "stopped") === state ? 1 : 0,
      })),
    },
    {
      ...OWN_METRICS.agentRepairs,
      values: Object.entries(snap.agent?.repairs ?? {}).map(([what, value]) => ({
        labels: { ...iface, what },
        value,
      })),
    },
    { ...OWN_METRICS.agentFailures, values: snap.agent ? one(snap.agent.failures) : [] },
  ];
}

/**
 * PURE: the families of several exits' snapshots, one sample set per exit (each labelled with its
 * interface). gatewayFamilies gives the same families in the same order for any snapshot.
 */
export function exitsFamilies(snaps: readonly GatewaySnapshot[], opts: ExporterOptions = {}): Family[] {
  const lists = snaps.map((s) => gatewayFamilies(s, opts));
  return lists[0]!.map((f, i) => ({ ...f, values: lists.flatMap((l) => l[i]!.values) }));
}

/**
 * A registry whose metrics all come from one snapshot per scrape: prom-client asks every metric at
 * once (Promise.all), so they share the in-flight snapshot and `wg show` runs once per scrape.
 * Custom metric objects because the label names depend on the peers (`-s` mode) and counters are
 * set to absolute values read from the kernel.
 */
export function snapshotRegistry(families: readonly Shape[], produce: () => Promise<Family[]>): Registry {
  const registry = new Registry();
  let inflight: Promise<Family[]> | null = null;
  const current = () => {
    inflight ??= produce().finally(() => {
      inflight = null;
    });
    return inflight;
  };
  for (const { name, help, type } of families) {
    const metric = {
      name,
      help,
      type,
      async get() {
        const fam = (await current()).find((f) => f.name === name);
        return { name, help, type, aggregator: "sum", values: fam?.values ?? [] };
      },
      reset() {},
    };
    // prom-client only reads name/help/type and calls get()/reset() (see Registry.getMetricsAsString).
    registry.registerMetric(metric as unknown as Metric);
  }
  return registry;
}

export interface GatewayMetricsOptions {
  /** Overrides gateway.metrics. */
  listen?: HostPort;
  exporter?: ExporterOptions;
  /** Repeat doctor's exit IP check through the proxy (an IP echo URL) every intervalSeconds. */
  ipCheck?: { url: string; intervalSeconds: number };
}

/** Runs the exit IP check now and then every interval; `latest()` is the last result. */
function periodicIpCheck(config: Config, url: string, intervalSeconds: number) {
  let last: IpCheckResult | null = null;
  const check = async () => {
    const seen = await observeIps(config, { url });
    last = { ok: ipCheckOk(seen), at: Math.floor(Date.now() / 1000) };
    log.info({ seen, ok: last.ok }, "exit IP check");
  };
  void check();
  const timer = setInterval(() => void check(), intervalSeconds * 1000);
  return { latest: () => last, stop: () => clearInterval(timer) };
}

/**
 * Reads the gateway once, per exit: interface, wg dump, rules, routes, nft (through the gateway's own
 * reader), the agent's report. The exit IP check goes with the first exit (it tests the proxy's default).
 */
export async function gatewaySnapshots(
  config: Config,
  ipCheck: IpCheckResult | null,
): Promise<GatewaySnapshot[]> {
  const nowSeconds = Math.floor(Date.now() / 1000);
  return Promise.all(
    dataPathsOfConfig(config).map(async (p, i) => {
      const state = await observe(p);
      return {
        nowSeconds,
        wg: state.wg ? [state.wg] : [],
        status: summarize(p, state, nowSeconds),
        ipCheck: i === 0 ? ipCheck : null,
        agent: readAgentReport(p.ifname),
      };
    }),
  );
}

/**
 * Serves /metrics (prometheus_wireguard_exporter's port 9586 by default) and /healthz (503 when the
 * tunnel is down) for a long-running command; returns the listening server (close it to stop; that
 * also stops the IP checks).
 */
export async function startGatewayMetrics(config: Config, opts: GatewayMetricsOptions = {}): Promise<Server> {
  const listen = opts.listen ?? config.gateway.metrics;
  const ip = opts.ipCheck ? periodicIpCheck(config, opts.ipCheck.url, opts.ipCheck.intervalSeconds) : null;
  const snapshots = () => gatewaySnapshots(config, ip?.latest() ?? null);
  const registry = snapshotRegistry(GATEWAY_FAMILIES, async () =>
    exitsFamilies(await snapshots(), opts.exporter),
  );
  // Unhealthy when any exit is down: for the users routed to it alone it is the only way out.
  const server = await serveMetrics(listen, registry, async () => {
    const statuses = (await snapshots()).map((s) => s.status);
    return {
      ok: statuses.every((s) => s.verdict !== "down"),
      detail:
        statuses.length === 1
          ? { verdict: statuses[0]!.verdict, interface: statuses[0]!.interface }
          : { exits: statuses.map((s) => ({ verdict: s.verdict, interface: s.interface })) },
    };
  }).catch((e) => {
    ip?.stop();
    throw e;
  });
  server.once("close", () => ip?.stop());
  log.info({ listen, interface: config.gateway.interface }, "serving WireGuard metrics");
  return server;
}
