import { createHash } from "node:crypto";
import type { DataPath, NftChain, NftTable } from "./model.js";

/**
 * Our nftables table: rendered from the DataPath, and read back with the one parser that `up`, `status`,
 * the agent, doctor and the exporter share. What "complete" means (which chains, how many rules each) is
 * derived from the rendered text itself, so the ruleset and its check cannot drift apart. PURE.
 */

/** Our nftables table (family inet) of the first exit; the others' are wg-egress-NAME (DataPath.nftTable). */
export const NFT_TABLE = "wg-egress";
/** Marked packets refused or dropped by the kill switch are counted here; `status` reads it. */
export const REJECT_COUNTER = "killswitch_rejects";

export const hex = (n: number) => `0x${n.toString(16)}`;

const anySet = (cidrs: readonly string[]) => `{ ${cidrs.join(", ")} }`;

const saddr = (ip: string) => `${ip.includes(":") ? "ip6" : "ip"} saddr ${ip}`;

/**
 * How this exit's packets are marked. The primary: what the proxy's uid originates (see the ruleset),
 * but not what is bound to another exit's address. Another exit (routed into its tunnel by source rules
 * from the first lookup): whatever leaves with its tunnel address as source.
 */
function markRules(p: DataPath, mark: string): string[] {
  if (!p.primary)
    return p.sources.map((ip) => `${saddr(ip)} oifname != "lo" ct direction original meta mark set ${mark}`);
  const originated = `meta skuid ${p.uid} oifname != "lo" ct direction original`;
  const others = (v6: boolean) => {
    const mine = p.otherSources.filter((ip) => ip.includes(":") === v6);
    return mine.length ? ` ${v6 ? "ip6" : "ip"} saddr != ${anySet(mine)}` : "";
  };
  const v4 = p.clients.v4.length ? `ip daddr != ${anySet(p.clients.v4)}` : "meta nfproto ipv4";
  const v6 = p.clients.v6.length ? `ip6 daddr != ${anySet(p.clients.v6)}` : "meta nfproto ipv6";
  return [
    `${originated} ${v4}${others(false)} meta mark set ${mark}`,
    `${originated} ${v6}${others(true)} meta mark set ${mark}`,
  ];
}

/** The nft ruleset body; the marks, names, client subnets and sources come from the config. */
function rulesetBody(p: DataPath): string {
  const mark = hex(p.fwmark);
  const wg = JSON.stringify(p.ifname);
  const reject = `counter name ${REJECT_COUNTER} reject with icmpx type admin-prohibited`;
  const ind = (lines: string[]) => lines.map((l) => `    ${l}\n`).join("");
  // With several exits: this exit's source address leaves through this tunnel or not at all (loopback
  // stays local), whatever mark it has — never the home line, never another exit's tunnel.
  const notHere = (ip: string) => `${saddr(ip)} oifname != { ${wg}, "lo" }`;
  return `  counter ${REJECT_COUNTER} {
  }

  # Mark only connections the proxy ORIGINATES, and not those to its client subnets: its replies to clients
  # are its packets too, and a resolver on the LAN is reached on the LAN. Loopback is not egress. The ct
  # mark lets replies get the mark back.
  chain mark_proxy {
    type route hook output priority mangle; policy accept;
${ind(markRules(p, mark))}    meta mark ${mark} ct mark set meta mark
  }

  # Replies from the tunnel carry the mark again, so strict rp_filter with src_valid_mark=1 accepts them.
  chain restore_mark {
    type filter hook prerouting priority mangle; policy accept;
    iifname ${wg} ct mark ${mark} meta mark set ct mark
  }

  # Kill switch, fast part: the proxy's connections are routed into the tunnel from their first lookup
  # (uid rules), so a marked packet headed anywhere else is refused at once and the proxy answers its
  # client immediately instead of hanging.${p.address6 ? "" : " No tunnel IPv6: marked IPv6 is refused."}
  # (In the output hook oifname is that first decision, not the re-route.)
  chain kill_switch {
    type filter hook output priority filter; policy accept;
${p.address6 ? "" : `    meta mark ${mark} meta nfproto ipv6 ${reject}\n`}    meta mark ${mark} oifname != ${wg} ${reject}
${ind(p.sources.map((ip) => `${notHere(ip)} ${reject}`))}  }

  # Kill switch, final guard: after every re-route, nothing marked leaves except through the tunnel.
  chain leak_guard {
    type filter hook postrouting priority filter; policy accept;
    meta mark ${mark} oifname != ${wg} counter name ${REJECT_COUNTER} drop
${ind(p.sources.map((ip) => `${notHere(ip)} counter name ${REJECT_COUNTER} drop`))}  }

  # The source address was chosen before the mark re-routed the packet (the home WAN address); the exit
  # only accepts the tunnel address.
  chain snat_tunnel {
    type nat hook postrouting priority srcnat; policy accept;
    oifname ${wg} meta mark ${mark} masquerade
  }

  # The exit may answer but never open connections to the gateway or the LAN.
  chain tunnel_in {
    type filter hook input priority filter; policy accept;
    iifname ${wg} ct state established,related accept
    iifname ${wg} drop
  }

  chain tunnel_fwd {
    type filter hook forward priority filter; policy accept;
    iifname ${wg} ct state established,related accept
    iifname ${wg} drop
  }
`;
}

export function rulesetHash(p: DataPath): string {
  return createHash("sha256").update(rulesetBody(p)).digest("hex").slice(0, 16);
}

/**
 * The whole table as one `nft -f` transaction: create-if-missing, delete, recreate. Either all of it
 * applies or nothing changes, and there is no moment without the kill switch.
 */
export function renderRuleset(p: DataPath): string {
  return `table inet ${p.nftTable}
delete table inet ${p.nftTable}
table inet ${p.nftTable} {
  comment "managed by wg-egress; sha256:${rulesetHash(p)}"

${rulesetBody(p)}}
`;
}

/**
 * Parses our table: `nft list table inet wg-egress` (text: the JSON of nft 1.0.6 omits table comments),
 * or the rendered ruleset. Chain bodies never hold a line that starts with "}" (sets stay on one line).
 */
export function parseNftTable(text: string): NftTable {
  const chains: NftChain[] = [...text.matchAll(/^\s*chain (\S+) \{\n([\s\S]*?)^\s*\}/gm)].map((m) => ({
    name: m[1],
    rules: m[2]
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#") && !l.startsWith("type ")),
  }));
  return {
    hash: /comment "[^"]*sha256:([0-9a-f]+)"/.exec(text)?.[1] ?? null,
    chains,
    rejected: Number(new RegExp(`counter ${REJECT_COUNTER} \\{\\s*packets (\\d+)`).exec(text)?.[1] ?? 0),
  };
}

/** The chains a complete table has, and their rule counts: read from the rendered ruleset. */
export function expectedChains(p: DataPath): NftChain[] {
  return parseNftTable(renderRuleset(p)).chains;
}

/**
 * The parts of a complete table that are not there, in words; empty = complete. A missing chain or
 * rule is caught even when the table's hash comment is still right.
 */
export function nftMissing(p: DataPath, nft: NftTable | null): string[] {
  if (!nft) return [`nft table inet ${p.nftTable}`];
  const out: string[] = [];
  for (const want of expectedChains(p)) {
    const have = nft.chains.find((c) => c.name === want.name);
    if (!have) out.push(`chain ${want.name}`);
    else if (have.rules.length !== want.rules.length)
      out.push(`chain ${want.name} (${have.rules.length} of ${want.rules.length} rules)`);
  }
  return out;
}

/** Complete and rendered from this config (a table from another config or version is reloaded). */
export function nftCurrent(p: DataPath, nft: NftTable | null): boolean {
  return nft !== null && nft.hash === rulesetHash(p) && nftMissing(p, nft).length === 0;
}
