/** Memory and CPU of a process and its descendants (dante forks workers), read from /proc. */
import { readdirSync, readFileSync } from "node:fs";

/** Kernel clock ticks per second for /proc/PID/stat times (USER_HZ, 100 on Linux). */
const TICKS = 100;

export interface StatFields {
  ppid: number;
  /** utime + stime + cutime + cstime, seconds: counts reaped children too. */
  cpuSec: number;
}

/** Parses /proc/PID/stat; the command name may contain spaces and parentheses, so split after the last ")". */
export function parseStat(text: string): StatFields {
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state); utime..cstime are fields 14..17.
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(f[i]), 0);
  return { ppid: Number(f[1]), cpuSec: ticks / TICKS };
}

/** The kB value of a "Name:   123 kB" line in /proc/PID/status or smaps_rollup; 0 if absent. */
export function kbField(text: string, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
  return m ? Number(m[1]) : 0;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined; // the process exited meanwhile
  }
}

/** `root` and all its live descendants. */
export function treePids(root: number): number[] {
  const parent = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const stat = read(`/proc/${name}/stat`);
    if (stat) parent.set(Number(name), parseStat(stat).ppid);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++)
    for (const [pid, ppid] of parent) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

export interface Usage {
  rssKiB: number;
  pssKiB: number;
  cpuSec: number;
  processes: number;
}

export function treeUsage(root: number): Usage {
  const u: Usage = { rssKiB: 0, pssKiB: 0, cpuSec: 0, processes: 0 };
  for (const pid of treePids(root)) {
    const stat = read(`/proc/${pid}/stat`);
    if (!stat) continue;
    u.processes++;
    u.cpuSec += parseStat(stat).cpuSec;
    u.rssKiB += kbField(read(`/proc/${pid}/status`) ?? "", "VmRSS");
    u.pssKiB += kbField(read(`/proc/${pid}/smaps_rollup`) ?? "", "Pss");
  }
  return u;
}
