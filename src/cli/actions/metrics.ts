import { startGatewayMetrics } from "../../metrics/gateway-metrics.js";
import type { Invocation } from "../command.js";

export interface MetricsOpts {
  friendlyName?: string;
  separateAllowedIps?: boolean;
  exportRemoteIpAndPort?: boolean;
  ipCheckUrl?: string;
  ipCheckInterval: number;
}

export async function serve({ opts: o, config: load }: Invocation<MetricsOpts>): Promise<void> {
  const config = await load();
  const peer = config.gateway.peer.publicKey;
  const server = await startGatewayMetrics(config, {
    exporter: {
      separateAllowedIps: o.separateAllowedIps,
      exportRemoteIpAndPort: o.exportRemoteIpAndPort,
      friendlyNames: o.friendlyName && peer ? { [peer]: o.friendlyName } : undefined,
    },
    ipCheck: o.ipCheckUrl ? { url: o.ipCheckUrl, intervalSeconds: o.ipCheckInterval } : undefined,
  });
  process.stdout.write(`serving http://${config.gateway.metrics}/metrics\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      server.close(() => resolve());
      server.closeAllConnections();
    };
    process.once("SIGTERM", stop).once("SIGINT", stop);
  });
}
