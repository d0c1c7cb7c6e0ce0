import type { Command } from "commander";
import { startGatewayMetrics } from "../metrics/gateway-metrics.js";
import { UserError } from "../util/errors.js";
import { addConfigOption, configFrom } from "./common.js";

interface MetricsOpts {
  config?: string;
  interface?: string;
  listen?: string;
  friendlyName?: string;
  separateAllowedIps?: boolean;
  exportRemoteIpAndPort?: boolean;
  ipCheckUrl?: string;
  ipCheckInterval: string;
}

export function registerMetrics(program: Command): void {
  addConfigOption(program.command("metrics"))
    .description(
      "serve the gateway's WireGuard metrics (prometheus_wireguard_exporter names) and kill-switch state on /metrics until stopped",
    )
    .option("-i, --interface <name>", "WireGuard interface (gateway.interface)")
    .option(
      "--listen <host:port>",
      "where to serve /metrics and /healthz (gateway.metrics, default 127.0.0.1:9586)",
    )
    .option("--friendly-name <name>", "friendly_name label for the configured peer (the exit)")
    .option(
      "--separate-allowed-ips",
      "allowed_ip_N/allowed_subnet_N labels instead of allowed_ips (upstream -s)",
    )
    .option("--export-remote-ip-and-port", "remote_ip and remote_port labels (upstream -r)")
    .option(
      "--ip-check-url <url>",
      "check periodically that this IP echo service sees the exit's IP through the proxy",
    )
    .option("--ip-check-interval <seconds>", "seconds between IP checks", "300")
    .action(async (o: MetricsOpts) => {
      const config = configFrom(o, { "gateway.interface": o.interface, "gateway.metrics": o.listen });
      const interval = Number(o.ipCheckInterval);
      if (!(interval >= 10))
        throw new UserError(`--ip-check-interval: expected seconds >= 10, got "${o.ipCheckInterval}"`);
      const peer = config.gateway.peer.publicKey;
      const server = await startGatewayMetrics(config, {
        exporter: {
          separateAllowedIps: o.separateAllowedIps,
          exportRemoteIpAndPort: o.exportRemoteIpAndPort,
          friendlyNames: o.friendlyName && peer ? { [peer]: o.friendlyName } : undefined,
        },
        ipCheck: o.ipCheckUrl ? { url: o.ipCheckUrl, intervalSeconds: interval } : undefined,
      });
      process.stdout.write(`serving http://${config.gateway.metrics}/metrics\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          server.close(() => resolve());
          server.closeAllConnections();
        };
        process.once("SIGTERM", stop).once("SIGINT", stop);
      });
    });
}
