import { formatCost, summarizeRules } from "./plan.js";
import { serverTypeCost } from "./provision.js";
import { findFirewall, findServer, type HetznerContext } from "./resources.js";

/** Prints what is really there: server state and address, firewall rules, and the monthly cost. */
export async function status(ctx: HetznerContext): Promise<void> {
  const server = await findServer(ctx);
  const fw = await findFirewall(ctx);
  if (server) {
    ctx.out(`server: ${server.name} (id ${server.id}) ${server.status}`);
    ctx.out(
      `  type ${server.server_type.name} in ${server.datacenter.location.name}, image ${server.image?.name ?? "?"}`,
    );
    ctx.out(`  ipv4 ${server.public_net.ipv4?.ip ?? "none"}, ipv6 ${server.public_net.ipv6?.ip ?? "none"}`);
    ctx.out(
      `  endpoint ${server.public_net.ipv4 ? `${server.public_net.ipv4.ip}:${ctx.exit.listenPort}` : "none"}`,
    );
    const price = server.server_type.prices.find((p) => p.location === server.datacenter.location.name);
    if (price)
      ctx.out(
        `  ${formatCost(server.server_type.name, { gross: Number(price.price_monthly.gross), net: Number(price.price_monthly.net), location: server.datacenter.location.name })}`,
      );
  } else {
    ctx.out(`server: none (no server labelled ${JSON.stringify(ctx.exit.hetzner.labels)})`);
    const { cost } = await serverTypeCost(ctx);
    ctx.out(
      `  provisioning would cost: ${formatCost(ctx.exit.hetzner.serverType, cost).replace(/^monthly cost: /, "")}`,
    );
  }
  if (fw) {
    const attached = fw.applied_to.length ? `applied to ${fw.applied_to.length} resource(s)` : "not applied";
    ctx.out(`firewall: ${fw.name} (id ${fw.id}) ${attached}`);
    for (const line of summarizeRules(fw.rules)) ctx.out(`  ${line}`);
  } else ctx.out(`firewall: none (${ctx.exit.hetzner.firewallName})`);
}
