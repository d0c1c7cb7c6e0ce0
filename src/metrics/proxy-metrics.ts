import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** The proxy's Prometheus metrics, in their own registry (served by metrics/http.ts). */
export interface ProxyMetrics {
  registry: Registry;
  active: Gauge<string>;
  connections: Counter<"result" | "reply">;
  bytes: Counter<"direction">;
  handshakeSeconds: Histogram<string>;
  dnsSeconds: Histogram<"outcome">;
  refused: Counter<"reason">;
}

export function createProxyMetrics(): ProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    active: new Gauge({
      name: "wg_egress_proxy_active_connections",
      help: "Client connections currently open (in handshake or relaying).",
      registers,
    }),
    connections: new Counter({
      name: "wg_egress_proxy_connections_total",
      help: "Finished client connections by result (ok, refused, failed, malformed) and SOCKS reply code name.",
      labelNames: ["result", "reply"],
      registers,
    }),
    bytes: new Counter({
      name: "wg_egress_proxy_bytes_total",
      help: "Bytes relayed: up = client to destination, down = destination to client.",
      labelNames: ["direction"],
      registers,
    }),
    handshakeSeconds: new Histogram({
      name: "wg_egress_proxy_handshake_seconds",
      help: "From accepting a client to sending the success reply (includes DNS and the outbound connect).",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    dnsSeconds: new Histogram({
      name: "wg_egress_proxy_dns_seconds",
      help: "Destination name resolution time, by outcome (ok or the error code).",
      labelNames: ["outcome"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    refused: new Counter({
      name: "wg_egress_proxy_clients_refused_total",
      help: "Clients dropped on accept: not in the client allow-list, or over a connection limit.",
      labelNames: ["reason"],
      registers,
    }),
  };
}
