import ipaddr from "ipaddr.js";
import type { ExitConfig } from "../config/exit-schema.js";
import { UsageError } from "../util/errors.js";

/**
 * PURE renderer of the exit host (the VPS end of the tunnel). One renderer feeds every way an exit is
 * built — cloud-init (`wg-egress exit render`), install over SSH, and the lab's exit namespace — so
 * what the lab proves is what a VPS runs.
 *
 *   renderExitHost(exit: ExitConfig, keys: ExitKeys, opts?: { mtu?: number }): ExitHost
 *     exit  the `exit` config section (interface, address(6), listenPort, publicInterface,
 *           gatewayAllowedIps, sshAllowFrom; gatewayPublicKey is used when keys has none)
 *     keys  { privateKey: the exit's WireGuard private key, gatewayPublicKey?: the gateway's public key }
 *   → ExitHost {
 *       wgConfig     `wg setconf`/`wg syncconf` format, INCLUDING the private key: write it only to a
 *                    0600 file or a pipe, never log it
 *       nftRuleset   `nft -f` text, table inet wg-egress-exit, applied atomically
 *       sysctls      { "net.ipv4.ip_forward": "1", ... } (IPv6 forwarding only with exit.address6)
 *       unboundConfig the resolver's config ($DIR stands for the script's directory)
 *       setupScript  POSIX sh, self-contained and idempotent (run it again to converge); holds the private
 *                    key, so keep it 0600. Writes its files to $WG_EGRESS_EXIT_DIR (default /etc/wg-egress),
 *                    needs nft, wg, ip and kernel WireGuard or wireguard-go; installs unbound (Debian
 *                    package) when it is missing and (re)starts it. Persisting across reboots (a unit that
 *                    reruns it) is the caller's part.
 *     }
 *   Throws UserError when the gateway's public key is missing or an SSH source is not an address/CIDR.
 *
 * Firewall: input allows only WireGuard's UDP port, SSH (from sshAllowFrom; anywhere when empty — the
 * provider firewall narrows it), DNS from the tunnel, ICMP for ping/PMTU/IPv6 neighbour discovery, and
 * replies; forwarding only from the tunnel to the public interface and replies back; tunnel traffic is
 * masqueraded out of the public interface.
 *
 * DNS: a caching resolver (unbound) listens on the tunnel address only and answers only the gateway, so
 * the names the proxy looks up are resolved here, never by the home ISP. It recurses from the root
 * (exit.dns.forwarders: forward instead) and validates DNSSEC unless exit.dns.dnssec is false.
 */

export interface ExitKeys {
  privateKey: string;
  gatewayPublicKey?: string;
}

export interface ExitHost {
  wgConfig: string;
  nftRuleset: string;
  sysctls: Record<string, string>;
  unboundConfig: string;
  setupScript: string;
}

export const EXIT_NFT_TABLE = "wg-egress-exit";
const DEFAULT_MTU = 1420;

function sshRule(sources: string[]): string {
  if (!sources.length) return "    tcp dport 22 accept";
  const v4: string[] = [];
  const v6: string[] = [];
  for (const s of sources) {
    let isV6: boolean;
    try {
      isV6 = (s.includes("/") ? ipaddr.parseCIDR(s)[0] : ipaddr.parse(s)).kind() === "ipv6";
    } catch {
      throw new UsageError(`exit.sshAllowFrom: "${s}" is not an address or CIDR`);
    }
    (isV6 ? v6 : v4).push(s);
  }
  return [
    v4.length ? `    ip saddr { ${v4.join(", ")} } tcp dport 22 accept` : "",
    v6.length ? `    ip6 saddr { ${v6.join(", ")} } tcp dport 22 accept` : "",
  ]
    .filter(Boolean)
    .join("\n");
}

function renderNft(exit: ExitConfig): string {
  const wg = JSON.stringify(exit.interface);
  const pub = JSON.stringify(exit.publicInterface);
  return `table inet ${EXIT_NFT_TABLE}
delete table inet ${EXIT_NFT_TABLE}
table inet ${EXIT_NFT_TABLE} {
  chain input {
    type filter hook input priority filter; policy drop;
    iifname "lo" accept
    ct state established,related accept
    ct state invalid drop
    icmp type echo-request accept
    meta l4proto ipv6-icmp accept
    udp dport ${exit.listenPort} accept
    iifname ${wg} meta l4proto { tcp, udp } th dport 53 accept
${sshRule(exit.sshAllowFrom)}
  }

  chain forward {
    type filter hook forward priority filter; policy drop;
    iifname ${wg} oifname ${pub} accept
    iifname ${pub} oifname ${wg} ct state established,related accept
  }

  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    iifname ${wg} oifname ${pub} masquerade
  }
}
`;
}

const ROOT_KEY = "/usr/share/dns/root.key";

/** unbound on the tunnel address; `$DIR` is expanded by the setup script (its directory). */
function renderUnbound(exit: ExitConfig): string {
  const tunnel = [exit.address, exit.address6].filter((a): a is string => !!a).map((a) => a.split("/")[0]);
  const lines = [
    "# Rendered by wg-egress: the gateway's resolver, on the tunnel address only.",
    "server:",
    ...tunnel.map((a) => `  interface: ${a}`),
    "  port: 53",
    // Binds before the tunnel address exists (boot order), and answers only the gateway.
    "  ip-freebind: yes",
    "  access-control: 0.0.0.0/0 refuse",
    "  access-control: ::/0 refuse",
    ...exit.gatewayAllowedIps.map((c) => `  access-control: ${c} allow`),
    '  username: "unbound"',
    '  chroot: ""',
    '  directory: "$DIR"',
    '  pidfile: "$DIR/unbound.pid"',
    "  use-syslog: no",
    "  verbosity: 0",
    "  num-threads: 1",
    "  msg-cache-size: 16m",
    "  rrset-cache-size: 32m",
    "  prefetch: yes",
    "  qname-minimisation: yes",
    "  hide-identity: yes",
    "  hide-version: yes",
    ...(exit.dns.dnssec
      ? ['  module-config: "validator iterator"', `  trust-anchor-file: "${ROOT_KEY}"`]
      : ['  module-config: "iterator"']),
    ...(exit.dns.forwarders.length
      ? ["forward-zone:", '  name: "."', ...exit.dns.forwarders.map((f) => `  forward-addr: ${f}`)]
      : []),
  ];
  return `${lines.join("\n")}\n`;
}

export function renderExitHost(exit: ExitConfig, keys: ExitKeys, opts: { mtu?: number } = {}): ExitHost {
  const gatewayPublicKey = keys.gatewayPublicKey ?? exit.gatewayPublicKey;
  if (!gatewayPublicKey)
    throw new UsageError(
      "exit.gatewayPublicKey is missing: set it to the gateway's public key (wg-egress pubkey)",
    );
  const wgConfig = `[Interface]
PrivateKey = ${keys.privateKey}
ListenPort = ${exit.listenPort}

[Peer]
PublicKey = ${gatewayPublicKey}
AllowedIPs = ${exit.gatewayAllowedIps.join(", ")}
`;
  const sysctls: Record<string, string> = { "net.ipv4.ip_forward": "1" };
  if (exit.address6) sysctls["net.ipv6.conf.all.forwarding"] = "1";
  const nftRuleset = renderNft(exit);
  const unboundConfig = renderUnbound(exit);
  const packages = exit.dns.dnssec ? "unbound dns-root-data" : "unbound";

  const ifname = exit.interface;
  const addresses = [exit.address, exit.address6].filter((a): a is string => !!a);
  const setupScript = `#!/bin/sh
# wg-egress exit host setup, rendered by wg-egress. Idempotent: run it again to converge.
# It contains the exit's WireGuard private key: keep it mode 0600.
set -eu
umask 077
PATH="$PATH:/usr/sbin:/sbin"
DIR="\${WG_EGRESS_EXIT_DIR:-/etc/wg-egress}"
mkdir -p "$DIR"
cat > "$DIR/${ifname}.conf" <<'WG_EGRESS_EOF'
${wgConfig}WG_EGRESS_EOF
cat > "$DIR/exit.nft" <<'WG_EGRESS_EOF'
${nftRuleset}WG_EGRESS_EOF
${Object.entries(sysctls)
  .map(([k, v]) => `printf '%s\\n' ${v} > /proc/sys/${k.replaceAll(".", "/")}`)
  .join("\n")}
# Firewall first: nothing is reachable or forwarded before the rules are in place.
nft -f "$DIR/exit.nft"
# The gateway's resolver on the tunnel address (bound even before the tunnel is up): names are resolved
# here, never by the home ISP. Set up before the tunnel, so a key change (rotate) is not held up by it.
resolver_ready() { command -v unbound >/dev/null 2>&1${exit.dns.dnssec ? ` && [ -s ${ROOT_KEY} ]` : ""}; }
if ! resolver_ready; then
  if command -v apt-get >/dev/null 2>&1; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ${packages}; } >&2 || true
  fi
fi
if resolver_ready; then
  cat > "$DIR/unbound.conf.new" <<WG_EGRESS_EOF
${unboundConfig}WG_EGRESS_EOF
  unbound-checkconf "$DIR/unbound.conf.new" >/dev/null
  pid=$(cat "$DIR/unbound.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && cmp -s "$DIR/unbound.conf.new" "$DIR/unbound.conf"; then
    rm -f "$DIR/unbound.conf.new"
  else
    mv "$DIR/unbound.conf.new" "$DIR/unbound.conf"
    # Restarted, not reloaded: after dropping privileges unbound cannot read its (0600) config again.
    i=0
    while [ -n "$pid" ] && kill "$pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    unbound -c "$DIR/unbound.conf"
  fi
else
  echo "wg-egress: unbound${exit.dns.dnssec ? " or dns-root-data" : ""} is missing: the gateway cannot resolve names at the exit until it is installed (or set proxy.dns.servers on the gateway)" >&2
fi
if ! ip link show dev ${ifname} >/dev/null 2>&1; then
  ip link add dev ${ifname} type wireguard 2>/dev/null || wireguard-go ${ifname}
fi
wg syncconf ${ifname} "$DIR/${ifname}.conf"
${addresses.map((a) => `ip address replace ${a} dev ${ifname}`).join("\n")}
ip link set dev ${ifname} mtu ${opts.mtu ?? DEFAULT_MTU} up
`;
  return { wgConfig, nftRuleset, sysctls, unboundConfig, setupScript };
}
