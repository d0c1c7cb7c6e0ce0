import type { HostPort } from "../util/hostport.js";
import { CidrSet, type InterfaceAddress, interfaceAddresses } from "./addresses.js";

const LOOPBACK = ["127.0.0.0/8", "::1/128"];

/**
 * The default client allow-list: loopback plus the subnet of each listen address (10.1.0.1:1080 on a
 * 10.1.0.1/24 interface admits 10.1.0.0/24). A wildcard listen address admits every local subnet.
 */
export function defaultClientCidrs(
  listen: readonly HostPort[],
  ifaces: readonly InterfaceAddress[] = interfaceAddresses(),
): string[] {
  const out = new Set(LOOPBACK);
  for (const { host } of listen) {
    const wildcard = host === "0.0.0.0" || host === "::";
    for (const a of ifaces) if (wildcard || a.address === host) out.add(a.cidr);
  }
  return [...out];
}

/**
 * Which peers may talk to the proxy (and its /metrics) at all; checked on accept, before any byte is
 * read or answered. `ip` must be canonical (canonicalIp).
 */
export class ClientPolicy {
  private readonly set: CidrSet;
  constructor(readonly cidrs: readonly string[]) {
    this.set = new CidrSet(cidrs);
  }
  allows(ip: string): boolean {
    return this.set.has(ip);
  }
}
