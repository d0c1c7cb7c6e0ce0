/**
 * The lab with two exits (`lab up --exits 2`): a second VPS namespace with another public address,
 * and the gateway config that routes users and a client address to one exit or the other. PURE:
 * constants, commands and config as data; up.ts runs them.
 *
 *   wgelab-gw   wgelab-gw2 10.100.1.2 (tunnel to exit two) ···························┐
 *   wgelab-inet vps1 (203.0.113.20/32 routed to it)                                    │
 *   wgelab-exit2 pub0 203.0.113.20 ──── vps1;  wgelab-exit2 10.100.1.1 (UDP 51820) ···┘
 */

import { ADDR, EXIT_PUBLIC_IF, PROXY_PORT, STATE_DIR, WG_PORT } from "./topology.js";

export const EXIT2_NS = "wgelab-exit2";
export const GW2_IF = "wgelab-gw2";
export const EXIT2_IF = "wgelab-exit2";
const INET_IF = "vps1";

export const ADDR2 = {
  exitPublic: ADDR.exit2Public,
  exitTunnel: "10.100.1.1",
  gwTunnel: "10.100.1.2",
  /** A second address of the pod: the client subnet routed to exit two. */
  podAlt: "10.1.0.66",
} as const;

/**
 * Users of the two-exit lab's proxy (password = name): alice → one, bob → two, carol and erin → the
 * pool (each sticks to the member it ranks first), dave → by client address.
 */
export const USERS = ["alice", "bob", "carol", "dave", "erin"] as const;
export const POOL_USERS = ["carol", "erin"] as const;
export const POOL = "both";
/** The two-exit lab proxy's /metrics, in the gateway namespace (`exit drain` reads its exits' connections there). */
export const PROXY_METRICS = "127.0.0.1:9587";

type Cmd = string[];
const inNs = (ns: string, ...argv: string[]): Cmd => ["ip", "netns", "exec", ns, ...argv];
const sysctl = (ns: string, key: string, value: string | number): Cmd =>
  inNs(ns, "sh", "-c", `printf '%s\\n' ${value} > /proc/sys/${key.replaceAll(".", "/")}`);

/** The second exit's namespace and its link to the internet (after networkCommands). */
export function secondExitCommands(): Cmd[] {
  return [
    ["ip", "netns", "add", EXIT2_NS],
    inNs(EXIT2_NS, "ip", "link", "set", "lo", "up"),
    [
      "ip",
      "link",
      "add",
      INET_IF,
      "netns",
      "wgelab-inet",
      "type",
      "veth",
      "peer",
      "name",
      EXIT_PUBLIC_IF,
      "netns",
      EXIT2_NS,
    ],
    inNs(EXIT2_NS, "ip", "address", "add", `${ADDR2.exitPublic}/24`, "dev", EXIT_PUBLIC_IF),
    inNs(EXIT2_NS, "ip", "link", "set", EXIT_PUBLIC_IF, "up"),
    inNs("wgelab-inet", "ip", "link", "set", INET_IF, "up"),
    // Same /24 as exit one's link: the internet answers for 203.0.113.1 here too and routes .20 here.
    inNs("wgelab-inet", "ip", "route", "add", `${ADDR2.exitPublic}/32`, "dev", INET_IF),
    inNs(EXIT2_NS, "ip", "route", "add", "default", "via", ADDR.inetVps),
    sysctl(EXIT2_NS, "net.ipv4.conf.all.rp_filter", 1),
    sysctl(EXIT2_NS, "net.ipv4.conf.default.rp_filter", 1),
    // The gateway's client for the client-subnet rule.
    inNs("wgelab-pod", "ip", "address", "add", `${ADDR2.podAlt}/24`, "dev", "eth0"),
  ];
}

/** The second exit's own section (the setup script's input), like the lab's `exit:` for exit one. */
export function secondExitSection(gatewayPublic: string): Record<string, unknown> {
  return {
    interface: EXIT2_IF,
    address: `${ADDR2.exitTunnel}/24`,
    listenPort: WG_PORT,
    publicInterface: EXIT_PUBLIC_IF,
    gatewayPublicKey: gatewayPublic,
    gatewayAllowedIps: [`${ADDR2.gwTunnel}/32`],
    dns: { forwarders: [ADDR.dns], dnssec: false },
  };
}

/**
 * The two-exit lab's config: the one-exit lab's, with `exits:` (exit one keeps the gateway section's
 * values), a pool of both, and routes: alice → one, bob → two, the pod's second address → two,
 * carol and erin → the pool, everyone else → one. Users need passwords (password = name).
 */
export function twoExitConfig(one: Record<string, unknown>, exit2Public: string): Record<string, unknown> {
  const proxy = one.proxy as Record<string, unknown>;
  return {
    ...one,
    exits: [
      { name: "one" },
      {
        name: "two",
        interface: GW2_IF,
        address: `${ADDR2.gwTunnel}/24`,
        peer: { publicKey: exit2Public, endpoint: `${ADDR2.exitPublic}:${WG_PORT}`, persistentKeepalive: 25 },
      },
    ],
    pools: { [POOL]: ["one", "two"] },
    routes: {
      default: "one",
      rules: [
        { users: ["alice"], to: "one" },
        { users: ["bob"], to: "two" },
        { clients: [`${ADDR2.podAlt}/32`], to: "two" },
        { users: [...POOL_USERS], to: POOL },
      ],
    },
    proxy: {
      ...proxy,
      listen: [`${ADDR.gwLan}:${PROXY_PORT}`],
      users: USERS.map((u) => ({ name: u, password: u })),
      metrics: PROXY_METRICS,
    },
  };
}

export const EXIT2_DIR = `${STATE_DIR}/exit2`;
