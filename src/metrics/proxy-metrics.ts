import { Counter, Gauge, Registry } from "prom-client";
import type { Egress } from "../policy/egress.js";
import { relayBufferBytes } from "../socks/relay.js";
import { BucketHistogram, type DeferredCounter, deferredCounter } from "./hot-path.js";

/** The proxy's Prometheus metrics, in their own registry (served by metrics/http.ts). */
export interface ProxyMetrics {
  registry: Registry;
  active: Gauge<string>;
  /** Updated per connection: see hot-path.ts. */
  connections: DeferredCounter<"result" | "reply">;
  bytes: DeferredCounter<"direction">;
  handshakeSeconds: BucketHistogram;
  dnsSeconds: BucketHistogram<"exit" | "outcome">;
  refused: Counter<"reason">;
  relayBuffers: Gauge<string>;
  exitConnections: DeferredCounter<"exit" | "result">;
  exitBytes: DeferredCounter<"exit" | "direction">;
  exitOpen: Gauge<"exit">;
  exitDraining: Gauge<"exit" | "to">;
  exitDrainDeadline: Gauge<"exit">;
  /** Relaying connections per exit, counted at each scrape (set by the server). */
  openByExit: () => Map<string, number>;
  /** Open client connections, read at each scrape (set by the server): no gauge update per connection. */
  openConnections: () => number;
  /** The exits of the settings of the moment (set by the server). */
  egress: () => Egress | undefined;
}

export function createProxyMetrics(): ProxyMetrics {
  const registry = new Registry();
  const registers = [registry];
  const metrics: ProxyMetrics = {
    registry,
    active: new Gauge({
      name: "wg_egress_proxy_active_connections",
      help: "Client connections currently open (in handshake or relaying).",
      registers,
      collect() {
        this.set(metrics.openConnections());
      },
    }),
    connections: deferredCounter({
      name: "wg_egress_proxy_connections_total",
      help: "Finished client connections by result (ok, refused, failed, malformed, auth_failed, handshake_timeout, drain_deadline, internal_error, ...) and SOCKS reply code name.",
      labelNames: ["result", "reply"],
      registers,
    }),
    bytes: deferredCounter({
      name: "wg_egress_proxy_bytes_total",
      help: "Bytes relayed: up = client to destination, down = destination to client.",
      labelNames: ["direction"],
      registers,
    }),
    handshakeSeconds: new BucketHistogram(
      "wg_egress_proxy_handshake_seconds",
      "From accepting a client to sending the success reply (includes DNS and the outbound connect).",
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registry,
    ),
    dnsSeconds: new BucketHistogram(
      "wg_egress_proxy_dns_seconds",
      "Destination name resolution time, by the exit that resolved it and outcome (ok or the error code).",
      [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registry,
      ["exit", "outcome"],
    ),
    refused: new Counter({
      name: "wg_egress_proxy_clients_refused_total",
      help: "Clients dropped on accept: not in the client allow-list (client_not_allowed), over a connection limit (max_connections, max_per_client), or out of file descriptors (fd_limit).",
      labelNames: ["reason"],
      registers,
    }),
    relayBuffers: new Gauge({
      name: "wg_egress_proxy_relay_buffer_bytes",
      help: "Bytes in the relay's large read buffers (in use, held by a stalled write, or pooled); at most proxy.limits.relayBufferMiB.",
      registers,
      collect() {
        this.set(relayBufferBytes());
      },
    }),
    exitConnections: deferredCounter({
      name: "wg_egress_proxy_exit_connections_total",
      help: "Finished connections by the exit they were sent to (exits:; the one exit is 'default') and result; exit 'none' with result no_exit: no healthy pool member.",
      labelNames: ["exit", "result"],
      registers,
    }),
    exitBytes: deferredCounter({
      name: "wg_egress_proxy_exit_bytes_total",
      help: "Bytes relayed by exit: up = client to destination, down = destination to client.",
      labelNames: ["exit", "direction"],
      registers,
    }),
    exitOpen: new Gauge({
      name: "wg_egress_proxy_exit_open_connections",
      help: "Connections relaying now, by exit.",
      labelNames: ["exit"],
      registers,
      collect() {
        this.reset();
        for (const [exit, n] of metrics.openByExit()) this.set({ exit }, n);
      },
    }),
    exitDraining: new Gauge({
      name: "wg_egress_proxy_exit_draining",
      help: "1 while the exit drains (exits[].drain: no new connections; `to` = its replacement, '' = none), else 0.",
      labelNames: ["exit", "to"],
      registers,
      collect() {
        this.reset();
        const egress = metrics.egress();
        for (const exit of egress?.exits ?? []) {
          const d = egress?.draining.get(exit);
          this.set({ exit, to: d?.to ?? "" }, d ? 1 : 0);
        }
      },
    }),
    exitDrainDeadline: new Gauge({
      name: "wg_egress_proxy_exit_drain_deadline_seconds",
      help: "When the proxy closes a draining exit's remaining connections (Unix time); absent without a deadline.",
      labelNames: ["exit"],
      registers,
      collect() {
        this.reset();
        for (const [exit, d] of metrics.egress()?.draining ?? [])
          if (d.deadline !== undefined) this.set({ exit }, d.deadline / 1000);
      },
    }),
    openByExit: () => new Map(),
    openConnections: () => 0,
    egress: () => undefined,
  };
  return metrics;
}
