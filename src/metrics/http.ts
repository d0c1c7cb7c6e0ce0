import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import { canonicalIp } from "../policy/addresses.js";
import type { HostPort } from "../util/hostport.js";
import { formatHostPort } from "../util/hostport.js";
import { log } from "../util/log.js";

export interface Health {
  ok: boolean;
  detail?: Record<string, unknown>;
}

export interface MetricsServerOptions {
  /** Who may connect (by canonical IP); anyone else is closed before a byte is read. Default: anyone. */
  allow?: (ip: string) => boolean;
  /** Connections open at once; more are closed at once (Prometheus needs one per scraper). */
  maxConnections?: number;
  /** A connection idle this long (no request, or none completed) is closed. */
  idleTimeoutMs?: number;
}

const DEFAULT_MAX_CONNECTIONS = 32;
const DEFAULT_IDLE_TIMEOUT_MS = 10_000;

/**
 * The small HTTP endpoint every long-running wg-egress command exposes: GET /metrics (Prometheus text
 * format) and GET /healthz (200 or 503 with a JSON body). Resolves once listening. Whatever peers do,
 * it holds a bounded number of descriptors: connections are capped, idle ones closed, and peers
 * outside `allow` closed on accept.
 */
export async function serveMetrics(
  listen: HostPort,
  registry: Registry,
  health: () => Health | Promise<Health> = () => ({ ok: true }),
  opts: MetricsServerOptions = {},
): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (req.method !== "GET" && req.method !== "HEAD") {
        res.writeHead(405, { allow: "GET, HEAD" }).end();
      } else if (path === "/metrics") {
        const body = await registry.metrics();
        res.writeHead(200, { "content-type": registry.contentType }).end(body);
      } else if (path === "/healthz") {
        const h = await health();
        res
          .writeHead(h.ok ? 200 : 503, { "content-type": "application/json" })
          .end(`${JSON.stringify({ ok: h.ok, ...h.detail })}\n`);
      } else {
        res.writeHead(404, { "content-type": "text/plain" }).end("try /metrics or /healthz\n");
      }
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`${(err as Error).message}\n`);
    }
  });
  const idle = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  // Without a 'timeout' listener, Node destroys a socket idle this long.
  server.timeout = idle;
  server.headersTimeout = idle;
  server.requestTimeout = idle;
  server.keepAliveTimeout = Math.min(server.keepAliveTimeout, idle);
  const allow = opts.allow;
  if (allow) {
    server.on("connection", (socket) => {
      const ip = canonicalIp(socket.remoteAddress ?? "");
      if (ip === undefined || !allow(ip)) socket.resetAndDestroy(); // a reset, like the proxy port
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(new Error(`cannot serve metrics on ${formatHostPort(listen)}: ${e.message}`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  // Accept errors (EMFILE, say) must not end the process; the scraper retries.
  server.on("error", (err) => log.warn({ err: err.message }, "metrics endpoint: accept failed"));
  return server;
}
