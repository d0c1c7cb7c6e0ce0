import type { BlockList } from "node:net";
import type { ProxyConfig } from "../config/proxy-schema.js";
import { blockListOf, interfaceAddresses, matches } from "./addresses.js";

/**
 * Destinations refused unless explicitly allowed: everything that is not "the internet", so a pod
 * cannot use the proxy to reach the gateway itself, its LAN, or cloud metadata services.
 */
export const BUILTIN_DENY: readonly { cidr: string; what: string }[] = [
  { cidr: "0.0.0.0/8", what: "unspecified/this-network" },
  { cidr: "10.0.0.0/8", what: "private (RFC 1918)" },
  { cidr: "100.64.0.0/10", what: "CGNAT (RFC 6598)" },
  { cidr: "127.0.0.0/8", what: "loopback" },
  { cidr: "169.254.0.0/16", what: "link-local (incl. 169.254.169.254 metadata)" },
  { cidr: "172.16.0.0/12", what: "private (RFC 1918)" },
  { cidr: "192.0.0.0/24", what: "IETF protocol assignments" },
  { cidr: "192.0.2.0/24", what: "documentation (TEST-NET-1)" },
  { cidr: "192.168.0.0/16", what: "private (RFC 1918)" },
  { cidr: "198.18.0.0/15", what: "benchmarking" },
  { cidr: "198.51.100.0/24", what: "documentation (TEST-NET-2)" },
  { cidr: "203.0.113.0/24", what: "documentation (TEST-NET-3)" },
  { cidr: "224.0.0.0/4", what: "multicast" },
  { cidr: "240.0.0.0/4", what: "reserved and broadcast" },
  { cidr: "::/96", what: "unspecified, loopback and IPv4-compatible" },
  { cidr: "100::/64", what: "discard-only" },
  { cidr: "2001:db8::/32", what: "documentation" },
  { cidr: "fc00::/7", what: "unique local (ULA)" },
  { cidr: "fe80::/10", what: "link-local" },
  { cidr: "fec0::/10", what: "site-local (deprecated)" },
  { cidr: "ff00::/8", what: "multicast" },
];

const BUILTIN = BUILTIN_DENY.map((e) => ({ ...e, list: blockListOf([e.cidr]) }));
const BUILTIN_ALL = blockListOf(BUILTIN_DENY.map((e) => e.cidr));

/** The gateway's addresses change (DHCP, the tunnel coming up); re-read them at most this often. */
const OWN_ADDRESSES_TTL_MS = 30_000;

function normalizeSuffix(s: string): string {
  return s.toLowerCase().replace(/^\.+/, "").replace(/\.+$/, "");
}

/** "example.com" matches example.com and any name under it. */
function underAny(name: string, suffixes: readonly string[]): boolean {
  return suffixes.some((s) => name === s || name.endsWith(`.${s}`));
}

export type DestinationConfig = ProxyConfig["destinations"];

/**
 * Decides which destinations the proxy may connect to. Order: explicit deny > explicit allow >
 * built-in deny list and the gateway's own addresses > allowed. Addresses are checked as resolved,
 * i.e. on the exact IP the proxy then connects to, so DNS cannot smuggle in a private address.
 * Each check returns undefined when allowed, else the reason (for the log).
 */
export class DestinationPolicy {
  private readonly allow: BlockList;
  private readonly deny: BlockList;
  private readonly allowPorts: ReadonlySet<number>;
  private readonly denyPorts: ReadonlySet<number>;
  private readonly allowDomains: string[];
  private readonly denyDomains: string[];
  private own: BlockList = blockListOf([]);
  private ownReadAt = Number.NEGATIVE_INFINITY;

  constructor(
    cfg: DestinationConfig,
    private readonly ownAddresses: () => string[] = () => interfaceAddresses().map((a) => a.address),
  ) {
    this.allow = blockListOf(cfg.allow);
    this.deny = blockListOf(cfg.deny);
    this.allowPorts = new Set(cfg.allowPorts);
    this.denyPorts = new Set(cfg.denyPorts);
    this.allowDomains = cfg.allowDomains.map(normalizeSuffix);
    this.denyDomains = cfg.denyDomains.map(normalizeSuffix);
  }

  checkPort(port: number): string | undefined {
    if (this.denyPorts.has(port)) return `port ${port} is denied`;
    if (this.allowPorts.size > 0 && !this.allowPorts.has(port))
      return `port ${port} is not in the allowed ports`;
    return undefined;
  }

  /** Before resolution: domain suffix rules. */
  checkName(name: string): string | undefined {
    const n = normalizeSuffix(name);
    if (underAny(n, this.denyDomains)) return `${n} is under a denied domain`;
    if (this.allowDomains.length > 0 && !underAny(n, this.allowDomains))
      return `${n} is not under an allowed domain`;
    return undefined;
  }

  /** `ip` must already be unmapped (see unmapIPv4). */
  checkAddress(ip: string): string | undefined {
    if (matches(this.deny, ip)) return `${ip} is in a denied destination CIDR`;
    if (matches(this.allow, ip)) return undefined;
    if (matches(BUILTIN_ALL, ip)) {
      const what = BUILTIN.find((e) => matches(e.list, ip))?.what;
      return `${ip} is ${what} (allow it with --allow-destination)`;
    }
    if (matches(this.ownList(), ip))
      return `${ip} is an address of this gateway (allow it with --allow-destination)`;
    return undefined;
  }

  private ownList(): BlockList {
    const now = Date.now();
    if (now - this.ownReadAt > OWN_ADDRESSES_TTL_MS) {
      this.own = blockListOf(this.ownAddresses());
      this.ownReadAt = now;
    }
    return this.own;
  }
}
