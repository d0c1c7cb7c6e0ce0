import { type Command, InvalidArgumentError } from "commander";
import type { GatewayConfig } from "../config/gateway-schema.js";
import { resolveProxyUid } from "../gateway/proxy-user.js";
import { serveMetrics } from "../metrics/http.js";
import { createProxyMetrics } from "../metrics/proxy-metrics.js";
import { fdsNeeded, readFdLimit } from "../socks/fd-limit.js";
import { ProxyServer } from "../socks/server.js";
import { buildSettings, type ProxySettings, reloadRefusal } from "../socks/settings.js";
import { errorMessage, UserError } from "../util/errors.js";
import { formatHostPort, type HostPort, parseHostPort } from "../util/hostport.js";
import { log } from "../util/log.js";
import { addConfigOption, collect, configFrom } from "./common.js";

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

function number(flag: string, integer = false) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) {
      throw new InvalidArgumentError(`${flag} expects a ${integer ? "whole " : ""}number >= 0, got "${v}"`);
    }
    return n;
  };
}

function collectPort(v: string, prev: number[] | undefined): number[] {
  return [...(prev ?? []), number("a port", true)(v)];
}

interface ProxyFlags {
  config?: string;
  listen?: string[];
  users?: string;
  allowClient?: string[];
  allowDestination?: string[];
  denyDestination?: string[];
  allowPort?: number[];
  denyPort?: number[];
  allowDomain?: string[];
  denyDomain?: string[];
  metrics?: string;
  dns?: string[];
  dnsFamily?: string;
  dnsTimeout?: number;
  keepalive?: number | false;
  idleTimeout?: number;
  handshakeTimeout?: number;
  connectTimeout?: number;
  maxConnections?: number;
  maxPerClient?: number;
  httpConnect?: boolean;
  drain?: number;
}

/** Flags as dotted config keys: a flag given replaces the config file's value. */
function overridesFrom(o: ProxyFlags, httpConnectGiven: boolean): Record<string, unknown> {
  return {
    "proxy.listen": o.listen,
    "proxy.usersFile": o.users,
    "proxy.allowClients": o.allowClient,
    "proxy.destinations.allow": o.allowDestination,
    "proxy.destinations.deny": o.denyDestination,
    "proxy.destinations.allowPorts": o.allowPort,
    "proxy.destinations.denyPorts": o.denyPort,
    "proxy.destinations.allowDomains": o.allowDomain,
    "proxy.destinations.denyDomains": o.denyDomain,
    "proxy.metrics": o.metrics,
    "proxy.dns.servers": o.dns,
    "proxy.dns.family": o.dnsFamily,
    "proxy.dns.timeoutSeconds": o.dnsTimeout,
    "proxy.keepalive.enabled": o.keepalive === false ? false : undefined,
    "proxy.keepalive.idleSeconds": typeof o.keepalive === "number" ? o.keepalive : undefined,
    "proxy.idleTimeoutSeconds": o.idleTimeout,
    "proxy.handshakeTimeoutSeconds": o.handshakeTimeout,
    "proxy.connectTimeoutSeconds": o.connectTimeout,
    "proxy.limits.maxConnections": o.maxConnections,
    "proxy.limits.maxPerClient": o.maxPerClient,
    "proxy.httpConnect": httpConnectGiven ? o.httpConnect : undefined,
    "proxy.drainSeconds": o.drain,
  };
}

function logFdLimit(maxConnections: number): void {
  const limit = readFdLimit();
  const need = fdsNeeded(maxConnections);
  if (!limit) log.warn("cannot read the open-file limit from /proc/self/limits");
  else if (limit.soft < need) {
    // Node raises the soft limit to the hard limit at start-up; beyond that only whoever starts us can help.
    log.warn(
      { soft: limit.soft, hard: limit.hard, needed: need },
      `open-file limit ${limit.soft} (soft raised to the hard limit at start) is below ${need} (maxConnections*2+64); raise it with systemd LimitNOFILE=${need} or \`ulimit -Hn ${need}\`, or lower proxy.limits.maxConnections`,
    );
  } else
    log.info(
      { soft: limit.soft, hard: limit.hard, needed: need },
      `open-file limit ${limit.soft} (soft raised to the hard limit at start) covers ${need}`,
    );
}

/**
 * Only the marked user's connections go through the tunnel; anything else leaves via the default route.
 * Compares uids: the marked uid often has no passwd entry (the lab and containers use a bare uid 400).
 */
function warnIfNotMarkedUser(gw: GatewayConfig): void {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  let marked: number;
  try {
    marked = resolveProxyUid(gw);
  } catch (err) {
    log.warn(`cannot tell which uid the gateway marks: ${errorMessage(err)}`);
    return;
  }
  if (uid !== marked) {
    log.warn(
      { uid, markedUid: marked },
      `running as uid ${uid}, but the gateway routes uid ${marked} into the tunnel: run the proxy as that user (systemd User=)`,
    );
  }
}

/** Without users, say once at start who may use the proxy without a password. */
function logAuth(settings: ProxySettings): void {
  if (settings.requireAuth) return;
  const lan = settings.listen.some((l) => !/^(127\.|::1$|localhost$)/.test(l.host));
  if (settings.openOnPurpose || !lan)
    log.info("no users configured: clients on the allow-list need no password (proxy.auth: none)");
  else
    log.warn(
      "no users configured: every client on the allow-list may use the proxy without a password; configure proxy.users / proxy.usersFile, or set proxy.auth: none to say this is intended",
    );
}

async function runProxy(opts: ProxyFlags, cmd: Command): Promise<void> {
  const overrides = overridesFrom(opts, cmd.getOptionValueSource("httpConnect") === "cli");
  const load = () => {
    const cfg = configFrom(opts, overrides);
    return { cfg, settings: buildSettings(cfg.proxy) };
  };
  const { cfg, settings } = load();
  logFdLimit(settings.maxConnections);
  warnIfNotMarkedUser(cfg.gateway);
  logAuth(settings);
  const metrics = createProxyMetrics();
  const server = new ProxyServer(settings, metrics, log);
  await server.listen();
  const metricsServer = cfg.proxy.metrics
    ? await serveMetrics(
        parseHostPort(cfg.proxy.metrics) as HostPort,
        metrics.registry,
        () => ({
          ok: !server.isDraining,
          detail: { draining: server.isDraining, connections: server.connections.size },
        }),
        // The settings of the moment: a reload changes who may scrape too.
        { allow: (ip) => server.settings.metricsClients.allows(ip) },
      ).catch(async (e) => {
        await server.shutdown(0);
        throw new UserError(errorMessage(e), 1);
      })
    : undefined;
  const metricsAt = metricsServer?.address();
  if (metricsAt && typeof metricsAt === "object") {
    log.info(
      { address: formatHostPort({ host: metricsAt.address, port: metricsAt.port }) },
      "metrics listening",
    );
  }
  const listenKey = (s: typeof settings) => JSON.stringify(s.listen);
  let drainSeconds = cfg.proxy.drainSeconds;

  process.on("SIGHUP", () => {
    try {
      const { cfg: nextCfg, settings: next } = load();
      const refusal = reloadRefusal(server.settings, next);
      if (refusal) throw new UserError(refusal);
      if (listenKey(next) !== listenKey(server.settings)) {
        log.warn("proxy.listen changed: the new listen addresses take effect after a restart");
      }
      server.settings = next;
      drainSeconds = nextCfg.proxy.drainSeconds;
      logFdLimit(next.maxConnections);
      log.info({ userCount: next.users.size }, "config reloaded");
    } catch (e) {
      log.error(`config reload failed, keeping the previous config: ${errorMessage(e)}`);
    }
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn({ signal, open: server.connections.size }, "second signal: ending the drain now");
      server.endDrain();
      return;
    }
    stopping = true;
    log.info({ signal, open: server.connections.size, drainSeconds }, "shutting down");
    const result = await server.shutdown(drainSeconds * 1000);
    metricsServer?.close();
    log.info(result, "stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

export function registerProxy(program: Command): void {
  const cmd = program
    .command("proxy")
    .description("run the SOCKS5 egress proxy (RFC 1928/1929; HTTP CONNECT on the same port)")
    .option(
      "--listen <host:port>",
      "listen address, repeatable; IPv6 as [::1]:1080 (default 127.0.0.1:1080)",
      collect,
    )
    .option("--users <file>", "RFC 1929 users, one name:password per line; makes authentication required")
    .option(
      "--allow-client <cidr>",
      "client CIDR allowed to connect, repeatable (default: loopback + listen subnets)",
      collect,
    )
    .option(
      "--allow-destination <cidr>",
      "destination CIDR allowed despite the built-in deny list, repeatable",
      collect,
    )
    .option("--deny-destination <cidr>", "destination CIDR to refuse, repeatable", collect)
    .option("--allow-port <port>", "only these destination ports, repeatable", collectPort)
    .option("--deny-port <port>", "refuse this destination port, repeatable", collectPort)
    .option("--allow-domain <suffix>", "only names under these domains, repeatable", collect)
    .option("--deny-domain <suffix>", "refuse names under this domain, repeatable", collect)
    .option(
      "--metrics <host:port>",
      "serve /metrics and /healthz here (:PORT = 127.0.0.1:PORT; proxy.metricsAllowClients may scrape)",
    )
    .option(
      "--dns <server>",
      "DNS server (IP or IP:port) for destination names, repeatable (default: system resolver)",
      collect,
    )
    .option("--dns-family <family>", "ipv4first | ipv6first | ipv4only | ipv6only | system")
    .option("--dns-timeout <seconds>", "DNS lookup timeout", number("--dns-timeout"))
    .option(
      "--keepalive <seconds>",
      "TCP keepalive idle time on both legs (default 60)",
      number("--keepalive", true),
    )
    .option("--no-keepalive", "disable TCP keepalive")
    .option(
      "--idle-timeout <seconds>",
      "close relayed connections idle this long (default 0 = never)",
      number("--idle-timeout"),
    )
    .option(
      "--handshake-timeout <seconds>",
      "close clients that do not finish the handshake in time (default 10)",
      number("--handshake-timeout"),
    )
    .option(
      "--connect-timeout <seconds>",
      "outbound connect timeout, reply 0x06 (default 10)",
      number("--connect-timeout"),
    )
    .option(
      "--max-connections <n>",
      "max concurrent client connections (default 8192)",
      number("--max-connections", true),
    )
    .option(
      "--max-per-client <n>",
      "max concurrent connections per client IP (default 1000)",
      number("--max-per-client", true),
    )
    .option("--no-http-connect", "do not serve HTTP CONNECT on the SOCKS port")
    .option(
      "--drain <seconds>",
      "on SIGTERM, wait this long for open connections (default 30)",
      number("--drain"),
    )
    .addHelpText("after", HELP)
    .action((opts: ProxyFlags, command: Command) => runProxy(opts, command));
  addConfigOption(cmd);
}
