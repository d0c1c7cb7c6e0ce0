import ipaddr from "ipaddr.js";
import { UsageError, UserError } from "../../../util/errors.js";
import type { Firewall, FirewallRule, Pricing, ServerType } from "./types.js";

/** Pure decisions for the Hetzner exit: firewall rules, price lookup, what a server/firewall looks like. */

const ANY = ["0.0.0.0/0", "::/0"];

/** An address or CIDR as the API wants it: always with a prefix (a bare address → /32 or /128). */
export function asCidr(source: string): string {
  if (source.includes("/")) {
    const [addr, len] = ipaddr.parseCIDR(source);
    return `${addr.toString()}/${len}`;
  }
  const addr = ipaddr.parse(source);
  return `${addr.toString()}/${addr.kind() === "ipv4" ? 32 : 128}`;
}

const NOT_HOME = new Set([
  "unspecified",
  "broadcast",
  "multicast",
  "linkLocal",
  "loopback",
  "private",
  "uniqueLocal",
  "carrierGradeNat",
  "ipv4Mapped",
]);

/**
 * A home address for the SSH rule (--home-ip, or what the detector saw): one public address, or a prefix no
 * wider than /24 (IPv4) or /48 (IPv6). Checked before any API call: 0.0.0.0/0 or 10.0.0.0/8 is no home IP.
 */
export function checkHomeSource(source: string, what: string, exitCode = 2): string {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  let len: number;
  try {
    [addr, len] = source.includes("/")
      ? ipaddr.parseCIDR(source)
      : [ipaddr.parse(source), source.includes(":") ? 128 : 32];
  } catch {
    throw new UserError(
      `${what} ${JSON.stringify(source)}: expected your home's public IP address (e.g. 198.51.100.7), or a prefix like 2001:db8:1::/56`,
      exitCode,
    );
  }
  const range = addr.range();
  if (NOT_HOME.has(range))
    throw new UserError(
      `${what} ${source}: a ${range} address is not your home's public address (the one the exit sees); pass that one`,
      exitCode,
    );
  const widest = addr.kind() === "ipv4" ? 24 : 48;
  if (len < widest)
    throw new UserError(
      `${what} ${source}: a /${len} opens SSH to far more than your home; pass the address itself, or a prefix of at least /${widest}`,
      exitCode,
    );
  return source;
}

/** Inbound: WireGuard from anywhere (it is authenticated), SSH only from `sshSources` (the home IP). */
export function firewallRules(sshSources: string[], listenPort: number): FirewallRule[] {
  if (!sshSources.length)
    throw new UsageError("no SSH source for the exit firewall: set exit.sshAllowFrom or exit.homeIpUrls");
  return [
    {
      direction: "in",
      protocol: "udp",
      port: String(listenPort),
      source_ips: ANY,
      destination_ips: [],
      description: "WireGuard (wg-egress)",
    },
    {
      direction: "in",
      protocol: "tcp",
      port: "22",
      source_ips: sshSources.map(asCidr),
      destination_ips: [],
      description: "SSH from home (wg-egress)",
    },
  ];
}

function ruleKey(r: FirewallRule): string {
  return JSON.stringify([
    r.direction,
    r.protocol,
    r.port,
    [...r.source_ips].sort(),
    [...(r.destination_ips ?? [])].sort(),
  ]);
}

/** Same rules regardless of order and descriptions: the idempotence check of `update-home-ip`. */
export function sameRules(a: FirewallRule[], b: FirewallRule[]): boolean {
  const ka = a.map(ruleKey).sort();
  const kb = b.map(ruleKey).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i]);
}

/** Where SSH is allowed from, per the firewall's rules. */
export function sshSourcesOf(fw: Firewall): string[] {
  return fw.rules
    .filter((r) => r.direction === "in" && r.protocol === "tcp" && r.port === "22")
    .flatMap((r) => r.source_ips);
}

export function summarizeRules(rules: FirewallRule[]): string[] {
  return rules.map(
    (r) =>
      `${r.direction} ${r.protocol}${r.port ? ` ${r.port}` : ""} ${r.direction === "in" ? "from" : "to"} ${(r.direction === "in" ? r.source_ips : r.destination_ips).join(", ")}`,
  );
}

export interface Amount {
  gross: number;
  net: number;
}

export interface MonthlyCost extends Amount {
  location: string;
  server: Amount;
  /** The primary IPv4 address, billed on top of the server. */
  ipv4: Amount;
}

const amount = (p: { gross: string; net: string } | undefined): Amount => ({
  gross: Number(p?.gross ?? 0),
  net: Number(p?.net ?? 0),
});

/**
 * The monthly price in `location`: the server type's plus its primary IPv4 (GET /pricing), or a UserError
 * naming the locations that offer the type.
 */
export function monthlyCost(type: ServerType, location: string, pricing: Pricing): MonthlyCost {
  const p = type.prices.find((x) => x.location === location);
  if (!p) {
    const where = type.prices.map((x) => x.location).sort();
    throw new UsageError(
      `server type ${type.name} is not available in location ${location}; locations that have it: ${where.join(", ") || "none"} (set exit.hetzner.location)`,
    );
  }
  const server = amount(p.price_monthly);
  const ipv4 = amount(
    pricing.primary_ips.find((x) => x.type === "ipv4")?.prices.find((x) => x.location === location)
      ?.price_monthly,
  );
  return { gross: server.gross + ipv4.gross, net: server.net + ipv4.net, location, server, ipv4 };
}

export function formatCost(type: string, c: MonthlyCost): string {
  return `monthly cost: €${c.gross.toFixed(2)} incl. VAT (€${c.net.toFixed(2)} net) for ${type} in ${c.location}: server €${c.server.net.toFixed(2)} + primary IPv4 €${c.ipv4.net.toFixed(2)} net`;
}
