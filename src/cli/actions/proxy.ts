import { exitDnsServers, resolveExits } from "../../config/exits.js";
import type { GatewayConfig } from "../../config/gateway-schema.js";
import type { Config } from "../../config/schema.js";
import { resolveProxyUid } from "../../gateway/proxy-user.js";
import { serveMetrics } from "../../metrics/http.js";
import { createProxyMetrics } from "../../metrics/proxy-metrics.js";
import { egressOf } from "../../policy/egress.js";
import { ExitHealth } from "../../policy/exit-health.js";
import { fdsNeeded, readFdLimit } from "../../socks/fd-limit.js";
import { ProxyServer } from "../../socks/server.js";
import { buildSettings, type ProxySettings, reloadRefusal } from "../../socks/settings.js";
import { errorMessage, OperationError, UsageError } from "../../util/errors.js";
import { formatHostPort } from "../../util/hostport.js";
import { log } from "../../util/log.js";
import type { Invocation } from "../command.js";
import { configFrom } from "../common.js";

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

/**
 * The proxy's settings: which exit each connection takes (with several exits, bound to its tunnel
 * address) and each exit's resolver.
 */
function proxySettings(cfg: Config): ProxySettings {
  const exits = resolveExits(cfg.gateway, cfg.exits);
  const health = new ExitHealth(new Map(exits.map((x) => [x.name, x.interface])));
  const egress = egressOf(exits, cfg.pools, cfg.routes, (exit) => health.get(exit));
  const servers = exitDnsServers(exits, cfg.exits, cfg.proxy.dns.servers);
  return buildSettings(cfg.proxy, egress, new Map(exits.map((x) => [x.name, servers[x.index]])));
}

export async function runProxy({ source }: Invocation<unknown>): Promise<void> {
  // At start and on SIGHUP: the same file with the same flags.
  const load = () => {
    const cfg = configFrom({ config: source.file }, source.overrides);
    return { cfg, settings: proxySettings(cfg) };
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
        cfg.proxy.metrics,
        metrics.registry,
        () => ({
          ok: !server.isDraining,
          detail: { draining: server.isDraining, connections: server.connections.size },
        }),
        // The settings of the moment: a reload changes who may scrape too.
        { allow: (ip) => server.settings.metricsClients.allows(ip) },
      ).catch(async (e) => {
        await server.shutdown(0);
        throw new OperationError(errorMessage(e));
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
      if (refusal) throw new UsageError(refusal);
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
