import type { ProxyConfig } from "../config/proxy-schema.js";
import { CidrSet, canonicalIp } from "./addresses.js";
import { type OwnAddressSource, ownAddresses } from "./own-addresses.js";

/**
 * Destinations refused unless explicitly allowed: everything that is not "the internet", so a pod
 * cannot use the proxy to reach the gateway itself, its LAN, cloud metadata services, or an IPv4
 * address wrapped in IPv6 (NAT64, 6to4, Teredo, IPv4-compatible) that a translator would unwrap.
 * Sources: the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its updates).
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
  { cidr: "192.88.99.0/24", what: "6to4 relay anycast (deprecated)" },
  { cidr: "192.168.0.0/16", what: "private (RFC 1918)" },
  { cidr: "198.18.0.0/15", what: "benchmarking" },
  { cidr: "198.51.100.0/24", what: "documentation (TEST-NET-2)" },
  { cidr: "203.0.113.0/24", what: "documentation (TEST-NET-3)" },
  { cidr: "224.0.0.0/4", what: "multicast" },
  { cidr: "240.0.0.0/4", what: "reserved and broadcast" },
  { cidr: "::/96", what: "unspecified, loopback and IPv4-compatible" },
  { cidr: "::ffff:0:0:0/96", what: "IPv4-translated (SIIT)" },
  { cidr: "64:ff9b::/96", what: "NAT64 well-known prefix (embeds an IPv4 address)" },
  { cidr: "64:ff9b:1::/48", what: "NAT64 local-use prefix (embeds an IPv4 address)" },
  { cidr: "100::/64", what: "discard-only" },
  { cidr: "100:0:0:1::/64", what: "dummy prefix" },
  { cidr: "2001::/23", what: "IETF protocol assignments (incl. Teredo 2001::/32, benchmarking, ORCHID)" },
  { cidr: "2001:db8::/32", what: "documentation" },
  { cidr: "2002::/16", what: "6to4 (embeds an IPv4 address)" },
  { cidr: "3fff::/20", what: "documentation" },
  { cidr: "5f00::/16", what: "segment routing (SRv6) SIDs" },
  { cidr: "fc00::/7", what: "unique local (ULA)" },
  { cidr: "fe80::/10", what: "link-local" },
  { cidr: "fec0::/10", what: "site-local (deprecated)" },
  { cidr: "ff00::/8", what: "multicast" },
];

const BUILTIN = BUILTIN_DENY.map((e) => ({ ...e, set: new CidrSet([e.cidr]) }));
const BUILTIN_ALL = new CidrSet(BUILTIN_DENY.map((e) => e.cidr));

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
 * i.e. on the exact IP the proxy then connects to, so DNS cannot smuggle in a private address. Rules
 * match per family: an IPv6 rule never matches an IPv4 destination, nor the other way round.
 * Each check returns undefined when allowed, else the reason (for the log, never for the client).
 */
export class DestinationPolicy {
  private readonly allow: CidrSet;
  private readonly deny: CidrSet;
  private readonly allowPorts: ReadonlySet<number>;
  private readonly denyPorts: ReadonlySet<number>;
  private readonly allowDomains: string[];
  private readonly denyDomains: string[];

  constructor(
    cfg: DestinationConfig,
    private readonly own: OwnAddressSource = ownAddresses,
  ) {
    this.allow = new CidrSet(cfg.allow);
    this.deny = new CidrSet(cfg.deny);
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

  /**
   * An IP literal instead of a name. With allowDomains set, only names under those domains may be
   * reached: a literal is refused unless an explicit allow rule covers it (the address checks follow).
   */
  checkLiteral(ip: string): string | undefined {
    if (this.allowDomains.length > 0 && !this.allow.has(ip))
      return `${ip} is an IP address and only names under allowed domains may be requested (allow the address with --allow-destination)`;
    return undefined;
  }

  /** Anything that is not a plain IP address (a zone id, say) is refused. */
  checkAddress(address: string): string | undefined {
    const ip = canonicalIp(address);
    if (ip === undefined) return `${address} is not an IP address`;
    if (this.deny.has(ip)) return `${ip} is in a denied destination CIDR`;
    if (this.allow.has(ip)) return undefined;
    if (BUILTIN_ALL.has(ip)) {
      const what = BUILTIN.find((e) => e.set.has(ip))?.what;
      return `${ip} is ${what} (allow it with --allow-destination)`;
    }
    if (this.own.has(ip)) return `${ip} is an address of this gateway (allow it with --allow-destination)`;
    return undefined;
  }
}
