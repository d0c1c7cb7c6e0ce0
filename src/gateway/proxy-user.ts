import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import type { GatewayConfig } from "../config/gateway-schema.js";
import { UsageError } from "../util/errors.js";

/** The proxy's uid: gateway.proxyUser (a name, looked up in /etc/passwd) or gateway.proxyUid. */
export function resolveProxyUid(gw: GatewayConfig, passwd = "/etc/passwd"): number {
  if (!gw.proxyUser) return gw.proxyUid;
  const line = readFileSync(passwd, "utf8")
    .split("\n")
    .find((l) => l.split(":")[0] === gw.proxyUser);
  if (!line)
    throw new UsageError(
      `unknown user "${gw.proxyUser}" (gateway.proxyUser): create it or set gateway.proxyUid`,
    );
  return Number(line.split(":")[2]);
}

/**
 * Live processes running as `uid` (real or effective) in this network namespace — the only ones our
 * rules and marks apply to — with their command line, for `down --purge`'s refusal.
 */
export function processesOfUid(uid: number): { pid: number; cmd: string }[] {
  const ownNs = readlinkSync("/proc/self/ns/net");
  const out: { pid: number; cmd: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
      const state = /^State:\s+(\S)/m.exec(status)?.[1];
      if (!uids || (Number(uids[1]) !== uid && Number(uids[2]) !== uid) || state === "Z" || state === "X")
        continue;
      if (readlinkSync(`/proc/${entry}/ns/net`) !== ownNs) continue;
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
      out.push({ pid: Number(entry), cmd });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}
