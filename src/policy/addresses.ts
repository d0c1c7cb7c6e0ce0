import { BlockList, isIPv4, isIPv6 } from "node:net";
import { networkInterfaces } from "node:os";
import ipaddr from "ipaddr.js";

/** "10.0.0.0/8", "fd00::/8" or a bare address (= a /32 or /128). */
export function addCidr(list: BlockList, cidr: string): void {
  const text = cidr.includes("/") ? cidr : `${cidr}/${isIPv4(cidr) ? 32 : 128}`;
  const [addr, prefix] = ipaddr.parseCIDR(text);
  const v4 = addr.kind() === "ipv4";
  // BlockList wants the network address: "10.1.2.3/8" → 10.0.0.0/8.
  const network = v4 ? ipaddr.IPv4.networkAddressFromCIDR(text) : ipaddr.IPv6.networkAddressFromCIDR(text);
  list.addSubnet(network.toString(), prefix, v4 ? "ipv4" : "ipv6");
}

/**
 * A native (C++) matcher for a set of CIDRs: checks are cheap enough for every connection, and an
 * IPv4 rule also matches the IPv4-mapped IPv6 form of the address (::ffff:127.0.0.1).
 */
export function blockListOf(cidrs: Iterable<string>): BlockList {
  const list = new BlockList();
  for (const c of cidrs) addCidr(list, c);
  return list;
}

export function matches(list: BlockList, ip: string): boolean {
  return list.check(ip, isIPv4(ip) ? "ipv4" : "ipv6");
}

/** ::ffff:a.b.c.d (in any spelling) → a.b.c.d, so rules, logs and connects see the real IPv4 address. */
export function unmapIPv4(ip: string): string {
  if (!isIPv6(ip) || !/ffff:/i.test(ip)) return ip;
  const a = ipaddr.IPv6.parse(ip);
  return a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : ip;
}

export interface InterfaceAddress {
  address: string;
  /** The interface's subnet, e.g. "10.1.0.1/24". */
  cidr: string;
}

/** Every address configured on this host (the gateway's own addresses), with its subnet. */
export function interfaceAddresses(): InterfaceAddress[] {
  const out: InterfaceAddress[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.cidr) out.push({ address: a.address, cidr: a.cidr });
  }
  return out;
}
