import type { Command } from "commander";
import { defineCommand } from "./command.js";
import { type Flag, number, port, repeatable } from "./flags.js";

const HELP = `
Runs as an unprivileged user whose packets the gateway marks into the tunnel (convention: uid 400,
gateway.proxyUid); \`wg-egress gateway\` sets up the marking. Loopback, link-local (169.254.169.254),
private (RFC 1918, ULA), CGNAT, multicast, reserved, IPv4-embedding IPv6 (NAT64, 6to4, Teredo) and
the gateway's own addresses are refused as destinations (reply 0x02) unless allowed with
--allow-destination; rules apply to the resolved address, IPv4 rules to IPv4 and IPv6 rules to IPv6.
With --allow-domain, IP addresses are refused unless --allow-destination covers them.

Reply codes: 0x01 invalid destination name (not a host name or IP address: zone ids, NUL, ...),
0x02 policy, 0x03 network unreachable, 0x04 host unreachable and DNS failure (no such name, no
address, resolver timeout: RFC 1928 has no DNS code), 0x05 refused, 0x06 connect timeout, 0x07 BIND
(not supported), 0x08 address type. UDP ASSOCIATE is supported (no fragments); each datagram passes
the same checks, and the association ends with its TCP connection. HTTP CONNECT on the same port
answers 400 / 403 / 407 / 502 / 504 with the class of the reason only (details go to the log).

--users (or proxy.users) makes authentication required; an empty users file is an error. Without
users, clients on the allow-list need no password: set proxy.auth: none to say so explicitly.

Signals: SIGHUP reloads the config (users, policy, limits; established connections stay; a bad
config, or one that would drop every user without proxy.auth: none, is refused and the old one kept),
SIGTERM/SIGINT stop accepting, drain up to --drain seconds, then close the rest; a second signal
ends the drain at once.`;

const seconds = (flag: string) => number(flag);

const FLAGS: Flag[] = [
  {
    flags: "--listen <host:port>",
    key: "proxy.listen",
    help: "listen address, repeatable; IPv6 as [::1]:1080",
    parse: repeatable(),
  },
  {
    flags: "--users <file>",
    key: "proxy.usersFile",
    help: "RFC 1929 users, one name:password per line; makes authentication required",
  },
  {
    flags: "--allow-client <cidr>",
    key: "proxy.allowClients",
    help: "client CIDR allowed to connect, repeatable",
    parse: repeatable(),
    defaultText: "loopback + the listen addresses' subnets",
  },
  {
    flags: "--allow-destination <cidr>",
    key: "proxy.destinations.allow",
    help: "destination CIDR allowed despite the built-in deny list, repeatable",
    parse: repeatable(),
  },
  {
    flags: "--deny-destination <cidr>",
    key: "proxy.destinations.deny",
    help: "destination CIDR to refuse, repeatable",
    parse: repeatable(),
  },
  {
    flags: "--allow-port <port>",
    key: "proxy.destinations.allowPorts",
    help: "only these destination ports, repeatable",
    parse: repeatable(port("--allow-port")),
  },
  {
    flags: "--deny-port <port>",
    key: "proxy.destinations.denyPorts",
    help: "refuse this destination port, repeatable",
    parse: repeatable(port("--deny-port")),
  },
  {
    flags: "--allow-domain <suffix>",
    key: "proxy.destinations.allowDomains",
    help: "only names under these domains, repeatable",
    parse: repeatable(),
  },
  {
    flags: "--deny-domain <suffix>",
    key: "proxy.destinations.denyDomains",
    help: "refuse names under this domain, repeatable",
    parse: repeatable(),
  },
  {
    flags: "--metrics <host:port>",
    key: "proxy.metrics",
    help: "serve /metrics and /healthz here; :PORT means 127.0.0.1:PORT; proxy.metricsAllowClients may scrape",
  },
  {
    flags: "--dns <server>",
    key: "proxy.dns.servers",
    help: "DNS server (IP or IP:port) for destination names, repeatable",
    parse: repeatable(),
    defaultText:
      "the exit's resolver (exit.address) when gateway.peer is set, else the system resolver; several exits: each its own (exits[].dnsServers)",
  },
  {
    flags: "--dns-family <family>",
    key: "proxy.dns.family",
    help: "ipv4first | ipv6first | ipv4only | ipv6only | system",
  },
  {
    flags: "--dns-timeout <seconds>",
    key: "proxy.dns.timeoutSeconds",
    help: "DNS lookup timeout",
    parse: seconds("--dns-timeout"),
  },
  {
    flags: "--keepalive <seconds>",
    key: "proxy.keepalive.idleSeconds",
    help: "TCP keepalive idle time on both legs",
    parse: number("--keepalive", { integer: true }),
    toConfig: (v) => (typeof v === "number" ? v : undefined),
  },
  {
    flags: "--no-keepalive",
    key: "proxy.keepalive.enabled",
    help: "disable TCP keepalive",
    toConfig: (v) => (v === false ? false : undefined),
  },
  {
    flags: "--idle-timeout <seconds>",
    key: "proxy.idleTimeoutSeconds",
    help: "close relayed connections idle this long (0 = never)",
    parse: seconds("--idle-timeout"),
  },
  {
    flags: "--handshake-timeout <seconds>",
    key: "proxy.handshakeTimeoutSeconds",
    help: "close clients that do not finish the handshake in time",
    parse: seconds("--handshake-timeout"),
  },
  {
    flags: "--connect-timeout <seconds>",
    key: "proxy.connectTimeoutSeconds",
    help: "outbound connect timeout, reply 0x06",
    parse: seconds("--connect-timeout"),
  },
  {
    flags: "--max-connections <n>",
    key: "proxy.limits.maxConnections",
    help: "max concurrent client connections",
    parse: number("--max-connections", { integer: true }),
    defaultText: "what the open-file limit allows, at most 32768",
  },
  {
    flags: "--max-per-client <n>",
    key: "proxy.limits.maxPerClient",
    help: "max concurrent connections per client IP",
    parse: number("--max-per-client", { integer: true }),
  },
  {
    flags: "--no-http-connect",
    key: "proxy.httpConnect",
    help: "do not serve HTTP CONNECT on the SOCKS port",
  },
  {
    flags: "--drain <seconds>",
    key: "proxy.drainSeconds",
    help: "on SIGTERM, wait this long for open connections",
    parse: seconds("--drain"),
  },
];

export function registerProxy(program: Command): void {
  defineCommand(program, {
    name: "proxy",
    description: "run the SOCKS5 egress proxy (RFC 1928/1929; HTTP CONNECT on the same port)",
    flags: FLAGS,
    help: HELP,
    run: async (inv) => (await import("./actions/proxy.js")).runProxy(inv),
  });
}
