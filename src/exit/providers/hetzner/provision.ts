import { UserError } from "../../../util/errors.js";
import { waitForActions } from "./actions.js";
import { HetznerApiError } from "./client.js";
import { firewallRules, type MonthlyCost, monthlyCost, sameRules } from "./plan.js";
import { findFirewall, findServer, type HetznerContext } from "./resources.js";
import type { Firewall, Server, ServerType } from "./types.js";

export interface ProvisionResult {
  server: Server;
  firewall: Firewall;
  created: boolean;
  cost: MonthlyCost;
  /** Public IPv4:listenPort, what the gateway's peer endpoint must be. */
  endpoint: string;
}

export async function serverTypeCost(ctx: HetznerContext): Promise<{ type: ServerType; cost: MonthlyCost }> {
  const { serverType, location } = ctx.exit.hetzner;
  const locations = await ctx.client.listLocations();
  if (!locations.some((l) => l.name === location))
    throw new UserError(
      `unknown location ${location} (exit.hetzner.location); available: ${locations.map((l) => l.name).join(", ")}`,
    );
  const [type] = await ctx.client.listServerTypes({ name: serverType });
  if (!type) {
    const known = (await ctx.client.listServerTypes()).filter((t) => !t.deprecated).map((t) => t.name);
    throw new UserError(
      `unknown server type ${serverType} (exit.hetzner.serverType); available: ${known.join(", ")}`,
    );
  }
  return { type, cost: monthlyCost(type, location) };
}

/** Every SSH key named in the config must exist in the project (the API would fail after the firewall). */
async function checkSshKeys(ctx: HetznerContext): Promise<void> {
  for (const name of ctx.exit.hetzner.sshKeyNames)
    if (!(await ctx.client.listSshKeys({ name })).length)
      throw new UserError(
        `SSH key "${name}" (exit.hetzner.sshKeyNames) is not in the Hetzner project: add it in the Console or fix the name`,
      );
}

/** Creates the firewall, or brings an existing one (ours) to the wanted rules. */
async function ensureFirewall(ctx: HetznerContext, sshSources: string[]): Promise<Firewall> {
  const { firewallName, labels } = ctx.exit.hetzner;
  const rules = firewallRules(sshSources, ctx.exit.listenPort);
  const existing = await findFirewall(ctx);
  if (!existing) {
    const { firewall, actions } = await ctx.client.createFirewall({ name: firewallName, labels, rules });
    await waitForActions(ctx.client, actions, ctx.progress);
    ctx.progress.note(`created firewall ${firewallName} (id ${firewall.id})`);
    return firewall;
  }
  if (!sameRules(existing.rules, rules)) {
    await waitForActions(ctx.client, await ctx.client.setFirewallRules(existing.id, rules), ctx.progress);
    ctx.progress.note(`updated the rules of firewall ${firewallName}`);
  }
  return existing;
}

export function endpointOf(server: Server, listenPort: number): string {
  const ip = server.public_net.ipv4?.ip;
  if (!ip)
    throw new UserError(
      `server ${server.name} has no public IPv4 address; the gateway needs one to reach it`,
      1,
    );
  return `${ip}:${listenPort}`;
}

/**
 * Find-or-create: the firewall (SSH from home, WireGuard open), then the server carrying our labels with
 * that firewall. Running it again changes nothing but drifted firewall rules or a detached firewall.
 */
export async function provision(
  ctx: HetznerContext,
  sshSources: string[],
  userData: () => Promise<string>,
): Promise<ProvisionResult> {
  const h = ctx.exit.hetzner;
  const { cost } = await serverTypeCost(ctx);
  // Checked before anything is created: a foreign same-named server stops us with nothing half-applied.
  const existing = await findServer(ctx);
  if (!existing) await checkSshKeys(ctx);
  const firewall = await ensureFirewall(ctx, sshSources);
  let id: number;
  if (!existing) {
    let res: Awaited<ReturnType<typeof ctx.client.createServer>>;
    try {
      res = await ctx.client.createServer({
        name: h.serverName,
        server_type: h.serverType,
        image: h.image,
        location: h.location,
        ssh_keys: h.sshKeyNames,
        user_data: await userData(),
        labels: h.labels,
        firewalls: [{ firewall: firewall.id }],
        public_net: { enable_ipv4: true, enable_ipv6: true },
      });
    } catch (e) {
      if (e instanceof HetznerApiError && e.code === "uniqueness_error")
        throw new UserError(
          `a server named ${h.serverName} was created meanwhile by someone else; run provision again`,
          1,
        );
      throw e;
    }
    id = res.server.id;
    ctx.progress.note(`creating server ${h.serverName} (id ${id}, ${h.serverType} in ${h.location})`);
    await waitForActions(ctx.client, [res.action, ...res.next_actions], ctx.progress);
    // root_password is set only without SSH keys; it is never shown (SSH accepts keys only anyway).
    if (res.root_password)
      ctx.progress.note("no SSH keys in exit.hetzner.sshKeyNames: log in with exit.sshAuthorizedKeys");
  } else {
    id = existing.id;
    ctx.progress.note(`server ${existing.name} (id ${id}) exists: not creating another`);
    if (!existing.public_net.firewalls.some((f) => f.id === firewall.id))
      await waitForActions(
        ctx.client,
        await ctx.client.applyFirewall(firewall.id, [{ type: "server", server: { id } }]),
        ctx.progress,
      );
  }
  const server = await ctx.client.getServer(id);
  return { server, firewall, created: !existing, cost, endpoint: endpointOf(server, ctx.exit.listenPort) };
}
