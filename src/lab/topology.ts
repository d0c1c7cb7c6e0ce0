/**
 * The lab: the seed's topology in network namespaces on one machine. These names and addresses are
 * fixed so other tools (doctor, metrics tests) can find them; all are documentation ranges.
 *
 *   wgelab-pod  eth0 10.1.0.2, 10.1.0.53 (a LAN resolver) ──── lan0 10.1.0.1 (proxy :1080)  wgelab-gw
 *                                    wan0 198.51.100.2 ──┐   wgelab-gw0 10.100.0.2 (tunnel) ·······················┐
 *   wgelab-inet home0 198.51.100.1 (HTTP echo), vps0 203.0.113.1, lo 192.0.2.80 (HTTP echo :80 and :8080,      │
 *               line server :6667), lo 192.0.2.53 (DNS: every name is 192.0.2.80)                              │
 *   wgelab-exit pub0 203.0.113.10 ──── vps0;  wgelab-exit0 10.100.0.1 (UDP 51820, masquerade, unbound :53) ···┘
 *
 * PURE: constants and the setup commands as data; up.ts runs them.
 */

export const NS = { pod: "wgelab-pod", gw: "wgelab-gw", inet: "wgelab-inet", exit: "wgelab-exit" } as const;
export const LAB_NAMESPACES = Object.values(NS);

/** wireguard-go's control sockets are shared by all namespaces: distinct names per side. */
export const GW_IF = "wgelab-gw0";
export const EXIT_IF = "wgelab-exit0";
export const EXIT_PUBLIC_IF = "pub0";

export const ADDR = {
  pod: "10.1.0.2",
  gwLan: "10.1.0.1",
  gwWan: "198.51.100.2",
  inetHome: "198.51.100.1",
  inetVps: "203.0.113.1",
  server: "192.0.2.80",
  exitPublic: "203.0.113.10",
  /** The second exit's public address (`lab up --exits 2`, see second-exit.ts). */
  exit2Public: "203.0.113.20",
  exitTunnel: "10.100.0.1",
  gwTunnel: "10.100.0.2",
  /** The internet's DNS server (authoritative for every name: 192.0.2.80). */
  dns: "192.0.2.53",
  /** A resolver on the LAN (in the pod's namespace), for the proxy that uses it. */
  lanDns: "10.1.0.53",
} as const;

export const WG_PORT = 51820;
export const PROXY_UID = 400;
/** The proxy with keepalive (the product's behaviour) and a second one without, for the idle scenario. */
export const PROXY_PORT = 1080;
export const PROXY_NO_KEEPALIVE_PORT = 1081;
/** A proxy whose resolver is the LAN's (proxy.dns.servers), instead of the exit's default. */
export const PROXY_LAN_DNS_PORT = 1084;
export const PROXY_KEEPALIVE_SECONDS = 5;
export const HTTP_PORT = 80;
/** The gateway's own requests (with the home IP, on purpose) go to this port: counted apart. */
export const CONTROL_PORT = 8080;
export const LINE_PORT = 6667;

/** Short so that idle connections die within a test; per namespace. */
export const EXIT_CONNTRACK_TIMEOUT = 20;

export const STATE_DIR = "/run/wgelab";
export const CONFIG_FILE = `${STATE_DIR}/config.yaml`;

/**
 * nft counters in wgelab-inet for everything that arrives from the home line (whatever the home address
 * is at the time): WireGuard's own UDP to the exit, the gateway's own requests to CONTROL_PORT, and
 * everything else — the leak counter, which must stay 0. Link-local IPv6 (neighbour discovery) never
 * leaves the link and is not counted. While wireguard-go is stopped (`down`, killed), the exit's WireGuard
 * packets still arrive and the kernel answers "port unreachable" to the exit: that is WireGuard's traffic
 * (to the endpoint that already knows the home address), not a proxied packet, so it counts as WireGuard.
 */
export const LEAK_TABLE = "wgelab-count";
export const LEAK_COUNTER = "home_leak";
export const OWN_COUNTER = "home_own";
export const WIREGUARD_COUNTER = "home_wireguard";

export const leakCounterRuleset = `table inet ${LEAK_TABLE} {
  counter ${WIREGUARD_COUNTER} {
  }
  counter ${OWN_COUNTER} {
  }
  counter ${LEAK_COUNTER} {
  }
  chain pre {
    type filter hook prerouting priority raw; policy accept;
    iifname "home0" ip daddr { ${ADDR.exitPublic}, ${ADDR.exit2Public} } udp dport ${WG_PORT} counter name ${WIREGUARD_COUNTER} accept
    iifname "home0" ip daddr { ${ADDR.exitPublic}, ${ADDR.exit2Public} } icmp type destination-unreachable counter name ${WIREGUARD_COUNTER} accept
    iifname "home0" ip daddr ${ADDR.server} tcp dport ${CONTROL_PORT} counter name ${OWN_COUNTER} accept
    iifname "home0" ip6 saddr { ::, fe80::/10 } accept
    iifname "home0" ip6 daddr ff00::/8 accept
    iifname "home0" counter name ${LEAK_COUNTER}
  }
}
`;

type Cmd = string[];
const inNs = (ns: string, ...argv: string[]): Cmd => ["ip", "netns", "exec", ns, ...argv];
/** sysctls through /proc inside the namespace: /proc/sys/net is per network namespace, and sh is always there. */
const sysctl = (ns: string, key: string, value: string | number): Cmd =>
  inNs(ns, "sh", "-c", `printf '%s\\n' ${value} > /proc/sys/${key.replaceAll(".", "/")}`);
const veth = (a: string, nsA: string, b: string, nsB: string): Cmd => [
  "ip",
  "link",
  "add",
  a,
  "netns",
  nsA,
  "type",
  "veth",
  "peer",
  "name",
  b,
  "netns",
  nsB,
];
const addr = (ns: string, cidr: string, dev: string): Cmd =>
  inNs(ns, "ip", "address", "add", cidr, "dev", dev);
const up = (ns: string, dev: string): Cmd => inNs(ns, "ip", "link", "set", dev, "up");

/** Namespaces, links, addresses, routes and sysctls, in order (before any product code runs). */
export function networkCommands(): Cmd[] {
  const { pod, gw, inet, exit } = NS;
  return [
    ...LAB_NAMESPACES.map((ns) => ["ip", "netns", "add", ns]),
    ...LAB_NAMESPACES.map((ns) => up(ns, "lo")),
    veth("eth0", pod, "lan0", gw),
    veth("wan0", gw, "home0", inet),
    veth("vps0", inet, EXIT_PUBLIC_IF, exit),
    addr(pod, `${ADDR.pod}/24`, "eth0"),
    addr(pod, `${ADDR.lanDns}/24`, "eth0"),
    addr(gw, `${ADDR.gwLan}/24`, "lan0"),
    addr(gw, `${ADDR.gwWan}/24`, "wan0"),
    addr(inet, `${ADDR.inetHome}/24`, "home0"),
    addr(inet, `${ADDR.inetVps}/24`, "vps0"),
    addr(inet, `${ADDR.server}/32`, "lo"),
    addr(inet, `${ADDR.dns}/32`, "lo"),
    addr(exit, `${ADDR.exitPublic}/24`, EXIT_PUBLIC_IF),
    up(pod, "eth0"),
    up(gw, "lan0"),
    up(gw, "wan0"),
    up(inet, "home0"),
    up(inet, "vps0"),
    up(exit, EXIT_PUBLIC_IF),
    // The pod reaches only the proxy: no default route, so nothing bypasses it.
    inNs(gw, "ip", "route", "add", "default", "via", ADDR.inetHome),
    inNs(exit, "ip", "route", "add", "default", "via", ADDR.inetVps),
    sysctl(inet, "net.ipv4.ip_forward", 1),
    // Strict reverse-path filtering where it can bite: the gateway and the exit.
    sysctl(gw, "net.ipv4.conf.all.rp_filter", 1),
    sysctl(gw, "net.ipv4.conf.default.rp_filter", 1),
    sysctl(exit, "net.ipv4.conf.all.rp_filter", 1),
    sysctl(exit, "net.ipv4.conf.default.rp_filter", 1),
    sysctl(inet, "net.ipv4.conf.all.rp_filter", 0),
    sysctl(pod, "net.ipv4.conf.all.rp_filter", 0),
    // Node sets only the keepalive idle time; the probe interval is this sysctl.
    sysctl(gw, "net.ipv4.tcp_keepalive_intvl", PROXY_KEEPALIVE_SECONDS),
  ];
}

/** After the exit setup loaded conntrack there: forget idle connections quickly. */
export function exitConntrackCommand(ns: string = NS.exit): Cmd {
  return sysctl(ns, "net.netfilter.nf_conntrack_tcp_timeout_established", EXIT_CONNTRACK_TIMEOUT);
}

/** The lab's config file (gateway + exit + proxy sections of the one wg-egress config). */
export function labConfig(keys: { gatewayPublic: string; exitPublic: string }): Record<string, unknown> {
  return {
    gateway: {
      interface: GW_IF,
      address: `${ADDR.gwTunnel}/24`,
      privateKeyFile: `${STATE_DIR}/gateway.key`,
      peer: {
        publicKey: keys.exitPublic,
        endpoint: `${ADDR.exitPublic}:${WG_PORT}`,
        persistentKeepalive: 25,
      },
      proxyUid: PROXY_UID,
    },
    exit: {
      interface: EXIT_IF,
      address: `${ADDR.exitTunnel}/24`,
      listenPort: WG_PORT,
      publicInterface: EXIT_PUBLIC_IF,
      gatewayPublicKey: keys.gatewayPublic,
      gatewayAllowedIps: [`${ADDR.gwTunnel}/32`],
      // The lab's internet has one DNS server and no root servers (nor a DNSSEC chain to them).
      dns: { forwarders: [ADDR.dns], dnssec: false },
    },
    // The lab's internet lives in documentation ranges, which the proxy refuses by default: allow the
    // servers only (one on the home WAN's own subnet). Its resolver is the exit's (the default).
    proxy: {
      listen: [`${ADDR.gwLan}:${PROXY_PORT}`],
      destinations: { allow: [`${ADDR.server}/32`, `${ADDR.inetHome}/32`] },
    },
  };
}

export const USAGE = `lab is up. Try:
  ip netns exec ${NS.pod} curl --socks5 ${ADDR.gwLan}:${PROXY_PORT} http://${ADDR.server}/   # prints ${ADDR.exitPublic} (the exit)
  ip netns exec ${NS.gw} curl http://${ADDR.server}/                               # prints ${ADDR.gwWan} (home WAN)
  ip netns exec ${NS.gw} wg-egress gateway status --config ${STATE_DIR}/config.yaml
  tail -f ${STATE_DIR}/gateway.log     # the gateway agent: one JSON line per repair (try: ip netns exec ${NS.gw} nft flush ruleset)
  wg-egress lab test    # the scenarios;   wg-egress lab down    # remove everything
`;
