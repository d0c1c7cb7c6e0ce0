import { formatCost, summarizeRules } from "./plan.js";
import { serverTrouble, serverTypeCost } from "./provision.js";
import { findFirewall, findServer, type HetznerContext } from "./resources.js";
import { describeReverseDns } from "./reverse-dns.js";
import type { Firewall, Server } from "./types.js";

/** Whether our firewall protects our server: the server's own list says so (and whether it is applied yet). */
function firewallState(fw: Firewall, server: Server | undefined): { line: string; ok: boolean } {
  const others = fw.applied_to.filter((r) => !(r.type === "server" && r.server.id === server?.id)).length;
  const elsewhere = others ? `; also applied to ${others} other resource(s)` : "";
  if (!server) return { line: `not applied to a server of ours${elsewhere}`, ok: true };
  const mine = server.public_net.firewalls.find((f) => f.id === fw.id);
  if (!mine)
    return {
      line: `NOT applied to ${server.name}: SSH is open to anyone the exit's own firewall admits; run wg-egress exit provision${elsewhere}`,
      ok: false,
    };
  return { line: `${mine.status} on ${server.name}${elsewhere}`, ok: true };
}

/**
 * Prints what is really there: server state and address, reverse DNS, firewall rules, the monthly cost.
 * Returns false when something is wrong (a server that does not run, a firewall not protecting it).
 */
export async function status(ctx: HetznerContext): Promise<boolean> {
  const server = await findServer(ctx);
  const fw = await findFirewall(ctx);
  let ok = true;
  if (server) {
    const trouble = await serverTrouble(ctx, server);
    ctx.out(`server: ${server.name} (id ${server.id}) ${server.status}${trouble ? `: ${trouble}` : ""}`);
    ok = !trouble;
    const location = server.datacenter.location.name;
    ctx.out(`  type ${server.server_type.name} in ${location}, image ${server.image?.name ?? "?"}`);
    ctx.out(`  ipv4 ${server.public_net.ipv4?.ip ?? "none"}, ipv6 ${server.public_net.ipv6?.ip ?? "none"}`);
    ctx.out(
      `  endpoint ${server.public_net.ipv4 ? `${server.public_net.ipv4.ip}:${ctx.exit.listenPort}` : "none"}`,
    );
    ctx.out(`  ${describeReverseDns(ctx.exit.reverseDns, server)}`);
    const { cost } = await serverTypeCost(ctx, server.server_type.name, location);
    ctx.out(`  ${formatCost(server.server_type.name, cost)}`);
  } else {
    ctx.out(
      `server: none (no server ${ctx.exit.hetzner.serverName} labelled ${JSON.stringify(ctx.exit.hetzner.labels)})`,
    );
    const { cost } = await serverTypeCost(ctx);
    ctx.out(
      `  provisioning would cost: ${formatCost(ctx.exit.hetzner.serverType, cost).replace(/^monthly cost: /, "")}`,
    );
  }
  if (fw) {
    const state = firewallState(fw, server);
    ok &&= state.ok;
    ctx.out(`firewall: ${fw.name} (id ${fw.id}) ${state.line}`);
    for (const line of summarizeRules(fw.rules)) ctx.out(`  ${line}`);
  } else {
    ctx.out(
      `firewall: none (${ctx.exit.hetzner.firewallName})${server ? ": run wg-egress exit provision" : ""}`,
    );
    if (server) ok = false;
  }
  return ok;
}
