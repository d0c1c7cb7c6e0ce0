/**
 * `npm run bench -- --tunnel`: the proxy must never be what limits the tunnel. In the lab (root; the
 * bench takes the system and lab locks), a bulk transfer from the pod through the proxy and the
 * WireGuard tunnel (wireguard-go) against the same transfer started on the gateway itself as the
 * proxy's uid, which the gateway routes into the same tunnel without any proxy. Runs alternate;
 * medians are reported, with the CPU of wireguard-go on both ends and of the proxy.
 */
import { readFileSync } from "node:fs";
import { findUserspacePid } from "../src/gateway/wireguard.js";
import { labDown } from "../src/lab/down.js";
import { pidsInNamespace, startDaemon, stopPids } from "../src/lab/processes.js";
import { ADDR, EXIT_IF, GW_IF, NS, PROXY_PORT, PROXY_UID, STATE_DIR } from "../src/lab/topology.js";
import { inNs, labUp, waitFor } from "../src/lab/up.js";
import { iperf } from "./iperf.js";
import { parseStat } from "./procfs.js";
import { median, ratio } from "./stats.js";

const IPERF_PORT = 5201;
/** The proxied transfer must reach this share of the direct one. */
export const TUNNEL_TARGET = 0.9;

export interface TunnelRun {
  mbPerSec: number;
  bytes: number;
  /** CPU seconds during the run: wireguard-go on the gateway and on the exit, and the proxy. */
  cpuSec: { wgGateway: number; wgExit: number; proxy?: number };
}

export interface TunnelResult {
  proxied: TunnelRun[];
  direct: TunnelRun[];
}

function cpuOf(pid: number | null | undefined): number {
  if (!pid) return 0;
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, "utf8")).cpuSec;
  } catch {
    return 0;
  }
}

/** The lab's proxy on PROXY_PORT (the product's settings, keepalive on). */
function proxyPid(): number | undefined {
  const listen = `${ADDR.gwLan}:${PROXY_PORT}`;
  return pidsInNamespace(NS.gw, (argv) => argv.includes("proxy") && argv.includes(listen))[0];
}

async function measured(fn: () => Promise<{ mbPerSec: number; bytes: number }>): Promise<TunnelRun> {
  const pids = { gw: findUserspacePid(GW_IF), exit: findUserspacePid(EXIT_IF), proxy: proxyPid() };
  const before = { gw: cpuOf(pids.gw), exit: cpuOf(pids.exit), proxy: cpuOf(pids.proxy) };
  const r = await fn();
  return {
    mbPerSec: r.mbPerSec,
    bytes: r.bytes,
    cpuSec: {
      wgGateway: cpuOf(pids.gw) - before.gw,
      wgExit: cpuOf(pids.exit) - before.exit,
      proxy: pids.proxy ? cpuOf(pids.proxy) - before.proxy : undefined,
    },
  };
}

/** Brings the lab up, alternates proxied and direct transfers `runs` times, and takes the lab down. */
export async function tunnelBench(
  runs: number,
  seconds: number,
  dir: string,
  progress: (m: string) => void,
): Promise<TunnelResult> {
  progress("tunnel: lab up");
  await labUp();
  const result: TunnelResult = { proxied: [], direct: [] };
  try {
    const server = startDaemon(
      NS.inet,
      ["iperf3", "-s", "-B", ADDR.server, "-p", String(IPERF_PORT)],
      `${STATE_DIR}/iperf3.log`,
    );
    try {
      await waitFor("iperf3 server", 10_000, async () =>
        (await inNs(NS.inet, ["ss", "-ltnH", "sport", "=", `:${IPERF_PORT}`])).stdout.includes(
          `:${IPERF_PORT}`,
        ),
      );
      const at = { host: ADDR.server };
      const fmt = (r: TunnelRun) =>
        `${r.mbPerSec.toFixed(1)} MB/s, CPU s wireguard-go gw/exit ${r.cpuSec.wgGateway.toFixed(1)}/${r.cpuSec.wgExit.toFixed(1)}, proxy ${r.cpuSec.proxy?.toFixed(1) ?? "-"}`;
      for (let i = 1; i <= runs; i++) {
        const p = await measured(() =>
          iperf({ host: ADDR.gwLan, port: PROXY_PORT }, IPERF_PORT, 1, seconds, dir, {
            ...at,
            prefix: ["ip", "netns", "exec", NS.pod],
          }),
        );
        result.proxied.push(p);
        progress(`[tunnel ${i}/${runs}] pod → proxy → tunnel: ${fmt(p)}`);
        const d = await measured(() =>
          iperf(undefined, IPERF_PORT, 1, seconds, dir, {
            ...at,
            // The proxy's uid: the gateway marks its traffic into the tunnel, exactly as the proxy's.
            prefix: [
              "ip",
              "netns",
              "exec",
              NS.gw,
              "setpriv",
              `--reuid=${PROXY_UID}`,
              `--regid=${PROXY_UID}`,
              "--clear-groups",
              "--",
            ],
          }),
        );
        result.direct.push(d);
        progress(`[tunnel ${i}/${runs}] gateway → tunnel (no proxy): ${fmt(d)}`);
      }
    } finally {
      await stopPids([server]);
    }
  } finally {
    progress("tunnel: lab down");
    await labDown();
  }
  return result;
}

/** The report lines: both figures, CPU per GiB of each process, and the verdict. */
export function renderTunnel(r: TunnelResult): string {
  const row = (label: string, runs: TunnelRun[]) => {
    const mb = median(runs.map((x) => x.mbPerSec));
    const perGiB = (f: (x: TunnelRun) => number | undefined) =>
      median(runs.map((x) => (f(x) === undefined ? undefined : f(x)! / (x.bytes / 2 ** 30))));
    const s = (v: number | undefined) => (v === undefined ? "-" : v.toFixed(2));
    return (
      `${label.padEnd(36)} ${mb?.toFixed(1) ?? "-"} MB/s; CPU s/GiB: wireguard-go gateway ${s(perGiB((x) => x.cpuSec.wgGateway))}, ` +
      `exit ${s(perGiB((x) => x.cpuSec.wgExit))}, proxy ${s(perGiB((x) => x.cpuSec.proxy))}`
    );
  };
  const share = ratio(median(r.proxied.map((x) => x.mbPerSec)), median(r.direct.map((x) => x.mbPerSec)));
  const mark = share === undefined ? "n/a " : share >= TUNNEL_TARGET ? "PASS" : "FAIL";
  return [
    row("pod → proxy → WireGuard tunnel", r.proxied),
    row("gateway → WireGuard tunnel (direct)", r.direct),
    `${mark}  through the tunnel: proxied >= ${TUNNEL_TARGET * 100}% of direct${share === undefined ? "" : ` (${share.toFixed(2)})`}`,
  ].join("\n");
}
