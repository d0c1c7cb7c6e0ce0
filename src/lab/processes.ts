import { spawn } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isRunning, waitStopped } from "../gateway/wireguard.js";
import { log } from "../util/log.js";

/** Long-running lab processes: started detached inside a namespace, stopped by PID. */

/** Compiled entry points next to this file (dist/src/...). */
export const MAIN_JS = fileURLToPath(new URL("../cli/main.js", import.meta.url));
export const SERVERS_JS = fileURLToPath(new URL("./servers.js", import.meta.url));
export const PROBE_JS = fileURLToPath(new URL("./probe.js", import.meta.url));

/**
 * Starts `argv` inside namespace `ns`, detached, output appended to `logFile`; returns its PID
 * (`ip netns exec` and setpriv exec into the program, so the PID stays the program's).
 */
export function startDaemon(ns: string, argv: string[], logFile: string): number {
  const fd = openSync(logFile, "a", 0o600);
  try {
    log.debug({ ns, argv }, "start daemon");
    const child = spawn("ip", ["netns", "exec", ns, ...argv], { detached: true, stdio: ["ignore", fd, fd] });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${argv[0]} in ${ns}`);
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/**
 * PIDs of the live processes whose network namespace is the named one (everything in a lab namespace is
 * ours), optionally only those whose argv `match`es.
 */
export function pidsInNamespace(ns: string, match?: (argv: string[]) => boolean): number[] {
  let ino: number;
  try {
    ino = statSync(`/run/netns/${ns}`).ino;
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/net`) !== `net:[${ino}]` || !isRunning(Number(entry))) continue;
      if (match && !match(readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0"))) continue;
      pids.push(Number(entry));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/** TERM, then KILL after a second (the proxy would drain for drainSeconds); zombies count as stopped. */
export async function stopPids(pids: number[]): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  for (const pid of pids) signal(pid, "SIGTERM");
  for (const pid of pids) if (!(await waitStopped(pid, 1000))) signal(pid, "SIGKILL");
  for (const pid of pids) await waitStopped(pid, 3000);
}
