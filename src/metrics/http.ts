import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";
import type { HostPort } from "../util/hostport.js";
import { formatHostPort } from "../util/hostport.js";

export interface Health {
  ok: boolean;
  detail?: Record<string, unknown>;
}

/**
 * The small HTTP endpoint every long-running wg-egress command exposes: GET /metrics (Prometheus text
 * format) and GET /healthz (200 or 503 with a JSON body). Resolves once listening.
 */
export async function serveMetrics(
  listen: HostPort,
  registry: Registry,
  health: () => Health | Promise<Health> = () => ({ ok: true }),
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
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e) =>
      reject(new Error(`cannot serve metrics on ${formatHostPort(listen)}: ${e.message}`)),
    );
    server.listen(listen.port, listen.host, () => resolve());
  });
  return server;
}
