import ipaddr from "ipaddr.js";
import { UserError } from "../../../util/errors.js";
import type { Firewall, FirewallRule, ServerType } from "./types.js";

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

/** Inbound: WireGuard from anywhere (it is authenticated), SSH only from `sshSources` (the home IP). */
export function firewallRules(sshSources: string[], listenPort: number): FirewallRule[] {
  if (!sshSources.length)
    throw new UserError("no SSH source for the exit firewall: set exit.sshAllowFrom or exit.homeIpUrls");
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

export interface MonthlyCost {
  gross: number;
  net: number;
  location: string;
}

/** The type's monthly price in `location`, or a UserError naming the locations that do offer it. */
export function monthlyCost(type: ServerType, location: string): MonthlyCost {
  const p = type.prices.find((x) => x.location === location);
  if (!p) {
    const where = type.prices.map((x) => x.location).sort();
    throw new UserError(
      `server type ${type.name} is not available in location ${location}; locations that have it: ${where.join(", ") || "none"} (set exit.hetzner.location)`,
    );
  }
  return { gross: Number(p.price_monthly.gross), net: Number(p.price_monthly.net), location };
}

export function formatCost(type: string, c: MonthlyCost): string {
  return `monthly cost: €${c.gross.toFixed(2)} incl. VAT (€${c.net.toFixed(2)} net) for ${type} in ${c.location}`;
}
