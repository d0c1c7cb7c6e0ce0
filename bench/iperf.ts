/**
 * Throughput with iperf3 (C; ~3-4 GB/s direct on this loopback, where a Node client+sink managed
 * ~1.4 GB/s) routed through the proxy by proxychains4, which only intercepts connect() and so adds
 * nothing to the data path. iperf3's control and data connections both go through the proxy.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../src/util/run.js";
import { type Service, startService } from "./daemon.js";
import type { Endpoint } from "./load.js";

export function startIperfServer(dir: string): Promise<Service> {
  return startService(join(dir, "iperf3.log"), (port) => [
    "iperf3",
    ["-s", "-B", "127.0.0.1", "-p", String(port)],
  ]);
}

export interface IperfResult {
  bytes: number;
  seconds: number;
  mbPerSec: number;
}

/** Reads the receiver's side of iperf3 -J output: what really arrived. */
export function parseIperfJson(text: string): IperfResult {
  const j = JSON.parse(text) as {
    error?: string;
    end?: { sum_received?: { bytes: number; seconds: number } };
  };
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  const r = j.end?.sum_received;
  if (!r || !(r.seconds > 0)) throw new Error("iperf3: no receiver summary");
  return { bytes: r.bytes, seconds: r.seconds, mbPerSec: r.bytes / r.seconds / 1e6 };
}

function proxychainsConf(via: Endpoint, dir: string): string {
  const path = join(dir, `proxychains-${via.port}.conf`);
  const lines = [
    "strict_chain",
    "quiet_mode",
    "tcp_read_time_out 15000",
    "tcp_connect_time_out 8000",
    "[ProxyList]",
  ];
  writeFileSync(path, [...lines, `socks5 ${via.host} ${via.port}`, ""].join("\n"));
  return path;
}

/** Where the iperf3 server is, and what runs the client (e.g. `ip netns exec NS` in the lab). */
export interface IperfWhere {
  host: string;
  /** Command words in front of the client (and of proxychains4). */
  prefix: string[];
}

/** One timed iperf3 run of `streams` parallel TCP streams (1 MiB writes, the best direct figure here). */
export async function iperf(
  via: Endpoint | undefined,
  serverPort: number,
  streams: number,
  seconds: number,
  dir: string,
  where: IperfWhere = { host: "127.0.0.1", prefix: [] },
): Promise<IperfResult> {
  const client = ["-c", where.host, "-p", String(serverPort), "-t", String(seconds), "-l", "1M", "-J"];
  const args = [...client, "-P", String(streams), "--connect-timeout", "5000"];
  const argv = via
    ? ["proxychains4", "-q", "-f", proxychainsConf(via, dir), "iperf3", ...args]
    : ["iperf3", ...args];
  const [cmd, ...rest] = [...where.prefix, ...argv];
  const r = await run(cmd!, rest, { allowFail: true, timeoutMs: seconds * 1000 + 20_000 });
  if (!r.stdout.trim()) throw new Error(`iperf3 failed: ${r.stderr.trim().split("\n").slice(-1)[0]}`);
  return parseIperfJson(r.stdout);
}
