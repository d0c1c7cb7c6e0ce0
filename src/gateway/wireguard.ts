import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { OperationError } from "../util/errors.js";
import { log } from "../util/log.js";
import { CommandError, run } from "../util/run.js";

/**
 * Kernel WireGuard or wireguard-go behind one interface. wireguard-go keeps its control socket in
 * /var/run/wireguard/<if>.sock for the whole host, across network namespaces, so an
 * interface name identifies at most one wireguard-go process on the machine.
 */

export const WG_SOCKET_DIR = "/var/run/wireguard";

/** Creates the interface; returns which implementation serves it. */
export async function createLink(
  ifname: string,
  implementation: "auto" | "kernel" | "userspace",
): Promise<"kernel" | "userspace"> {
  if (implementation !== "userspace") {
    const r = await run("ip", ["link", "add", "dev", ifname, "type", "wireguard"], { allowFail: true });
    if (r.code === 0) return "kernel";
    if (implementation === "kernel")
      throw new OperationError(
        `kernel WireGuard is not available (${r.stderr.trim()}): set gateway.implementation to auto`,
      );
    log.info({ ifname }, "no kernel WireGuard; using wireguard-go");
  }
  if (!existsSync("/dev/net/tun"))
    throw new OperationError("wireguard-go needs /dev/net/tun, which is missing");
  // wireguard-go creates the TUN device and its socket, then daemonizes: when it returns, both exist.
  const r = await run("wireguard-go", [ifname], { allowFail: true });
  // Its stderr is a framed notice about kernel WireGuard; why it failed is logged on stdout.
  if (r.code !== 0)
    throw new CommandError(`wireguard-go ${ifname}`, { ...r, stderr: r.stdout.trim() ? "" : r.stderr });
  return "userspace";
}

/** "Z" (zombie) and "X" (dead) count as stopped: a killed daemon lingers as a zombie for a while. */
export function isRunning(pid: number): boolean {
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return state !== undefined && state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Live processes with their argv, from /proc (zombies have no argv and are left out). */
export function listProcesses(): { pid: number; argv: string[] }[] {
  const out: { pid: number; argv: string[] }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean);
      if (argv.length && isRunning(Number(entry))) out.push({ pid: Number(entry), argv });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The wireguard-go process serving `ifname` (exact argv match, only ever our own), or null. */
export function findUserspacePid(ifname: string): number | null {
  const p = listProcesses().find(
    ({ argv }) => argv.length >= 2 && basename(argv[0]) === "wireguard-go" && argv.at(-1) === ifname,
  );
  return p?.pid ?? null;
}

/** Polls until `pid` has stopped; false if it is still running after `timeoutMs`. */
export async function waitStopped(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isRunning(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Stops wireguard-go by PID (TERM, then KILL), removes a leftover interface and a stale control socket. */
export async function stopUserspace(ifname: string, pid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  if (!(await waitStopped(pid, 3000))) {
    signal("SIGKILL");
    await waitStopped(pid, 3000);
  }
  await run("ip", ["link", "del", "dev", ifname], { allowFail: true });
  rmSync(`${WG_SOCKET_DIR}/${ifname}.sock`, { force: true });
}
