import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { isRunning } from "./wireguard.js";

/**
 * Small runtime files in /run/wg-egress (tmpfs: gone at reboot, like what they describe), one set per
 * tunnel interface — interface names are unique on the host anyway (wireguard-go's sockets are host-wide):
 *   <if>.json        what `up` changed that `down --purge` must restore (src_valid_mark before us);
 *   <if>.agent.json  the running agent: pid, state and repair counters (read by `status`, `down` and
 *                    the exporter);
 *   <if>.health.json the exit's health for the proxy (unprivileged: it cannot ask WireGuard), which
 *                    picks pool members by it. World-readable, nothing secret.
 * WG_EGRESS_RUN_DIR moves them (tests).
 */

export const RUNTIME_DIR = process.env.WG_EGRESS_RUN_DIR || "/run/wg-egress";

const recordFile = (ifname: string) => `${RUNTIME_DIR}/${ifname}.json`;
const agentFile = (ifname: string) => `${RUNTIME_DIR}/${ifname}.agent.json`;
export const healthFile = (ifname: string, dir = RUNTIME_DIR) => `${dir}/${ifname}.health.json`;

function readJson<T>(path: string): T | null {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as T;
  } catch {
    return null;
  }
}

/** Written whole or not at all (rename), readable by the exporter; nothing secret goes here. */
function writeJson(path: string, value: unknown): void {
  mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

export interface UpRecord {
  /** net.ipv4.conf.all.src_valid_mark before our first change. */
  srcValidMark?: string;
}

export const readRecord = (ifname: string): UpRecord => readJson<UpRecord>(recordFile(ifname)) ?? {};

/** Keeps the FIRST value seen: later `up`s find our own 1 and must not overwrite the original. */
export function recordSrcValidMark(ifname: string, was: string): void {
  if (readRecord(ifname).srcValidMark === undefined)
    writeJson(recordFile(ifname), { ...readRecord(ifname), srcValidMark: was });
}

/** Overwrites the recorded value: `down --purge` of another exit hands the host's original over. */
export function handOverSrcValidMark(ifname: string, was: string): void {
  writeJson(recordFile(ifname), { ...readRecord(ifname), srcValidMark: was });
}

export const forgetRecord = (ifname: string) => rmSync(recordFile(ifname), { force: true });

export type AgentState = "starting" | "ok" | "repairing" | "failing" | "stopped";
export const AGENT_STATES: readonly AgentState[] = ["starting", "ok", "repairing", "failing", "stopped"];

/** What the agent publishes about itself. */
export interface AgentReport {
  pid: number;
  state: AgentState;
  /** UNIX seconds. */
  since: number;
  /** Repairs applied since the agent started, by part (nft, rule, route, link, wireguard, …). */
  repairs: { [part: string]: number };
  failures: number;
  lastRepair: { at: number; what: string; why: string } | null;
}

export const writeAgentReport = (ifname: string, r: AgentReport) => writeJson(agentFile(ifname), r);
export const removeAgentReport = (ifname: string) => rmSync(agentFile(ifname), { force: true });

/** The live agent's report, or null (no file, or its process is gone — a crash leaves the file behind). */
export function readAgentReport(ifname: string): AgentReport | null {
  const r = readJson<AgentReport>(agentFile(ifname));
  if (!r || !isRunning(r.pid)) return null;
  try {
    const argv = readFileSync(`/proc/${r.pid}/cmdline`, "utf8").split("\0");
    return argv.includes("gateway") && argv.includes("run") ? r : null;
  } catch {
    return null;
  }
}

/** An exit's health as the agent saw it at its last check. */
export interface HealthReport {
  exit: string;
  interface: string;
  /** up: link up, tunnel route there, handshake younger than 150 s; else stale or down. */
  state: "up" | "stale" | "down";
  /** Seconds since the latest handshake; null = never. */
  handshakeAgeSeconds: number | null;
  /** UNIX seconds of the check. */
  checkedAt: number;
}

export const writeHealth = (h: HealthReport) => writeJson(healthFile(h.interface), h);
export const removeHealth = (ifname: string) => rmSync(healthFile(ifname), { force: true });
