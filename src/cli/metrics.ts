import type { Command } from "commander";
import type { MetricsOpts } from "./actions/metrics.js";
import { defineCommand } from "./command.js";
import { INTERFACE, number } from "./flags.js";

export function registerMetrics(program: Command): void {
  defineCommand<MetricsOpts>(program, {
    name: "metrics",
    description:
      "serve the gateway's WireGuard metrics (prometheus_wireguard_exporter names), kill-switch and agent state on /metrics until stopped",
    flags: [
      INTERFACE,
      { flags: "--listen <host:port>", key: "gateway.metrics", help: "where to serve /metrics and /healthz" },
      { flags: "--friendly-name <name>", help: "friendly_name label for the configured peer (the exit)" },
      {
        flags: "--separate-allowed-ips",
        help: "allowed_ip_N/allowed_subnet_N labels instead of allowed_ips (upstream -s)",
      },
      { flags: "--export-remote-ip-and-port", help: "remote_ip and remote_port labels (upstream -r)" },
      {
        flags: "--ip-check-url <url>",
        help: "check periodically that this IP echo service sees the exit's IP through the proxy",
      },
      {
        flags: "--ip-check-interval <seconds>",
        help: "seconds between IP checks",
        parse: number("--ip-check-interval", { min: 10 }),
        default: 300,
      },
    ],
    run: async (inv) => (await import("./actions/metrics.js")).serve(inv),
  });
}
