import { BlockList, isIPv4, isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";

/** ::ffff:a.b.c.d (any spelling) → a.b.c.d; any other IPv6 in canonical form. Throws on invalid input. */
function canonicalIPv6(ip: string): string {
  const a = ipaddr.IPv6.parse(ip);
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString();
}

/**
 * The canonical form of an address from a socket or a DNS answer: IPv4 as is, IPv4-mapped IPv6 as
 * IPv4 (so rules, logs and connects see the real IPv4 address), other IPv6 canonical. Undefined for
 * anything that is not a plain IP address, a zone id ("fe80::1%eth0") included. Never throws.
 */
export function canonicalIp(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (ip.includes("%") || !isIPv6(ip)) return undefined;
  try {
    return canonicalIPv6(ip);
  } catch {
    return undefined;
  }
}

/** True when the CIDR (or bare address) lies inside ::ffff:0:0/96: an IPv6 rule that could only ever be meant for IPv4. */
export function isIPv4MappedRule(cidr: string): boolean {
  try {
    const [addr, prefix] = cidr.includes("/") ? ipaddr.parseCIDR(cidr) : [ipaddr.parse(cidr), 128];
    return addr.kind() === "ipv6" && prefix >= 96 && (addr as ipaddr.IPv6).isIPv4MappedAddress();
  } catch {
    return false;
  }
}

/**
 * CIDRs ("10.0.0.0/8", "fd00::/8", or bare addresses) matched per address family, with a native
 * (C++) matcher cheap enough for every connection. An IPv4 rule matches only IPv4 addresses and an
 * IPv6 rule only IPv6 ones: Node's BlockList on its own matches an IPv4 address against IPv6 rules
 * through its IPv4-mapped form (`::/0` or `::ffff:0:0/96` would cover every IPv4 address) and the
 * other way round. Addresses must be canonical (see canonicalIp).
 */
export class CidrSet {
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();
  readonly size: number;

  constructor(cidrs: Iterable<string>) {
    let n = 0;
    for (const cidr of cidrs) {
      const text = cidr.includes("/") ? cidr : `${cidr}/${isIPv4(cidr) ? 32 : 128}`;
      const [addr, prefix] = ipaddr.parseCIDR(text);
      const v4 = addr.kind() === "ipv4";
      // BlockList wants the network address: "10.1.2.3/8" → 10.0.0.0/8.
      const network = v4
        ? ipaddr.IPv4.networkAddressFromCIDR(text)
        : ipaddr.IPv6.networkAddressFromCIDR(text);
      if (v4) this.v4.addSubnet(network.toString(), prefix, "ipv4");
      else this.v6.addSubnet(network.toString(), prefix, "ipv6");
      n++;
    }
    this.size = n;
  }

  has(ip: string): boolean {
    return isIPv4(ip) ? this.v4.check(ip, "ipv4") : this.v6.check(ip, "ipv6");
  }
}

export interface InterfaceAddress {
  address: string;
  /** The interface's subnet, e.g. "10.1.0.1/24". */
  cidr: string;
}

/** Addresses of the interfaces that are up and running, with their subnets (for the default client allow-list). */
export function interfaceAddresses(): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.cidr) out.push({ address: a.address, cidr: a.cidr });
  }
  return out;
}
